"""The expensive part of the e2e tests, made once: two runs of the shipped data in one state folder.

The first executes every component and pushes a blessed model; the second, with nothing changed, reuses the
cache. The bad-data tests then run against that blessed state, as a team's next run would.
"""

from pathlib import Path

import pytest

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.report import summarize_run
from cicd_pipeline.runners.local import LocalInputs, LocalLayout, run_local
from cicd_release.steps import TRAINER_FILES

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "penguins"


def trainer_files(root: Path = ROOT) -> dict[str, Path]:
    """The trainer's files in a checkout at `root` (as `invoke run` finds them), by pipeline parameter name."""
    return {name: root / path for name, path in TRAINER_FILES.items()}


def inputs(data_root: Path = DATA, root: Path = ROOT) -> LocalInputs:
    return LocalInputs(data_root=data_root, **trainer_files(root))


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    layout = LocalLayout(tmp_path_factory.mktemp("local-run"))
    config = TrainingConfig()
    run_local(layout, inputs(), config)
    first = summarize_run(layout.metadata_path, config.pipeline_name)
    run_local(layout, inputs(), config)
    second = summarize_run(layout.metadata_path, config.pipeline_name)
    return layout, first, second
