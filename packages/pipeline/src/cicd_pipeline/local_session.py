"""A local run from start to end: `invoke run` calls it, and so do the e2e tests.

`run` does a run's steps in order. It checks the inputs and the data (seconds, no TFX). It reprints the last
run's result when nothing it consumes has changed. Otherwise it runs the pipeline with its progress lines,
then prints the summary and writes the HTML report and the run's stamp. It returns a `LocalResult`; the task
prints its message and exits with its code.

A run's terminal shows the run's own lines only. The rest of what its process writes goes to the run's log
file under `<root>/logs/`, at the file-descriptor level: TFX, Beam and TensorFlow through logging and absl,
setuptools, and TensorFlow's C++ start-up lines. Those C++ lines (cuFFT/cuDNN/cuBLAS factory registration,
CPU features, TensorRT) are written to fd 2 when TensorFlow is first imported. So nothing here imports
TensorFlow, TFX or the components' executors before that redirection is in place (`run_once`).

Exit codes (`LocalResult.exit_code`): 0 blessed and pushed; 1 a component failed; 2 a bad input; 4 the data
stopped the run (the data check, or the data gate before training); 5 the model was not blessed (nothing
was pushed). Nothing here imports the release package.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cicd_pipeline import beam_mode, run_inputs, runstamp
from cicd_pipeline.beam_mode import BeamMode
from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.runners.local import LocalInputs, LocalLayout

if TYPE_CHECKING:  # both read ML Metadata; imported where a run needs them
    from cicd_pipeline.progress import Progress
    from cicd_pipeline.report import RunSummary

OK, FAILED, BAD_INPUT, BAD_DATA, NOT_BLESSED = 0, 1, 2, 4, 5


@dataclasses.dataclass(frozen=True)
class LocalResult:
    """How a run ended: its exit code and, unless it is 0, the few lines saying why (for stderr)."""

    exit_code: int
    message: str = ""


class RunStopped(Exception):
    """The pipeline stopped: the data gate (exit 4) or a failed component (exit 1), with the lines that say why."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclasses.dataclass(frozen=True)
class Ran:
    """One pipeline run that went through: its summary, the pipeline's wall time, the HTML report (None when
    nothing was recorded) and its progress (the lines it showed are in `progress.out`)."""

    summary: RunSummary
    elapsed: float
    report: Path | None
    progress: Progress


def _say(line: str) -> None:
    print(line, flush=True)


