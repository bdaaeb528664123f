"""Faults fail fast and clean: the real clients, through a fault proxy, against fake-gcs-server and the Vertex
stand-in (tests/support/fault_proxy.py).

Each test breaks the path to storage or Vertex in one way (refused connections, 503/429 storms, a connection
cut halfway through a body, slowness, a missing bucket, a create/delete race) and asserts the promise of
cicd_release.storage and cicd_release.submit:

* bounded time: the call gives up after about its ``deadline`` (2 s here, 30 s in a release), not 96 s;
* one line, a ReleaseError (exit 1, or 3 for a missing bucket), naming the endpoint and what was and was not
  written; never a library traceback;
* no partial or wrong object: what is stored is absent or byte-exact;
* a clean re-run after ``heal()`` succeeds with the right bytes.

The time bounds are loose behavioural bounds of a fault test (a hang or the library's 120 s default would
break them), not speed benchmarks. Tests whose point is that retries *succeed* use a 10 s deadline, so the
jittered back-off can never run out of time by chance; a storm there is two requests long.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from cicd_release.errors import ReleaseError
from cicd_release.storage import (
    MissingBucket,
    RecordConflict,
    StorageUnavailable,
    parse_gs_uri,
    prefix_digest,
    read_json_object,
    upload_content_addressed,
    upload_immutable,
    write_json_object,
)
from cicd_release.submit import PipelineSubmitError, submit_pipeline_job
from tests.support.fault_proxy import FaultProxy
from tests.support.gcs_emulator import GcsEmulator, make_storage_client
from tests.support.vertex_standin import VertexStandIn

FAST = 2.0  # the deadline of tests that expect a fault to win
PATIENT = 10.0  # the deadline of tests that expect the retries to win
BOUND = 15.0  # seconds: a fault test's loose bound on "gave up in bounded time"


def _files(tmp_path: Path) -> dict[str, Path]:
    """A module big enough to be cut in half mid-upload (1 MiB: still one multipart request) and a small one."""
    model = tmp_path / "model.py"
    model.write_bytes(b"# " + os.urandom(1 << 19).hex().encode() + b"\n")
    preprocessing = tmp_path / "preprocessing.py"
    preprocessing.write_text("def preprocessing_fn(inputs):\n    return inputs\n")
    return {"model": model, "preprocessing": preprocessing}


def _addresses(bucket: str, prefix: str, files: dict[str, Path]) -> dict[str, str]:
    """Where upload_content_addressed puts each file."""
    return {
        name: f"gs://{bucket}/{prefix}/{hashlib.sha256(path.read_bytes()).hexdigest()}/{path.name}"
        for name, path in files.items()
    }


def _stored(admin: storage.Client, uri: str) -> bytes | None:
    """The object's bytes, read straight from the emulator (around the proxy), or None when there is none."""
    bucket, name = parse_gs_uri(uri)
    blob = admin.bucket(bucket).get_blob(name)
    return None if blob is None else blob.download_as_bytes()


def _absent_or_exact(admin: storage.Client, uri: str, expected: bytes) -> None:
    stored = _stored(admin, uri)
    assert stored is None or hashlib.md5(stored).digest() == hashlib.md5(expected).digest(), (
        f"{uri} holds {len(stored)} bytes that are not the {len(expected)} uploaded: a partial object"
    )


def _timed(call: Callable[[], Any]) -> tuple[BaseException, float]:
    """Run ``call``, which must raise a ReleaseError; return it and how long it took."""
    start = time.monotonic()
    with pytest.raises(ReleaseError) as raised:
        call()
    return raised.value, time.monotonic() - start


def _one_line(error: BaseException) -> str:
    """What a task prints (``TypeName: message``): one line."""
    line = f"{type(error).__name__}: {error}"
    assert "\n" not in line, line
    return line


@pytest.fixture
def faulty_client(gcs_faults: FaultProxy, gcs_emulator: GcsEmulator) -> storage.Client:
    """A real google-cloud-storage client whose every request goes through the fault proxy."""
    return make_storage_client(gcs_faults.endpoint)


