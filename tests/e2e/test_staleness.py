"""An edit is never stale: the local run reads the trainer's files from the working tree, and an edit re-runs
exactly the components that consume the edited file, as on Vertex AI.

The tests edit a COPY of the checkout (never the repository). One run of the unedited copy settles the cache
(a state of this module's own: the session's runs are changed by other tests' new data), then each edit runs
once more and the cache decides what runs:
- a `model.py` edit, through `invoke run` as a user types it, with an older `cicd_trainer` first on the
  import path: Transform stays cached, Trainer, Evaluator and Pusher run, and the Trainer ran the edited file;
- a `preprocessing.py` edit: Transform runs again, and everything after it.

The `invoke run` here also shows what a user sees off a terminal: its output starts with the run's own lines,
TensorFlow's C++ start-up lines (left at TensorFlow's default level) being in the run's log.
"""

import hashlib
import os
import re
import shutil
from pathlib import Path

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from cicd_pipeline.report import summarize_run
from cicd_pipeline.runners.local import LocalLayout, run_local
from tests.e2e.conftest import DATA, ROOT, inputs, trainer_files
from tests.support.training import shipped_config
from tests.support.warm_python import run_fresh

TRAINER_SRC = ROOT / "packages" / "trainer" / "src" / "cicd_trainer"
# (AnomaliesGate may run again: its input is the latest blessing, which the first run made.)
UPSTREAM = {"CsvExampleGen", "StatisticsGen", "ImportSchemaGen"}
# A line of TensorFlow's C++ logging: "2026-12-04 17:47:27.077343: E external/local_xla/...cc:479] ...".
TF_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\]", re.MULTILINE)


def checkout_copy(tmp_path: Path) -> Path:
    """What `invoke run` reads of a checkout: the tasks, the packages (their versions label the model) and
    invoke.yaml (what is trained)."""
    copy = tmp_path / "checkout"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for folder in ("tasks", "packages"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=skip)
    shutil.copyfile(ROOT / "invoke.yaml", copy / "invoke.yaml")
    return copy


@pytest.fixture(scope="module")
def settled(tmp_path_factory):
    """A checkout copy, a data copy, and a state where they ran once: the cache that an edit meets."""
    work = tmp_path_factory.mktemp("staleness")
    checkout = checkout_copy(work)
    data = work / "data"
    shutil.copytree(DATA, data)
    layout = LocalLayout(work / "state")
    run_local(layout, inputs(data, checkout), shipped_config())
    return layout, checkout, data


def append_line(path: Path, line: str) -> str:
    text = path.read_text() + f"{line}\n"
    path.write_text(text)
    return text


def module_files_of_latest_run(metadata_path: Path) -> dict[str, str]:
    """The `module_file` each Transform and Trainer execution of the latest run was given."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = mlmd.MetadataStore(config)
    run = max(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.create_time_since_epoch)
    files = {}
    for execution in store.get_executions_by_context(run.id):
        node = execution.type.rsplit(".", 1)[-1]
        if "module_file" in execution.custom_properties:
            files[node] = execution.custom_properties["module_file"].string_value
    return files


def test_a_model_edit_reruns_the_trainer_onward_from_the_working_tree_not_an_installed_copy(
    settled, tmp_path
):
    layout, checkout, data = settled
    edited = append_line(trainer_files(checkout)["model_module"], "# edited: never reported as CACHED")
    # An older cicd_trainer first on the path, as a venv's site-packages holds one after `pip install .`:
    # the run must not take its module files from there.
    older = tmp_path / "older"
    shutil.copytree(TRAINER_SRC, older / "cicd_trainer")
    env = {
        # TensorFlow's own default log level, as a user has it (nox quiets it for the tests' own output).
        **{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
        "PYTHONPATH": os.pathsep.join([str(older), os.environ.get("PYTHONPATH", "")]),
    }
    # A fresh interpreter (not warm_python's fork): its start-up output is part of what is tested.
    result = run_fresh(
        "invoke",
        "run",
        "--root",
        str(layout.root),
        "--data-root",
        str(data),
        cwd=checkout,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = summarize_run(layout.metadata_path, shipped_config().pipeline_name)
    assert {"Transform", *UPSTREAM} <= set(summary.cached), summary.components
    assert {"Trainer", "Evaluator", "Pusher"} <= set(summary.executed), summary.components
    assert "Trainer" not in summary.cached
    ran = Path(module_files_of_latest_run(layout.metadata_path)["Trainer"])
    assert ran.read_text() == edited, "the Trainer ran the edited file"
    assert ran.parent.name == hashlib.sha256(edited.encode()).hexdigest()
    assert "Trainer" in result.stdout.split("executed:")[1].split("\n")[0], result.stdout
    # Off a terminal, the output starts with the run's own lines; TensorFlow's start-up lines are in its log.
    assert result.stdout.startswith("data check: "), result.stdout[:3000]
    assert not TF_LOG_LINE.search(result.stderr), result.stderr[:3000]
    log = Path(re.search(r"its log: (\S+)\)", result.stdout).group(1))
    assert TF_LOG_LINE.search(log.read_text(errors="replace")), "TensorFlow's C++ lines went to the run's log"


def test_a_preprocessing_edit_reruns_transform_onward(settled):
    layout, checkout, data = settled
    edited = append_line(trainer_files(checkout)["preprocessing_module"], "# edited: a new transform")
    config = shipped_config()
    run_local(layout, inputs(data, checkout), config)
    summary = summarize_run(layout.metadata_path, config.pipeline_name)
    assert UPSTREAM <= set(summary.cached), summary.components
    assert {"Transform", "Trainer", "Evaluator"} <= set(summary.executed), summary.components
    assert Path(module_files_of_latest_run(layout.metadata_path)["Transform"]).read_text() == edited
    assert summary.blessed is True, "a comment changes no number: the same model, blessed against itself"