@contextlib.contextmanager
def output_to(path: Path):
    """Sends this process's stdout and stderr, and its children's (setuptools packing the module files,
    TensorFlow's C++ logs), to `path` at the file-descriptor level, and restores them after."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def log_to_file(folder: Path) -> Path:
    """Sends every log line of the run (TFX, Beam, TensorFlow's Python side, through absl and logging) to a
    new file in `folder` and returns its path. The run prints that path instead of a few thousand lines: a
    stop says its reason in a few lines, and the whole story stays on disk."""
    import logging

    from absl import logging as absl_logging

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]  # absl's own handler (stderr) included: the file has it all
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    return path


def model_labels(inputs: LocalInputs, checkout: Path) -> dict[str, str]:
    """What the locally registered model carries (run_inputs.model_labels, as on Vertex): the checkout's
    package versions, the digests of the trainer's files, and the digest a snapshot of the data would have."""
    return run_inputs.model_labels(
        {name: run_inputs.file_digest(path) for name, path in inputs.files().items()},
        run_inputs.folder_digest(inputs.data_root.resolve()),
        run_inputs.package_versions(checkout),
    )


def _write_report(layout: LocalLayout, config: TrainingConfig, progress, log: Path | None, summary=None):
    """This run's HTML report; None when the run recorded nothing (stopped before the pipeline started: the
    newest run in the store is an older one)."""
    from cicd_pipeline.html_report import REPORTS, report_run

    if progress.since is None:
        return None
    return report_run(
        layout.metadata_path,
        config.pipeline_name,
        layout.root / REPORTS,
        summary,
        graph=progress.graph,
        since=progress.since,
        threshold=config.threshold,
        tolerance=config.regression_tolerance,
        log=str(log) if log else None,
    )


def report_line(path: Path | None) -> str:
    return f"\nHTML report: {path}  (`invoke report` opens the newest)" if path else ""


def run_once(
    layout: LocalLayout,
    inputs: LocalInputs,
    config: TrainingConfig,
    log: Path,
    *,
    labels: dict[str, str] | None = None,
    out: TextIO | None = None,
    beam: BeamMode | None = None,
) -> Ran:
    """One pipeline run: its progress lines on `out`, everything else in `log`, its HTML report written.

    `out` defaults to the terminal as it is before the run's output goes to the log (closed after). A stop of
    the data gate raises RunStopped with exit code 4, a failed component with 1, each in a few lines naming
    the log.
    """
    with output_to(log):
        # TensorFlow's first import is here (TFX's, and the data gate's executor for its error type): its C++
        # start-up lines land in the log, not before the run's own lines.
        from cicd_components.anomalies_gate.executor import DataGateError
        from cicd_pipeline.logtail import append_traceback, failure_message
        from cicd_pipeline.progress import Progress, terminal
        from cicd_pipeline.report import summarize_run
        from cicd_pipeline.runners.local import load, run_local

        load()  # TFX's imports before the clock: the time printed is the pipeline's own
    # The live lines go to the terminal as it is before the run's own output is sent to the log.
    progress = Progress(layout.metadata_path, config.pipeline_name, terminal() if out is None else out)
    started = time.monotonic()
    try:
        with output_to(log):
            run_local(layout, inputs, config, labels=labels, progress=progress, beam=beam)
    except DataGateError as stop:
        report = report_line(_write_report(layout, config, progress, log))
        raise RunStopped(
            f"Data gate: the run stopped before training.\n{stop}\n"
            f"Nothing was trained or pushed; the last blessed model stays. Full log: {log}{report}",
            BAD_DATA,
        ) from None
    except Exception as err:  # a component failed: its log says why, the terminal gets the lines that matter
        append_traceback(log, err)
        report = report_line(_write_report(layout, config, progress, log))
        raise RunStopped(failure_message(log, progress.failed_node) + report, FAILED) from None
    finally:
        if out is None:
            progress.out.close()
    elapsed = time.monotonic() - started
    with output_to(log):  # reading the metrics back wakes TensorFlow's deprecation warnings
        summary = summarize_run(layout.metadata_path, config.pipeline_name)
    return Ran(summary, elapsed, _write_report(layout, config, progress, log, summary), progress)


def verdict(blessed: bool | None, refusals: list[str] | None) -> LocalResult:
    """Exit 5 when the judge refused the model, naming its refusals; 0 otherwise."""
    if blessed is False:
        return LocalResult(
            NOT_BLESSED,
            "Not blessed: the judge refused the model ("
            + "; ".join(refusals or ["see the lines above"])
            + "). Nothing was pushed; the last blessed model stays.",
        )
    return LocalResult(OK)


def run(
    checkout: Path,
    layout: LocalLayout,
    inputs: LocalInputs,
    config: TrainingConfig,
    *,
    fresh: bool = False,
    watch: bool = False,
    beam: str | None = None,
    say: Callable[[str], None] = _say,
) -> LocalResult:
    """The local run of `invoke run`: `checkout` is the working tree whose package versions label the model.

    `say` prints the run's own lines as they come. With `watch`, the edit loop instead (`watch_trainer`).
    `beam` is the Beam mode's setting (cicd_pipeline.beam_mode; None: auto, by the data's size).
    """
    from cicd_pipeline.datacheck import check_data_root
    from cicd_pipeline.report import format_summary

    try:
        inputs.check()
        mode = beam_mode.choose(beam, inputs.data_root)
    except ValueError as err:
        return LocalResult(BAD_INPUT, f"Cannot run: {err}")
    # Seconds, without TFX: a malformed file is named before a minute of start-up.
    data = check_data_root(inputs.data_root, inputs.schema_file)
    if not data.ok:
        return LocalResult(BAD_DATA, data.format() + "\nNothing was run. Fix the files above and run again.")
    say(data.format())
    if fresh and layout.root.exists():
        shutil.rmtree(layout.root)
    if watch:
        watch_trainer(checkout, layout, inputs, config, say=say, beam=mode)
        return LocalResult(OK)
    labels = model_labels(inputs, checkout)
    fingerprint = runstamp.fingerprint(layout.root, inputs.files(), inputs.data_root, config, labels)
    stamp = runstamp.unchanged(layout.root, fingerprint, layout.metadata_path, config.pipeline_name)
    if stamp is not None:
        say(stamp.report)
        say(f"\n  nothing changed since run {stamp.run_id}: its result stands (--fresh runs anew).")
        return verdict(stamp.blessed, stamp.refusals)
    runstamp.forget(layout.root)  # a run that stops half-way must not leave the last one's stamp standing
    log = log_to_file(layout.root / "logs")
    say(f"running the pipeline (its log: {log}) ...")
    say(f"  {mode.line()}")
    try:
        ran = run_once(layout, inputs, config, log, labels=labels, beam=mode)
    except RunStopped as stop:
        return LocalResult(stop.exit_code, stop.message)
    summary = ran.summary
    text = "\n".join(
        [
            format_summary(summary, config.threshold, config.regression_tolerance),
            f"\n  executed: {', '.join(summary.executed) or '(none)'}",
            f"  cached:   {', '.join(summary.cached) or '(none)'}",
            f"  {mode.line()}",
        ]
    )
    where = report_line(ran.report).strip()
    say(text)
    say(f"  wall time of the pipeline: {ran.elapsed:.1f} s   (state in {layout.root}; full log: {log})")
    say(where)
    runstamp.write(
        layout.root,
        runstamp.Stamp(fingerprint, summary.run_id, f"{text}\n{where}", summary.blessed, summary.refusals),
    )
    return verdict(summary.blessed, summary.refusals)


def watch_trainer(
    checkout: Path,
    layout: LocalLayout,
    inputs: LocalInputs,
    config: TrainingConfig,
    *,
    say: Callable[[str], None] = _say,
    beam: BeamMode | None = None,
) -> None:
    """`invoke run --watch`: the loop of cicd_pipeline.watch over the checkout's trainer, TFX imported once;
    Ctrl-C ends it."""
    from cicd_pipeline import watch

    trainer = checkout / "packages" / "trainer"
    log = log_to_file(layout.root / "logs")
    tests = watch.TestRunner(trainer / "tests", trainer / "src", log)

    def run_tests():
        with output_to(log):  # pytest's lines, and the test server's start-up chatter, go to the log
            return tests()

    def pipeline():
        try:
            return run_once(
                layout, inputs, config, log, labels=model_labels(inputs, checkout), beam=beam
            ).summary
        except RunStopped as stop:
            raise watch.Stopped(stop.message) from None

    def handle(changed):
        # A stop (the data gate) or an error raised by the edited module is this save's verdict, not the end
        # of the loop: the next save may fix it. Its traceback is in the log.
        cycle = watch.edit_cycle(changed, run_tests, pipeline, stops=(Exception,))
        for line in watch.describe(cycle, config.threshold, config.regression_tolerance, checkout):
            say(line)

    say(f"watching {trainer.relative_to(checkout)} (log: {log}); a first run brings the cache up to date ...")
    try:
        handle([])
        say("waiting for a save (Ctrl-C ends) ...")
        watch.watch([trainer], handle)
    except KeyboardInterrupt:
        say("\nwatch ended.")
