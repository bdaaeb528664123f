"""`pipeline.rehearse` on the real compiled spec: from a clean state to a blessed, pushed and registered model,
then again with the first model as the baseline; then the spec broken the ways a real one breaks.

The spec is compiled as `pipeline.compile` compiles it (gs:// pipeline root and serving folder, the Vertex
Model Registry, a pinned image), with few training steps. Each task runs its container command in this
environment (`--runner local`: the test machine's engine has no TFX image), as a process of its own with the
ExecutorInput the Vertex launcher would build. The runs share one state folder, as a team's rehearsals do:
the broken ones start from it, so the tasks before the broken one are cache hits.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from cicd_pipeline.config import TrainingConfig
from cicd_release.run import rehearsal
from tests.support.warm_python import run_module

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "penguin-bucket"
REGISTRY = "vertex:projects/p/locations/europe-west4"
IMAGE = "europe-west4-docker.pkg.dev/p/training/cicd-components:0.3.0-0123456789ab"
SERVING_IMAGE = f"europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15@sha256:{'0' * 64}"
# Few steps: the model still passes the judge's threshold on the shipped data, in seconds.
CONFIG = TrainingConfig(train_steps=30, eval_steps=10, label="species")  # the shipped penguins


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    """The job `pipeline.compile` would upload for a bucket and a project (compiled once: ~30 s of imports)."""
    from cicd_pipeline.runners.vertex import compile_vertex_spec

    job = compile_vertex_spec(
        config=CONFIG,
        pipeline_root=f"gs://{BUCKET}/pipeline_root",
        serving_model_dir=f"gs://{BUCKET}/serving_model/{CONFIG.pipeline_name}",
        registry=REGISTRY,
        image=IMAGE,
        serving_image=SERVING_IMAGE,
    )
    path = tmp_path_factory.mktemp("spec") / "spec.json"
    path.write_text(json.dumps(job, indent=2, sort_keys=True))
    return path


def request(spec: Path, state: Path) -> rehearsal.Request:
    from cicd_release.core.settings import Settings

    return rehearsal.checkout_request(
        ROOT,
        Settings.from_config({}),
        CONFIG,
        spec=spec,
        state=state,
        data_root=ROOT / "data" / "penguins",
        runner="local",
        parallel=2,
    )


def rehearse(spec: Path, state: Path) -> tuple[list[str], str]:
    """The rehearsal's verdict lines and what it showed while it ran."""
    import io

    shown = io.StringIO()
    lines = rehearsal.rehearse(request(spec, state), out=shown, live=False)
    return lines, shown.getvalue()


@pytest.fixture(scope="module")
def rehearsed(spec, tmp_path_factory):
    """Two rehearsals in one state folder: the first from nothing, the second with the first as baseline."""
    state = tmp_path_factory.mktemp("rehearsals")
    first = rehearse(spec, state)
    second = rehearse(spec, state)
    return state, first, second


def test_the_first_rehearsal_blesses_pushes_and_registers_the_model(rehearsed):
    state, (lines, shown), _ = rehearsed
    text = "\n".join(lines)
    first_line = shown.splitlines()[0]
    assert first_line.startswith("rehearsing ") and f"in this environment ({sys.executable})" in first_line
    assert "(--runner local)" in first_line
    # TFX's task entry points start warm: forked from one interpreter that imported their modules once.
    assert "TFX's tasks forked from one interpreter" in first_line
    assert list((state / "local" / "logs").rglob("warm-start.log"))
    # Every task ran, in a process of its own, and said so on a line of its own.
    for task in ("CsvExampleGen", "Transform", "Trainer", "Evaluator", "Pusher", "ModelRegistryUploader"):
        assert f"  {task} " in shown and any(
            line.split()[:2] == [task, "done"] for line in shown.splitlines()
        )
    assert "model: BLESSED" in text and "no baseline yet" in text
    # Pushed where the spec pushes, moved aside under the rehearsal's folder; registered in its local registry.
    local = state / "local"
    pushed = text.split("pushed to: ", 1)[1].split()[0]
    assert pushed.startswith(str(local / "gs" / BUCKET / "serving_model" / CONFIG.pipeline_name))
    assert (Path(pushed) / "saved_model.pb").is_file()
    assert "registry version: 1" in text
    [entry] = json.loads((local / "registry" / "registry.json").read_text())["models"]
    assert entry["pushed_destination"] == pushed
    # The model's labels are the run's (RunRequest's model_labels): commit, versions, module and data digests.
    assert {"commit", "trigger", "model_module_sha", "data_sha", "pipeline_version"} <= set(entry["labels"])
    assert entry["labels"]["trigger"] == "rehearsal"
    # "moved aside": the rehearsal says what it did not send where the spec sends it.
    assert f"moved aside: Pusher.push_destination: gs://{BUCKET}/ -> {local / 'gs' / BUCKET}/" in shown
    assert f"moved aside: ModelRegistryUploader.registry: {REGISTRY} -> local:{local / 'registry'}" in shown
    report = Path(text.split("HTML report: ", 1)[1].split()[0])
    assert report.is_file() and "ModelRegistryUploader" in report.read_text()


