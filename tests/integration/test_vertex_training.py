"""A pipeline whose Trainer runs as a Vertex AI custom job, end to end to the judge, on the Vertex stand-in.

Two routes over one run. The whole pipeline through the local runner: its Trainer node is a custom job, and its
judge blesses the model the job trained. Then the compiled Vertex spec's Trainer task, run as Vertex AI
Pipelines runs it (``tests/support/kfp_executor.py``) on the first run's Transform output: the task's own
container command submits the custom job, and the task fails when the job fails.

The pipeline is the real one (`create_pipeline` through the local runner, `run_local`) with a Vertex AI Training
backend: its Trainer is TFX's Google Cloud extension Trainer, whose executor builds the CustomJob, submits it
with the real gapic ``JobServiceClient``, polls it every 30 s (TFX's ``_POLLING_INTERVAL_IN_SECONDS``, left as it
is) and fails the node if the job fails. The stand-in validates the job as Vertex does and runs its primary
replica's command, TFX's ``python -m tfx.scripts.run_executor ...`` worker line, as a local process; that worker
trains the model into the Trainer's output, and the Evaluator (the judge) then reaches a verdict on it.

Pointing the client at the stand-in, at the boundary only: TFX builds ``gapic.JobServiceClient(client_options=
{"api_endpoint": "<region>-aiplatform.googleapis.com"})``, which takes gRPC by default and has no endpoint
setting in the environment. A ``sitecustomize.py`` first on the run's PYTHONPATH wraps that client's
constructor in the run's process only: it checks TFX asked for the region's Vertex endpoint, then gives the
stand-in's URL, the REST transport (the stand-in speaks Vertex's REST protocol, not gRPC) and anonymous
credentials. Nothing else of TFX or the client is touched: the request, its encoding, the polling and the
error mapping are theirs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.kfp_executor import (
    build_executor_input,
    find_container_task,
    pythonpath,
    read_executor_output,
    run_container_task,
)
from tests.support.training import ROOT, shipped_config
from tests.support.vertex_standin import VertexStandIn

PROJECT, REGION = "test-project", "us-central1"
IMAGE = "127.0.0.1:5000/p/r/cicd-components:0.1.0-0123456789ab"
WORKER = ["python", "-m", "tfx.scripts.run_executor", "--executor_class_path"]
MODEL_MODULE = ROOT / "packages" / "trainer" / "src" / "cicd_trainer" / "model.py"

RUN = """
import json, sys
from pathlib import Path

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.runners.local import LocalInputs, LocalLayout, run_local
from cicd_pipeline.vertex_training import TrainerBackend

root, checkout, config = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
backend = TrainerBackend(project={project!r}, region={region!r}, image={image!r}, machine_type="n1-standard-4")
run_local(
    LocalLayout(Path(root)),
    LocalInputs.in_checkout(checkout, checkout / "data" / "penguins"),
    TrainingConfig(**config),
    trainer_backend=backend,
)
"""

SITECUSTOMIZE = '''"""Written by {module}: Vertex AI Training's JobServiceClient talks to the stand-in, never to Google."""
import sys

try:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform_v1.services.job_service import client as job_service

    _init = job_service.JobServiceClient.__init__

    def _to_standin(self, *args, client_options=None, **kwargs):
        asked = dict(client_options or {{}}).get("api_endpoint")
        if asked != "{region}-aiplatform.googleapis.com":
            raise RuntimeError(f"JobServiceClient asked for endpoint {{asked!r}}, not the region's Vertex endpoint")
        kwargs.update(credentials=AnonymousCredentials(), transport="rest")
        _init(self, *args, client_options={{"api_endpoint": {endpoint!r}}}, **kwargs)

    job_service.JobServiceClient.__init__ = _to_standin
except Exception as exc:  # site would print this and run on towards the real endpoint
    sys.exit(f"sitecustomize could not aim JobServiceClient at the stand-in: {{exc!r}}")
