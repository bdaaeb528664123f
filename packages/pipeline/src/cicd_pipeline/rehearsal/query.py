"""The resolver's artifact queries, as TFX compiles them for Vertex, and the placeholders inside them.

TFX compiles ``LatestBlessedModelStrategy`` into two resolver tasks (``step_builder.py``,
``_build_latest_blessed_model_resolver``), each an ML Metadata filter over the pipeline's artifacts, of which
Vertex hands on the latest match:

    schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1
    schema_title="tfx.Model" AND state=LIVE AND name="{{$.inputs.artifacts['input'].metadata['current_model_id']}}"

The second names the model by the blessing's ``current_model_id``, which TFX's entrypoint rewrites from its
hashed integer id to the artifact's resource name when an Evaluator (or a subclass, like the Judge) writes the
blessing (``kubeflow_v2_entrypoint_utils.refactor_model_blessing``). The filter language here is the part of
Vertex's (AIP-160) that TFX emits; any other clause is refused, naming it, rather than guessed at.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}")
_CLAUSE = re.compile(r'^\s*([A-Za-z_][\w.]*)\s*(=|!=)\s*("(?:[^"\\]|\\.)*"|\S+)\s*$')


class QueryError(ValueError):
    """A filter a rehearsal cannot answer; the message names the clause."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What a query sees of one artifact: its type's schema title, state, resource name and metadata."""

    schema_title: str
    state: str
    name: str
    metadata: dict[str, Any]


def fill_placeholders(text: str, inputs: dict[str, list[dict[str, Any]]]) -> str | None:
    """``text`` with each ``{{$.inputs.artifacts['K'].metadata['P']}}`` replaced by that input's metadata
    value; None when an input is empty or lacks the value (the query then finds nothing, as on Vertex)."""
    missing = False

    def value(match: re.Match) -> str:
        nonlocal missing
        artifacts = inputs.get(match.group(1), [])
        found = artifacts[0].get("metadata", {}).get(match.group(2)) if artifacts else None
        if found is None:
            missing = True
            return ""
        return str(found)

    filled = _PLACEHOLDER.sub(value, text)
    if "{{$" in filled:
        raise QueryError(f"the query {text!r} has a placeholder a rehearsal does not fill")
    return None if missing else filled


def check_filter(text: str) -> None:
    """QueryError unless ``text`` (its placeholders aside) is a filter a rehearsal can answer."""
    compile_filter(_PLACEHOLDER.sub("", text))
    if "{{$" in _PLACEHOLDER.sub("", text):
        raise QueryError(f"the query {text!r} has a placeholder a rehearsal does not fill")


def _split(text: str) -> list[str]:
    """Clauses joined by AND, outside quotes."""
    clauses, current, quoted = [], "", False
    tokens = re.split(r'(\s+AND\s+|")', text)
    for token in tokens:
        if token == '"':
            quoted = not quoted
            current += token
        elif not quoted and re.fullmatch(r"\s+AND\s+", token or ""):
            clauses.append(current)
            current = ""
        else:
            current += token or ""
    clauses.append(current)
    return [c for c in clauses if c.strip()]


def _literal(raw: str) -> Any:
    if raw.startswith('"'):
        return json.loads(raw)
    try:
        return float(raw)
    except ValueError:
        return raw


def _field(candidate: Candidate, field: str) -> Any:
    if field == "schema_title":
        return candidate.schema_title
    if field == "state":
        return candidate.state
    if field == "name":
        return candidate.name
    parts = field.split(".")
    if (
        len(parts) == 3
        and parts[0] == "metadata"
        and parts[2] in ("number_value", "string_value", "bool_value")
    ):
        value = candidate.metadata.get(parts[1])
        kinds = {"number_value": (int, float), "string_value": (str,), "bool_value": (bool,)}[parts[2]]
        if isinstance(value, bool) and parts[2] == "number_value":
            return None
        return value if isinstance(value, kinds) else None
    raise QueryError(
        f"the clause on {field!r} is not one TFX compiles (schema_title, state, name, metadata.K.*_value)"
    )


def compile_filter(text: str) -> Callable[[Candidate], bool]:
    """A predicate over candidates for a filter of ``field=value`` clauses joined by AND."""
    tests = []
    for clause in _split(text):
        match = _CLAUSE.match(clause)
        if not match:
            raise QueryError(f"the clause {clause.strip()!r} of {text!r} is not field=value")
        field, operator, raw = match.groups()
        expected = _literal(raw)
        _field(Candidate("", "", "", {}), field)  # an unknown field fails now, not per candidate

        def test(candidate: Candidate, field=field, operator=operator, expected=expected) -> bool:
            actual = _field(candidate, field)
            if isinstance(expected, float) and isinstance(actual, (int, float)):
                equal = float(actual) == expected
            else:
                equal = actual == expected
            return equal if operator == "=" else not equal

        tests.append(test)
    return lambda candidate: all(test(candidate) for test in tests)
