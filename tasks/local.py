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

from tasks._common import DATA_ROOT, LOCAL_ROOT, ROOT, training_config


def _local_labels(inputs) -> dict[str, str]:
    """What the locally registered model carries: package versions and the digests of its inputs."""
    from cicd_release.snapshots import folder_digest
    from cicd_release.steps import LABEL_DIGEST, versions

    files = {
        "preprocessing_module": inputs.preprocessing_module,
        "model_module": inputs.model_module,
        "schema_file": inputs.schema_file,
        "holdout_file": inputs.holdout_file,
    }
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
        "data_root": f"Folder of training CSV files (default {DATA_ROOT.relative_to(ROOT)}).",
        "fresh": "Delete the root first, so nothing is reused from earlier runs.",
        "train_steps": "Training steps (default from the training config).",
        "hyperparameters": "JSON object overriding hyperparameters, e.g. '{\"learning_rate\": 0.02}'.",
    }
)
def run(c, root=None, data_root=None, fresh=False, train_steps=None, hyperparameters=None):
    """Run the whole pipeline locally (LocalDagRunner) and print where the model went, its metrics, its blessing.

    Exit codes: 0 blessed and pushed; 2 a bad setting or input; 4 the data gate stopped the run before
    training; 5 the model was not blessed (nothing pushed). A traceback is a bug.
    """
    config = training_config(c, hyperparameters, int(train_steps) if train_steps else None)
    import cicd_trainer
    from cicd_pipeline.report import format_summary, summarize_run
    from cicd_pipeline.runners.local import LocalInputs, LocalLayout, run_local

    layout = LocalLayout(Path(root or LOCAL_ROOT).resolve())
    inputs = LocalInputs(
        data_root=Path(data_root or DATA_ROOT),
        schema_file=Path(cicd_trainer.SCHEMA_FILE),
        preprocessing_module=Path(cicd_trainer.PREPROCESSING_MODULE),
        model_module=Path(cicd_trainer.MODEL_MODULE),
        holdout_file=Path(cicd_trainer.HOLDOUT_FILE),
    )
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
    from cicd_components.anomalies_gate.executor import DataGateError
    from cicd_pipeline.logtail import append_traceback, failure_message
    from cicd_pipeline.progress import Progress, terminal

    log = _log_to_file(layout.root / "logs")
    print(f"running the pipeline (its log: {log}) ...", flush=True)
    # The live lines go to the terminal as it is before the run's own output is sent to the log.
    progress = Progress(layout.metadata_path, config.pipeline_name, terminal())
    report = functools.partial(_report, layout, config, progress, log)
    started = time.monotonic()
    try:
        with _output_to(log):
            run_local(layout, inputs, config, labels=_local_labels(inputs), progress=progress)
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
    print(format_summary(summary, config.accuracy_threshold, config.regression_tolerance))
    print(f"\n  executed: {', '.join(summary.executed) or '(none)'}")
    print(f"  cached:   {', '.join(summary.cached) or '(none)'}")
    print(f"  wall time of the pipeline: {elapsed:.1f} s   (state in {layout.root}; full log: {log})")
    print(report(summary).strip())
    if summary.blessed is False:
        raise Exit(
            "Not blessed: the judge refused the model ("
            + "; ".join(summary.refusals or ["see the lines above"])
            + "). Nothing was pushed; the last blessed model stays.",
            code=5,
        )


@task(
    help={
        "out": "Where to write the inferred schema (never over an existing file).",
        "data_root": f"Folder of CSV files to infer from (default {DATA_ROOT.relative_to(ROOT)}).",
    }
)
def bootstrap(c, out, data_root=None):
    """Infer a first schema with SchemaGen, to curate and commit (the pipeline imports the curated one)."""
    from cicd_pipeline.bootstrap import bootstrap_schema

    with tempfile.TemporaryDirectory() as workdir:
        try:
            path = bootstrap_schema(Path(data_root or DATA_ROOT), Path(workdir), Path(out))
        except (ValueError, FileExistsError) as err:
            raise Exit(str(err), code=2) from None
    print(f"{path}: edit it (presence, value counts, domains), then point the trainer's SCHEMA_FILE at it.")


schema = Collection("schema")
schema.add_task(bootstrap)
