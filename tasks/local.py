"""The local loop: `invoke run` (the whole pipeline with LocalDagRunner) and `invoke schema.bootstrap`."""

import contextlib
import functools
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from invoke import Collection, Exit, task

from tasks._common import DATA_ROOT_HELP, LOCAL_ROOT, ROOT, dataset_folder, trainer_files, training_config


def _local_labels(inputs) -> dict[str, str]:
    """What the locally registered model carries: package versions and the digests of its inputs."""
    from cicd_release.snapshots import folder_digest
    from cicd_release.steps import LABEL_DIGEST, versions

    files = _files(inputs)
    labels = {f"{p}_version": v for p, v in versions(ROOT).items()}
    labels.update(
        {
            f"{n}_sha": hashlib.sha256(Path(f).read_bytes()).hexdigest()[:LABEL_DIGEST]
            for n, f in files.items()
        }
    )
    # The digest of a snapshot of the same files (cicd_release.snapshots): local and Vertex models agree.
    labels["data_sha"] = folder_digest(inputs.data_root.resolve())[:LABEL_DIGEST]
    return labels


def _files(inputs) -> dict[str, Path]:
    """The trainer's files a run reads, by pipeline parameter name."""
    names = ("preprocessing_module", "model_module", "schema_file", "holdout_file")
    return {name: getattr(inputs, name) for name in names if getattr(inputs, name) is not None}


@contextlib.contextmanager
def _output_to(path: Path):
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


def _log_to_file(folder: Path) -> Path:
    """Every log line of the run (TFX, Beam, TensorFlow's Python side, through absl and logging) goes to a
    file whose path the run prints, instead of a few thousand lines on the terminal: a stop says its reason
    in a few lines, and the whole story stays on disk."""
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


def _report(layout, config, progress, log, summary=None) -> str:
    """Writes this run's HTML report; the line that says where (empty when the run recorded nothing)."""
    from cicd_pipeline.html_report import REPORTS, report_run

    # Stopped before the pipeline started: the newest run in the store is an older one.
    if progress.since is None:
        return ""
    path = report_run(
        layout.metadata_path,
        config.pipeline_name,
        layout.root / REPORTS,
        summary,
        graph=progress.graph,
        since=progress.since,
        threshold=config.accuracy_threshold,
        tolerance=config.regression_tolerance,
        log=str(log),
    )
    return f"\nHTML report: {path}  (`invoke report` opens the newest)" if path else ""


@task(
    help={
        "root": f"Folder for the run's state: pipeline root, metadata, pushed models, registry (default {LOCAL_ROOT.relative_to(ROOT)}).",
        "data_root": f"Folder of training CSV files (default {DATA_ROOT_HELP}).",
        "fresh": "Delete the root first, so nothing is reused from earlier runs.",
        "train_steps": "Training steps (default from the training config).",
        "hyperparameters": "JSON object overriding hyperparameters, e.g. '{\"learning_rate\": 0.02}'.",
        "watch": "Stay running: on every save under packages/trainer, run its unit tests, then the pipeline "
        "from the first changed component, and print the verdict (Ctrl-C ends).",
    }
)
def run(c, root=None, data_root=None, fresh=False, train_steps=None, hyperparameters=None, watch=False):
    """Run the whole pipeline locally (LocalDagRunner) and print where the model went, its metrics, its blessing.

    The trainer's files are read from this working tree, never from an installed copy. With nothing changed
    since the last run, its result is printed again at once (no TFX import), with the same exit code.

    Exit codes: 0 blessed and pushed; 2 a bad setting or input; 4 the data gate stopped the run before
    training; 5 the model was not blessed (nothing pushed). A traceback is a bug.
    """
    config = training_config(c, hyperparameters, int(train_steps) if train_steps else None)
    from cicd_pipeline import runstamp
    from cicd_pipeline.report import format_summary
    from cicd_pipeline.runners.local import LocalInputs, LocalLayout

    layout = LocalLayout(Path(root or LOCAL_ROOT).resolve())
    inputs = LocalInputs(data_root=Path(data_root) if data_root else dataset_folder(c), **trainer_files())
    try:
        inputs.check()
    except ValueError as err:
        raise Exit(f"Cannot run: {err}", code=2) from None
    from tasks.data import check

    print(
        check(inputs.data_root)
    )  # seconds, without TFX: a malformed file is named before a minute of start-up
    if fresh and layout.root.exists():
        shutil.rmtree(layout.root)
    if watch:
        return _watch(layout, inputs, config)
    labels = _local_labels(inputs)
    fingerprint = runstamp.fingerprint(layout.root, _files(inputs), inputs.data_root, config, labels)
    stamp = runstamp.unchanged(layout.root, fingerprint, layout.metadata_path, config.pipeline_name)
    if stamp is not None:
        print(stamp.report)
        print(f"\n  nothing changed since run {stamp.run_id}: its result stands (--fresh runs anew).")
        _exit_unless_blessed(stamp.blessed, stamp.refusals)
        return
    runstamp.forget(layout.root)  # a run that stops half-way must not leave the last one's stamp standing
    log = _log_to_file(layout.root / "logs")
    print(f"running the pipeline (its log: {log}) ...", flush=True)
    summary, elapsed, where = _run_once(layout, inputs, config, labels, log)
    text = "\n".join(
        [
            format_summary(summary, config.accuracy_threshold, config.regression_tolerance),
            f"\n  executed: {', '.join(summary.executed) or '(none)'}",
            f"  cached:   {', '.join(summary.cached) or '(none)'}",
        ]
    )
    print(text)
    print(f"  wall time of the pipeline: {elapsed:.1f} s   (state in {layout.root}; full log: {log})")
    print(where)
    runstamp.write(
        layout.root,
        runstamp.Stamp(fingerprint, summary.run_id, f"{text}\n{where}", summary.blessed, summary.refusals),
    )
    _exit_unless_blessed(summary.blessed, summary.refusals)


