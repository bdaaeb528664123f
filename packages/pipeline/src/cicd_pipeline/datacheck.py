"""A data check before the pipeline: reads the CSV files of a data root in seconds, without TFX, and names each
problem as file:line, so a malformed row is not found a minute into CsvExampleGen with a message that names
neither the file nor the line.

It checks what CsvExampleGen needs to read the data at all: every file in the folder is a CSV (it reads them
all), no subfolder (it globs the folder's entries and cannot read a folder as a file), UTF-8 without a
byte-order mark, one header that names the schema's columns, the same in every file,
and rows with as many fields as the header. What the values mean (types, domains, counts) is for the schema
and the data gate inside the pipeline. Harmless oddities (CRLF line endings, repeated rows) pass.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from pathlib import Path

_BOM = b"\xef\xbb\xbf"
_LISTED = 5  # bad lines named per problem; the count covers all of them


@dataclasses.dataclass(frozen=True)
class DataReport:
    files: int
    rows: int
    problems: tuple[str, ...]
    # (file name relative to the data root, rows) of each CSV file read: what a snapshot's manifest records.
    rows_by_file: tuple[tuple[str, int], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        if self.ok:
            return f"data check: {self.files} file(s), {self.rows} rows, no problem found."
        return "\n".join(
            [f"data check: {len(self.problems)} problem(s):", *(f"  {p}" for p in self.problems)]
        )


def schema_columns(schema_file: Path) -> list[str]:
    """The feature names of a schema.pbtxt, read as text (no TensorFlow): the columns the data must have."""
    text = schema_file.read_text(encoding="utf-8")
    names, depth, current = [], 0, ""
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].strip()
        if depth == 1 and (match := re.match(r'name:\s*"([^"]+)"', stripped)) and current == "feature":
            names.append(match.group(1))
        if stripped.endswith("{"):
            depth += 1
            if depth == 1:
                current = stripped[:-1].strip()
        depth -= stripped.count("}")
    return names


class _Numbers:
    """Line numbers of one problem: the first few kept to name, all of them counted (memory stays flat)."""

    def __init__(self) -> None:
        self.first: list[int] = []
        self.count = 0

    def add(self, number: int) -> None:
        self.count += 1
        if len(self.first) < _LISTED:
            self.first.append(number)

    def __bool__(self) -> bool:
        return self.count > 0


def _lines(label: str, numbers: _Numbers, what: str) -> str:
    shown = ", ".join(f"{label}:{n}" for n in numbers.first)
    more = f" and {numbers.count - len(numbers.first)} more" if numbers.count > len(numbers.first) else ""
    return f"{shown}{more}: {what} ({numbers.count} row(s))"


def _decoded(raw_lines, bad_bytes: _Numbers, first_bad: list[int]):
    """Each line as text; a line that is not UTF-8 is counted (and its first bad byte kept) and read as
    replaced, so the reader goes on and the problem names every such line."""
    for number, raw in enumerate(raw_lines, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad_bytes.add(number)
            if not first_bad:
                first_bad += [number, err.start]
            yield raw.decode("utf-8", errors="replace")


def check_file(path: Path, label: str, columns: list[str] | None) -> tuple[list[str], list[str] | None, int]:
    """(problems, header, rows) of one file; `label` is how the file is named in messages.

    Streams the file: memory does not grow with its size (a 200 MB file once took 22 times its size when
    every row was kept).
    """
    problems: list[str] = []
    bad_bytes, first_bad, wrong = _Numbers(), [], _Numbers()
    header: list[str] | None = None
    count = 0
    with path.open("rb") as raw:
        if raw.read(len(_BOM)) == _BOM:
            problems.append(
                f"{label}:1: starts with a UTF-8 byte-order mark, which becomes part of the first column's name "
                "(the schema then sees that column dropped and a new one added): save the file without it."
            )
        else:
            raw.seek(0)
        for row in csv.reader(_decoded(raw, bad_bytes, first_bad)):
            if not row:
                continue  # an empty line is no row
            if header is None:
                header = row
                continue
            count += 1
            if len(row) != len(header):
                wrong.add(count + 1)
    if bad_bytes:
        number, column = first_bad
        problems.append(
            f"{_lines(label, bad_bytes, 'not UTF-8')}; the first at byte {column + 1} of line "
            f"{number}: re-save the file as UTF-8."
        )
        return problems, None, 0
    if header is None:
        return [*problems, f"{label}: empty: no header and no rows."], None, 0
    if columns is not None and [c.strip() for c in header] != columns and set(header) != set(columns):
        missing = [c for c in columns if c not in header]
        extra = [c for c in header if c not in columns]
        problems.append(
            f"{label}:1: the header {','.join(header)!r} does not match the schema's columns "
            f"{','.join(columns)!r} (missing: {missing or 'none'}; not in the schema: {extra or 'none'})."
        )
    if not count:
        problems.append(f"{label}: a header and no rows: nothing to train on.")
    if wrong:
        problems.append(
            _lines(label, wrong, f"not {len(header)} fields like the header (a truncated or split row)")
        )
    return problems, header, count


def _entries(data_root: Path) -> list[Path]:
    """Every entry under `data_root`, links included but never followed (os.walk's default)."""
    found = []
    for folder, dirs, names in os.walk(data_root):
        found += [Path(folder, name) for name in (*dirs, *names)]
    return found


def check_data_root(data_root: Path, schema_file: Path | None = None) -> DataReport:
    """Checks every file under `data_root` (CsvExampleGen reads them all) against the schema's columns."""
    if not data_root.is_dir():
        return DataReport(0, 0, (f"{data_root}: not a folder: pass the folder that holds the CSV files.",))
    columns = schema_columns(schema_file) if schema_file else None
    problems: list[str] = []
    headers: dict[str, list[str]] = {}
    rows_by_file: list[tuple[str, int]] = []
    files = rows = 0
    entries = sorted(_entries(data_root))
    for path in entries:
        if path.is_symlink():
            # Never read through a link: what it points to is outside what was checked and committed (a link
            # to /proc/self/environ or a key file would be trained on, uploaded and quoted in messages).
            problems.append(
                f"{path.relative_to(data_root.parent)}: a link, which the data check, CsvExampleGen and the "
                "upload would follow out of the data folder: put the file itself there instead."
            )
    for folder in (p for p in entries if p.is_dir() and not p.is_symlink()):
        problems.append(
            f"{folder.relative_to(data_root.parent)}: a folder inside the data root: CsvExampleGen reads the "
            f"files directly in {data_root} and fails on a folder: move its files up or out."
        )
    for path in (p for p in entries if p.is_file() and not p.is_symlink()):
        label = str(path.relative_to(data_root.parent))
        if path.parent != data_root:
            continue  # named with its folder above
        if path.suffix.lower() != ".csv":
            problems.append(
                f"{label}: not a CSV file, and CsvExampleGen reads every file in the folder: move it out of "
                f"{data_root}."
            )
            continue
        files += 1
        file_problems, header, count = check_file(path, label, columns)
        problems += file_problems
        rows += count
        rows_by_file.append((path.name, count))
        if header is not None:
            headers[label] = header
    if len({tuple(h) for h in headers.values()}) > 1:
        first, *_ = headers
        odd = [name for name, h in headers.items() if h != headers[first]]
        problems.append(
            f"{', '.join(odd)}: a header other than {first}'s: the files of one split must share one header."
        )
    if not files and not problems:
        problems.append(f"{data_root}: no CSV file: put the training data there, or pass --data-root.")
    return DataReport(files, rows, tuple(problems), tuple(rows_by_file))
