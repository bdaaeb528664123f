"""With the Beam runner set to Dataflow, the compiled spec hands every Beam component exactly Dataflow's arguments;
without it, none of them; the local run keeps its in-memory runner either way."""

import pytest

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.engines import beam_pipeline_args
from cicd_pipeline.runners import IN_MEMORY_BEAM_ARGS
from cicd_pipeline.runners.vertex import compile_vertex_spec

IMAGE = "europe-west4-docker.pkg.dev/my-project/training/cicd-components:0.1.0-3f2a9c0b1d4e"
ACCOUNT = "vertex-pipelines@my-project.iam.gserviceaccount.com"
# What cicd_release.core.scale.dataflow_options makes of the settings (packages/release/tests/test_scale_settings.py).
DATAFLOW = {
    "project": "my-project",
    "region": "europe-west4",
    "temp_location": "gs://my-bucket/dataflow/penguin-cicd/temp",
    "staging_location": "gs://my-bucket/dataflow/penguin-cicd/staging",
    "service_account": ACCOUNT,
    "machine_type": "n1-standard-4",
    "max_workers": 4,
    "network": "training",
    "subnetwork": "regions/europe-west4/subnetworks/training",
    "no_public_ips": True,
}
EXPECTED = [
    "--runner=DataflowRunner",
    "--project=my-project",
    "--region=europe-west4",
    "--temp_location=gs://my-bucket/dataflow/penguin-cicd/temp",
    "--staging_location=gs://my-bucket/dataflow/penguin-cicd/staging",
    f"--service_account_email={ACCOUNT}",
    f"--sdk_container_image={IMAGE}",
    "--experiments=use_runner_v2",
    "--machine_type=n1-standard-4",
    "--max_num_workers=4",
    "--network=training",
    "--subnetwork=regions/europe-west4/subnetworks/training",
    "--no_use_public_ips",
]
ARGS = dict(
    config=TrainingConfig(label="species"),
    pipeline_root="gs://my-bucket/pipeline_root",
    serving_model_dir="gs://my-bucket/serving_model/penguin-cicd",
    registry="vertex:projects/my-project/locations/europe-west4",
    image=IMAGE,
)
# Every component whose executor is a BaseBeamExecutor: the ones the switch moves.
BEAM_TASKS = {
    "CsvExampleGen",
    "HoldoutExampleGen",
    "StatisticsGen",
    "ExampleValidator",
    "Transform",
    "Evaluator",
}


def _container_args(job: dict) -> dict[str, list[str]]:
    """Each root task's container arguments after the ExecutorInput placeholder (and the inputs spec, if any)."""
    spec = job["pipelineSpec"]
    out = {}
    for name, task in spec["root"]["dag"]["tasks"].items():
        component = spec["components"][task["componentRef"]["name"]]
        container = spec["deploymentSpec"]["executors"][component["executorLabel"]].get("container")
        if container:
            args = container["args"]
            out[name] = args[args.index("{{$}}") + 1 :]
    return out


@pytest.fixture(scope="module")
def on_dataflow() -> dict:
    return compile_vertex_spec(**ARGS, dataflow=DATAFLOW)


@pytest.fixture(scope="module")
def in_the_task() -> dict:
    return compile_vertex_spec(**ARGS)


def test_every_beam_component_carries_exactly_dataflow_s_arguments(on_dataflow):
    args = _container_args(on_dataflow)
    assert BEAM_TASKS <= set(args)
    for name in BEAM_TASKS:
        assert args[name] == EXPECTED, name
    assert not any(arg.startswith("--direct_") for task in args.values() for arg in task)


def test_the_workers_run_the_image_the_tasks_run(on_dataflow):
    executors = on_dataflow["pipelineSpec"]["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors if "container" in e} == {IMAGE}


def test_without_the_switch_no_dataflow_argument_is_in_the_spec(in_the_task):
    args = _container_args(in_the_task)
    for name in BEAM_TASKS:
        assert args[name] == list(IN_MEMORY_BEAM_ARGS), name
    assert not any(
        arg.startswith(("--runner", "--project", "--sdk_container_image", "--temp_location"))
        for task in args.values()
        for arg in task
    )


def test_only_the_beam_arguments_differ_between_the_two_specs(on_dataflow, in_the_task):
    beam = {*EXPECTED, *IN_MEMORY_BEAM_ARGS}

    def without_beam(value):
        """The spec with every Beam argument taken out of every list (containers, ExampleGen's driver hook)."""
        if isinstance(value, dict):
            return {key: without_beam(item) for key, item in value.items()}
        if isinstance(value, list):
            return [without_beam(item) for item in value if not (isinstance(item, str) and item in beam)]
        return value

    assert without_beam(on_dataflow) == without_beam(in_the_task)


@pytest.mark.parametrize(
    ("changed", "missing"),
    [
        ({"network": "", "subnetwork": ""}, ("--network=", "--subnetwork=")),
        ({"no_public_ips": False}, ("--no_use_public_ips",)),
    ],
)
def test_network_options_are_left_out_when_not_set(changed, missing):
    args = beam_pipeline_args({**DATAFLOW, **changed}, image=IMAGE)
    assert not any(arg.startswith(missing) for arg in args)
    assert args[: len(EXPECTED) - 3] == EXPECTED[: len(EXPECTED) - 3]


def test_the_local_run_keeps_its_in_memory_runner():
    """runners/local.py is not given the Dataflow options: it runs Beam in this process, whatever the settings."""
    import inspect

    from cicd_pipeline.runners import local

    assert "dataflow" not in inspect.signature(local.build_local_pipeline).parameters
    assert local.LOCAL_BEAM_ARGS[: len(IN_MEMORY_BEAM_ARGS)] == IN_MEMORY_BEAM_ARGS
