"""Submitting runs with the real aiplatform client over REST to the Vertex stand-in, with GCS on the emulator.

The pipeline spec is a hand-written minimal PipelineSpec (one task, one STRING root parameter) so these tests
do not depend on the TFX pipeline code.
"""

from __future__ import annotations

import copy
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform, storage

from cicd_components.labels import vertex_labels
from cicd_release.core.errors import MissingBucket, MissingRelease, Refused, WriteConflict
from cicd_release.publish.storage import upload_immutable
from cicd_release.run.submit import submit_pipeline_job, wait_for_outcome
from tests.support.vertex_standin import CANCELLING, PENDING, VertexStandIn

PROJECT, REGION = "test-project", "us-central1"
SERVICE_ACCOUNT = "pipelines@test-project.iam.gserviceaccount.com"
# The run-as account the CI chain submits with (tests/integration/test_ci_chain.py).
CHAIN_SERVICE_ACCOUNT = "vertex-pipelines@test-project.iam.gserviceaccount.com"

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
        "api_endpoint": standin.endpoint,
        "credentials": AnonymousCredentials(),
    }
    return submit_pipeline_job(**{**arguments, **overrides})


def _follow(resource_name: str):
    """wait_for_outcome as `pipeline.submit --wait` calls it (runs.launch), polling the stand-in quickly."""
    return wait_for_outcome(resource_name, poll_seconds=0.01, credentials=AnonymousCredentials())


def test_submit_and_wait_follows_the_run_to_success(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    result = _follow(_submit(vertex_standin, gcs_bucket, _spec_file(tmp_path)).resource_name)

    assert result.state == "PIPELINE_STATE_SUCCEEDED"
    assert result.resource_name == f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/tiny-run-1"
    assert result.dashboard_uri.endswith(f"/locations/{REGION}/pipelines/runs/tiny-run-1?project={PROJECT}")
    gets = [path for method, path in vertex_standin.requests if method == "GET"]
    assert len(gets) >= 2  # it polled through RUNNING instead of trusting the create response


def test_stand_in_records_labels_parameters_service_account_and_caching(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    result = _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path), enable_caching=False)

    assert result.state == "PIPELINE_STATE_PENDING"  # the submit returns right after the create
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


def test_a_failed_run_is_followed_to_its_end_naming_job_state_and_error(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    """The outcome launch turns into RunFailed (tests/integration/test_ci_chain.py sees that line)."""
    vertex_standin.next_outcome = "FAILED"

    outcome = _follow(_submit(vertex_standin, gcs_bucket, _spec_file(tmp_path)).resource_name)

    assert outcome.resource_name.endswith("pipelineJobs/tiny-run-1")
    assert outcome.state == "PIPELINE_STATE_FAILED" and not outcome.succeeded
    assert "some tasks failed" in outcome.error


def test_a_follow_with_a_bound_leaves_a_long_run_going_and_says_so(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    """`pipeline.submit --wait-seconds`: the build step ends before its timeout kills it (cloud review #26)."""
    vertex_standin.next_outcome = "RUNNING"
    submitted = _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path))

    outcome = wait_for_outcome(
        submitted.resource_name, poll_seconds=0.05, credentials=AnonymousCredentials(), follow_seconds=0.5
    )

    assert outcome.state == "PIPELINE_STATE_RUNNING"
    assert not outcome.finished and outcome.verdict.startswith("still running")
    assert vertex_standin.jobs  # the run itself was not touched (not cancelled)
    assert all(j["state"] == "PIPELINE_STATE_RUNNING" for j in vertex_standin.jobs.values())


def test_cancelled_run_ends_cancelled_and_following_it_says_so(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    submitted = _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path))

    from google.cloud import aiplatform

    job = aiplatform.PipelineJob.get(submitted.resource_name, credentials=AnonymousCredentials())
    job.cancel()  # what a user does from the console or the SDK; the chain itself never cancels

    assert ("POST", f"/v1/{submitted.resource_name}:cancel") in vertex_standin.requests
    assert vertex_standin.jobs[submitted.resource_name]["state"] == CANCELLING
    outcome = _follow(submitted.resource_name)
    assert outcome.state == "PIPELINE_STATE_CANCELLED" and not outcome.succeeded


def test_invalid_spec_is_rejected_with_the_services_message(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    spec = copy.deepcopy(TINY_SPEC)
    del spec["deploymentSpec"]

    with pytest.raises(
        Refused, match=r"refused the create of pipeline job 'tiny-run-1'.*400.*deploymentSpec"
    ):
        _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path, spec))

    assert vertex_standin.jobs == {}


