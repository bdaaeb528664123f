"""cicd_release.core.faults: what each kind of cloud fault becomes, with no network (the integration tests,
tests/integration/test_faults.py, break real connections)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import requests
import urllib3
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exceptions

from cicd_release.core import faults
from cicd_release.core.errors import (
    CloudUnavailable,
    MissingBucket,
    MissingResourceError,
    MissingSchedule,
    Refused,
    ReleaseError,
    WriteConflict,
)

SOURCES = Path(__file__).resolve().parents[1] / "src" / "cicd_release"
ENDPOINT = "http://127.0.0.1:9"


def _refused_connection() -> requests.exceptions.ConnectionError:
    """What requests raises when nothing listens: a MaxRetryError whose reason is a NewConnectionError."""
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")
    reason.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", reason))


def _raised(exc: BaseException, **options) -> BaseException:
    """What leaves a ``reporting`` block that raised ``exc`` during the upload of gs://b/o."""
    with pytest.raises(BaseException) as caught:
        with faults.reporting("Cloud Storage", ENDPOINT, deadline=2, **options) as calls:
            calls.now("upload", "gs://b/o", writing=True)
            raise exc
    return caught.value


def test_no_answer_is_cloud_unavailable_naming_api_endpoint_request_and_reason():
    error = _raised(_refused_connection(), setting="cicd.x")

    assert isinstance(error, CloudUnavailable) and error.exit_code == 1
    assert str(error).startswith(
        f"Cloud Storage at {ENDPOINT} failed the upload of gs://b/o: connection refused."
    )
    assert f"cannot reach {ENDPOINT}: check the network and cicd.x" in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    "exc, reason",
    [
        (gexc.ServiceUnavailable("down"), "HTTP 503 Service Unavailable"),
        (gexc.TooManyRequests("slow down"), "HTTP 429 Too Many Requests"),
        (gexc.RetryError("gave up", gexc.InternalServerError("boom")), "HTTP 500 Internal Server Error"),
        (requests.exceptions.ReadTimeout("read timed out"), "no answer within 2 s"),
        (auth_exceptions.TransportError(_refused_connection()), "no access token: connection refused"),
    ],
    ids=["503", "429", "retry-error", "timeout", "token"],
)
def test_every_kind_of_no_answer_is_one_list(exc, reason):
    error = _raised(exc, retrying=True)

    assert isinstance(error, CloudUnavailable)
    assert f": {reason}, still after retrying for up to 2 s (cicd.request_deadline_seconds)." in str(error)
    assert "cannot reach" not in str(error)  # something answered, or only the token endpoint failed


def test_refused_credentials_say_how_to_log_in():
    error = _raised(gexc.Unauthorized("Invalid Credentials"))

    assert isinstance(error, CloudUnavailable)
    assert "refused the credentials for the upload of gs://b/o (Invalid Credentials)" in str(error)
    assert "gcloud auth application-default login" in str(error)


def test_a_404_is_what_the_caller_says_it_means_or_a_missing_resource():
    assert isinstance(_raised(gexc.NotFound("No such bucket")), MissingResourceError)

    def no_schedule(calls, exc):
        return MissingSchedule(f"no {calls.target}")

    error = _raised(gexc.NotFound("gone"), on_404=no_schedule)
    assert isinstance(error, MissingSchedule) and str(error) == "no gs://b/o"


def test_a_request_names_what_its_404_means():
    with pytest.raises(MissingBucket, match=r"^Bucket gs://b does not exist at .*the write of gs://b/r.json"):
        with faults.reporting("Cloud Storage", ENDPOINT, pending=["gs://b/r.json"]) as calls:
            calls.now("lookup", "gs://b/r.json")
            calls.now("write", "gs://b/r.json", on_404=faults.missing_bucket, writing=True)
            raise gexc.NotFound("No such bucket")


def test_a_403_is_refused_naming_the_permission_and_the_fix():
    error = _raised(gexc.Forbidden("sa@p does not have storage.objects.delete access"), pending=["gs://b/o"])

    assert isinstance(error, Refused) and error.exit_code == 1
    assert (
        "refused the upload of gs://b/o: HTTP 403 Forbidden: sa@p does not have storage.objects.delete"
        in str(error)
    )
    assert "Not written: gs://b/o (or whole, if the last try got through; never in part)." in str(error)
    assert "Grant the caller a role with that permission" in str(error)


@pytest.mark.parametrize(
    "exc",
    [gexc.PreconditionFailed("generation"), gexc.Conflict("exists"), gexc.Aborted("etag")],
    ids=["412", "409", "aborted"],
)
def test_a_write_whose_state_moved_is_a_write_conflict(exc):
    error = _raised(exc)

    assert isinstance(error, WriteConflict) and "nothing was overwritten" in str(error)


def test_any_other_refusal_ends_with_googles_message():
    error = _raised(gexc.FailedPrecondition("Schedule is not ACTIVE."))

    assert isinstance(error, Refused)
    assert str(error).endswith(
        "refused the upload of gs://b/o: HTTP 400 Bad Request: Schedule is not ACTIVE."
    )


@pytest.mark.parametrize(
    "exc", [ValueError("a bug"), KeyError("bug"), ReleaseError("already ours")], ids=["bug", "key", "ours"]
)
def test_what_is_no_cloud_fault_passes_unchanged(exc):
    assert _raised(exc) is exc


def test_bounded_gives_up_on_a_silent_call_and_hands_back_results_and_errors():
    release = threading.Event()
    start = time.monotonic()
    with pytest.raises(gexc.DeadlineExceeded, match="no answer within 0.2 s"):
        faults.bounded(0.2, release.wait)
    assert time.monotonic() - start < 2
    release.set()

    assert faults.bounded(1, lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        faults.bounded(1, lambda: 1 / 0)


def test_patiently_rides_out_a_blip_and_gives_up_after_the_deadline():
    tries = []

    def blip():
        tries.append(1)
        if len(tries) < 3:
            raise _refused_connection()
        return "answered"

    assert faults.patiently(blip, deadline=1, pause=0.01) == "answered" and len(tries) == 3

    def down():
        raise _refused_connection()

    start = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError):
        faults.patiently(down, deadline=0.3, pause=0.01)
    assert 0.3 <= time.monotonic() - start < 2


def test_only_the_boundary_names_the_transport_faults():
    """One list of "no answer" (faults.UNREACHABLE): no other module catches the clients' faults itself."""
    transport = re.compile(
        r"requests\.exceptions\.|TransportError|RefreshError|"
        r"gexc\.(RetryError|DeadlineExceeded|TooManyRequests|InternalServerError|BadGateway|ServiceUnavailable|"
        r"GatewayTimeout|Unauthorized|Forbidden|GoogleAPICallError)"
    )
    named = [
        f"{path.relative_to(SOURCES)}:{number}"
        for path in sorted(SOURCES.rglob("*.py"))
        if path.name != "faults.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if transport.search(line)
    ]
    assert named == []
