"""ModelRegistryUploader run as Vertex AI Pipelines runs it: from the compiled KFP v2 spec, in a process of its own.

The unit and registry tests call the executor's functions; Vertex instead starts the container command of the
task's executor in ``pipelineSpec.deploymentSpec.executors`` (TFX's ``kubeflow_v2_run_executor`` entrypoint) with
the task's ``ExecutorInput`` as JSON. Here the real spec is compiled, that exact command line runs in a
subprocess (``tests/support/kfp_executor.py`` builds the ExecutorInput from the spec, as the launcher would), and
the test reads what Vertex would read: the exit code and the ExecutorOutput file. This is the level at which a
spec compiled without a serving image made every blessed run end FAILED unseen.

The executor's aiplatform client is pointed at the Model Registry stand-in without touching production code: a
``sitecustomize.py``, written into a temporary directory put first on the subprocess's PYTHONPATH, runs at
interpreter start-up (the ``site`` module imports it) and calls ``aiplatform.init(api_endpoint=<stand-in>,
api_transport="rest", credentials=AnonymousCredentials())``. The executor's ``Model.list``/``Model.upload`` then
use those process-wide settings, as they would use Vertex's on a worker. If that set-up fails, the
sitecustomize exits the interpreter (``site`` would otherwise print the error and carry on towards the real
Vertex). The subprocess inherits the environment the integration conftest prepared, so Application Default
Credentials fail at once there too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.kfp_executor import (
    build_executor_input,
    find_container_task,
    pythonpath,
    read_executor_output,
    run_container_task,
)
from tests.support.vertex_standin import VertexStandIn

TASK = "ModelRegistryUploader"
PROJECT, REGION = "test-project", "us-central1"
REGISTRY = f"vertex:projects/{PROJECT}/locations/{REGION}"
SERVING_IMAGE = f"europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15@sha256:{'0' * 64}"
PUSHED_DESTINATION = "gs://b/serving_model/penguin-cicd/1733000000"
# The run's model_labels pipeline parameter, as cicd_release.steps.submit_run passes it (JSON, labels made valid).
MODEL_LABELS = {"commit": "abc123", "trainer_version": "0-1-0"}
PARAMETER_VALUES = {"model_labels": json.dumps(MODEL_LABELS, sort_keys=True)}
ACCURACY = 0.97


def _compile(serving_image: str | None) -> dict[str, Any]:
    """The job the release chain submits; imports TFX (~30 s), so each variant is compiled once per module."""
    from cicd_pipeline.runners.vertex import compile_vertex_spec
    from tests.support.training import shipped_config

    return compile_vertex_spec(
        config=shipped_config(),
        pipeline_root="gs://b/pipeline_root",
        serving_model_dir="gs://b/serving_model/penguin-cicd",
        registry=REGISTRY,
        image="127.0.0.1:5000/p/r/cicd-components:0.1.0-0123456789ab",
        serving_image=serving_image,
    )


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    return _compile(SERVING_IMAGE)


@pytest.fixture(scope="module")
def job_without_serving_image() -> dict[str, Any]:
    return _compile(None)


@pytest.fixture
def standin_site(tmp_path: Path, vertex_standin: VertexStandIn) -> Path:
    """A directory whose sitecustomize.py aims aiplatform at the stand-in in any interpreter that has it on path."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f'''"""Written by {__name__}: aiplatform talks to the Vertex stand-in, never to Google."""
import sys

try:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    aiplatform.init(api_endpoint={vertex_standin.endpoint!r}, api_transport="rest", credentials=AnonymousCredentials())
except Exception as exc:  # site would print this and run on towards the real endpoint
    sys.exit(f"sitecustomize could not aim aiplatform at the stand-in: {{exc!r}}")
'''
    )
    return site


@pytest.fixture
def upstream(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The uploader's inputs as the Trainer, Evaluator and Pusher leave them in ML Metadata on Vertex.

    Metadata is what TFX's entrypoint wrote into those tasks' ExecutorOutput (custom properties, numbers as
    doubles). The evaluation holds a real TFMA metrics file, since the executor reads it; the other URIs are only
    recorded, and stay under the local stand-in for the pipeline root.
    """
    import tensorflow as tf
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2

    runs = tmp_path / "pipeline_root" / "123456789012" / "penguin-cicd-20241201000000"
    evaluation = runs / "Evaluator_2" / "evaluation"
    evaluation.mkdir(parents=True)
    overall = metrics_for_slice_pb2.MetricsForSlice()  # the overall slice: no slice keys
    entry = overall.metric_keys_and_values.add()
    entry.key.name = "accuracy"
    entry.value.double_value.value = ACCURACY
    with tf.io.TFRecordWriter(str(evaluation / "metrics-00000-of-00001.tfrecord")) as writer:
        writer.write(overall.SerializeToString())
    model = str(runs / "Trainer_1" / "model")
    return {
        "model": {"uri": model, "metadata": {"tfx_version": "1.16.0"}},
        "blessing": {
            "uri": str(runs / "Evaluator_2" / "blessing"),
            "metadata": {"blessed": 1.0, "current_model": model, "tfx_version": "1.16.0"},
        },
        "evaluation": {"uri": str(evaluation), "metadata": {"tfx_version": "1.16.0"}},
        "pushed_model": {
            "uri": str(runs / "Pusher_3" / "pushed_model"),
            "metadata": {
                "pushed": 1.0,
                "pushed_destination": PUSHED_DESTINATION,
                "pushed_version": "1733000000",
                "tfx_version": "1.16.0",
            },
        },
    }


