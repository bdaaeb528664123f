"""Faults fail fast and clean: the real clients, through a fault proxy, against fake-gcs-server and the Vertex
stand-in (tests/support/fault_proxy.py).

Each test breaks the path to storage or Vertex in one way (refused connections, 503/429 storms, a connection
cut halfway through a body, slowness, a missing bucket, a create/delete race) and asserts the promise of
cicd_release.publish.storage and cicd_release.run.submit, through their fault boundary (cicd_release.core.faults):

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from cicd_release.core.errors import CloudUnavailable, MissingBucket, ReleaseError, WriteConflict
from cicd_release.publish.storage import (
    parse_gs_uri,
    prefix_digest,
    read_json_object,
    upload_content_addressed,
    upload_immutable,
    write_json_object,
)
from cicd_release.run.submit import submit_pipeline_job, wait_for_outcome
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


def _one_line(error: BaseException) -> str:
    """What a task prints (``TypeName: message``): one line."""
    line = f"{type(error).__name__}: {error}"
    assert "\n" not in line, line
    return line


def _fails_fast(call: Callable[[], Any], kind: type[ReleaseError]) -> tuple[Any, str]:
    """Run ``call``, which must raise a ``kind`` within BOUND seconds; return it and its one line."""
    start = time.monotonic()
    with pytest.raises(ReleaseError) as raised:
        call()
    elapsed = time.monotonic() - start
    assert isinstance(raised.value, kind), repr(raised.value)
    assert elapsed < BOUND, f"gave up after {elapsed:.1f} s"
    return raised.value, _one_line(raised.value)


def _whats(faults: FaultProxy, under: str = "/") -> list[str]:
    """What the proxy did with each request whose path starts with ``under``, in order."""
    return [r.what for r in faults.requests if r.path.startswith(under)]


@pytest.fixture
def faulty_client(gcs_faults: FaultProxy, gcs_emulator: GcsEmulator) -> storage.Client:
    """A real google-cloud-storage client whose every request goes through the fault proxy."""
    return make_storage_client(gcs_faults.endpoint)


@dataclass
class Storage:
    """Two modules to upload to gs://BUCKET/modules through the fault proxy (``client``, ``faults``), and
    the emulator's own view (``admin``, around the proxy) to check what was stored."""

    faults: FaultProxy
    client: storage.Client
    admin: storage.Client
    bucket: str
    files: dict[str, Path]

    @property
    def prefix(self) -> str:
        return f"gs://{self.bucket}/modules"

    @property
    def addresses(self) -> dict[str, str]:
        return _addresses(self.bucket, "modules", self.files)

    def upload(self, deadline: float = FAST) -> dict[str, str]:
        return upload_content_addressed(self.client, self.prefix, self.files, deadline=deadline)

    def upload_fails(self) -> tuple[Any, str]:
        """The upload's CloudUnavailable, raised in bounded time, and its one line."""
        return _fails_fast(self.upload, CloudUnavailable)

    def assert_stored(self, uris: dict[str, str]) -> None:
        assert all(_stored(self.admin, uris[name]) == path.read_bytes() for name, path in self.files.items())

    def assert_nothing_written(self) -> None:
        assert list(self.admin.list_blobs(self.bucket)) == []

    def assert_no_partial_object(self) -> None:
        for name, path in self.files.items():
            _absent_or_exact(self.admin, self.addresses[name], path.read_bytes())

    def assert_rerun_completes(self) -> None:
        self.faults.heal()
        assert self.upload() == self.addresses
        self.assert_stored(self.addresses)

    def first_record(self, uri: str) -> int:
        """``{"commit": "a" * 40}`` written to ``uri`` straight to the emulator; its generation."""
        return write_json_object(self.admin, uri, {"commit": "a" * 40}, if_generation_match=0)


@pytest.fixture
def gcs(
    tmp_path: Path,
    gcs_faults: FaultProxy,
    faulty_client: storage.Client,
    gcs_client: storage.Client,
    gcs_bucket: storage.Bucket,
) -> Storage:
    return Storage(gcs_faults, faulty_client, gcs_client, gcs_bucket.name, _files(tmp_path))


# ------------------------------------------------------------------------------------- (a) endpoint down


def test_unreachable_storage_fails_within_the_deadline_in_one_line_and_a_rerun_completes(
    gcs: Storage,
) -> None:
    gcs.faults.down()

    error, line = gcs.upload_fails()

    assert error.exit_code == 1
    assert f"Cloud Storage at {gcs.faults.endpoint} failed the lookup of" in line
    assert "connection refused" in line
    assert "Not written: " in line and all(uri in line for uri in gcs.addresses.values())
    gcs.assert_nothing_written()
    gcs.assert_rerun_completes()


