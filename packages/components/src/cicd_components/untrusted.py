"""Text someone else handed us, made safe to parse and to show: JSON bounded before it is parsed, values clipped
before a message repeats them.

Python's json module has no limits of its own: a 20,000-deep array is a RecursionError, a 5,000-digit integer a
ValueError from int() (Python's limit on integer digits), a 100 MB document all of memory. `loads` checks the
size, the nesting depth and each integer's length first, and says which bound was passed (`TooLarge`, a
ValueError); `clip` keeps any echoed value to one short line. Pure Python, no TFX: the settings, the tasks and
the release chain use it on every JSON input they read (flags, invoke.yaml values, the release record, the
`.cicd/` hand-off files).
"""

from __future__ import annotations

import json
import re
from typing import Any

# Generous for what we read (a run's hyperparameters, a release record, a compiled spec of a few hundred KB),
# small enough that a hostile document is refused before it costs anything.
MAX_BYTES = 8 << 20
MAX_DEPTH = 64
MAX_DIGITS = 64  # an int64 has 19; a float's digits are not converted exactly, so only integers are bounded
CLIP = 80

# A JSON string (with its escapes) or one bracket: strings are skipped whole, so a "[" inside one is not depth.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class TooLarge(ValueError):
    """A JSON document passes a bound (size, depth or an integer's digits): it was not parsed."""


def clip(value: Any, limit: int = CLIP) -> str:
    """`value` as text, cut to `limit` characters with how long it was: an over-long value never fills a log."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text` (brackets inside strings do not count)."""
    deepest = level = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            level += 1
            deepest = max(deepest, level)
        elif token in "]}":
            level -= 1
    return deepest


def loads(
    text: str | bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_digits: int = MAX_DIGITS,
    **json_options: Any,
) -> Any:
    """`json.loads(text)` once the text is within `max_bytes`, `max_depth` levels of nesting and integers of at
    most `max_digits` digits; TooLarge naming the bound otherwise (json.JSONDecodeError for bad JSON, as ever)."""
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > max_bytes:
        raise TooLarge(f"is {size} bytes, more than the {max_bytes} allowed")
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    if depth(text) > max_depth:
        raise TooLarge(f"is nested more than {max_depth} levels deep")

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_digits:
            raise TooLarge(
                f"has an integer of {len(digits.lstrip('-'))} digits, more than the {max_digits} allowed"
            )
        return int(digits)

    return json.loads(text, parse_int=parse_int, **json_options)
