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
import io
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


def _lines(label: str, numbers: list[int], what: str) -> str:
    shown = ", ".join(f"{label}:{n}" for n in numbers[:_LISTED])
    more = f" and {len(numbers) - _LISTED} more" if len(numbers) > _LISTED else ""
    return f"{shown}{more}: {what} ({len(numbers)} row(s))"


def check_file(path: Path, label: str, columns: list[str] | None) -> tuple[list[str], list[str] | None, int]:
    """(problems, header, rows) of one file; `label` is how the file is named in messages."""
    data = path.read_bytes()
    problems: list[str] = []
    if data.startswith(_BOM):
        problems.append(
            f"{label}:1: starts with a UTF-8 byte-order mark, which becomes part of the first column's name "
            "(the schema then sees that column dropped and a new one added): save the file without it."
        )
        data = data[len(_BOM) :]
    bad_bytes = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad_bytes.append((number, err.start))
    if bad_bytes:
        number, column = bad_bytes[0]
        problems.append(
            f"{_lines(label, [n for n, _ in bad_bytes], 'not UTF-8')}; the first at byte {column + 1} of line "
            f"{number}: re-save the file as UTF-8."
        )
        return problems, None, 0
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    rows = [r for r in rows if r]  # a trailing empty line is no row
    if not rows:
        return [*problems, f"{label}: empty: no header and no rows."], None, 0
    header, body = rows[0], rows[1:]
    if columns is not None and [c.strip() for c in header] != columns and set(header) != set(columns):
        missing = [c for c in columns if c not in header]
        extra = [c for c in header if c not in columns]
        problems.append(
            f"{label}:1: the header {','.join(header)!r} does not match the schema's columns "
            f"{','.join(columns)!r} (missing: {missing or 'none'}; not in the schema: {extra or 'none'})."
        )
    if not body:
        problems.append(f"{label}: a header and no rows: nothing to train on.")
    wrong = [n for n, row in enumerate(body, start=2) if len(row) != len(header)]
    if wrong:
        problems.append(
            _lines(label, wrong, f"not {len(header)} fields like the header (a truncated or split row)")
        )
    return problems, header, len(body)


def check_data_root(data_root: Path, schema_file: Path | None = None) -> DataReport:
    """Checks every file under `data_root` (CsvExampleGen reads them all) against the schema's columns."""
    if not data_root.is_dir():
        return DataReport(0, 0, (f"{data_root}: not a folder: pass the folder that holds the CSV files.",))
    columns = schema_columns(schema_file) if schema_file else None
    problems: list[str] = []
    headers: dict[str, list[str]] = {}
    rows_by_file: list[tuple[str, int]] = []
    files = rows = 0
    for folder in sorted(p for p in data_root.rglob("*") if p.is_dir()):
        problems.append(
            f"{folder.relative_to(data_root.parent)}: a folder inside the data root: CsvExampleGen reads the "
            f"files directly in {data_root} and fails on a folder: move its files up or out."
        )
    for path in sorted(p for p in data_root.rglob("*") if p.is_file()):
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