def test_a_fault_between_two_uploads_names_what_is_written_and_what_is_not(gcs: Storage) -> None:
    addresses = gcs.addresses
    second = hashlib.sha256(gcs.files["preprocessing"].read_bytes()).hexdigest()
    gcs.faults.fail(503, times=None, on=second)  # every request naming the second file: its lookup

    _, line = gcs.upload_fails()

    assert f"Written: {addresses['model']}. Not written: {addresses['preprocessing']}." in line
    assert "running the upload again completes it" in line
    assert _stored(gcs.admin, addresses["model"]) == gcs.files["model"].read_bytes()
    assert _stored(gcs.admin, addresses["preprocessing"]) is None


# ----------------------------------------------------------------------------------- (b) 503 / 429 storms

ON_LOOKUPS_OR_UPLOADS = pytest.mark.parametrize(
    "on", ["/storage/v1/", "/upload/"], ids=["on-lookups", "on-uploads"]
)


@pytest.mark.parametrize("status", [503, 429])
@ON_LOOKUPS_OR_UPLOADS
def test_a_storm_shorter_than_the_deadline_is_ridden_out(status: int, on: str, gcs: Storage) -> None:
    gcs.faults.fail(status, times=2, on=on)

    uris = gcs.upload(deadline=PATIENT)

    assert _whats(gcs.faults).count(str(status)) == 2, "the storm did happen"
    gcs.assert_stored(uris)


@ON_LOOKUPS_OR_UPLOADS
def test_a_storm_longer_than_the_deadline_is_a_clean_error_with_nothing_written(
    on: str, gcs: Storage
) -> None:
    gcs.faults.fail(503, times=None, on=on)

    _, line = gcs.upload_fails()

    assert gcs.faults.endpoint in line and "HTTP 503 Service Unavailable" in line
    assert ("failed the upload of" if on == "/upload/" else "failed the lookup of") in line
    gcs.assert_nothing_written()


# -------------------------------------------------------------------------------- (c) resets mid-body, slowness


def test_a_connection_cut_mid_upload_leaves_no_partial_object_and_a_rerun_completes(gcs: Storage) -> None:
    # Every upload is cut after half its body reached fake-gcs-server, retries included.
    gcs.faults.reset_mid_body(times=None, on="/upload/")

    _, line = gcs.upload_fails()

    assert "connection reset by peer" in line and f"failed the upload of {gcs.addresses['model']}" in line
    assert "never in part" in line
    assert "reset" in _whats(gcs.faults)
    gcs.assert_no_partial_object()
    gcs.assert_rerun_completes()


def test_a_reply_lost_after_the_write_landed_is_a_success_not_a_conflict(gcs: Storage) -> None:
    # The first upload reaches fake-gcs-server whole; its answer is cut halfway. The library retries (the
    # write carries ifGenerationMatch=0), meets its own object (412), and the content check accepts it.
    gcs.faults.reset_mid_body(times=1, on="/upload/", side="response")

    uris = gcs.upload(deadline=PATIENT)

    uploads = _whats(gcs.faults, "/upload/")
    assert uploads[0] == "reset" and len(uploads) == 3, uploads  # cut, retried (412), then the second file
    gcs.assert_stored(uris)


def test_a_storage_slower_than_the_deadline_fails_in_bounded_time_without_a_wrong_object(
    gcs: Storage,
) -> None:
    gcs.faults.slow(3, on="/upload/")  # each upload waits 3 s; each request may take 2 s

    _, line = gcs.upload_fails()

    # The request's own timeout, or the wall-clock bound around the upload, whichever ends it first.
    assert f"no answer within {FAST:g} s" in line or f"no answer within {2 * FAST:g} s" in line
    gcs.faults.wait_idle()  # the slow uploads still reach the server after the client gave up...
    gcs.assert_no_partial_object()  # ...whole, or not at all
    gcs.assert_rerun_completes()


def test_an_upload_to_a_host_that_never_answers_is_given_up_on_after_one_bounded_wait(gcs: Storage) -> None:
    """The upload library counts only its sleeps against the deadline: without a wall-clock bound, a host
    that takes the upload and never answers held the call for every attempt times the request timeout."""
    gcs.faults.slow(20, on="/upload/")  # ten times the bound: to the client, a host that never answers

    _, line = gcs.upload_fails()

    assert f"no answer within {2 * FAST:g} s" in line and "Traceback" not in line
    assert len([w for w in _whats(gcs.faults, "/upload/") if w == "slow"]) <= 2, "given up, not retried on"
    gcs.faults.heal()
    gcs.assert_no_partial_object()
    gcs.assert_rerun_completes()


