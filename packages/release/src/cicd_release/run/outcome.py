"""What a Vertex AI run did, read back from the service: each task's state and time, the Evaluator's verdict
and numbers, the registered model version. The build prints it, and writes it as Markdown for the GitHub job
summary, so a push says whether the model trained, was blessed and was registered, not only that a run began.

Everything comes from the PipelineJob resource (`jobDetail.taskDetails`): Vertex keeps each output
artifact's metadata, where TFX's v2 entrypoint puts the custom properties an executor set. The registry
step records the Evaluator's `blessed` and overall `metrics` on its output for this reason.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

from google.protobuf import json_format

# The states a pipeline job ends in (aiplatform's _PIPELINE_COMPLETE_STATES).
_ENDED = frozenset(
    {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED", "PIPELINE_STATE_PAUSED"}
)


@dataclasses.dataclass(frozen=True)
class TaskOutcome:
    name: str
    state: str  # SUCCEEDED, FAILED, SKIPPED (cached), NOT_TRIGGERED, CANCELLED, ...
    seconds: float | None


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    resource_name: str
    state: str
    dashboard_uri: str
    error: str
    tasks: tuple[TaskOutcome, ...]
    blessed: bool | None
    metrics: dict[str, float]
    pushed_destination: str | None
    registered_version: str | None
    # Each check the judge made, one line each, passed or refused (empty for runs before the judge kept them).
    checks: tuple[str, ...] = ()
    # The data the run read (its data_root parameter: a snapshot) and the digest its labels carry.
    data_root: str = ""
    data_sha: str = ""

    @property
    def succeeded(self) -> bool:
        return self.state == "PIPELINE_STATE_SUCCEEDED"

    @property
    def finished(self) -> bool:
        """False for a run the follow left while it still ran (``pipeline.submit --wait-seconds``)."""
        return self.state in _ENDED

    @property
    def verdict(self) -> str:
        if not self.finished:
            return f"still {self.state.removeprefix('PIPELINE_STATE_').lower()}: its outcome is on the run's page"
        if not self.succeeded:
            return f"run {self.state.removeprefix('PIPELINE_STATE_')}"
        return {True: "BLESSED", False: "NOT BLESSED (the model was not pushed)", None: "not evaluated"}[
            self.blessed
        ]


def _seconds(task: dict[str, Any]) -> float | None:
    try:
        start = datetime.datetime.fromisoformat(task["start_time"].replace("Z", "+00:00"))
        end = datetime.datetime.fromisoformat(task["end_time"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def _first_metadata(task: dict[str, Any], output: str) -> dict[str, Any]:
    artifacts = task.get("outputs", {}).get(output, {}).get("artifacts", [])
    return artifacts[0].get("metadata", {}) if artifacts else {}


def outcome_from_resource(resource: Any, dashboard_uri: str = "") -> RunOutcome:
    """A RunOutcome from a PipelineJob resource (the aiplatform proto-plus message, or its JSON dict)."""
    if isinstance(resource, dict):
        job = resource
    else:
        job = json_format.MessageToDict(type(resource).pb(resource), preserving_proto_field_name=True)
    details = job.get("job_detail", {}).get("task_details", [])
    # The root DAG task has no parent: it is the run itself, not a component.
    components = [t for t in details if t.get("parent_task_id")] or details
    blessed, metrics, pushed, version, checks = None, {}, None, None, ()
    for task in components:
        name = task.get("task_name", "")
        if name == "ModelRegistryUploader":
            registered = _first_metadata(task, "registered_model")
            if "blessed" in registered:
                blessed = bool(registered["blessed"])
            if registered.get("metrics"):
                metrics = json.loads(registered["metrics"])
            if registered.get("checks"):
                checks = tuple(json.loads(registered["checks"]))
            if registered.get("registered"):
                number = registered.get("version")  # a Struct holds numbers as floats
                version = (
                    str(int(number)) if isinstance(number, float) and number.is_integer() else str(number)
                )
        elif name == "Evaluator" and blessed is None:
            blessing = _first_metadata(task, "blessing")
            if "blessed" in blessing:
                blessed = bool(blessing["blessed"])
        elif name == "Pusher":
            pushed_model = _first_metadata(task, "pushed_model")
            if pushed_model.get("pushed"):
                pushed = pushed_model.get("pushed_destination")
    tasks = tuple(TaskOutcome(t.get("task_name", "?"), t.get("state", "?"), _seconds(t)) for t in components)
    config = job.get("runtime_config", {})
    # Spec schema 2.1 keeps parameter values as they are; 2.0.0 (what TFX 1.16 emits) as {"string_value": ...}.
    parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
    parameters.update(config.get("parameter_values", {}))
    return RunOutcome(
        resource_name=job.get("name", ""),
        state=job.get("state", "?"),
        dashboard_uri=dashboard_uri,
        error=job.get("error", {}).get("message", ""),
        tasks=tasks,
        blessed=blessed,
        metrics=metrics,
        pushed_destination=pushed,
        registered_version=version,
        checks=checks,
        data_root=str(parameters.get("data_root", "")),
        data_sha=job.get("labels", {}).get("data_sha", ""),
    )


def format_outcome(outcome: RunOutcome) -> str:
    """The text the build log ends with."""
    width = max((len(t.name) for t in outcome.tasks), default=10)
    lines = [f"Run {outcome.resource_name}: {outcome.state}", ""]
    for task in outcome.tasks:
        seconds = f"{task.seconds:8.1f} s" if task.seconds is not None else ""
        lines.append(f"  {task.name:<{width}}  {task.state:<13} {seconds}")
    lines.append("")
    for name, value in sorted(outcome.metrics.items()):
        lines.append(f"  {name}: {value:.4f}")
    lines.append(f"  model: {outcome.verdict}")
    lines += [f"    {check}" for check in outcome.checks]
    if outcome.data_root:
        lines.append(f"  data: {outcome.data_root} (data_sha {outcome.data_sha or '?'})")
    if outcome.registered_version:
        lines.append(
            f"  registered: version {outcome.registered_version} (pushed to {outcome.pushed_destination})"
        )
    if outcome.error:
        lines.append(f"  error: {outcome.error}")
    if outcome.dashboard_uri:
        lines.append(f"  details: {outcome.dashboard_uri}")
    return "\n".join(lines)


def markdown_outcome(outcome: RunOutcome, commit: str = "") -> str:
    """The same, as Markdown for the GitHub job summary."""
    head = f"### Training run {'for ' + commit[:12] + ': ' if commit else ''}{outcome.verdict}"
    lines = [head, ""]
    if outcome.dashboard_uri:
        lines += [f"[{outcome.resource_name}]({outcome.dashboard_uri})", ""]
    if outcome.metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in sorted(outcome.metrics.items())]
        lines.append("")
    if outcome.checks:
        lines += [f"- {check}" for check in outcome.checks] + [""]
    if outcome.data_root:
        lines += [f"Trained on `{outcome.data_root}` (data_sha `{outcome.data_sha or '?'}`).", ""]
    if outcome.registered_version:
        lines += [f"Registered as version {outcome.registered_version}.", ""]
    if outcome.error:
        lines += [f"Error: {outcome.error}", ""]
    lines += ["| task | state | seconds |", "|---|---|---|"]
    lines += [
        f"| {t.name} | {t.state} | {'' if t.seconds is None else f'{t.seconds:.0f}'} |" for t in outcome.tasks
    ]
    return "\n".join(lines) + "\n"
