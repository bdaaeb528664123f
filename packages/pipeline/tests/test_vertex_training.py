"""With a Vertex AI Training backend, the compiled Trainer is TFX's extension Trainer carrying the custom job."""

import json

import pytest

from cicd_pipeline.config import TrainingConfig, module_config
from cicd_pipeline.runners.vertex import compile_vertex_spec
from cicd_pipeline.vertex_training import TrainerBackend

IMAGE = "europe-west4-docker.pkg.dev/my-project/training/cicd-components:0.1.0-3f2a9c0b1d4e"
ARGS = dict(
    config=TrainingConfig(label="species"),
    pipeline_root="gs://my-bucket/pipeline_root",
    serving_model_dir="gs://my-bucket/serving_model/penguin-cicd",
    registry="vertex:projects/my-project/locations/europe-west4",
    image=IMAGE,
)
BACKEND = TrainerBackend(
    project="my-project",
    region="europe-west4",
    machine_type="n1-highmem-8",
    accelerator_type="NVIDIA_TESLA_T4",
    accelerator_count=2,
    replica_count=3,
    service_account="cicd-pipeline@my-project.iam.gserviceaccount.com",
)
EXTENSION_EXECUTOR = "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor"


def trainer(job: dict) -> tuple[dict, dict]:
    """The Trainer task's custom_config (parsed) and its executor's container."""
    spec = job["pipelineSpec"]
    task = spec["root"]["dag"]["tasks"]["Trainer"]
    value = task["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
    executor = spec["deploymentSpec"]["executors"][
        spec["components"][task["componentRef"]["name"]]["executorLabel"]
    ]
    return json.loads(value), executor["container"]


@pytest.fixture(scope="module")
def on_vertex() -> dict:
    return compile_vertex_spec(**ARGS, trainer_backend=BACKEND)


def test_the_trainer_task_carries_exactly_the_custom_job(on_vertex):
    custom_config, _ = trainer(on_vertex)
    machine = {"machine_type": "n1-highmem-8", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 2}
    pool = {"machine_spec": machine, "container_spec": {"image_uri": IMAGE}}
    assert custom_config == {
        **module_config("species", "classification"),
        "ai_platform_enable_vertex": True,
        "ai_platform_vertex_region": "europe-west4",
        "ai_platform_training_args": {
            "project": "my-project",
            "job_spec": {
                "worker_pool_specs": [{**pool, "replica_count": 1}, {**pool, "replica_count": 2}],
                "service_account": "cicd-pipeline@my-project.iam.gserviceaccount.com",
            },
        },
    }


def test_the_trainer_task_runs_tfx_vertex_extension_executor(on_vertex):
    _, container = trainer(on_vertex)
    assert EXTENSION_EXECUTOR in json.dumps(container)
    assert container["image"] == IMAGE


def test_the_local_trainer_is_unchanged_without_a_backend():
    custom_config, container = trainer(compile_vertex_spec(**ARGS))
    assert custom_config == module_config("species", "classification")
    assert EXTENSION_EXECUTOR not in json.dumps(container)
    assert "tfx.components.trainer.executor.GenericExecutor" in json.dumps(container)


def test_one_replica_and_no_accelerator_is_one_pool_with_a_machine_type_alone():
    spec = TrainerBackend(project="p", region="us-central1", image=IMAGE).job_spec()
    assert spec["worker_pool_specs"] == [
        {
            "machine_spec": {"machine_type": "n1-standard-4"},
            "container_spec": {"image_uri": IMAGE},
            "replica_count": 1,
        }
    ]
    assert "service_account" not in spec  # Vertex's default for custom jobs


def test_a_backend_without_an_image_is_refused():
    with pytest.raises(ValueError, match="components image"):
        TrainerBackend(project="p", region="us-central1").custom_config()


def test_the_command_line_takes_the_backend_as_an_object(tmp_path, on_vertex):
    """The release chain compiles through `python -m cicd_pipeline.runners.vertex ARGS.json OUT.json`."""
    import dataclasses

    from cicd_pipeline.runners.vertex import main

    args = {
        **ARGS,
        "config": dataclasses.asdict(ARGS["config"]),
        "trainer_backend": dataclasses.asdict(BACKEND),
    }
    (tmp_path / "args.json").write_text(json.dumps(args))
    assert main([str(tmp_path / "args.json"), str(tmp_path / "job.json")]) == 0
    assert json.loads((tmp_path / "job.json").read_text())["pipelineSpec"] == on_vertex["pipelineSpec"]
