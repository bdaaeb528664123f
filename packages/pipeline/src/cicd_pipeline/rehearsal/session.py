"""One rehearsal as a person sees it: where its tasks run, live progress, the verdict and the HTML report.

The same pieces as ``invoke run``: ``cicd_pipeline.progress`` draws a line per task from the store while the
launcher writes it, ``cicd_pipeline.report`` sums the run up (metrics, blessing, push, registry version) and
``cicd_pipeline.html_report`` writes the report, because the rehearsal's store is laid out as TFX's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from cicd_pipeline.rehearsal.launcher import Outcome, RehearsalFailed, rehearse
from cicd_pipeline.rehearsal.spec import PipelineJob


@dataclasses.dataclass(frozen=True)
class RehearsalLayout:
    """A rehearsal's local state, all under one folder: its store, logs, reports, and (for a local root)
    the run's inputs, pipeline root and the bucket's stand-in."""

    root: Path

    @property
    def metadata_path(self) -> Path:
        return self.root / "metadata.sqlite"

    @property
    def pipeline_root(self) -> Path:
        return self.root / "pipeline_root"

    @property
    def inputs_dir(self) -> Path:
        return self.root / "inputs"

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def reports_dir(self) -> Path:
        from cicd_pipeline.html_report import REPORTS

        return self.root / REPORTS

    def logs(self, run_id: str) -> Path:
        return self.root / "logs" / run_id

    def bucket(self, name: str) -> Path:
        """Where a gs://<name>/ the spec writes to goes in a local rehearsal."""
        return self.root / "gs" / name


@dataclasses.dataclass(frozen=True)
class Rehearsed:
    outcome: Outcome
    summary: object  # cicd_pipeline.report.RunSummary
    report: Path | None
    text: str  # the verdict as `invoke run` prints it


class Failed(Exception):
    """The rehearsal stopped: ``message`` says which task and why, with the report's path."""

    def __init__(self, failure: RehearsalFailed, report: Path | None):
        self.failure, self.report = failure, report
        where = f"\nHTML report: {report}" if report else ""
        super().__init__(f"Rehearsal failed: {failure}{where}")


def run_rehearsal(
    job: PipelineJob,
    *,
    parameters: dict[str, str],
    pipeline_root: str,
    layout: RehearsalLayout,
    runner,
    run_id: str,
    out: TextIO,
    live: bool | None = None,
    cache: bool = True,
    parallel: int = 1,
    env: dict[str, str] | None = None,
    threshold: float | None = None,
    tolerance: float | None = None,
) -> Rehearsed:
    """Rehearses ``job`` with live lines on ``out``; Failed (with the report's path) when a task fails.

    A SpecError (the spec cannot run as given: nothing ran) passes through as it is.
    """
    from cicd_pipeline.html_report import report_run
    from cicd_pipeline.progress import Progress
    from cicd_pipeline.rehearsal.store import Store
    from cicd_pipeline.report import format_summary, summarize_run

    store = Store(layout.metadata_path, job.pipeline_name)
    progress = Progress(layout.metadata_path, job.pipeline_name, out, live=live)
    progress.graph = job.graph()
    logs = layout.logs(run_id)

    def report(summary=None) -> Path | None:
        return report_run(
            layout.metadata_path,
            job.pipeline_name,
            layout.reports_dir,
            summary,
            graph=progress.graph,
            since=progress.since,
            threshold=threshold,
            tolerance=tolerance,
            log=str(logs),
        )

    job.check_run_parameters(parameters)  # before the first line is drawn: a refused spec ran nothing
    try:
        with progress:
            outcome = rehearse(
                job,
                parameters=parameters,
                pipeline_root=pipeline_root,
                store=store,
                runner=runner,
                log_dir=logs,
                run_id=run_id,
                cache=cache,
                parallel=parallel,
                env=env,
            )
    except RehearsalFailed as failure:
        with _stderr_to(logs / "rehearsal.log"):
            raise Failed(failure, report()) from None
    with _stderr_to(logs / "rehearsal.log"):  # reading the metrics back wakes TensorFlow's warnings
        summary = summarize_run(layout.metadata_path, job.pipeline_name)
        path = report(summary)
    text = "\n".join(
        [
            format_summary(summary, threshold, tolerance),
            f"\n  executed: {', '.join(summary.executed) or '(none)'}",
            f"  cached:   {', '.join(summary.cached) or '(none)'}",
            f"  wall time of the rehearsal: {outcome.seconds:.1f} s   (task logs in {logs})",
        ]
    )
    return Rehearsed(outcome, summary, path, text)


@contextlib.contextmanager
def _stderr_to(path: Path):
    """This process's stderr (and its C++ libraries') into ``path`` for the block: the terminal keeps the lines
    that matter, the log the rest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def run_id(pipeline_name: str, label: str = "rehearsal") -> str:
    """``<pipeline>-<label>-<UTC time to the millisecond>``: one pipeline_run context per rehearsal."""
    now = time.time()
    return f"{pipeline_name}-{label}-{time.strftime('%Y%m%d%H%M%S', time.gmtime(now))}{int(now * 1000) % 1000:03d}"
