"""The stand-in's Vertex AI Training (customJobs), driven by the real gapic JobServiceClient over REST.

TFX's Vertex Trainer builds this very client (``training_clients.VertexJobClient``); here it gets the REST
transport and the stand-in's endpoint, so each refusal below is what the client raises on Vertex's answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud.aiplatform_v1 import JobServiceClient
from google.cloud.aiplatform_v1.types import JobState

from tests.support.vertex_standin import VertexStandIn

PARENT = "projects/test-project/locations/us-central1"
IMAGE = "europe-west1-docker.pkg.dev/p/r/cicd-components:0.1.0-0123456789ab"


@pytest.fixture
def client(vertex_standin: VertexStandIn, tmp_path) -> JobServiceClient:
    vertex_standin.custom_jobs.log_dir = tmp_path
    return JobServiceClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options={"api_endpoint": vertex_standin.endpoint},
    )


def custom_job(code: str = "pass", **pool: Any) -> dict[str, Any]:
    """A CustomJob (proto field names, as TFX hands it over) whose primary replica runs `python -c code`."""
    worker = {
        "machine_spec": {"machine_type": "n1-standard-4"},
        "replica_count": 1,
        "container_spec": {"image_uri": IMAGE, "command": ["python", "-c", code]},
        **pool,
    }
    return {"display_name": "tfx_trainer", "job_spec": {"worker_pool_specs": [worker]}}


def finished(client: JobServiceClient, standin: VertexStandIn, name: str):
    """The job once its process has ended (waiting on the process, not on a clock)."""
    standin.custom_jobs.processes[name].wait()
    return client.get_custom_job(name=name)


def test_a_job_runs_its_command_and_succeeds_by_its_exit_code(
    client, vertex_standin: VertexStandIn, tmp_path
):
    marker = tmp_path / "ran"
    created = client.create_custom_job(
        parent=PARENT, custom_job=custom_job(f"open({str(marker)!r}, 'w').write('yes')")
    )
    assert created.name.startswith(f"{PARENT}/customJobs/")
    assert created.state == JobState.JOB_STATE_QUEUED
    job = finished(client, vertex_standin, created.name)
    assert job.state == JobState.JOB_STATE_SUCCEEDED
    assert marker.read_text() == "yes"
    assert job.job_spec.worker_pool_specs[0].machine_spec.machine_type == "n1-standard-4"


def test_a_failing_command_fails_the_job_with_an_error(client, vertex_standin: VertexStandIn):
    created = client.create_custom_job(parent=PARENT, custom_job=custom_job("import sys; sys.exit(3)"))
    job = finished(client, vertex_standin, created.name)
    assert job.state == JobState.JOB_STATE_FAILED
    assert "non-zero status of 3" in job.error.message


def test_the_container_env_reaches_the_process(client, vertex_standin: VertexStandIn, tmp_path):
    code = f"import os; open({str(tmp_path / 'env')!r}, 'w').write(os.environ['WHERE'])"
    job = custom_job(code)
    job["job_spec"]["worker_pool_specs"][0]["container_spec"]["env"] = [{"name": "WHERE", "value": "vertex"}]
    created = client.create_custom_job(parent=PARENT, custom_job=job)
    assert finished(client, vertex_standin, created.name).state == JobState.JOB_STATE_SUCCEEDED
    assert (tmp_path / "env").read_text() == "vertex"


def test_cancel_ends_the_process_and_the_job(client, vertex_standin: VertexStandIn):
    created = client.create_custom_job(parent=PARENT, custom_job=custom_job("import time; time.sleep(600)"))
    client.cancel_custom_job(name=created.name)
    assert client.get_custom_job(name=created.name).state in (
        JobState.JOB_STATE_CANCELLING,
        JobState.JOB_STATE_CANCELLED,
    )
    assert finished(client, vertex_standin, created.name).state == JobState.JOB_STATE_CANCELLED
    with pytest.raises(exceptions.BadRequest, match="terminal state"):
        client.cancel_custom_job(name=created.name)


def test_an_unknown_job_is_not_found(client):
    with pytest.raises(exceptions.NotFound):
        client.get_custom_job(name=f"{PARENT}/customJobs/123")


def _without_display_name() -> dict:
    job = custom_job()
    del job["display_name"]
    return job


def _pool(**changes: Any) -> dict:
    job = custom_job()
    job["job_spec"]["worker_pool_specs"][0].update(changes)
    return job


@pytest.mark.parametrize(
    ("job", "refusal"),
    [
        (_without_display_name(), "display_name is required"),
        ({**custom_job(), "display_name": "x" * 129}, "at most 128"),
        ({"display_name": "t", "job_spec": {}}, "worker_pool_specs is required"),
        (
            {"display_name": "t", "job_spec": {"worker_pool_specs": [{}]}},
            r"worker_pool_specs\[0\].*must not be empty",
        ),
        (_pool(machine_spec={}), "machine_type is required"),
        (
            _pool(machine_spec={"machine_type": "n1-standard-4", "accelerator_count": 1}),
            "accelerator_type is required",
        ),
        (
            _pool(machine_spec={"machine_type": "n1-standard-4", "accelerator_type": "NVIDIA_TESLA_T4"}),
            "accelerator_count must be at least 1",
        ),
        (_pool(replica_count=2), "replica_count must be 1"),
        (_pool(replica_count=0), "replica_count must be at least 1"),
        (_pool(container_spec={"command": ["python"]}), "image_uri is required"),
        ({**custom_job(), "labels": {"Commit": "x"}}, "CustomJob.labels"),
    ],
    ids=[
        "no-display-name",
        "long-display-name",
        "no-pools",
        "empty-first-pool",
        "no-machine-type",
        "count-without-type",
        "type-without-count",
        "two-primaries",
        "no-replicas",
        "no-image",
        "bad-label",
    ],
)
def test_vertex_refuses_what_google_refuses(client, vertex_standin: VertexStandIn, job, refusal):
    with pytest.raises(exceptions.BadRequest, match=refusal):
        client.create_custom_job(parent=PARENT, custom_job=job)
    assert not vertex_standin.custom_jobs.jobs


def test_the_job_runs_only_as_an_account_the_caller_may_act_as(client, vertex_standin: VertexStandIn):
    mine = "cicd-pipeline@test-project.iam.gserviceaccount.com"
    vertex_standin.service_accounts = {mine}
    job = custom_job()
    job["job_spec"]["service_account"] = "someone-else@test-project.iam.gserviceaccount.com"
    with pytest.raises(exceptions.BadRequest, match="permission to act as service_account"):
        client.create_custom_job(parent=PARENT, custom_job=job)
    job["job_spec"]["service_account"] = "not-an-email"
    with pytest.raises(exceptions.BadRequest, match="not a service-account e-mail"):
        client.create_custom_job(parent=PARENT, custom_job=job)
    job["job_spec"]["service_account"] = mine
    created = client.create_custom_job(parent=PARENT, custom_job=job)
    assert finished(client, vertex_standin, created.name).job_spec.service_account == mine


def test_further_replicas_go_in_a_second_pool_and_an_empty_pool_is_skipped(
    client, vertex_standin: VertexStandIn
):
    job = custom_job()
    worker = {**job["job_spec"]["worker_pool_specs"][0], "replica_count": 3}
    job["job_spec"]["worker_pool_specs"] += [worker, {}]
    created = client.create_custom_job(parent=PARENT, custom_job=job)
    assert finished(client, vertex_standin, created.name).state == JobState.JOB_STATE_SUCCEEDED


@pytest.mark.parametrize(
    ("pool", "named"),
    [
        ({"machineType": "n1-standard-4"}, "machineType"),  # a MachineSpec field one level too high
        (
            {"machineSpec": {"machineType": "n1-standard-4", "acceleratorType": "NVIDIA_TESLA_X"}},
            "NVIDIA_TESLA_X",
        ),
    ],
    ids=["unknown-field", "unknown-accelerator"],
)
def test_a_body_the_api_does_not_define_is_refused(vertex_standin: VertexStandIn, pool, named):
    """The client cannot send these (its proto refuses them first); a hand-written REST body can, and Google
    answers 400 "Invalid JSON payload received"."""
    import json
    import urllib.error
    import urllib.request

    body = {"displayName": "t", "jobSpec": {"workerPoolSpecs": [pool]}}
    request = urllib.request.Request(
        f"{vertex_standin.endpoint}/v1/{PARENT}/customJobs",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request)
    assert raised.value.code == 400
    message = json.loads(raised.value.read())["error"]["message"]
    assert message.startswith("Invalid JSON payload received.")
    assert named in message
    assert not vertex_standin.custom_jobs.jobs