def test_unknown_parameter_is_refused_before_any_request(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    with pytest.raises(Refused, match="serving_dir"):
        _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path), parameter_values={"serving_dir": "gs://x"})

    assert vertex_standin.requests == []


def test_missing_pipeline_root_bucket_fails_before_create(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    with pytest.raises(MissingBucket, match=r"gs://no-such-bucket-here, which does not exist"):
        _submit(
            vertex_standin, gcs_bucket, _spec_file(tmp_path), pipeline_root="gs://no-such-bucket-here/root"
        )

    assert vertex_standin.requests == []


def test_reusing_a_job_id_is_a_clear_conflict(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path))

    with pytest.raises(WriteConflict, match="409.*already exists"):
        _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path))


def _raw_body(**changes: Any) -> dict[str, Any]:
    """A PipelineJob the stand-in accepts, with ``changes`` to its top-level fields (None removes one)."""
    body = {
        "displayName": "raw",
        "pipelineSpec": TINY_SPEC,
        "runtimeConfig": {"gcsOutputDirectory": "gs://b/root", "parameterValues": {"module_file": "x"}},
    }
    return {k: v for k, v in {**body, **changes}.items() if v is not None}


def _post_job(standin: VertexStandIn, body: dict[str, Any], job_id: str | None = "raw-1") -> dict[str, Any]:
    """POST a create straight to the stand-in, as a client that checks nothing would; the answer's JSON.

    For what the aiplatform client refuses (or rewrites) before sending: only the wire can show that the
    stand-in refuses it too. An HTTP error comes back as {"http": code, **error}.
    """
    query = f"?pipelineJobId={urllib.parse.quote(job_id)}" if job_id is not None else ""
    request = urllib.request.Request(
        f"{standin.endpoint}/v1/projects/{PROJECT}/locations/{REGION}/pipelineJobs{query}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return {"http": exc.code, **json.loads(exc.read())["error"]}


def test_stand_in_rejects_undeclared_parameter_values_on_the_wire(vertex_standin: VertexStandIn) -> None:
    """The client checks parameter names too; this shows the stand-in catches what a client lets through."""
    error = _post_job(
        vertex_standin,
        _raw_body(runtimeConfig={"gcsOutputDirectory": "gs://b/root", "parameterValues": {"nope": "x"}}),
    )

    assert (error["http"], error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert "nope" in error["message"]


# --- Vertex's rules for a create, each refused by the stand-in -------------------------------------------------
# Where aiplatform lets a bad value through, the request goes through the real client (and, where the project's
# submit_pipeline_job passes it on unchanged, through that); where aiplatform refuses or rewrites it first, the
# request goes over the wire directly, and the test shows the client's own refusal too.


def _client_job(template: Path, bucket: str, **changes: Any) -> aiplatform.PipelineJob:
    """aiplatform's PipelineJob for TINY_SPEC, as submit_pipeline_job builds it, with ``changes``."""
    arguments: dict[str, Any] = {
        "display_name": "tiny",
        "template_path": str(template),
        "job_id": "tiny-run-1",
        "pipeline_root": f"gs://{bucket}/root",
        "parameter_values": {"module_file": "gs://modules/abc/model.py"},
        "project": PROJECT,
        "location": REGION,
        "credentials": AnonymousCredentials(),
    }
    return aiplatform.PipelineJob(**{**arguments, **changes})


@pytest.mark.parametrize(
    ("job_id", "body_changes", "client_changes", "message"),
    [
        # pipelineJobId: aiplatform's _VALID_NAME_PATTERN refuses these with a ValueError before any request.
        pytest.param(
            "1-run", {}, {"job_id": "1-run"}, "pipelineJobId '1-run' must match", id="id-digit-first"
        ),
        pytest.param(
            "raw_1", {}, {"job_id": "raw_1"}, "pipelineJobId 'raw_1' must match", id="id-underscore"
        ),
        pytest.param("a" * 129, {}, {"job_id": "a" * 129}, "must match", id="id-129-chars"),
        # displayName: aiplatform's utils.validate_display_name refuses more than 128 characters.
        pytest.param(
            "raw-1",
            {"displayName": "d" * 129},
            {"display_name": "d" * 129},
            "PipelineJob.displayName must be at most 128 characters",
            id="display-name-129-chars",
        ),
        # gcsOutputDirectory: aiplatform never sends a job without one (it falls back to the spec's
        # defaultPipelineRoot, the staging bucket, or gs://PROJECT-vertex-pipelines-REGION/output_artifacts/).
        pytest.param(
            "raw-1",
            {"runtimeConfig": {"parameterValues": {"module_file": "x"}}},
            None,
            "runtimeConfig.gcsOutputDirectory (the pipeline root) is required",
            id="no-pipeline-root",
        ),
    ],
)
def test_stand_in_refuses_on_the_wire_what_the_client_refuses_first(
    tmp_path: Path,
    vertex_standin: VertexStandIn,
    job_id: str,
    body_changes: dict[str, Any],
    client_changes: dict[str, Any] | None,
    message: str,
) -> None:
    if client_changes is not None:
        with pytest.raises(ValueError):
            _client_job(_spec_file(tmp_path), "b", **client_changes)

    error = _post_job(vertex_standin, _raw_body(**body_changes), job_id=job_id)

    assert (error["http"], error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert message in error["message"]
    assert vertex_standin.jobs == {}


_MANY_LABELS = {f"label-{i}": "v" for i in range(65)}


@pytest.mark.parametrize(
    ("changes", "service_account", "message"),
    [
        # aiplatform's _VALID_NAME_PATTERN is compiled with re.IGNORECASE; Vertex wants lower case.
        pytest.param(
            {"job_id": "Tiny-Run-1"}, None, "pipelineJobId 'Tiny-Run-1' must match", id="id-upper-case"
        ),
        # aiplatform's utils.validate_labels only checks that keys and values are strings.
        pytest.param(
            {"labels": {"Commit": "abc"}}, None, "key 'Commit' must start with a lowercase", id="key-upper"
        ),
        pytest.param(
            {"labels": {"1st": "x"}}, None, "key '1st' must start with a lowercase", id="key-digit-first"
        ),
        pytest.param({"labels": {"": "x"}}, None, "key '' must be 1-63 characters", id="key-empty"),
        pytest.param({"labels": {"k" * 64: "x"}}, None, "must be 1-63 characters", id="key-64-chars"),
        pytest.param({"labels": {"commit.sha": "x"}}, None, "may contain only lowercase", id="key-dot"),
        pytest.param(
            {"labels": {"version": "0.1.0"}}, None, "value '0.1.0' of key 'version'", id="value-dot"
        ),
        pytest.param({"labels": {"branch": "Main"}}, None, "value 'Main' of key 'branch'", id="value-upper"),
        pytest.param({"labels": {"commit": "v" * 64}}, None, "at most 63 characters", id="value-64-chars"),
        pytest.param({"labels": _MANY_LABELS}, None, "has 65 entries; at most 64", id="65-labels"),
        # aiplatform sends the pipeline root as given (its bucket check logs and swallows any error).
        pytest.param(
            {"pipeline_root": "/tmp/pipeline-root"},
            None,
            "must be a Cloud Storage path",
            id="root-local-path",
        ),
        pytest.param(
            {"pipeline_root": "s3://bucket/root"}, None, "must be a Cloud Storage path", id="root-s3"
        ),
        # aiplatform sends any service_account string; Vertex cannot act as what is not a service account.
        pytest.param({}, "pipelines", "act as service_account: pipelines.", id="sa-not-an-email"),
        pytest.param({}, "pipelines@example.com", "not a service-account e-mail", id="sa-other-domain"),
        pytest.param({}, "someone@gmail.com", "not a service-account e-mail", id="sa-user-account"),
        pytest.param(
            {},
            "abc@test-project.iam.gserviceaccount.com",
            "not a service-account e-mail",
            id="sa-id-too-short",
        ),
    ],
)
def test_stand_in_refuses_what_the_client_lets_through(
    tmp_path: Path,
    vertex_standin: VertexStandIn,
    gcs_bucket: storage.Bucket,
    changes: dict[str, Any],
    service_account: str | None,
    message: str,
) -> None:
    aiplatform.init(api_endpoint=vertex_standin.endpoint, api_transport="rest")
    job = _client_job(_spec_file(tmp_path), gcs_bucket.name, **changes)

    with pytest.raises(gexc.BadRequest) as raised:
        job.submit(service_account=service_account)

    assert raised.value.code == 400
    assert message in raised.value.message
    assert vertex_standin.jobs == {}


def test_stand_in_accepts_what_vertex_accepts(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    """The edges of each rule, through the real client: the stand-in must not refuse what Vertex takes."""
    labels = {
        "équipe": "données",  # lowercase non-ASCII letters (Unicode Ll): "international characters are allowed"
        "ラベル": "機械学習",  # letters without case (Unicode Lo) may even start a key
        "empty": "",  # "Values can be empty"
        "k" * 63: "v" * 63,
        **{f"label-{i}": "v" for i in range(60)},
    }
    assert len(labels) == 64
    aiplatform.init(api_endpoint=vertex_standin.endpoint, api_transport="rest")
    job = _client_job(
        _spec_file(tmp_path),
        gcs_bucket.name,
        job_id="a" + "-0" * 63 + "b",  # 128 characters, as aiplatform's pattern allows
        display_name="ü" * 128,  # 128 characters (not bytes)
        labels=labels,
    )

    job.submit(service_account="123456789012-compute@developer.gserviceaccount.com")  # the Compute default

    body = vertex_standin.job_body(job.job_id)
    assert len(job.job_id) == 128
    assert body["labels"] == labels
    assert body["serviceAccount"] == "123456789012-compute@developer.gserviceaccount.com"


def test_stand_in_generates_a_job_id_when_none_is_given(vertex_standin: VertexStandIn) -> None:
    """pipelineJobId is optional ("If not provided, an ID will be automatically generated")."""
    job = _post_job(vertex_standin, _raw_body(), job_id=None)

    assert re.fullmatch(rf"projects/{PROJECT}/locations/{REGION}/pipelineJobs/[0-9]+", job["name"])
    assert job["state"] == PENDING


@pytest.mark.parametrize(
    "service_account",
    [
        "other-runner@test-project.iam.gserviceaccount.com",  # missing, or the caller may not act as it
        "123456789012-compute@developer.gserviceaccount.com",  # the Compute default, not granted either
    ],
)
def test_a_service_account_the_caller_may_not_act_as_is_refused_as_vertex_refuses_it(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket, service_account: str
) -> None:
    vertex_standin.service_accounts = {SERVICE_ACCOUNT}

    with pytest.raises(
        Refused,
        match=rf"400 .*: You do not have permission to act as service_account: {re.escape(service_account)}\. "
        r"\(or it may not exist\)\.$",
    ):
        _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path), service_account=service_account)

    assert vertex_standin.jobs == {}
    _submit(vertex_standin, gcs_bucket, _spec_file(tmp_path))  # the account that exists and may be acted as
    assert vertex_standin.job_body("tiny-run-1")["serviceAccount"] == SERVICE_ACCOUNT


def test_the_chains_own_request_passes_every_rule(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    """What the chain sends (cicd_release.run.launch.RunRequest): its job ID format, run labels, model_labels,
    service account."""
    from cicd_release.publish.snapshots import RunData
    from cicd_release.run.launch import RunRequest

    commit = "0123456789abcdef0123456789abcdef01234567"
    # A package version as `invoke` reports it for a dirty checkout: the longest label value the chain makes.
    version = "0.1.0+g0123456789ab.dirty89abcdef"
    request = RunRequest(
        spec="gs://b/specs/penguin-cicd-0.1.0-0123456789abcdef.json",
        image="unused",
        modules={
            name: f"gs://b/modules/{'0123456789abcdef' * 4}/{name}.py"
            for name in ("preprocessing_module", "model_module", "schema_file")
        },
        data=RunData(f"gs://b/data/penguins/{'f' * 64}", "fedcba9876543210" * 4, "penguins", "snapshot"),
        hyperparameters="{}",
        commit=commit,
        versions={p: version for p in ("components", "pipeline", "release", "trainer")},
        trigger="schedule",
    )
    run_labels, model_labels = request.labels(), request.model_labels()
    assert model_labels["data_sha"] == "fedcba9876543210" and run_labels["data_name"] == "penguins"
    spec = copy.deepcopy(TINY_SPEC)
    spec["root"]["inputDefinitions"]["parameters"]["model_labels"] = {"parameterType": "STRING"}
    job_id = f"penguin-cicd-{commit[:12]}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    vertex_standin.service_accounts = {CHAIN_SERVICE_ACCOUNT}

    result = _submit(
        vertex_standin,
        gcs_bucket,
        _spec_file(tmp_path, spec),
        display_name="penguin-cicd",
        job_id=job_id,
        parameter_values={
            "module_file": "gs://modules/abc/model.py",
            "model_labels": json.dumps(vertex_labels(model_labels), sort_keys=True),
        },
        labels=run_labels,
        service_account=CHAIN_SERVICE_ACCOUNT,
        enable_caching=None,
    )

    assert re.fullmatch(r"penguin-cicd-[0-9a-f]{12}-[0-9]{14}", job_id)
    assert result.state == PENDING
    body = vertex_standin.job_body(job_id)
    assert body["labels"] == vertex_labels(run_labels)
    assert body["labels"]["trainer_version"] == "0-1-0-g0123456789ab-dirty89abcdef"
    assert body["serviceAccount"] == CHAIN_SERVICE_ACCOUNT


def test_missing_template_is_named(
    tmp_path: Path, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    with pytest.raises(MissingRelease, match=r"nowhere\.json not found"):
        _submit(vertex_standin, gcs_bucket, tmp_path / "nowhere.json")

    assert vertex_standin.requests == []
