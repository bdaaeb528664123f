"""The lines of a run's log that say why it failed: its last traceback, else its last ERROR record.

A local run's log holds thousands of lines of TensorFlow, Beam and pip chatter; on a failure the terminal
gets only the part a person needs, bounded, with the log's path for the rest.
"""

from __future__ import annotations

import re
from pathlib import Path

LIMIT = 20
_TAIL_BYTES = 2_000_000  # a failure is at the end: the last 2 MB of a long log are enough
# Where a new record starts: Python logging ("2026-01-02 03:04:05,678 INFO name: ...") and TensorFlow's C++
# logging ("2026-01-02 03:04:05.678901: E external/...").
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
_ERROR = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\S* (ERROR|CRITICAL) ")


def _read_tail(path: Path) -> list[str]:
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - _TAIL_BYTES))
        text = f.read().decode("utf-8", errors="replace")
    lines = text.splitlines()
    return lines[1:] if size > _TAIL_BYTES else lines  # the first line may be cut


def _block(lines: list[str], start: int) -> list[str]:
    """`lines[start]` and what follows it up to the next log record."""
    end = start + 1
    while end < len(lines) and not _RECORD.match(lines[end]):
        end += 1
    return lines[start:end]


def _bounded(block: list[str], limit: int) -> list[str]:
    """The first line (what it is) and the last ones (where and why), at most `limit` in all."""
    block = [line.rstrip() for line in block if line.strip()]
    if len(block) <= limit:
        return block
    return [block[0], f"  … ({len(block) - limit + 1} lines more in the log)", *block[-(limit - 2) :]]


def lines_that_matter(path, limit: int = LIMIT) -> list[str]:
    """The last traceback of the log at `path`, else its last ERROR record, else its last lines; at most
    `limit` lines. Empty when the log is missing or empty."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = _read_tail(path)
    tracebacks = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if tracebacks:
        return _bounded(_block(lines, tracebacks[-1]), limit)
    errors = [i for i, line in enumerate(lines) if _ERROR.match(line)]
    if errors:
        return _bounded(_block(lines, errors[-1]), limit)
    return _bounded(lines[-limit:], limit)


def append_traceback(path, err: BaseException) -> None:
    """Adds `err`'s traceback to the log at `path`: the log, not the terminal, keeps the whole story."""
    import traceback

    with open(path, "a", encoding="utf-8") as log:
        log.write("\n")
        traceback.print_exception(type(err), err, err.__traceback__, file=log)


def failure_message(path, node: str | None, limit: int = LIMIT) -> str:
    """What a failed run prints: where it failed, the lines of its log that say why, and the log's path."""
    where = f"The run failed in {node}." if node else "The run failed."
    lines = lines_that_matter(path, limit)
    body = "".join(f"\n    {line}" for line in lines)
    return (
        f"{where} The lines of its log that matter:{body}\nFull log: {path}"
        if lines
        else f"{where} Full log: {path}"
    )
