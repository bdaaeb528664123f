"""The local loop: `invoke run` (the whole pipeline with LocalDagRunner) and `invoke schema.bootstrap`.

The run itself is cicd_pipeline.local_session: this module reads the flags and the training config, calls it,
and turns its result into an exit code. Of the release package it uses only what every task loads with invoke's
configuration (tasks/_common: the settings model, its errors, the workspace): no cloud client, no step.
"""

import tempfile
from pathlib import Path

from invoke import Collection, Exit, task

from tasks._common import DATA_ROOT_HELP, LOCAL_ROOT, ROOT, dataset_folder, local_beam, training_config


@task(
    help={
        "root": f"Folder for the run's state: pipeline root, metadata, pushed models, registry (default {LOCAL_ROOT.relative_to(ROOT)}).",
        "data_root": f"Folder of training CSV files (default {DATA_ROOT_HELP}).",
        "fresh": "Delete the root first, so nothing is reused from earlier runs.",
        "train_steps": "Training steps (default from the training config).",
        "hyperparameters": "JSON object overriding hyperparameters, e.g. '{\"learning_rate\": 0.02}'.",
        "beam": "Beam's DirectRunner mode: auto (the default: by the data's size), in_memory, "
        "multi_processing or multi_processing:N (N workers; one per core if not given). Also cicd.local_beam.",
        "watch": "Stay running: on every save under packages/trainer, run its unit tests, then the pipeline "
        "from the first changed component, and print the verdict (Ctrl-C ends).",
    }
)
def run(
    c, root=None, data_root=None, fresh=False, train_steps=None, hyperparameters=None, watch=False, beam=None
):
    """Run the whole pipeline locally (LocalDagRunner) and print where the model went, its metrics, its blessing.

    The trainer's files are read from this working tree, never from an installed copy. With nothing changed
    since the last run, its result is printed again at once (no TFX import), with the same exit code.

    Exit codes: one table for every task, docs/reliability.md (cicd_release.core.errors.EXIT_CODES; a model that
    is not blessed is 5, nothing pushed). A traceback is a bug.
    """
    config = training_config(c, hyperparameters, int(train_steps) if train_steps else None)
    from cicd_pipeline import local_session
    from cicd_pipeline.runners.local import LocalInputs, LocalLayout

    result = local_session.run(
        ROOT,
        LocalLayout(Path(root or LOCAL_ROOT).resolve()),
        LocalInputs.in_checkout(ROOT, Path(data_root) if data_root else dataset_folder(c)),
        config,
        fresh=fresh,
        watch=watch,
        beam=local_beam(c, beam),
    )
    if result.exit_code:
        raise Exit(result.message, code=result.exit_code)


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
    print(
        f"{path}: edit it (presence, value counts, domains), then point TRAINER_FILES['schema_file'] in cicd_pipeline/run_inputs.py at it."
    )


schema = Collection("schema")
schema.add_task(bootstrap)
