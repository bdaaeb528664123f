"""CSV columns as CsvExampleGen types them, and the lists tfx_bsl's encoder turns into tf.Example features.

TFX's CSV executor infers each column's type from all the rows of a split (tfx_bsl.coders.csv_decoder:
INT if every non-empty cell is an int64, else FLOAT if every one is a float, else STRING; UNKNOWN when every
cell is empty) and writes an empty cell as the feature of its type with no value (`int64_list {}`), a column of
empty cells as a feature with no kind at all. The same here, on whole pyarrow columns of strings: pyarrow's
casts decide the common case, and any column they cannot decide exactly is decided cell by cell by tfx_bsl's
own rule (`_InferValueType`), so the types are TFX's whatever the data.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tfx_bsl.coders.csv_decoder import ColumnType, _InferValueType

# A whole number as pyarrow's int64 cast reads it. A cell that looks so and still fails the cast is beyond
# int64: TFX calls it STRING, while pyarrow's float cast would call it FLOAT, so its column is decided by the rule.
_WHOLE = r"^[+-]?[0-9]+$"
_MAYBE_NUMBER = r"\p{Nd}|(?i:nan|inf)"


def present(column: pa.Array) -> pa.Array:
    """The non-empty cells of a column of strings (an empty cell is a missing value)."""
    return column.filter(pc.greater(pc.binary_length(column), 0))


def infer(column: pa.Array) -> ColumnType:
    """The type TFX's ColumnTypeInferrer gives a column of strings."""
    cells = present(column)
    if len(cells) == 0:
        return ColumnType.UNKNOWN
    try:
        pc.cast(cells, pa.int64())
        return ColumnType.INT
    except pa.ArrowInvalid:
        pass
    try:
        pc.cast(cells.filter(pc.match_substring_regex(cells, _WHOLE)), pa.int64())
        pc.cast(cells, pa.float64())
        return ColumnType.FLOAT
    except pa.ArrowInvalid:
        pass
    # Python's float() reads nothing without a digit (of any script) or nan/inf: one such cell makes a STRING.
    if not pc.all(pc.match_substring_regex(cells, _MAYBE_NUMBER)).as_py():
        return ColumnType.STRING
    # What Python's int() and float() read and pyarrow does not (spaces, "1_000", other scripts' digits), or
    # a number beyond int64: tfx_bsl's rule, cell by cell.
    return max(_InferValueType(cell) for cell in cells.cast(pa.large_binary()).to_pylist())


def widest(a: ColumnType | None, b: ColumnType) -> ColumnType:
    """The type of two parts of one column: the later in INT < FLOAT < STRING (ColumnTypeInferrer's merge)."""
    return b if a is None or b > a else a


_VALUES = {
    ColumnType.INT: (pa.int64(), int),
    ColumnType.FLOAT: (pa.float64(), float),
}


def feature_lists(column: pa.Array, kind: ColumnType) -> pa.Array:
    """The column as the encoder's lists: one value per non-empty cell, an empty list for an empty cell (TFX's
    `int64_list {}`), and for an UNKNOWN column a missing list per row (a feature with no kind)."""
    if kind == ColumnType.UNKNOWN:
        return pa.nulls(len(column), pa.large_list(pa.int64()))
    mask = pc.greater(pc.binary_length(column), 0)
    cells = column.filter(mask)
    if kind == ColumnType.STRING:
        values = cells.cast(pa.large_binary())
    else:
        arrow_type, parse = _VALUES[kind]
        try:
            values = pc.cast(cells, arrow_type)
        except pa.ArrowInvalid:  # the cells infer() had to read with Python's own int() or float()
            values = pa.array([parse(cell) for cell in cells.to_pylist()], arrow_type)
        if kind == ColumnType.FLOAT:  # tf.train.FloatList holds float32, as TFX's float(cell) becomes
            values = pc.cast(values, pa.float32(), safe=False)
    offsets = np.zeros(len(column) + 1, dtype=np.int64)
    np.cumsum(mask.to_numpy(zero_copy_only=False), out=offsets[1:])
    return pa.LargeListArray.from_arrays(pa.array(offsets), values)
