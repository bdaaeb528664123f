"""The one rule for hyperparameter overrides, shared by the training config, the release chain and the executor.

A run's hyperparameters are a JSON object whose keys the model knows and whose values have the model's types.
`known` maps each key to a type name ("int", "float", "str", "bool"); it is plain data so that the pipeline
can hand it to HyperparametersGen as an execution parameter (`encode_known`). Import-light on purpose: no TFX,
so the tasks and the settings can check a user's input in milliseconds.
"""

import json
import math
from collections.abc import Mapping
from typing import Any

from cicd_components.canonical import canonical_json
from cicd_components.untrusted import TooLarge, clip, loads


class HyperparametersError(ValueError):
    """The hyperparameters are not what the model takes; the one-line message names the key, value and the fix."""


# What each type name accepts. bool is a subclass of int in Python, hence the explicit exclusions: `true` is
# not a number of hidden units. An int is a JSON integer (8, not 8.0 nor "8"); a float takes 1 as well as 0.5.
_ACCEPTS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
}
TYPE_NAMES = tuple(_ACCEPTS)
_EXAMPLES = {"int": "8", "float": "0.01", "str": '"adam"', "bool": "true"}
_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
# A run's hyperparameters are a handful of scalars: a few KB at most, one level of nesting.
MAX_BYTES, MAX_DEPTH = 64 << 10, 8


def _kind(value: Any) -> str:
    """How JSON would call `value`'s type, for messages."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list, str)):
        return _JSON_KINDS[type(value)]
    if isinstance(value, int):
        return "an integer"
    return "a number" if math.isfinite(value) else "a non-finite number"


def describe_known(known: Mapping[str, str] | None) -> str:
    """`batch_size (int), learning_rate (float)`: the keys a model takes, for messages."""
    if known is None:
        return "any key with a number, string or boolean value"
    if not known:
        return "none"
    return ", ".join(f"{key} ({kind})" for key, kind in sorted(known.items()))


def _check_known(known: Mapping[str, str]) -> None:
    wrong = {key: kind for key, kind in known.items() if kind not in _ACCEPTS}
    if wrong:
        # The table is code, not user input: a plain ValueError for the developer who wrote it.
        raise ValueError(f"hyperparameter types {wrong} are not among {', '.join(TYPE_NAMES)}.")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys without a word; a user who wrote both meant one of them.
    values: dict[str, Any] = {}
    for key, value in pairs:
        if key in values:
            raise HyperparametersError(
                f"hyperparameter {clip(repr(key))} is given twice; give each key once."
            )
        values[key] = value
    return values


def parse_hyperparameters(text: str, known: Mapping[str, str] | None) -> dict[str, Any]:
    """The hyperparameters in `text` as a dict, after checking them against `known` (key -> type name).

    `text` must be a JSON object; with `known`, only its keys, each with a value of its type; with
    `known=None`, any key whose value is a number, string or boolean. Raises HyperparametersError.
    """
    if known is not None:
        _check_known(known)
    expected = f"known: {describe_known(known)}"
    example = (
        "{" + ", ".join(f'"{key}": {_EXAMPLES[kind]}' for key, kind in sorted(known.items())[:2]) + "}"
        if known
        else '{"learning_rate": 0.01}'
    )
    shown = clip(repr(text))
    try:
        values = loads(text, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH, object_pairs_hook=_no_duplicates)
    except TooLarge as err:
        raise HyperparametersError(
            f"hyperparameters {shown} {err}; write a JSON object such as {example}; {expected}."
        ) from None
    except (TypeError, json.JSONDecodeError) as err:
        raise HyperparametersError(
            f"hyperparameters {shown} are not valid JSON ({err}); write a JSON object such as {example}; "
            f"{expected}."
        ) from None
    if not isinstance(values, dict):
        raise HyperparametersError(
            f"hyperparameters {shown} must be a JSON object, not {_kind(values)}; write one such as {example}; "
            f"{expected}."
        )
    for key, value in values.items():
        if known is None:
            if isinstance(value, (dict, list)) or value is None:
                raise HyperparametersError(
                    f"hyperparameter {clip(repr(key))}={clip(repr(value))} must be a number, string or boolean, "
                    f"not {_kind(value)}."
                )
            continue
        if key not in known:
            raise HyperparametersError(
                f"hyperparameter {clip(repr(key))}={clip(json.dumps(value))} is not one the model takes; "
                f"{expected}."
            )
        kind = known[key]
        if not _ACCEPTS[kind](value):
            raise HyperparametersError(
                f"hyperparameter {key!r}={clip(json.dumps(value))} must be {kind} (e.g. {_EXAMPLES[kind]}), "
                f"not {_kind(value)}; {expected}."
            )
    return values


def encode_known(known: Mapping[str, str]) -> str:
    """The key -> type-name table as a JSON string: the form it travels in as an execution parameter."""
    _check_known(known)
    return canonical_json(dict(known), spaced=True)


def decode_known(text: str | None) -> dict[str, str] | None:
    """The table from `encode_known`; None for an empty string (no table: only scalars are checked)."""
    if not text:
        return None
    known = json.loads(text)
    if not isinstance(known, dict) or not all(isinstance(v, str) for v in known.values()):
        raise ValueError(f"'known' must be a JSON object of key -> type name, got {text!r}.")
    _check_known(known)
    return known
