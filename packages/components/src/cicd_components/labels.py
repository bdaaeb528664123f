"""Vertex AI labels: the one place that turns arbitrary key/values (commit, versions) into valid labels."""

import re
from collections.abc import Mapping
from typing import Any

_LABEL_MAX = 63
_LABEL_BAD_CHARS = re.compile(r"[^a-z0-9_-]")


def vertex_labels(mapping: Mapping[str, Any]) -> dict[str, str]:
    """Return ``mapping`` as valid Vertex AI labels.

    Vertex labels: keys and values of at most 63 characters from ``[a-z0-9_-]``, keys starting with a letter.
    Values are lowercased, other characters become ``-`` (version ``0.1.0`` -> ``0-1-0``, ``feat/X`` ->
    ``feat-x``) and are cut at 63. A key that cannot start with a letter, or two keys that end up the same,
    raise ValueError: a label silently dropped or merged would break the model-to-code trail.
    """
    labels: dict[str, str] = {}
    origin: dict[str, str] = {}
    for raw_key, raw_value in mapping.items():
        key = _LABEL_BAD_CHARS.sub("-", str(raw_key).strip().lower())[:_LABEL_MAX]
        if not key or not key[0].isalpha() or not key[0].isascii():
            raise ValueError(
                f"Label key {raw_key!r} cannot be made a Vertex AI label key, which must start with a letter "
                f"(a-z); rename it, e.g. 'v_{raw_key}'."
            )
        if key in labels:
            raise ValueError(
                f"Label keys {origin[key]!r} and {raw_key!r} both become {key!r} as Vertex AI labels; "
                "rename one."
            )
        labels[key] = _LABEL_BAD_CHARS.sub("-", str(raw_value).strip().lower())[:_LABEL_MAX]
        origin[key] = str(raw_key)
    return labels