'''


def write_site(site: Path, endpoint: str) -> Path:
    """A directory whose sitecustomize.py aims TFX's JobServiceClient at the stand-in, over REST."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(
        SITECUSTOMIZE.format(module=__name__, region=REGION, endpoint=endpoint)
    )
    return site


def job_logs(standin: VertexStandIn) -> str:
    return "\n".join(p.read_text()[-3000:] for p in standin.custom_jobs.logs.values())


@dataclasses.dataclass(frozen=True)
class Trained:
    """The local run with a Vertex Training backend: its folder, how it ended, its custom jobs."""

    layout: Path
    returncode: int
    stderr: str
    jobs: dict[str, dict]
    logs: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory, _vertex_standin_server: VertexStandIn) -> Trained:
    """One pipeline run (about 100 s) for the module; its custom jobs copied before each test resets the stand-in."""
    standin = _vertex_standin_server
    tmp = tmp_path_factory.mktemp("vertex-training")
    standin.reset()
    standin.custom_jobs.log_dir = tmp
    layout = tmp / "run"
    with pytest.MonkeyPatch.context() as env:
        # What the integration conftest sets for each test: no Application Default Credentials, no GCE probe.
        # The stand-in's worker processes start with this environment too.
        env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp / "no-adc-in-tests.json"))
        env.setenv("NO_GCE_CHECK", "True")
        for name in ("GOOGLE_CLOUD_PROJECT", "CLOUD_ML_PROJECT_ID", "STORAGE_EMULATOR_HOST"):
            env.delenv(name, raising=False)
        ran = subprocess.run(
            [
                sys.executable,
                "-c",
                RUN.format(project=PROJECT, region=REGION, image=IMAGE),
                str(layout),
                str(ROOT),
                json.dumps(dataclasses.asdict(shipped_config())),
            ],
            env={**os.environ, "PYTHONPATH": pythonpath(write_site(tmp / "site", standin.endpoint))},
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    return Trained(layout, ran.returncode, ran.stderr, dict(standin.custom_jobs.jobs), job_logs(standin))


def test_the_trainer_runs_as_a_custom_job_and_the_judge_reaches_a_verdict(trained: Trained):
    from cicd_pipeline.report import summarize_run

    config = shipped_config()
    assert trained.returncode == 0, f"{trained.stderr[-4000:]}\n--- custom job ---\n{trained.logs}"

    # One custom job, as TFX built it: the settings' machine and the components image, TFX's worker line.
    [(name, job)] = trained.jobs.items()
    assert name.startswith(f"projects/{PROJECT}/locations/{REGION}/customJobs/")
    assert job["state"] == "JOB_STATE_SUCCEEDED", trained.logs
    [pool] = job["jobSpec"]["workerPoolSpecs"]
    assert pool["machineSpec"] == {"machineType": "n1-standard-4"}
    assert pool["replicaCount"] == "1"  # int64: a string in proto JSON
    assert pool["containerSpec"]["imageUri"] == IMAGE
    command = pool["containerSpec"]["command"]
    assert command[: len(WORKER)] == WORKER
    assert command[len(WORKER)] == "tfx.components.trainer.executor.GenericExecutor"
    assert job["displayName"].startswith("tfx_")

    # The judge's verdict on the model the custom job trained.
    summary = summarize_run(trained.layout / "metadata.sqlite", config.pipeline_name)
    states = {c.node: c.state for c in summary.components}
    assert states["Trainer"] == states["Evaluator"] == "COMPLETE"
    assert summary.checks, "the judge made no check"
    assert summary.blessed is True, summary.refusals
    assert summary.metrics["sparse_categorical_accuracy"] >= config.accuracy_threshold
    models = list((trained.layout / "pipeline_root").glob("Trainer/model/*/Format-Serving/saved_model.pb"))
    assert len(models) == 1


def output_artifacts(metadata_path: Path, node: str) -> dict[str, dict]:
    """The node's output artifacts in the run's ML Metadata, as an upstream task's ExecutorOutput hands them to
    the next task: ``uri`` and ``metadata`` (properties and custom properties, by name)."""
    from cicd_pipeline.run_record import latest_run, open_store

    store = open_store(metadata_path)
    _, executions = latest_run(store, shipped_config().pipeline_name)
    [execution] = [e for e in executions if e.node == node]
    found = {}
    for key, [artifact_id] in execution.outputs.items():
        [artifact] = store.get_artifacts_by_id([artifact_id])
        metadata = {}
        for properties in (artifact.properties, artifact.custom_properties):
            for name, value in properties.items():
                metadata[name] = getattr(value, value.WhichOneof("value"))
        found[key] = {"uri": artifact.uri, "metadata": metadata}
    return found


@pytest.fixture(scope="module")
def compiled() -> dict:
    """The Vertex spec compiled with the same backend (TFX import and compile, ~30 s)."""
    from cicd_pipeline.runners.vertex import compile_vertex_spec
    from cicd_pipeline.vertex_training import TrainerBackend

    return compile_vertex_spec(
        config=shipped_config(),
        pipeline_root="gs://b/pipeline_root",
        serving_model_dir="gs://b/serving_model/penguin-cicd",
        registry=f"vertex:projects/{PROJECT}/locations/{REGION}",
        image=IMAGE,
        trainer_backend=TrainerBackend(project=PROJECT, region=REGION, machine_type="n1-standard-4"),
    )


def run_trainer_task(job: dict, trained: Trained, tmp_path: Path, standin: VertexStandIn, model_module: Path):
    """The compiled Trainer task's container command, on the local run's Transform output."""
    assert trained.returncode == 0, trained.stderr[-4000:]
    metadata = trained.layout / "metadata.sqlite"
    transform = output_artifacts(metadata, "Transform")
    upstream = {
        "examples": transform["transformed_examples"],
        "transform_graph": transform["transform_graph"],
        "schema": output_artifacts(metadata, "ImportSchemaGen")["schema"],
        "hyperparameters": output_artifacts(metadata, "HyperparametersGen")["hyperparameters"],
    }
    task = find_container_task(job, "Trainer")
    executor_input = build_executor_input(
        job,
        task,
        parameter_values={"model_module": str(model_module)},
        input_artifacts={key: upstream[key] for key in task.task["inputs"]["artifacts"]},
        task_root=tmp_path / "Trainer_1",
    )
    standin.custom_jobs.log_dir = tmp_path
    env = {**os.environ, "PYTHONPATH": pythonpath(write_site(tmp_path / "site", standin.endpoint))}
    return executor_input, run_container_task(task, executor_input, env=env, timeout=900)


def test_the_compiled_trainer_task_trains_through_a_custom_job(
    compiled: dict, trained: Trained, tmp_path: Path, vertex_standin: VertexStandIn
):
    executor_input, done = run_trainer_task(compiled, trained, tmp_path, vertex_standin, MODEL_MODULE)
    assert done.returncode == 0, f"{done.stderr[-4000:]}\n--- custom job ---\n{job_logs(vertex_standin)}"
    [job] = vertex_standin.custom_jobs.jobs.values()
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    assert job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"] == IMAGE
    [model] = read_executor_output(executor_input)["artifacts"]["model"]["artifacts"]
    assert (Path(model["uri"]) / "Format-Serving" / "saved_model.pb").exists()


def test_a_failed_custom_job_fails_the_trainer_task(
    compiled: dict, trained: Trained, tmp_path: Path, vertex_standin: VertexStandIn
):
    broken = tmp_path / "broken" / "model.py"
    broken.parent.mkdir()
    broken.write_text("raise RuntimeError('this model module is broken')\n")
    executor_input, done = run_trainer_task(compiled, trained, tmp_path, vertex_standin, broken)
    [(name, job)] = vertex_standin.custom_jobs.jobs.items()
    assert job["state"] == "JOB_STATE_FAILED"
    assert "this model module is broken" in vertex_standin.custom_jobs.logs[name].read_text()
    assert done.returncode != 0
    assert "did not succeed" in done.stderr
    assert not Path(executor_input["outputs"]["outputFile"]).exists()
