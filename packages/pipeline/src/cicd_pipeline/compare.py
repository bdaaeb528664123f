"""Two local runs side by side: what each ref trained, how its judge scored it, blessed or not and why.

`read_outcome` reads what one `invoke run` left in its state folder (its ML Metadata store, the judge's output,
its HTML report), with this checkout's readers, so a run made by an older ref's code is read the same way; what
an older ref's run does not record (the judge's checks, the holdout, the per-class slices) is named in
`RefOutcome.missing`, never guessed. `format_markdown` and `format_text` put base and head side by side.
Nothing here runs git or a pipeline: cicd_release.run.compare does (worktrees are the release package's business).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

ACCURACY = "sparse_categorical_accuracy"
EXAMPLES = "example_count"
HOLDOUT_PREFIX = "holdout: "
EVAL_SPLIT = "eval split"  # cicd_components.judge.verdict's names of the two sets
HOLDOUT = "holdout"
# `invoke run`'s exit codes (tasks/local.py), as a reader of the table needs them.
_EXITS = {
    0: "blessed and pushed",
    1: "a component failed",
    2: "a bad setting or input",
    4: "stopped by the data gate before training",
    5: "not blessed (nothing pushed)",
}


@dataclasses.dataclass(frozen=True)
class RefOutcome:
    """One ref's local run: how it ended and what its judge found."""

    role: str  # "base" or "head"
    ref: str  # as given (origin/main, HEAD, a sha)
    commit: str  # the full sha it resolved to
    exit_code: int | None = None  # `invoke run`'s; None: it did not start
    seconds: float | None = None
    blessed: bool | None = None  # None: never judged
    # The eval split's overall metrics and the holdout's ("holdout: ..."), as cicd_components.evaluation reads.
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    # Set ("eval split", "holdout") -> slice ("<label>=<class>") -> metric -> value.
    slices: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)
    checks: list[str] = dataclasses.field(default_factory=list)  # every check of the judge, one line each
    refusals: list[str] = dataclasses.field(default_factory=list)
    stopped: list[str] = dataclasses.field(default_factory=list)  # why the run ended without a verdict
    report: str | None = None  # its HTML report
    missing: list[str] = dataclasses.field(default_factory=list)  # what its run did not record

    @property
    def short(self) -> str:
        return self.commit[:12]

    @property
    def verdict(self) -> str:
        if self.blessed is True:
            return "BLESSED"
        if self.blessed is False:
            return "NOT BLESSED"
        if self.exit_code == 4:
            return "stopped by the data gate"
        if self.exit_code is None:
            return "did not run"
        return f"no verdict (run exit {self.exit_code})"

    def accuracy(self, set_name: str, slice_: str | None = None) -> tuple[float | None, int | None]:
        """Accuracy and example count on `set_name`, overall or on one slice; None where not recorded."""
        if slice_ is None and set_name == HOLDOUT:
            n = len(HOLDOUT_PREFIX)
            metrics = {k[n:]: v for k, v in self.metrics.items() if k.startswith(HOLDOUT_PREFIX)}
        elif slice_ is None:
            metrics = {k: v for k, v in self.metrics.items() if not k.startswith(HOLDOUT_PREFIX)}
        else:
            metrics = self.slices.get(set_name, {}).get(slice_, {})
        count = metrics.get(EXAMPLES)
        return metrics.get(ACCURACY), None if count is None else int(count)


@dataclasses.dataclass(frozen=True)
class Comparison:
    base: RefOutcome
    head: RefOutcome
    notes: list[str] = dataclasses.field(default_factory=list)  # what a reader must know (lock, holdout)
    plan: str = ""  # the plan, already formatted (cicd_release.plan.changes, Markdown or a table)


def _pipeline_name(store) -> str | None:
    """The one pipeline recorded in a fresh state's store (the ref's own name for it), or None."""
    pipelines = store.get_contexts_by_type("pipeline")
    return max(pipelines, key=lambda c: c.create_time_since_epoch).name if pipelines else None


def _evaluation_uri(store, pipeline_name: str) -> str | None:
    """The URI of the ModelEvaluation that the newest run of `pipeline_name` produced or reused."""
    from ml_metadata.proto import metadata_store_pb2

    from cicd_pipeline.run_record import latest_run_context

    run = latest_run_context(store, pipeline_name)
    executions = store.get_executions_by_context(run.id)
    events = store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
    ids = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
    kinds = {t.id: t.name for t in store.get_artifact_types()}
    uris = [a.uri for a in store.get_artifacts_by_id(ids) if kinds.get(a.type_id) == "ModelEvaluation"]
    return uris[-1] if uris else None