# A file of ten chunks of 256 KiB (GCS's smallest chunk): uploaded resumably, chunk by chunk.
CHUNK = 256 << 10


def _big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(10 * CHUNK))
    return path


def test_a_slow_upload_that_keeps_moving_finishes_however_long_it_takes(gcs: Storage, tmp_path: Path) -> None:
    """The deadline bounds a stalled line, not a slow healthy one: at 512 KiB/s each chunk takes 0.5 s, well
    inside the 2 s deadline, and the ten of them 5 s and more, past the 4 s that once cut every upload."""
    big = _big_file(tmp_path)
    uri = f"gs://{gcs.bucket}/releases/big.bin"
    gcs.faults.throttle(2 * CHUNK, on="/upload/")

    assert upload_immutable(gcs.client, big, uri, deadline=FAST, chunk=CHUNK) == uri

    assert _stored(gcs.admin, uri) == big.read_bytes()
    # Ten chunks and the request that opened the session, each read at the throttled rate.
    assert _whats(gcs.faults, "/upload/").count("throttled") >= 11


def test_a_stalled_upload_fails_in_one_line_that_says_the_connection_stalled(
    gcs: Storage, tmp_path: Path
) -> None:
    big = _big_file(tmp_path)
    uri = f"gs://{gcs.bucket}/releases/big.bin"
    gcs.faults.stall(after=4, on="/upload/")  # the session's start and three chunks go through, then nothing

    _, line = _fails_fast(
        lambda: upload_immutable(gcs.client, big, uri, deadline=FAST, chunk=CHUNK), CloudUnavailable
    )

    assert "the connection stalled" in line and "no answer" not in line, line
    assert "stalled" in _whats(gcs.faults, "/upload/")
    gcs.faults.heal()
    gcs.faults.drop_held()
    assert _stored(gcs.admin, uri) is None  # an unfinished resumable upload is no object
    assert upload_immutable(gcs.client, big, uri, deadline=FAST, chunk=CHUNK) == uri
    assert _stored(gcs.admin, uri) == big.read_bytes()


# ----------------------------------------------------------------------------- (d) generation-checked writes


def test_a_429_on_a_generation_checked_write_is_retried_once_and_written_once(gcs: Storage) -> None:
    uri = f"gs://{gcs.bucket}/releases/latest.json"
    first = gcs.first_record(uri)
    gcs.faults.fail(429, times=1, on="/upload/")

    second = write_json_object(
        gcs.client, uri, {"commit": "b" * 40}, if_generation_match=first, deadline=PATIENT
    )

    assert _whats(gcs.faults, "/upload/") == ["429", "forwarded"], "one refused try, one write"
    assert read_json_object(gcs.admin, uri) == ({"commit": "b" * 40}, second)
    assert second != first


def test_a_generation_checked_write_whose_reply_is_lost_is_not_a_conflict(gcs: Storage) -> None:
    uri = f"gs://{gcs.bucket}/releases/latest.json"
    first = gcs.first_record(uri)
    # The write lands; its reply is cut. The library's retry then finds generation `first` gone (412): the
    # record is ours, not another release's, and must not be reported as a conflict nor written again.
    gcs.faults.reset_mid_body(times=1, on="/upload/", side="response")

    second = write_json_object(
        gcs.client, uri, {"commit": "b" * 40}, if_generation_match=first, deadline=PATIENT
    )

    assert read_json_object(gcs.admin, uri) == ({"commit": "b" * 40}, second)
    assert _whats(gcs.faults, "/upload/") == ["reset", "forwarded"]

    # A real conflict still is one: the generation read before is no longer there.
    with pytest.raises(WriteConflict, match="changed since it was read"):
        write_json_object(gcs.client, uri, {"commit": "c" * 40}, if_generation_match=first, deadline=FAST)


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

    error, line = _fails_fast(lambda: operation(faulty_client, "no-such-bucket-0451", files), MissingBucket)

    assert error.exit_code == 3
    assert line.startswith(
        f"MissingBucket: Bucket gs://no-such-bucket-0451 does not exist at {gcs_faults.endpoint}"
    )
    assert f"(the {action} of gs://no-such-bucket-0451/" in line and "Create the bucket" in line


