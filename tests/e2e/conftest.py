"""The expensive part of the e2e tests, made once: two runs of the shipped data in one state folder.

The first executes every component and pushes a blessed model; the second, with nothing changed, reuses the
cache. The bad-data tests then run against that blessed state, as a team's next run would. The runs read a
session copy of the shipped data (`shipped_copy`), so a test can change the data where the runs read it.
"""

import shutil
from pathlib import Path

import pytest

import cicd_trainer
from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.report import summarize_run
from cicd_pipeline.runners.local import LocalInputs, LocalLayout, run_local

DATA = Path(__file__).resolve().parents[2] / "data" / "penguins"


def inputs(data_root: Path = DATA) -> LocalInputs:
    return LocalInputs(
        data_root=data_root,
        schema_file=Path(cicd_trainer.SCHEMA_FILE),
        preprocessing_module=Path(cicd_trainer.PREPROCESSING_MODULE),
        model_module=Path(cicd_trainer.MODEL_MODULE),
    )


@pytest.fixture(scope="session")
def shipped_copy(tmp_path_factory) -> Path:
    """The shipped data in a folder of the session's own: the runs below read it there."""
    folder = tmp_path_factory.mktemp("data") / "penguins"
    shutil.copytree(DATA, folder)
    return folder


@pytest.fixture(scope="session")
def runs(tmp_path_factory, shipped_copy):
    layout = LocalLayout(tmp_path_factory.mktemp("local-run"))
    config = TrainingConfig()
    run_local(layout, inputs(shipped_copy), config)
    first = summarize_run(layout.metadata_path, config.pipeline_name)
    run_local(layout, inputs(shipped_copy), config)
    second = summarize_run(layout.metadata_path, config.pipeline_name)
    return layout, first, second
