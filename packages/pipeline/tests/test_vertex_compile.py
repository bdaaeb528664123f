"""The Vertex AI spec compiles, is deterministic, and takes the per-run inputs as pipeline parameters."""

import json

import pytest

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.runners.vertex import RUNTIME_PARAMETERS, STAMPED_FIELDS, compile_vertex_spec, write_spec

IMAGE = "europe-west4-docker.pkg.dev/my-project/training/cicd-components:0.1.0-3f2a9c0b1d4e"
ARGS = dict(
    config=TrainingConfig(),
    pipeline_root="gs://my-bucket/pipeline_root",
    serving_model_dir="gs://my-bucket/serving_model/penguin-cicd",
    registry="vertex:projects/my-project/locations/europe-west4",
    image=IMAGE,
)


@pytest.fixture(scope="module")
def job():
    return compile_vertex_spec(**ARGS)


def test_spec_is_a_pipeline_spec_with_every_component(job):
    spec = job["pipelineSpec"]
    assert spec["pipelineInfo"]["name"] == "penguin-cicd"
    tasks = spec["root"]["dag"]["tasks"]
    assert {"Transform", "Trainer", "Evaluator", "AnomaliesGate", "ModelRegistryUploader"} <= set(tasks)
    assert "AnomaliesGate" in tasks["Transform"]["dependentTasks"]
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://my-bucket/pipeline_root"


def test_per_run_inputs_are_string_parameters(job):
    declared = job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
    assert set(RUNTIME_PARAMETERS) <= set(declared)
    assert {declared[name]["type"] for name in RUNTIME_PARAMETERS} == {"STRING"}


def test_every_executor_runs_in_the_given_image(job):
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values() if "container" in e}
    assert images == {IMAGE}


def test_compiling_twice_gives_identical_bytes(job, tmp_path):
    again = compile_vertex_spec(**ARGS)
    first = write_spec(job, tmp_path / "a", "spec.json").read_bytes()
    second = write_spec(again, tmp_path / "b", "spec.json").read_bytes()
    assert first == second
    # The fields TFX stamps (its own version) are the same within one install, so the bytes match too.
    assert set(STAMPED_FIELDS) <= set(json.loads(first)) | set(json.loads(first)["pipelineSpec"])


def test_a_written_spec_is_never_replaced_by_another(job, tmp_path):
    write_spec(job, tmp_path, "spec.json")
    write_spec(job, tmp_path, "spec.json")  # the same content again: fine
    other = compile_vertex_spec(**{**ARGS, "config": TrainingConfig(train_steps=7)})
    with pytest.raises(FileExistsError, match="never overwritten"):
        write_spec(other, tmp_path, "spec.json")


@pytest.mark.parametrize("image", ["", "repo/cicd-components", "repo/cicd-components:latest"])
def test_an_unpinned_image_is_refused(image):
    with pytest.raises(ValueError, match="pinned tag"):
        compile_vertex_spec(**{**ARGS, "image": image})
