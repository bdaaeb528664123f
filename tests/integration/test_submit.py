"""Submitting runs with the real aiplatform client over REST to the Vertex stand-in, with GCS on the emulator.

The pipeline spec is a hand-written minimal PipelineSpec (one task, one STRING root parameter) so these tests
do not depend on the TFX pipeline code.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from cicd_release.storage import upload_immutable
from cicd_release.submit import (
    PipelineJobFailed,
    PipelineSubmitError,
    follow_pipeline_job,
    submit_pipeline_job,
)
from tests.support.vertex_standin import CANCELLING, VertexStandIn

PROJECT, REGION = "test-project", "us-central1"
SERVICE_ACCOUNT = "pipelines@test-project.iam.gserviceaccount.com"

TINY_SPEC: dict[str, Any] = {
    "pipelineInfo": {"name": "tiny-pipeline"},
    "schemaVersion": "2.1.0",
    "sdkVersion": "kfp-2.5.0",
    "root": {
        "inputDefinitions": {"parameters": {"module_file": {"parameterType": "STRING"}}},
        "dag": {
            "tasks": {
                "echo": {
                    "taskInfo": {"name": "echo"},
                    "componentRef": {"name": "comp-echo"},
                    "inputs": {"parameters": {"message": {"componentInputParameter": "module_file"}}},
                    "cachingOptions": {"enableCache": True},
                }
            }
        },
    },
    "components": {
        "comp-echo": {
            "executorLabel": "exec-echo",
            "inputDefinitions": {"parameters": {"message": {"parameterType": "STRING"}}},
        }
    },
    "deploymentSpec": {
        "executors": {
            "exec-echo": {
                "container": {
                    "image": "busybox",
                    "command": ["echo"],
                    "args": ["{{$.inputs.parameters['message']}}"],
                }
            }
        }
    },
}


def _spec_file(tmp_path: Path, spec: dict[str, Any] = TINY_SPEC) -> Path:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(spec))
    return path


def _submit(standin: VertexStandIn, bucket: storage.Bucket, template: str | Path, **overrides: Any):
    """submit_pipeline_job with test defaults; each test overrides what it is about."""
    arguments: dict[str, Any] = {
        "template_path": str(template),
        "project": PROJECT,
        "region": REGION,
        "pipeline_root": f"gs://{bucket.name}/root",
        "display_name": "tiny",
        "job_id": "tiny-run-1",
        "parameter_values": {"module_file": "gs://modules/abc/model.py"},
        "labels": {"commit": "0123abc", "trainer_version": "0.1.0"},
        "service_account": SERVICE_ACCOUNT,
        "poll_seconds": 0.01,
        "api_endpoint": standin.endpoint,
        "credentials": AnonymousCredentials(),
    }
    return submit_pipeline_job(**{**arguments, **overrides})


def test_submit_and_wait_follows_the_run_to_success(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    result = _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path), wait=True)

    assert result.state == "PIPELINE_STATE_SUCCEEDED"
    assert result.resource_name == f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/tiny-run-1"
    assert result.dashboard_uri.endswith(f"/locations/{REGION}/pipelines/runs/tiny-run-1?project={PROJECT}")
    gets = [path for method, path in vertex_standin.requests if method == "GET"]
    assert len(gets) >= 2  # it polled through RUNNING instead of trusting the create response


def test_stand_in_records_labels_parameters_service_account_and_caching(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    result = _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path), enable_caching=False)

    assert result.state == "PIPELINE_STATE_PENDING"  # wait=False returns right after create
    body = vertex_standin.job_body("tiny-run-1")
    assert body["labels"] == {"commit": "0123abc", "trainer_version": "0-1-0"}
    assert body["runtimeConfig"]["parameterValues"] == {"module_file": "gs://modules/abc/model.py"}
    assert body["runtimeConfig"]["gcsOutputDirectory"] == f"gs://{gcs_bucket.name}/root"
    assert body["serviceAccount"] == SERVICE_ACCOUNT
    assert body["displayName"] == "tiny"
    tasks = body["pipelineSpec"]["root"]["dag"]["tasks"]
    assert tasks["echo"]["cachingOptions"] == {"enableCache": False}


def test_caching_none_keeps_compile_time_setting(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path), enable_caching=None)

    tasks = vertex_standin.job_body("tiny-run-1")["pipelineSpec"]["root"]["dag"]["tasks"]
    assert tasks["echo"]["cachingOptions"] == {"enableCache": True}


def test_template_is_read_from_gcs_through_the_emulator(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    spec = copy.deepcopy(TINY_SPEC)
    spec["pipelineInfo"]["name"] = "tiny-from-gcs"
    template_uri = upload_immutable(
        gcs_client, _spec_file(tmp_path, spec), f"gs://{gcs_bucket.name}/specs/p.json"
    )

    _submit(vertex_standin, gcs_bucket, template_uri)

    assert vertex_standin.job_body("tiny-run-1")["pipelineSpec"]["pipelineInfo"]["name"] == "tiny-from-gcs"


def test_failed_run_raises_naming_job_and_state(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    vertex_standin.next_outcome = "FAILED"

    with pytest.raises(
        PipelineJobFailed, match=r"pipelineJobs/tiny-run-1 ended in PIPELINE_STATE_FAILED"
    ) as raised:
        _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path), wait=True)

    assert raised.value.job.state == "PIPELINE_STATE_FAILED"
    assert "some tasks failed" in str(raised.value)


def test_cancelled_run_ends_cancelled_and_following_it_raises(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    submitted = _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path))

    from google.cloud import aiplatform

    job = aiplatform.PipelineJob.get(submitted.resource_name, credentials=AnonymousCredentials())
    job.cancel()  # what a user does from the console or the SDK; the chain itself never cancels

    assert ("POST", f"/v1/{submitted.resource_name}:cancel") in vertex_standin.requests
    assert vertex_standin.jobs[submitted.resource_name]["state"] == CANCELLING
    with pytest.raises(PipelineJobFailed, match="PIPELINE_STATE_CANCELLED"):
        follow_pipeline_job(job, poll_seconds=0.01)


def test_invalid_spec_is_rejected_with_the_services_message(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    spec = copy.deepcopy(TINY_SPEC)
    del spec["deploymentSpec"]

    with pytest.raises(PipelineSubmitError, match=r"rejected pipeline job 'tiny-run-1'.*400.*deploymentSpec"):
        _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path, spec))

    assert vertex_standin.jobs == {}


def test_unknown_parameter_is_refused_before_any_request(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    with pytest.raises(PipelineSubmitError, match="serving_dir"):
        _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path), parameter_values={"serving_dir": "gs://x"})

    assert vertex_standin.requests == []


def test_missing_pipeline_root_bucket_fails_before_create(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    with pytest.raises(PipelineSubmitError, match=r"gs://no-such-bucket-here, which does not exist"):
        _submit(
            vertex_standin, gcs_bucket, _spec_file(tmp_path), pipeline_root="gs://no-such-bucket-here/root"
        )

    assert vertex_standin.requests == []


def test_reusing_a_job_id_is_a_clear_conflict(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path))

    with pytest.raises(PipelineSubmitError, match="409.*already exists"):
        _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path))


def test_stand_in_rejects_undeclared_parameter_values_on_the_wire(vertex_standin: VertexStandIn) -> None:
    """The client checks parameter names too; this shows the stand-in catches what a client lets through."""
    body = {
        "displayName": "raw",
        "pipelineSpec": TINY_SPEC,
        "runtimeConfig": {"gcsOutputDirectory": "gs://b/root", "parameterValues": {"nope": "x"}},
    }
    request = urllib.request.Request(
        f"{vertex_standin.endpoint}/v1/projects/p/locations/l/pipelineJobs?pipelineJobId=raw-1",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)

    error = json.loads(raised.value.read())["error"]
    assert (raised.value.code, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert "nope" in error["message"]


def test_missing_template_is_named(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    with pytest.raises(PipelineSubmitError, match=r"nowhere\.json not found"):
        _submit(vertex_standin, gcs_bucket, tmp_path / "nowhere.json")

    assert vertex_standin.requests == []