def _run_once(layout, inputs, config, labels, log):
    """One pipeline run with its live lines, its output in `log`, its HTML report written.

    Returns the run's summary, the pipeline's wall time and the line saying where the report is. A stop of
    the data gate is exit 4, a failed component exit 1, each in a few lines with the log's path.
    """
    from cicd_components.anomalies_gate.executor import DataGateError
    from cicd_pipeline.logtail import append_traceback, failure_message
    from cicd_pipeline.progress import Progress, terminal
    from cicd_pipeline.report import summarize_run
    from cicd_pipeline.runners.local import load, run_local

    with _output_to(log):
        load()  # TFX's imports before the clock: the time printed is the pipeline's own
    # The live lines go to the terminal as it is before the run's own output is sent to the log.
    progress = Progress(layout.metadata_path, config.pipeline_name, terminal())
    report = functools.partial(_report, layout, config, progress, log)
    started = time.monotonic()
    try:
        with _output_to(log):
            run_local(layout, inputs, config, labels=labels, progress=progress)
    except DataGateError as stop:
        raise Exit(
            f"Data gate: the run stopped before training.\n{stop}\n"
            f"Nothing was trained or pushed; the last blessed model stays. Full log: {log}{report()}",
            code=4,
        ) from None
    except Exception as err:  # a component failed: its log says why, the terminal gets the lines that matter
        append_traceback(log, err)
        raise Exit(failure_message(log, progress.failed_node) + report(), code=1) from None
    finally:
        progress.out.close()
    elapsed = time.monotonic() - started
    with _output_to(log):  # reading the metrics back wakes TensorFlow's deprecation warnings
        summary = summarize_run(layout.metadata_path, config.pipeline_name)
    return summary, elapsed, report(summary).strip()


def _exit_unless_blessed(blessed, refusals) -> None:
    if blessed is False:
        raise Exit(
            "Not blessed: the judge refused the model ("
            + "; ".join(refusals or ["see the lines above"])
            + "). Nothing was pushed; the last blessed model stays.",
            code=5,
        )


def _watch(layout, inputs, config) -> None:
    """`--watch`: the loop of cicd_pipeline.watch over the trainer's folder, TFX imported once."""
    from cicd_pipeline import watch

    trainer = ROOT / "packages" / "trainer"
    log = _log_to_file(layout.root / "logs")
    tests = watch.TestRunner(trainer / "tests", trainer / "src", log)

    def run_tests():
        with _output_to(log):  # pytest's lines, and the test server's start-up chatter, go to the log
            return tests()

    def pipeline():
        try:
            summary, _, _ = _run_once(layout, inputs, config, _local_labels(inputs), log)
            return summary
        except Exit as stop:
            raise watch.Stopped(stop.message) from None

    def handle(changed):
        # A stop (the data gate) or an error raised by the edited module is this save's verdict, not the end
        # of the loop: the next save may fix it. Its traceback is in the log.
        cycle = watch.edit_cycle(changed, run_tests, pipeline, stops=(Exception,))
        for line in watch.describe(cycle, config.accuracy_threshold, config.regression_tolerance, ROOT):
            print(line, flush=True)

    print(f"watching {trainer.relative_to(ROOT)} (log: {log}); a first run brings the cache up to date ...")
    try:
        handle([])
        print("waiting for a save (Ctrl-C ends) ...", flush=True)
        watch.watch([trainer], handle)
    except KeyboardInterrupt:
        print("\nwatch ended.")


@task(
    help={
        "out": "Where to write the inferred schema (never over an existing file).",
        "data_root": f"Folder of CSV files to infer from (default {DATA_ROOT_HELP}).",
    }
)
def bootstrap(c, out, data_root=None):
    """Infer a first schema with SchemaGen, to curate and commit (the pipeline imports the curated one)."""
    from cicd_pipeline.bootstrap import bootstrap_schema

    with tempfile.TemporaryDirectory() as workdir:
        try:
            path = bootstrap_schema(
                Path(data_root) if data_root else dataset_folder(c), Path(workdir), Path(out)
            )
        except (ValueError, FileExistsError) as err:
            raise Exit(str(err), code=2) from None
    print(f"{path}: edit it (presence, value counts, domains), then point the trainer's SCHEMA_FILE at it.")


schema = Collection("schema")
schema.add_task(bootstrap)
