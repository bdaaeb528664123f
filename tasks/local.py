"""The local loop: `invoke run` (the whole pipeline with LocalDagRunner) and `invoke schema.bootstrap`."""

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from invoke import Collection, Exit, task

from tasks._common import DATA_ROOT, LOCAL_ROOT, ROOT, training_config


def _local_labels(inputs) -> dict[str, str]:
    """What the locally registered model carries: package versions and the digests of its inputs."""
    from cicd_release.naming import content_digest
    from cicd_release.steps import versions

    files = {
        "preprocessing_module": inputs.preprocessing_module,
        "model_module": inputs.model_module,
        "schema_file": inputs.schema_file,
    }
    labels = {f"{p}_version": v for p, v in versions(ROOT).items()}
    labels.update(
        {f"{n}_sha": hashlib.sha256(Path(f).read_bytes()).hexdigest()[:16] for n, f in files.items()}
    )
    data = inputs.data_root.resolve()
    labels["data_sha"] = content_digest(data, ["."])[:16]
    return labels


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
    """Run the whole pipeline locally (LocalDagRunner) and print where the model went, its metrics, its blessing."""
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
    )
    try:
        inputs.check()
    except ValueError as err:
        raise Exit(f"Cannot run: {err}", code=2) from None
    if fresh and layout.root.exists():
        shutil.rmtree(layout.root)
    started = time.monotonic()
    run_local(layout, inputs, config, labels=_local_labels(inputs))
    elapsed = time.monotonic() - started
    summary = summarize_run(layout.metadata_path, config.pipeline_name)
    print(format_summary(summary))
    print(f"\n  executed: {', '.join(summary.executed) or '(none)'}")
    print(f"  cached:   {', '.join(summary.cached) or '(none)'}")
    print(f"  wall time of the pipeline: {elapsed:.1f} s   (state in {layout.root})")


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