# ------------------------------------------------------------------------------------- (a) endpoint down


def test_unreachable_storage_fails_within_the_deadline_in_one_line_and_a_rerun_completes(
    tmp_path: Path,
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    files = _files(tmp_path)
    prefix = f"gs://{gcs_bucket.name}/modules"
    gcs_faults.down()

    error, elapsed = _timed(lambda: upload_content_addressed(faulty_client, prefix, files, deadline=FAST))

    assert isinstance(error, StorageUnavailable) and error.exit_code == 1
    assert elapsed < BOUND, f"gave up after {elapsed:.1f} s"
    line = _one_line(error)
    assert f"Cloud Storage at {gcs_faults.endpoint} failed the lookup of" in line
    assert "connection refused" in line
    assert "Not written: " in line and all(
        uri in line for uri in _addresses(gcs_bucket.name, "modules", files).values()
    )
    assert list(gcs_client.list_blobs(gcs_bucket.name)) == []

    gcs_faults.heal()
    uris = upload_content_addressed(faulty_client, prefix, files, deadline=FAST)

    assert uris == _addresses(gcs_bucket.name, "modules", files)
    assert all(_stored(gcs_client, uris[name]) == files[name].read_bytes() for name in files)


def test_a_fault_between_two_uploads_names_what_is_written_and_what_is_not(
    tmp_path: Path,
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    files = _files(tmp_path)
    addresses = _addresses(gcs_bucket.name, "modules", files)
    second = hashlib.sha256(files["preprocessing"].read_bytes()).hexdigest()
    gcs_faults.fail(503, times=None, on=second)  # every request naming the second file: its lookup

    error, elapsed = _timed(
        lambda: upload_content_addressed(
            faulty_client, f"gs://{gcs_bucket.name}/modules", files, deadline=FAST
        )
    )

    assert isinstance(error, StorageUnavailable) and elapsed < BOUND
    line = _one_line(error)
    assert f"Written: {addresses['model']}. Not written: {addresses['preprocessing']}." in line
    assert "running the upload again completes it" in line
    assert _stored(gcs_client, addresses["model"]) == files["model"].read_bytes()
    assert _stored(gcs_client, addresses["preprocessing"]) is None


# ----------------------------------------------------------------------------------- (b) 503 / 429 storms


@pytest.mark.parametrize("status", [503, 429])
@pytest.mark.parametrize("on", ["/storage/v1/", "/upload/"], ids=["on-lookups", "on-uploads"])
def test_a_storm_shorter_than_the_deadline_is_ridden_out(
    tmp_path: Path,
    status: int,
    on: str,
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    files = _files(tmp_path)
    gcs_faults.fail(status, times=2, on=on)

    uris = upload_content_addressed(faulty_client, f"gs://{gcs_bucket.name}/modules", files, deadline=PATIENT)

    assert [r.what for r in gcs_faults.requests].count(str(status)) == 2, "the storm did happen"
    assert all(_stored(gcs_client, uris[name]) == files[name].read_bytes() for name in files)


@pytest.mark.parametrize("on", ["/storage/v1/", "/upload/"], ids=["on-lookups", "on-uploads"])
def test_a_storm_longer_than_the_deadline_is_a_clean_error_with_nothing_written(
    tmp_path: Path,
    on: str,
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    files = _files(tmp_path)
    gcs_faults.fail(503, times=None, on=on)

    error, elapsed = _timed(
        lambda: upload_content_addressed(
            faulty_client, f"gs://{gcs_bucket.name}/modules", files, deadline=FAST
        )
    )

    assert isinstance(error, StorageUnavailable) and elapsed < BOUND
    line = _one_line(error)
    assert gcs_faults.endpoint in line and "HTTP 503 Service Unavailable" in line
    assert ("failed the upload of" if on == "/upload/" else "failed the lookup of") in line
    assert list(gcs_client.list_blobs(gcs_bucket.name)) == []


# -------------------------------------------------------------------------------- (c) resets mid-body, slowness


def test_a_connection_cut_mid_upload_leaves_no_partial_object_and_a_rerun_completes(
    tmp_path: Path,
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    files = _files(tmp_path)
    prefix = f"gs://{gcs_bucket.name}/modules"
    addresses = _addresses(gcs_bucket.name, "modules", files)
    # Every upload is cut after half its body reached fake-gcs-server, retries included.
    gcs_faults.reset_mid_body(times=None, on="/upload/")

    error, elapsed = _timed(lambda: upload_content_addressed(faulty_client, prefix, files, deadline=FAST))

    assert isinstance(error, StorageUnavailable) and elapsed < BOUND
    line = _one_line(error)
    assert "connection reset by peer" in line and f"failed the upload of {addresses['model']}" in line
    assert "never in part" in line
    assert "reset" in [r.what for r in gcs_faults.requests]
    for name, path in files.items():
        _absent_or_exact(gcs_client, addresses[name], path.read_bytes())

    gcs_faults.heal()
    assert upload_content_addressed(faulty_client, prefix, files, deadline=FAST) == addresses
    assert all(_stored(gcs_client, addresses[name]) == files[name].read_bytes() for name in files)


def test_a_reply_lost_after_the_write_landed_is_a_success_not_a_conflict(
    tmp_path: Path,
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    files = _files(tmp_path)
    # The first upload reaches fake-gcs-server whole; its answer is cut halfway. The library retries (the
    # write carries ifGenerationMatch=0), meets its own object (412), and the content check accepts it.
    gcs_faults.reset_mid_body(times=1, on="/upload/", side="response")

    uris = upload_content_addressed(faulty_client, f"gs://{gcs_bucket.name}/modules", files, deadline=PATIENT)

    uploads = [r.what for r in gcs_faults.requests if r.path.startswith("/upload/")]
    assert uploads[0] == "reset" and len(uploads) == 3, uploads  # cut, retried (412), then the second file
    assert all(_stored(gcs_client, uris[name]) == files[name].read_bytes() for name in files)


def test_a_storage_slower_than_the_deadline_fails_in_bounded_time_without_a_wrong_object(
    tmp_path: Path,
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    files = _files(tmp_path)
    prefix = f"gs://{gcs_bucket.name}/modules"
    addresses = _addresses(gcs_bucket.name, "modules", files)
    gcs_faults.slow(3, on="/upload/")  # each upload waits 3 s; each request may take 2 s

    error, elapsed = _timed(lambda: upload_content_addressed(faulty_client, prefix, files, deadline=FAST))

    assert isinstance(error, StorageUnavailable) and elapsed < BOUND, f"gave up after {elapsed:.1f} s"
    assert f"no answer within {FAST:g} s" in _one_line(error)
    gcs_faults.wait_idle()  # the slow uploads still reach the server after the client gave up...
    for name, path in files.items():
        _absent_or_exact(gcs_client, addresses[name], path.read_bytes())  # ...whole, or not at all

    gcs_faults.heal()
    assert upload_content_addressed(faulty_client, prefix, files, deadline=FAST) == addresses
    assert all(_stored(gcs_client, addresses[name]) == files[name].read_bytes() for name in files)


# ----------------------------------------------------------------------------- (d) generation-checked writes


def test_a_429_on_a_generation_checked_write_is_retried_once_and_written_once(
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    uri = f"gs://{gcs_bucket.name}/releases/latest.json"
    first = write_json_object(gcs_client, uri, {"commit": "a" * 40}, if_generation_match=0)
    gcs_faults.fail(429, times=1, on="/upload/")

    second = write_json_object(
        faulty_client, uri, {"commit": "b" * 40}, if_generation_match=first, deadline=PATIENT
    )

    uploads = [r.what for r in gcs_faults.requests if r.path.startswith("/upload/")]
    assert uploads == ["429", "forwarded"], "one refused try, one write"
    assert read_json_object(gcs_client, uri) == ({"commit": "b" * 40}, second)
    assert second != first


def test_a_generation_checked_write_whose_reply_is_lost_is_not_a_conflict(
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    uri = f"gs://{gcs_bucket.name}/releases/latest.json"
    first = write_json_object(gcs_client, uri, {"commit": "a" * 40}, if_generation_match=0)
    # The write lands; its reply is cut. The library's retry then finds generation `first` gone (412): the
    # record is ours, not another release's, and must not be reported as a conflict nor written again.
    gcs_faults.reset_mid_body(times=1, on="/upload/", side="response")

    second = write_json_object(
        faulty_client, uri, {"commit": "b" * 40}, if_generation_match=first, deadline=PATIENT
    )

    assert read_json_object(gcs_client, uri) == ({"commit": "b" * 40}, second)
    assert [r.what for r in gcs_faults.requests if r.path.startswith("/upload/")] == ["reset", "forwarded"]

    # A real conflict still is one: the generation read before is no longer there.
    with pytest.raises(RecordConflict, match="changed since it was read"):
        write_json_object(faulty_client, uri, {"commit": "c" * 40}, if_generation_match=first, deadline=FAST)


# --------------------------------------------------------------------------------------- (e) missing bucket


@pytest.mark.parametrize(
    "operation, action",
    [
        (
            lambda client, bucket, files: upload_content_addressed(client, f"gs://{bucket}/modules", files),
            "upload",
        ),
        (
            lambda client, bucket, files: upload_immutable(client, files["model"], f"gs://{bucket}/s/p.json"),
            "upload",
        ),
        (
            lambda client, bucket, files: write_json_object(
                client, f"gs://{bucket}/r.json", {}, if_generation_match=0
            ),
            "write",
        ),
        (lambda client, bucket, files: prefix_digest(client, f"gs://{bucket}/data"), "listing"),
    ],
    ids=["upload_content_addressed", "upload_immutable", "write_json_object", "prefix_digest"],
)
def test_a_missing_bucket_is_exit_3_in_one_line(
    tmp_path: Path, operation, action: str, gcs_faults: FaultProxy, faulty_client: storage.Client
) -> None:
    files = _files(tmp_path)

    error, elapsed = _timed(lambda: operation(faulty_client, "no-such-bucket-0451", files))

    assert isinstance(error, MissingBucket) and error.exit_code == 3 and elapsed < BOUND
    line = _one_line(error)
    assert line.startswith(
        f"MissingBucket: Bucket gs://no-such-bucket-0451 does not exist at {gcs_faults.endpoint}"
    )
    assert f"(the {action} of gs://no-such-bucket-0451/" in line and "Create the bucket" in line


# ------------------------------------------------------------------------------------ (f) create/delete race


def test_an_object_gone_between_a_412_and_the_reread_is_created_again(
    tmp_path: Path,
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    spec = _files(tmp_path)["preprocessing"]
    uri = f"gs://{gcs_bucket.name}/specs/pipeline.json"
    # To the client, a 412 to its create followed by an empty re-read is exactly "someone created the object,
    # then deleted it in between": the proxy answers the 412, the emulator has nothing.
    gcs_faults.fail(412, times=1, on="/upload/")

    assert upload_immutable(faulty_client, spec, uri, deadline=FAST) == uri

    assert _stored(gcs_client, uri) == spec.read_bytes()
    assert [r.what for r in gcs_faults.requests if r.path.startswith("/upload/")] == ["412", "forwarded"]


def test_an_object_that_keeps_coming_and_going_is_a_clear_error_not_a_raw_precondition_failure(
    tmp_path: Path,
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    spec = _files(tmp_path)["preprocessing"]
    uri = f"gs://{gcs_bucket.name}/specs/pipeline.json"
    gcs_faults.fail(412, times=None, on="/upload/")

    error, _ = _timed(lambda: upload_immutable(faulty_client, spec, uri, deadline=FAST))

    assert isinstance(error, RecordConflict) and error.exit_code == 1
    line = _one_line(error)
    assert f"{uri} was created by another writer and gone again, 2 times" in line
    assert "Nothing of ours was written" in line
    assert _stored(gcs_client, uri) is None


def test_a_record_replaced_between_its_metadata_and_its_bytes_is_read_again(
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> None:
    uri = f"gs://{gcs_bucket.name}/releases/latest.json"
    generation = write_json_object(gcs_client, uri, {"commit": "a" * 40}, if_generation_match=0)
    gcs_faults.fail(412, times=1, on="/download/")  # the download's ifGenerationMatch no longer holds

    assert read_json_object(faulty_client, uri, deadline=FAST) == ({"commit": "a" * 40}, generation)
    downloads = [r.what for r in gcs_faults.requests if r.path.startswith("/download/")]
    assert downloads == ["412", "forwarded"]


# ----------------------------------------------------------------------------------------------- (g) Vertex


PROJECT, REGION = "test-project", "us-central1"
# The smallest spec the stand-in accepts (tests/integration/test_submit.py has the annotated one).
TINY_SPEC: dict[str, Any] = {
    "pipelineInfo": {"name": "tiny-pipeline"},
    "schemaVersion": "2.1.0",
    "root": {
        "inputDefinitions": {"parameters": {"module_file": {"parameterType": "STRING"}}},
        "dag": {"tasks": {"echo": {"taskInfo": {"name": "echo"}, "componentRef": {"name": "comp-echo"}}}},
    },
    "components": {"comp-echo": {"executorLabel": "exec-echo"}},
    "deploymentSpec": {"executors": {"exec-echo": {"container": {"image": "busybox", "command": ["true"]}}}},
}


def _submit(vertex_faults: FaultProxy, bucket: storage.Bucket, tmp_path: Path) -> Any:
    """submit_pipeline_job through the Vertex fault proxy; storage goes straight to the emulator."""
    template = tmp_path / "pipeline.json"
    template.write_text(json.dumps(TINY_SPEC))
    return submit_pipeline_job(
        template_path=str(template),
        project=PROJECT,
        region=REGION,
        pipeline_root=f"gs://{bucket.name}/root",
        display_name="tiny",
        job_id="tiny-run-1",
        parameter_values={"module_file": "gs://modules/abc/model.py"},
        labels={"commit": "0123abc"},
        service_account=f"pipelines@{PROJECT}.iam.gserviceaccount.com",
        api_endpoint=vertex_faults.endpoint,
        credentials=AnonymousCredentials(),
        storage_client=bucket.client,
        deadline=FAST,
    )


def test_an_unreachable_vertex_fails_at_once_naming_the_endpoint_and_nothing_created(
    tmp_path: Path, vertex_faults: FaultProxy, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    vertex_faults.down()

    error, elapsed = _timed(lambda: _submit(vertex_faults, gcs_bucket, tmp_path))

    assert isinstance(error, PipelineSubmitError) and error.exit_code == 1 and elapsed < BOUND
    line = _one_line(error)
    assert (
        f"Vertex AI at {vertex_faults.endpoint} did not answer the create of pipeline job 'tiny-run-1'"
        in line
    )
    assert "connection refused" in line and "Nothing was created." in line
    assert vertex_standin.jobs == {}


def test_a_silent_vertex_times_out_and_says_the_job_may_exist(
    tmp_path: Path, vertex_faults: FaultProxy, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    # aiplatform sends the create without a timeout of its own: without `deadline` this would hang.
    vertex_faults.slow(2 * FAST, on="/pipelineJobs")

    error, elapsed = _timed(lambda: _submit(vertex_faults, gcs_bucket, tmp_path))

    assert isinstance(error, PipelineSubmitError) and elapsed < BOUND
    line = _one_line(error)
    assert f"no answer within {FAST:g} s" in line and "look for tiny-run-1 before submitting again" in line
    vertex_faults.wait_idle()
    # The warning is true: the slow create did reach Vertex after the client gave up.
    assert list(vertex_standin.jobs) == [f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/tiny-run-1"]