def _run(job: dict[str, Any], tmp_path: Path, site: Path, upstream: dict[str, dict[str, Any]]):
    """Run the uploader's container command; returns (ExecutorInput, finished process)."""
    task = find_container_task(job, TASK)
    task_root = tmp_path / "pipeline_root" / "123456789012" / "penguin-cicd-20241201000000" / f"{TASK}_4"
    executor_input = build_executor_input(
        job,
        task,
        parameter_values=PARAMETER_VALUES,
        input_artifacts={key: upstream[key] for key in task.task["inputs"]["artifacts"]},
        task_root=task_root,
    )
    env = {**os.environ, "PYTHONPATH": pythonpath(site), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return executor_input, run_container_task(task, executor_input, env=env)


def _constant(job: dict[str, Any], name: str) -> str:
    """A compile-time parameter of the uploader's task, as the spec carries it."""
    parameters = job["pipelineSpec"]["root"]["dag"]["tasks"][TASK]["inputs"]["parameters"]
    return parameters[name]["runtimeValue"]["constantValue"]["stringValue"]


def test_the_compiled_uploader_registers_the_pushed_model_in_vertex(
    job: dict[str, Any],
    tmp_path: Path,
    standin_site: Path,
    vertex_standin: VertexStandIn,
    upstream: dict[str, dict[str, Any]],
) -> None:
    executor_input, done = _run(job, tmp_path, standin_site, upstream)

    assert done.returncode == 0, done.stderr[-4000:]
    # What Vertex receives: the serving image the spec was compiled with, the run's labels, the pushed model.
    [body] = vertex_standin.model_registry.upload_bodies
    assert _constant(job, "serving_image") == SERVING_IMAGE
    assert body["model"]["containerSpec"]["imageUri"] == SERVING_IMAGE
    assert body["model"]["labels"] == MODEL_LABELS
    assert body["model"]["artifactUri"] == PUSHED_DESTINATION
    assert body["model"]["displayName"] == _constant(job, "model_name") == "penguin"
    [version] = vertex_standin.model_registry.versions("penguin")
    # What Vertex keeps of the task: the output artifact's metadata in the ExecutorOutput.
    [registered] = read_executor_output(executor_input)["artifacts"]["registered_model"]["artifacts"]
    [expected] = executor_input["outputs"]["artifacts"]["registered_model"]["artifacts"]
    assert (registered["name"], registered["uri"]) == (expected["name"], expected["uri"])
    metadata = registered["metadata"]
    assert metadata["registered"] == 1
    assert metadata["version"] == int(version["versionId"]) == 1
    assert metadata["registry"] == REGISTRY
    assert metadata["pushed_destination"] == PUSHED_DESTINATION
    assert metadata["blessed"] == 1
    assert json.loads(metadata["metrics"]) == {"accuracy": ACCURACY}


def test_a_spec_compiled_without_serving_image_fails_the_task_naming_it(
    job_without_serving_image: dict[str, Any],
    tmp_path: Path,
    standin_site: Path,
    vertex_standin: VertexStandIn,
    upstream: dict[str, dict[str, Any]],
) -> None:
    """The bug class this test exists for: the run gets as far as a blessed push, then this task fails."""
    executor_input, done = _run(job_without_serving_image, tmp_path, standin_site, upstream)

    assert done.returncode != 0
    assert "needs 'serving_image' to register a model in Vertex AI" in done.stderr
    assert vertex_standin.requests == []
    assert not Path(executor_input["outputs"]["outputFile"]).exists()