def test_the_second_rehearsal_judges_against_the_first_model(rehearsed):
    _, (first, _), (second, shown) = rehearsed
    text = "\n".join(second)
    # The blessing resolver found the first rehearsal's blessing, and the model resolver its model.
    assert "vs baseline" in text, text
    assert "model: BLESSED" in text
    # Nothing the first consumed changed: the cache serves all but what depends on the new baseline.
    cached = text.split("cached:", 1)[1].splitlines()[0]
    for task in ("CsvExampleGen", "Transform", "Trainer"):
        assert task in cached
    executed = text.split("executed:", 1)[1].splitlines()[0]
    for task in ("AnomaliesGate", "Evaluator", "latest_blessed_model_resolver-model-resolver"):
        assert task in executed


def broken(spec: Path, folder: Path, change) -> Path:
    job = json.loads(spec.read_text())
    change(job["pipelineSpec"])
    path = folder / "broken.json"
    path.write_text(json.dumps(job))
    return path


@pytest.fixture
def rehearsed_state(rehearsed) -> Path:
    """The state after the two rehearsals: a broken rehearsal starts where a team's next one would, so every
    task before the broken one is a cache hit. Not a copy: the data is staged under the state folder and its
    path is in CsvExampleGen's cache key, so a copy would re-run the whole pipeline (about 80 s) for each
    broken spec. A broken rehearsal adds a failed execution and nothing cached: the next one starts alike."""
    state, _, _ = rehearsed
    return state


def _executor(spec: dict, task: str) -> dict:
    component = spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    return spec["deploymentSpec"]["executors"][spec["components"][component]["executorLabel"]]["container"]


def _fails(spec: Path, state: Path) -> str:
    with pytest.raises(rehearsal.RehearsalError) as failed:
        rehearse(spec, state)
    message = str(failed.value)
    assert message.startswith("Rehearsal failed: task ") or message.startswith("Rehearsal refused the spec")
    return message


def test_an_executor_class_that_does_not_import(spec, rehearsed_state, tmp_path):
    def rename(pipeline_spec):
        args = _executor(pipeline_spec, "ModelRegistryUploader")["args"]
        args[args.index("--executor_class_path") + 1] = "cicd_components.registry.uploader.Executor"

    message = _fails(broken(spec, tmp_path, rename), rehearsed_state)
    first = message.splitlines()[0]
    assert first.startswith(
        "Rehearsal failed: task ModelRegistryUploader: exit 1: ImportError: Could not import "
        "cicd_components.registry.uploader.Executor (ModuleNotFoundError: No module named "
        "'cicd_components.registry.uploader')"
    ), message
    assert "Nothing was submitted." in message


def test_an_artifact_type_that_does_not_resolve(spec, rehearsed_state, tmp_path):
    def retype(pipeline_spec):
        component = pipeline_spec["components"]["ModelRegistryUploader"]
        output = component["outputDefinitions"]["artifacts"]["registered_model"]["artifactType"]
        output["instanceSchema"] = output["instanceSchema"].replace(
            "cicd_components.RegisteredModel", "cicd_components.registry.RegisteredModel"
        )

    first = _fails(broken(spec, tmp_path, retype), rehearsed_state).splitlines()[0]
    assert first.startswith(
        "Rehearsal failed: task ModelRegistryUploader: exit 1: ImportError: Could not import "
        "cicd_components.registry.RegisteredModel (AttributeError: module 'cicd_components.registry' has no "
        "attribute 'RegisteredModel')"
    ), first


def test_a_task_that_exits_non_zero(spec, rehearsed_state, tmp_path):
    def kill(pipeline_spec):
        container = _executor(pipeline_spec, "Pusher")
        container["command"] = ["python", "-c", "import sys; print('Killed', file=sys.stderr); sys.exit(137)"]
        container["args"] = []

    first = _fails(broken(spec, tmp_path, kill), rehearsed_state).splitlines()[0]
    assert first.startswith("Rehearsal failed: task Pusher: exit 137 (killed: out of memory?): Killed"), first


def test_a_runtime_parameter_the_run_does_not_send_is_refused_before_anything_runs(
    spec, rehearsed_state, tmp_path
):
    """Through the task itself: exit 1, one line, nothing run."""

    def new_parameter(pipeline_spec):
        pipeline_spec["root"]["inputDefinitions"]["parameters"]["learning_rate"] = {"type": "STRING"}
        hyperparameters = pipeline_spec["root"]["dag"]["tasks"]["HyperparametersGen"]["inputs"]["parameters"]
        hyperparameters["values"] = {"componentInputParameter": "learning_rate"}

    path = broken(spec, tmp_path, new_parameter)
    before = sorted((rehearsed_state / "local" / "pipeline_root" / "rehearsal").iterdir())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = run_module(
        "invoke",
        "pipeline.rehearse",
        "--spec",
        str(path),
        "--root",
        str(rehearsed_state),
        "--runner",
        "local",
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    *_, line = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith(
        "RehearsalError: Rehearsal refused the spec (nothing ran): task HyperparametersGen: input values takes "
        "pipeline parameter learning_rate, which the run does not set"
    ), result.stderr
    assert sorted((rehearsed_state / "local" / "pipeline_root" / "rehearsal").iterdir()) == before