# ------------------------------------------------------------------------------------ (f) create/delete race


def test_an_object_gone_between_a_412_and_the_reread_is_created_again(gcs: Storage) -> None:
    spec, uri = gcs.files["preprocessing"], f"gs://{gcs.bucket}/specs/pipeline.json"
    # To the client, a 412 to its create followed by an empty re-read is exactly "someone created the object,
    # then deleted it in between": the proxy answers the 412, the emulator has nothing.
    gcs.faults.fail(412, times=1, on="/upload/")

    assert upload_immutable(gcs.client, spec, uri, deadline=FAST) == uri

    assert _stored(gcs.admin, uri) == spec.read_bytes()
    assert _whats(gcs.faults, "/upload/") == ["412", "forwarded"]


def test_an_object_that_keeps_coming_and_going_is_a_clear_error_not_a_raw_precondition_failure(
    gcs: Storage,
) -> None:
    spec, uri = gcs.files["preprocessing"], f"gs://{gcs.bucket}/specs/pipeline.json"
    gcs.faults.fail(412, times=None, on="/upload/")

    error, line = _fails_fast(lambda: upload_immutable(gcs.client, spec, uri, deadline=FAST), WriteConflict)

    assert error.exit_code == 1
    assert f"{uri} was created by another writer and gone again, 2 times" in line
    assert "Nothing of ours was written" in line
    assert _stored(gcs.admin, uri) is None


def test_a_record_replaced_between_its_metadata_and_its_bytes_is_read_again(gcs: Storage) -> None:
    uri = f"gs://{gcs.bucket}/releases/latest.json"
    generation = gcs.first_record(uri)
    gcs.faults.fail(412, times=1, on="/download/")  # the download's ifGenerationMatch no longer holds

    assert read_json_object(gcs.client, uri, deadline=FAST) == ({"commit": "a" * 40}, generation)
    assert _whats(gcs.faults, "/download/") == ["412", "forwarded"]


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


def _submit_fails(vertex_faults: FaultProxy, bucket: storage.Bucket, tmp_path: Path) -> tuple[Any, str]:
    """The submit's CloudUnavailable, raised in bounded time, and its one line."""
    return _fails_fast(lambda: _submit(vertex_faults, bucket, tmp_path), CloudUnavailable)


def test_an_unreachable_vertex_fails_at_once_naming_the_endpoint_and_nothing_created(
    tmp_path: Path, vertex_faults: FaultProxy, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    vertex_faults.down()

    error, line = _submit_fails(vertex_faults, gcs_bucket, tmp_path)

    assert error.exit_code == 1
    assert (
        f"Vertex AI at {vertex_faults.endpoint} did not answer the create of pipeline job 'tiny-run-1'"
        in line
    )
    assert "connection refused" in line and "Nothing was created." in line
    assert vertex_standin.jobs == {}


def test_vertex_going_away_while_a_run_is_followed_ends_the_follow_in_one_line_the_run_goes_on(
    tmp_path: Path, vertex_faults: FaultProxy, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    run = _submit(vertex_faults, gcs_bucket, tmp_path).resource_name

    def follow():  # as `pipeline.submit --wait` follows a run (runs.launch)
        return wait_for_outcome(
            run, poll_seconds=0.1, credentials=AnonymousCredentials(), request_deadline=FAST
        )

    vertex_faults.down()

    error, line = _fails_fast(follow, CloudUnavailable)

    assert error.exit_code == 1 and "Traceback" not in line
    assert (
        "stopped answering the polls of projects/test-project/locations/us-central1/pipelineJobs/tiny-run-1"
        in line
    )
    assert "The run goes on without this build: follow it at https://console.cloud.google.com/" in line
    vertex_faults.heal()
    assert follow().state == "PIPELINE_STATE_SUCCEEDED"


def test_a_silent_vertex_times_out_and_says_the_job_may_exist(
    tmp_path: Path, vertex_faults: FaultProxy, vertex_standin: VertexStandIn, gcs_bucket: storage.Bucket
) -> None:
    # aiplatform sends the create without a timeout of its own: without `deadline` this would hang.
    vertex_faults.slow(2 * FAST, on="/pipelineJobs")

    _, line = _submit_fails(vertex_faults, gcs_bucket, tmp_path)

    assert f"no answer within {FAST:g} s" in line and "look for tiny-run-1 before submitting again" in line
    vertex_faults.wait_idle()
    # The warning is true: the slow create did reach Vertex after the client gave up.
    assert list(vertex_standin.jobs) == [f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/tiny-run-1"]
