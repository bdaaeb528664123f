"""What a table's columns are, read from CSV text without TFX: each column's type as CsvExampleGen will infer
it, how often it is empty, its values; then which columns feed the model and which would mislead it.

A column is left out of the model, and named in one line with the reason, when it is identifier-like (almost
every value distinct: a row number or a key teaches nothing that holds for new rows), constant (it tells the
model nothing), or empty in most rows (imputing most of it would teach the model the imputed value).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter

# Cells that mean "no value" in a column of numbers. CsvExampleGen reads only an empty cell as missing: a
# column of numbers with `NA` in it would become a column of text, so init writes these as empty cells.
MISSING_TOKENS = frozenset({"NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?", "-"})
_INT = re.compile(r"^[+-]?\d+$")
# More than this share of a column empty: left out of the model.
MOSTLY_EMPTY = 0.5
# At least this share of a text (or integer) column's values distinct: identifier-like.
IDENTIFIER_SHARE = 0.9
# Fewer present values than this are too few to call a column identifier-like (every value of 5 rows differs).
IDENTIFIER_MIN_ROWS = 20
_ID_NAME = re.compile(r"(^|[^a-z0-9])(id|uuid|guid|key|index|row|rownum|row_number)$", re.IGNORECASE)
# A classification label that is a column of integers has at most this many classes (else: a regression).
MAX_INTEGER_CLASSES = 20


@dataclasses.dataclass(frozen=True)
class Column:
    """One column as CsvExampleGen will read it: `kind` int, float or string (its inferred type)."""

    name: str
    kind: str
    rows: int
    present: int
    distinct: int
    # The present values, as numbers for int and float columns, as text for string columns.
    values: tuple
    # How many present cells were a missing-value token (NA, ...) in a column of numbers.
    tokens: int = 0

    @property
    def missing(self) -> int:
        return self.rows - self.present

    @property
    def present_share(self) -> float:
        return self.present / self.rows if self.rows else 0.0

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    def counts(self) -> Counter:
        return Counter(self.values)


def _is_float(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value)


def infer(name: str, cells: list[str]) -> Column:
    """The column `name` from its cells (one per row, as the CSV file holds them)."""
    stripped = [c.strip() for c in cells]
    filled = [c for c in stripped if c != ""]
    numeric_candidates = [c for c in filled if c not in MISSING_TOKENS]
    tokens = len(filled) - len(numeric_candidates)
    if numeric_candidates and all(_INT.match(c) for c in numeric_candidates):
        kind, values = "int", tuple(int(c) for c in numeric_candidates)
    elif numeric_candidates and all(_is_float(c) for c in numeric_candidates):
        kind, values = "float", tuple(float(c) for c in numeric_candidates)
    else:
        # Text: every non-empty cell is a value (NA included: in a text column it may be a real category).
        kind, values, tokens = "string", tuple(c for c in cells if c.strip() != ""), 0
    return Column(name, kind, len(cells), len(values), len(set(values)), values, tokens)


def transformed_name(key: str) -> str:
    """The name of a feature after Transform, as the generated module files make it: a Keras layer name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key) + "_xf"


@dataclasses.dataclass(frozen=True)
class Finding:
    """A column that would mislead a model (or a fact about the data a user should know): one line."""

    column: str
    what: str
    done: str

    def line(self) -> str:
        return f"{self.column}: {self.what}: {self.done}"


def _identifier_like(column: Column) -> str | None:
    """Why `column` looks like an identifier, or None."""
    if column.present < IDENTIFIER_MIN_ROWS or column.kind == "float":
        return None
    share = column.distinct / column.present
    if column.kind == "string" and share >= IDENTIFIER_SHARE:
        return f"{column.distinct} distinct values in {column.present} rows"
    if column.kind == "int" and column.distinct == column.present:
        span = max(column.values) - min(column.values) + 1
        # A run of consecutive numbers (a row number), or a key by its name: not a measurement.
        if span <= 1.1 * column.present or _ID_NAME.search(column.name):
            return f"{column.distinct} distinct integers in {column.present} rows"
    if _ID_NAME.search(column.name) and share >= IDENTIFIER_SHARE:
        return f"named like a key, {column.distinct} distinct values in {column.present} rows"
    return None


def left_out(column: Column) -> Finding | None:
    """Why a feature column is left out of the model, or None when it feeds it."""
    if column.present == 0:
        return Finding(column.name, "empty in every row", "left out of the model")
    if column.present_share < 1 - MOSTLY_EMPTY:
        return Finding(
            column.name,
            f"empty in {column.missing} of {column.rows} rows ({1 - column.present_share:.0%})",
            "left out of the model (imputing most of it would teach the model the imputed value)",
        )
    if column.distinct == 1:
        return Finding(
            column.name, f"constant ({column.values[0]!r} in every filled row)", "left out of the model"
        )
    why = _identifier_like(column)
    if why:
        return Finding(
            column.name,
            f"identifier-like ({why})",
            "left out of the model (a value seen once teaches nothing about new rows)",
        )
    return None


def infer_task(label: Column) -> tuple[str, str]:
    """(task, why) for a label column: text is a class, a few integers are classes, other numbers a value."""
    if label.kind == "string":
        return "classification", "the label is text"
    if label.kind == "int" and label.distinct <= MAX_INTEGER_CLASSES:
        return "classification", f"the label holds {label.distinct} distinct integers"
    return "regression", f"the label holds {label.distinct} distinct numbers"
