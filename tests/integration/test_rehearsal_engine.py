"""The rehearsal's container runner through a real engine (podman's Docker API): each task of a small spec runs
inside an image, as Vertex runs it in the components image, with the local pipeline root mounted at its own path.

The image is the local Python base of the image tests (this interpreter, no TFX): the stand-in entrypoint
(tests/support/rehearsal_executor.py) and the libraries it imports (protobuf, KFP's pipeline spec) are mounted
read-only from this machine, so what is proven is the runner's part: the image's `python`, the spec's command
and arguments, the ExecutorInput and ExecutorOutput through the mount, the exit code and the log.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from cicd_pipeline.rehearsal import PipelineJob, RehearsalFailed, rehearse
from cicd_pipeline.rehearsal.runners import ContainerRunner
from cicd_pipeline.rehearsal.store import Store
from tests.support.rehearsal_spec import EXECUTOR, PIPELINE, container, tiny_job


@pytest.fixture
def in_image(docker_client, docker_host, base_image, tmp_path):
    site = sysconfig.get_paths()["purelib"]
    runner = ContainerRunner(
        docker_client,
        mounts=(str(tmp_path), site, str(EXECUTOR.parent)),
        # protobuf's pure-Python implementation: its C++ extension needs libraries the base image leaves out.
        env={"PYTHONPATH": site, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"},
        host=docker_host,
    )
    runner.prepare(base_image)
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text("a,b\n1,2\n")

    def run(job: dict):
        for executor in job["pipelineSpec"]["deploymentSpec"]["executors"].values():
            if "container" in executor:
                executor["container"]["image"] = base_image
        return rehearse(
            PipelineJob(job),
            parameters={"data_root": str(data), "hyperparameters": "{}"},
            pipeline_root=str(tmp_path / "pipeline_root"),
            store=Store(tmp_path / "metadata.sqlite", PIPELINE),
            runner=runner,
            log_dir=tmp_path / "logs",
            run_id=f"{PIPELINE}-engine",
        )

    return runner, run


def test_every_task_runs_inside_the_image_and_hands_its_outputs_on(in_image, base_image, docker_host):
    runner, run = in_image
    outcome = run(tiny_job())
    assert set(outcome.states.values()) == {"COMPLETE"}
    assert runner.where == f"inside {base_image} through the container engine at {docker_host}"
    [blessing] = Path(outcome.root).glob("Evaluator_*/blessing")
    assert (blessing / "BLESSED").exists()


def test_a_task_failing_inside_the_image_names_its_error(in_image, docker_client):
    _, run = in_image
    job = tiny_job()
    job["pipelineSpec"]["deploymentSpec"]["executors"]["Trainer_executor"] = container("fake.Diverge")
    before = {c.id for c in docker_client.containers.list(all=True)}
    with pytest.raises(RehearsalFailed, match=r"^task Trainer: exit 1: ValueError: the model diverged"):
        run(job)
    assert {c.id for c in docker_client.containers.list(all=True)} <= before, (
        "every task's container is removed"
    )
