"""The Vertex AI spec compiles, is deterministic, and takes the per-run inputs as pipeline parameters."""

import json

import pytest

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.run_inputs import MODEL_LABELS, RUNTIME_PARAMETERS
from cicd_pipeline.runners.vertex import compile_vertex_spec, main

IMAGE = "europe-west4-docker.pkg.dev/my-project/training/cicd-components:0.1.0-3f2a9c0b1d4e"
ARGS = dict(
    config=TrainingConfig(label="species"),
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


def test_compiling_twice_gives_identical_json(job):
    again = compile_vertex_spec(**ARGS)
    assert json.dumps(again, sort_keys=True) == json.dumps(job, sort_keys=True)


def test_the_registered_models_labels_are_a_run_parameter(job):
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    labels = tasks["ModelRegistryUploader"]["inputs"]["parameters"]["labels"]
    assert labels == {"componentInputParameter": MODEL_LABELS}


def test_the_command_line_compiles_to_a_file(tmp_path):
    import dataclasses

    args = {**ARGS, "config": dataclasses.asdict(ARGS["config"])}
    (tmp_path / "args.json").write_text(json.dumps(args))
    assert main([str(tmp_path / "args.json"), str(tmp_path / "job.json")]) == 0
    assert (
        json.loads((tmp_path / "job.json").read_text())["pipelineSpec"]
        == compile_vertex_spec(**ARGS)["pipelineSpec"]
    )


@pytest.mark.parametrize("image", ["", "repo/cicd-components", "repo/cicd-components:latest"])
def test_an_unpinned_image_is_refused(image):
    with pytest.raises(ValueError, match="pinned tag"):
        compile_vertex_spec(**{**ARGS, "image": image})


def test_a_regression_compiles_with_its_label_and_metric():
    config = TrainingConfig(
        label="progression", task="regression", rmse_threshold=70.0, pipeline_name="diabetes-cicd"
    )
    tasks = compile_vertex_spec(**{**ARGS, "config": config})["pipelineSpec"]["root"]["dag"]["tasks"]
    for node in ("Transform", "Trainer"):
        custom_config = json.dumps(tasks[node]["inputs"]["parameters"]["custom_config"])
        assert "progression_xf" in custom_config and "regression" in custom_config, node
    evaluator = json.dumps(tasks["Evaluator"]["inputs"]["parameters"])
    assert "RootMeanSquaredError" in evaluator and "progression_xf" in evaluator
    assert "upper_bound" in evaluator
