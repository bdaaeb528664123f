"""Why a component ran instead of reusing its cached result: what differs from its last execution.

TFX reuses an earlier result only when the inputs (artifact ids) and the parameters (execution properties)
match. So comparing an execution with the latest earlier one of the same node that ran names what changed:
a different module file (named by its content hash: a content-addressed copy locally, TFX's wheel in a
compiled spec), schema, data fingerprint, or a new upstream artifact.
"""

from __future__ import annotations

from cicd_pipeline.run_record import RESOLVER_TYPE, Execution, previous_execution, producers

# What a person calls the parameters whose change is the usual reason for a re-run.
_NAMES = {
    "module_path": "module file",
    "module_file": "module file",
    "input_fingerprint": "data files",
    "input_base": "data folder",
    "schema_file": "schema file",
    "values": "hyperparameters",
}
_CONTEXT = 8  # characters of the unchanged text shown around a change
_WIDTH = 24  # characters of the changed text shown


def _name(key: str) -> str:
    return f"{_NAMES[key]} ({key})" if key in _NAMES else key


def abbreviate_change(old: str, new: str) -> str:
    """`'…+f13870ac…' → '…+0a1b2c3d…'`: the part that differs, with a few characters around it."""
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1

    def part(text: str) -> str:
        middle = text[start : len(text) - end]
        if len(middle) > _WIDTH:
            middle = middle[:_WIDTH] + "…"
        before = text[max(0, start - _CONTEXT) : start]
        after = text[len(text) - end : len(text) - end + _CONTEXT]
        head = "…" if start > _CONTEXT else ""
        tail = "…" if end > _CONTEXT else ""
        return f"'{head}{before}{middle}{after}{tail}'"

    return f"{part(old)} → {part(new)}"


def differences(store, execution: Execution, previous: Execution) -> list[str]:
    """Each difference between two executions of one node: its parameters first, then its inputs."""
    found = []
    for key in sorted(set(execution.properties) | set(previous.properties)):
        old, new = previous.properties.get(key), execution.properties.get(key)
        if old == new:
            continue
        if old is None:
            found.append(f"{_name(key)} is new")
        elif new is None:
            found.append(f"{_name(key)} is gone")
        else:
            found.append(f"{_name(key)} changed: {abbreviate_change(old, new)}")
    changed_inputs = [
        key
        for key in sorted(set(execution.inputs) | set(previous.inputs))
        if execution.inputs.get(key) != previous.inputs.get(key)
    ]
    made_by = producers(store, sorted({a for k in changed_inputs for a in execution.inputs.get(k, ())}))
    for key in changed_inputs:
        old, new = previous.inputs.get(key, ()), execution.inputs.get(key, ())
        makers = ", ".join(sorted({made_by[a] for a in new if a in made_by}))
        if not old:
            found.append(
                f"input {key} is new: " + (f"from {makers}" if makers else "an artifact") + " (none before)"
            )
        elif not new:
            found.append(f"input {key} is gone")
        else:
            found.append(
                f"input {key} changed: " + (f"a new one from {makers}" if makers else "a new artifact")
            )
    return found


def why_it_ran(store, pipeline_name: str, execution: Execution) -> list[str]:
    """Why `execution` ran rather than reuse a cached result (empty for a cached one)."""
    if execution.state == "CACHED":
        return []
    if execution.type == RESOLVER_TYPE:
        return ["a resolver: it looks for its artifacts on every run"]
    previous = previous_execution(store, pipeline_name, execution)
    if previous is None:
        return ["its first run in this state folder"]
    return differences(store, execution, previous) or [
        "inputs and parameters as last time: the component's code or its cache setting changed"
    ]