def read_outcome(state: Path, role: str, ref: str, commit: str, **run) -> RefOutcome:
    """What the `invoke run` whose state folder is `state` recorded; `run`: further RefOutcome fields (the
    exit code, seconds, the lines it stopped with).

    A state with no store (the run stopped before the pipeline started) gives the run's facts alone.
    """
    from cicd_components.evaluation import judged_slice_metrics
    from cicd_pipeline.html_report import REPORTS, newest_report
    from cicd_pipeline.report import summarize_run
    from cicd_pipeline.run_record import open_store
    from cicd_pipeline.runners.local import LocalLayout

    layout = LocalLayout(Path(state))
    report = newest_report(layout.root / REPORTS)
    fields = {"role": role, "ref": ref, "commit": commit, "report": str(report) if report else None, **run}
    missing = list(fields.pop("missing", []))
    if not layout.metadata_path.exists():
        if fields.get("exit_code") not in (None, 2, 4):
            missing.append(f"no ML Metadata store at {layout.metadata_path}: the run recorded nothing")
        return RefOutcome(**fields, missing=missing)
    store = open_store(layout.metadata_path)
    name = _pipeline_name(store)
    if name is None:
        return RefOutcome(**fields, missing=[*missing, "its store records no pipeline"])
    try:
        summary = summarize_run(layout.metadata_path, name)
        evaluation = _evaluation_uri(store, name)
    except ValueError as err:  # no run of the pipeline recorded
        return RefOutcome(**fields, missing=[*missing, str(err)])
    slices = judged_slice_metrics(evaluation) if evaluation else {}
    if evaluation is not None:
        if not summary.checks:
            missing.append(
                "the judge's checks (verdict.json): its run predates them; the reasons are TFMA's validation"
            )
        if not any(k.startswith(HOLDOUT_PREFIX) for k in summary.metrics):
            missing.append("a holdout evaluation: its judge scored the eval split only")
        if not any(slices.values()):
            missing.append("per-class accuracy: its judge computed the overall slice only")
    return RefOutcome(
        **fields,
        blessed=summary.blessed,
        metrics=dict(summary.metrics),
        slices=slices,
        checks=list(summary.checks),
        refusals=list(summary.refusals),
        missing=missing,
    )


# --- the table ------------------------------------------------------------------------------------------


def _cell(value: float | None, count: int | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f} ({count})" if count is not None else f"{value:.4f}"


def _change(base: float | None, head: float | None) -> str:
    if base is None or head is None:
        return ""
    return f"{head - base:+.4f}"


def _run_cell(outcome: RefOutcome) -> str:
    if outcome.exit_code is None:
        return "did not run"
    meaning = _EXITS.get(outcome.exit_code, "failed")
    took = f" in {outcome.seconds:.0f} s" if outcome.seconds is not None else ""
    return f"exit {outcome.exit_code} ({meaning}){took}"


def rows(comparison: Comparison) -> list[tuple[str, str, str, str]]:
    """(what, base, head, head − base) for each line of the table."""
    base, head = comparison.base, comparison.head
    lines = [
        ("commit", base.short, head.short, ""),
        ("verdict", base.verdict, head.verdict, ""),
    ]
    for set_name, label in ((EVAL_SPLIT, "eval split accuracy"), (HOLDOUT, "holdout accuracy")):
        b, h = base.accuracy(set_name), head.accuracy(set_name)
        lines.append((label, _cell(*b), _cell(*h), _change(b[0], h[0])))
        slices = sorted(set(base.slices.get(set_name, {})) | set(head.slices.get(set_name, {})))
        for slice_ in slices:
            b, h = base.accuracy(set_name, slice_), head.accuracy(set_name, slice_)
            lines.append((f"· {set_name}, {slice_}", _cell(*b), _cell(*h), _change(b[0], h[0])))
    lines.append(("run", _run_cell(base), _run_cell(head), ""))
    return lines


def _why(outcome: RefOutcome) -> list[str]:
    """The lines that say why `outcome` was blessed, refused or stopped."""
    if outcome.checks:
        return outcome.checks
    if outcome.blessed is not None:
        return outcome.refusals or ["(its judge recorded no reasons)"]
    return outcome.stopped or [_run_cell(outcome)]


_FRESH = (
    "Each ref ran from a fresh state on its own shipped data, with no baseline: blessed or not is each ref's "
    "own verdict (threshold on the eval split and the holdout; no regression check without a baseline)."
)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown(comparison: Comparison) -> str:
    """A job summary: the table, why each was blessed or not, the notes, the plan."""
    base, head = comparison.base, comparison.head
    out = [
        "## What this pull request will train",
        "",
        f"| | base `{_escape(base.ref)}` | head `{_escape(head.ref)}` | head − base |",
        "|---|---|---|---|",
    ]
    for what, b, h, change in rows(comparison):
        if what == "verdict":
            b, h = f"**{b}**", f"**{h}**"
        out.append(f"| {_escape(what)} | {_escape(b)} | {_escape(h)} | {change} |")
    out += ["", "### Why", ""]
    for outcome in (base, head):
        out.append(f"**{outcome.role}** ({outcome.short}): {outcome.verdict}")
        out += [f"- {line}" for line in _why(outcome)]
        out += [f"- missing: {line}" for line in outcome.missing]
        out.append("")
    out += ["### Notes", "", f"- {_FRESH}"]
    out += [f"- {note}" for note in comparison.notes]
    reports = [f"{o.role}: `{o.report}`" for o in (base, head) if o.report]
    if reports:
        out.append(f"- HTML reports: {', '.join(reports)}")
    if comparison.plan:
        out += ["", comparison.plan.strip()]
    return "\n".join(out) + "\n"


def format_text(comparison: Comparison) -> str:
    """The same for a terminal: aligned columns, then the reasons, the notes and the plan."""
    base, head = comparison.base, comparison.head
    table = [("", f"base {base.ref}", f"head {head.ref}", "head - base"), *rows(comparison)]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    out.append("")
    for outcome in (base, head):
        out.append(f"{outcome.role} ({outcome.short}): {outcome.verdict}")
        out += [f"    {line}" for line in _why(outcome)]
        out += [f"    missing: {line}" for line in outcome.missing]
    out += ["", _FRESH, *comparison.notes]
    out += [f"{o.role} HTML report: {o.report}" for o in (base, head) if o.report]
    if comparison.plan:
        out += ["", comparison.plan.strip()]
    return "\n".join(out) + "\n"
