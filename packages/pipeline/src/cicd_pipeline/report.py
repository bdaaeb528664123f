"""What a local run did, read back from its ML Metadata store: components, cache hits, metrics, blessing, push.

This module gathers them and prints a text summary (cicd_release.run.outcome does the same for a Vertex run).
"""

import dataclasses

from ml_metadata.proto import metadata_store_pb2

from cicd_components.evaluation import judged_metrics, validation_failures, verdict_checks
from cicd_pipeline.run_record import latest_run_context, open_store

REGISTERED_MODEL = "cicd_components.RegisteredModel"  # RegisteredModel.TYPE_NAME, without importing TFX here

_STATES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass(frozen=True)
class ComponentRun:
    node: str
    state: str  # COMPLETE (executed), CACHED (reused an earlier result), FAILED, ...
    seconds: float


@dataclasses.dataclass(frozen=True)
class RunSummary:
    run_id: str
    components: list[ComponentRun]
    blessed: bool | None
    metrics: dict[str, float]
    pushed_destination: str | None
    registry_version: int | None
    # Why the judge refused the model (empty when blessed): one line per failed check.
    refusals: list[str] = dataclasses.field(default_factory=list)
    # Every check the judge made, passed or not: which checks blessed or refused the model.
    checks: list[str] = dataclasses.field(default_factory=list)

    @property
    def executed(self) -> list[str]:
        return [c.node for c in self.components if c.state == "COMPLETE"]

    @property
    def cached(self) -> list[str]:
        return [c.node for c in self.components if c.state == "CACHED"]


def _outputs(store, execution_id: int) -> dict[str, list]:
    """Output artifacts of an execution by type name (cached executions link the reused artifacts)."""
    events = store.get_events_by_execution_ids([execution_id])
    ids = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = store.get_artifacts_by_id(ids)
    types = {t.id: t.name for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts}))}
    by_type: dict[str, list] = {}
    for artifact in artifacts:
        by_type.setdefault(types[artifact.type_id], []).append(artifact)
    return by_type


def summarize_run(metadata_path, pipeline_name: str) -> RunSummary:
    """The latest run of `pipeline_name` recorded in the SQLite MLMD store at `metadata_path`."""
    store = open_store(metadata_path)
    try:
        run = latest_run_context(store, pipeline_name)
    except ValueError:
        raise ValueError(f"No run of pipeline {pipeline_name!r} is recorded in {metadata_path}.") from None
    components, blessed, metrics, pushed_destination, registry_version = [], None, {}, None, None
    refusals: list[str] = []
    checks: list[str] = []
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.create_time_since_epoch):
        nodes = [c.name for c in store.get_contexts_by_execution(execution.id) if c.type == "node"]
        node = nodes[0].split(".", 1)[-1] if nodes else execution.type.rsplit(".", 1)[-1]
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
        components.append(ComponentRun(node, _STATES.get(execution.last_known_state, "UNKNOWN"), seconds))
        outputs = _outputs(store, execution.id)
        for blessing in outputs.get("ModelBlessing", []):
            blessed = bool(blessing.custom_properties["blessed"].int_value)
        for evaluation in outputs.get("ModelEvaluation", []):
            metrics = judged_metrics(evaluation.uri)
            verdict = verdict_checks(evaluation.uri)
            if verdict is None:  # TFX's own Evaluator (a store from before the judge)
                refusals = validation_failures(evaluation.uri)
            else:
                checks = [c["line"] for c in verdict]
                refusals = [c["line"] for c in verdict if not c["passed"]]
        for pushed in outputs.get("PushedModel", []):
            if pushed.custom_properties["pushed"].int_value:
                pushed_destination = pushed.custom_properties["pushed_destination"].string_value
        for registered in outputs.get(REGISTERED_MODEL, []):
            if registered.custom_properties["registered"].int_value:
                registry_version = registered.custom_properties["version"].int_value
    return RunSummary(
        run.name, components, blessed, metrics, pushed_destination, registry_version, refusals, checks
    )


ACCURACY = "sparse_categorical_accuracy"


def verdict_line(summary: RunSummary, threshold: float, tolerance: float | None = None) -> str:
    """`accuracy 0.9741 vs baseline 0.9828 (change -0.0087, within tolerance ±0.0200), threshold >= 0.60:
    BLESSED` for a store from before the judge; with the judge's checks, just the verdict (they say the rest)."""
    verdict = {True: "BLESSED", False: "NOT BLESSED", None: "not evaluated"}[summary.blessed]
    if summary.checks or ACCURACY not in summary.metrics or tolerance is None:
        return f"model: {verdict}"
    line = f"accuracy {summary.metrics[ACCURACY]:.4f}"
    baseline = summary.metrics.get(f"{ACCURACY} (baseline)")
    if baseline is not None:
        change = summary.metrics.get(f"{ACCURACY} (change vs baseline)", summary.metrics[ACCURACY] - baseline)
        within = "within" if change >= -tolerance else "outside"
        line += f" vs baseline {baseline:.4f} (change {change:+.4f}, {within} tolerance -{tolerance:.4f})"
    else:
        line += " (no baseline yet: the first blessed model)"
    return f"{line}, threshold >= {threshold:.2f}: {verdict}"


def format_summary(
    summary: RunSummary, threshold: float | None = None, tolerance: float | None = None
) -> str:
    width = max(len(c.node) for c in summary.components) if summary.components else 10
    lines = [f"Run {summary.run_id}", ""]
    lines += [f"  {c.node:<{width}}  {c.state:<9} {c.seconds:7.1f} s" for c in summary.components]
    lines.append("")
    for name, value in sorted(summary.metrics.items()):
        lines.append(f"  {name}: {value:.4f}")
    verdict = {True: "BLESSED", False: "NOT BLESSED", None: "not evaluated"}[summary.blessed]
    if threshold is not None:
        lines.append(f"  {verdict_line(summary, threshold, tolerance)}")
    else:
        lines.append(f"  model: {verdict}")
    if summary.checks:
        lines += [f"    {check}" for check in summary.checks]
    else:
        lines += [f"  refused by: {reason}" for reason in summary.refusals]
    if summary.pushed_destination:
        lines.append(f"  pushed to: {summary.pushed_destination}")
        lines.append(f"  registry version: {summary.registry_version}")
    else:
        lines.append("  pushed to: (nothing pushed)")
    return "\n".join(lines)
