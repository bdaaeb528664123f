"""The one boundary between what a Google Cloud client raises and the errors a person reads.

Every call to a Google Cloud client (Cloud Storage, Vertex AI, the admin APIs of `setup` and `doctor`) runs
inside ``reporting(what, endpoint, ...)``, which turns its faults into cicd_release.core.errors, each one line
naming the API, the endpoint, the request and, for writes, what was and was not written:

=====================================================================  ==========================================
fault                                                                  error
=====================================================================  ==========================================
no useful answer in time: ``UNREACHABLE`` (refused, reset, DNS,        CloudUnavailable (exit 1)
timeouts, 429/5xx once the retries gave up, our own ``bounded``)
credentials refused (401, a token that cannot be refreshed)            CloudUnavailable (exit 1)
no credentials found (Application Default Credentials)                 CloudUnavailable (exit 1)
not found (404)                                                        the caller's ``on_404`` (MissingBucket,
                                                                       MissingData, MissingSchedule, ...), else
                                                                       MissingResourceError (exit 3)
forbidden (403)                                                        the caller's ``on_403``, else Refused
                                                                       (exit 1) naming the permission
precondition failed, conflict, aborted (412, 409)                      WriteConflict (exit 1)
any other refusal (400, ...)                                           Refused (exit 1), Google's message
=====================================================================  ==========================================

Anything else (a ReleaseError raised inside, a bug) passes through unchanged. A caller that expects a fault
(a 412 that means "already there", a 404 that means "absent") catches it inside the block, before this does.

Bounding time: every storage request carries the library's own retry cut to ``deadline`` seconds and a
per-request timeout of the same length (``request_options``; the default of 120 s kept an unreachable endpoint
busy for 96 s and ended in a 108-line RetryError); ``bounded`` puts a wall-clock limit around a call whose
library does not count the time spent in requests; ``patiently`` asks again about a long-lived resource (a
followed run) until its faults have lasted the deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import requests
import urllib3
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exceptions

from cicd_release.core.errors import (
    CloudUnavailable,
    MissingBucket,
    MissingData,
    MissingResourceError,
    Refused,
    ReleaseError,
    WriteConflict,
)

T = TypeVar("T")

# Seconds a call keeps retrying transient faults (and the longest one request may take); the release steps
# pass cicd.request_deadline_seconds, whose default this is.
DEFAULT_DEADLINE = 30.0

# Faults that mean "the API did not answer usefully in time" once the retries have given up: a RetryError
# (the JSON APIs' retry), or the last error itself (media uploads and downloads re-raise it; the Vertex and
# admin clients do not retry most calls). The statuses are the retryable ones of google-cloud-storage
# (storage.retry._RETRYABLE_TYPES); a 501, say, is a refusal. The one list for every client.
UNREACHABLE = (
    gexc.RetryError,
    gexc.DeadlineExceeded,
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,
    http.client.HTTPException,
    auth_exceptions.TransportError,  # the token endpoint did not answer
)

# The credentials themselves were refused: no retry, no other endpoint helps. InvalidOperation: a 401 to
# anonymous credentials, which the transport then cannot refresh (google.auth.transport.requests).
_CREDENTIALS_REFUSED = (gexc.Unauthorized, auth_exceptions.RefreshError, auth_exceptions.InvalidOperation)
# The state a write was made for is gone (a generation, an etag), or the name is taken.
_CONFLICT = (gexc.PreconditionFailed, gexc.Conflict)


def request_options(deadline: float, *, write: bool = False) -> dict[str, Any]:
    """``retry=`` and ``timeout=`` for one google-cloud-storage call: retry transient faults for at most
    ``deadline`` s.

    ``Retry.with_timeout`` is api-core's current name for the deprecated ``with_deadline``. Media uploads and
    downloads (google-resumable-media) take only the delays and the deadline from it, and count the deadline
    against their sleeps, not the time spent in requests: the per-request timeout (and ``bounded``) is what
    bounds those.
    """
    from google.cloud.storage.retry import DEFAULT_RETRY, ConditionalRetryPolicy, is_generation_specified

    if not deadline > 0:
        raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")  # a bug
    retry = DEFAULT_RETRY.with_timeout(deadline)
    if write:
        # The library's rule for writes: retry only a request that carries a generation precondition.
        retry = ConditionalRetryPolicy(retry, is_generation_specified, ["query_params"])
    return {"retry": retry, "timeout": deadline}


def storage_endpoint(client) -> str:
    """The address a google-cloud-storage client talks to (an emulator's, or Google's)."""
    return getattr(client, "api_endpoint", None) or client._connection.API_BASE_URL


class Progress:
    """When a long call last moved forward (a chunk of an upload accepted), for ``bounded``'s stall clock."""

    def __init__(self) -> None:
        self.at: float | None = None  # time.monotonic() of the last step forward; None: none yet

    def advanced(self) -> None:
        self.at = time.monotonic()


def bounded(
    seconds: float,
    call: Callable[[], T],
    *,
    progress: Progress | None = None,
    stall: float | None = None,
) -> T:
    """``call()``, waited on for at most ``seconds`` of wall-clock time, then DeadlineExceeded.

    The upload library counts only its sleeps against a retry deadline, not the time spent in requests: a
    host that accepts the connection and never answers holds one upload for every attempt times the
    per-request timeout; aiplatform sends a run's GET with no timeout of ours. A call given up on may still
    finish in its (daemon) thread; every write made this way is content-addressed or names its bytes and
    carries a generation precondition, so a late write is the same bytes or nothing, never a wrong or partial
    object.

    With ``progress``, a call that keeps moving forward is not cut: it may go on past ``seconds`` as long as
    its last step forward is less than ``stall`` seconds old. A big upload on a slow but healthy line then
    finishes, and one whose connection stalled ends ``stall`` seconds after its last step, saying so.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread as it is
            outcome["error"] = exc

    moving = progress is not None and stall is not None

    def limit() -> float:
        """Until when the call may still run: ``seconds`` from the start, or ``stall`` from its last step."""
        if moving and progress.at is not None:
            return max(started + seconds, progress.at + stall)
        return started + seconds

    worker = threading.Thread(target=run, name="cloud-call", daemon=True)
    started = time.monotonic()
    worker.start()
    while worker.is_alive() and (left := limit() - time.monotonic()) > 0:
        worker.join(left)  # a step forward meanwhile moves limit(): wait again from there
    if worker.is_alive():
        if moving and progress.at is not None:
            idle = time.monotonic() - progress.at
            raise gexc.DeadlineExceeded(
                f"the connection stalled: nothing more of the upload got through in {idle:.0f} s (an upload "
                f"is waited for while its chunks keep getting through, each within {stall:g} s)"
            )
        raise gexc.DeadlineExceeded(f"no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def patiently(ask: Callable[[], T], *, deadline: float, pause: float) -> T:
    """``ask()``, each try ``bounded`` by ``deadline``; a try that fails as UNREACHABLE is made again (after
    at most ``pause`` s) until the failures have lasted ``deadline`` s, then the last fault is raised.

    For questions about something that goes on without us (a followed run): a blip does not fail a two-hour
    build, an outage does not hang it.
    """
    failing_since = None
    while True:
        try:
            return bounded(deadline, ask)
        except UNREACHABLE:
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since >= deadline:
                raise
            time.sleep(min(pause, deadline / 4))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (args, urllib3's ``reason``, __cause__, __context__), outermost first."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        for nested in (getattr(current, "reason", None), current.__cause__, current.__context__):
            if isinstance(nested, BaseException):
                inner.append(nested)
        todo.extend(inner)


def never_sent(exc: BaseException) -> bool:
    """Whether the request failed before a connection was made (refused, no such host, connect timeout), so
    the API cannot have acted on it."""
    return any(
        isinstance(inner, (urllib3.exceptions.ConnectTimeoutError, requests.exceptions.ConnectTimeout))
        for inner in _causes(exc)
    )


def fault_reason(exc: BaseException, deadline: float) -> str:
    """A few words on why the last request failed; never the libraries' multi-line messages."""
    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, gexc.DeadlineExceeded) and exc.response is None:
        return exc.message  # our own wall-clock bound (bounded), not an answer from the server
    if isinstance(exc, gexc.GoogleAPICallError) and exc.code is not None:
        code = int(exc.code)
        try:
            return f"HTTP {code} {http.HTTPStatus(code).phrase}"
        except ValueError:
            return f"HTTP {code}"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within {deadline:g} s"
    prefix = "no access token: " if isinstance(exc, auth_exceptions.TransportError) else ""
    chain = list(_causes(exc))
    for inner in chain:
        if isinstance(inner, OSError) and inner.strerror:
            return prefix + inner.strerror[:1].lower() + inner.strerror[1:]
    for inner in chain:
        if isinstance(inner, (http.client.HTTPException, ConnectionError)) and str(inner):
            return prefix + " ".join(str(inner).split())[:160]
    return prefix + type(exc).__name__


def _said(exc: BaseException) -> str:
    """What the API said (Google's message), on one line."""
    return " ".join(str(getattr(exc, "message", None) or exc).split())


OnFault = Callable[["Calls", BaseException], ReleaseError]


@dataclasses.dataclass
class Calls:
    """What a block of cloud calls is doing and has written: the facts of its one-line fault report.

    The block names each request before it goes out (``now``) and each object once it holds the intended
    bytes (``wrote``), so the line can say what is written and what is not.
    """

    service: str  # "Cloud Storage", "Vertex AI", "IAM", ...
    endpoint: str
    deadline: float = DEFAULT_DEADLINE
    rerun: str | Callable[[BaseException], str] = ""  # what to do next; a callable may look at the fault
    pending: list[str] | None = None  # what this block writes, not confirmed yet; None: it does not say
    verb: str = "failed"  # "<service> at <endpoint> <verb> the <action> of <target>"
    retrying: bool = False  # the calls retry within the deadline (google-cloud-storage, patiently)
    setting: str = ""  # the setting that names the endpoint, for "cannot reach"
    on_404: OnFault | None = None
    on_403: OnFault | None = None
    written: list[str] = dataclasses.field(default_factory=list)
    action: str = ""
    target: str = ""
    in_flight: str | None = None
    _block_404: OnFault | None = None

    def __post_init__(self) -> None:
        self._block_404 = self.on_404

    def now(self, action: str, target: str, *, on_404: OnFault | None = None, writing: bool = False) -> None:
        """Names the request about to go out. ``on_404``: what a 404 to it means (else the block's);
        ``writing``: it may create ``target``."""
        self.action, self.target = action, target
        self.on_404 = on_404 or self._block_404
        self.in_flight = target if writing else None

    def wrote(self, uri: str) -> None:
        """``uri`` now holds the bytes this call meant to write (by this call or an identical earlier one)."""
        self.written.append(uri)
        if self.pending and uri in self.pending:
            self.pending.remove(uri)
        self.in_flight = None

    def what_was_written(self) -> str:
        if not self.written and not self.pending:
            return "Nothing was written."
        # With a write in flight nothing is "not written yet" for sure: it may have landed before the fault.
        none = "Nothing was written yet." if self.in_flight is None else "Nothing was confirmed written."
        parts = [f"Written: {', '.join(self.written)}." if self.written else none]
        if self.pending:
            # A write cut off in flight may have landed before the fault: whole, since GCS objects never
            # are partial. Which one it was is unknown until storage answers again.
            names = [
                f"{uri} (or whole, if the last try got through; never in part)"
                if uri == self.in_flight
                else uri
                for uri in self.pending
            ]
            parts.append(f"Not written: {', '.join(names)}.")
        return " ".join(parts)

    # --- the lines

    def doing(self) -> str:
        """' the upload of gs://b/o', or what there is of it."""
        if self.action and self.target:
            return f" the {self.action} of {self.target}"
        return f" the {self.action}" if self.action else (f" {self.target}" if self.target else "")

    def _tail(self, exc: BaseException, *, reach: bool = False) -> str:
        rerun = self.rerun(exc) if callable(self.rerun) else self.rerun
        parts = [self.what_was_written() if self.pending is not None else "", rerun]
        if reach and never_sent(exc) and not isinstance(exc, auth_exceptions.TransportError):
            where = f" and {self.setting}" if self.setting else ""
            parts.append(f"This machine cannot reach {self.endpoint}: check the network{where}.")
        return "".join(f" {part}" for part in parts if part)

    def unavailable(self, exc: BaseException) -> CloudUnavailable:
        retried = (
            f", still after retrying for up to {self.deadline:g} s (cicd.request_deadline_seconds)"
            if self.retrying
            else ""
        )
        return CloudUnavailable(
            f"{self.service} at {self.endpoint} {self.verb}{self.doing()}: {fault_reason(exc, self.deadline)}"
            f"{retried}.{self._tail(exc, reach=True)}"
        )

    def credentials_refused(self, exc: BaseException) -> CloudUnavailable:
        return CloudUnavailable(
            f"{self.service} at {self.endpoint} refused the credentials{self.doing() and ' for' + self.doing()}"
            f" ({_said(exc)}): run `gcloud auth application-default login` (or set "
            "GOOGLE_APPLICATION_CREDENTIALS), then run again."
        )

    def no_credentials(self, exc: BaseException) -> CloudUnavailable:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CloudUnavailable(
            f"{self.service} at {self.endpoint}: no Google credentials for{self.doing() or ' the request'} "
            f"({first}): run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS), "
            "then run again."
        )

    def not_found(self, exc: BaseException) -> MissingResourceError:
        return MissingResourceError(
            f"{self.service} at {self.endpoint} found nothing for{self.doing() or ' the request'} "
            f"({fault_reason(exc, self.deadline)}: {_said(exc)}).{self._tail(exc)}"
        )

    def refused(self, exc: BaseException) -> Refused:
        fix = (
            " Grant the caller a role with that permission (`invoke doctor` names what is missing)."
            if isinstance(exc, gexc.Forbidden)
            else ""
        )
        written = f" {self.what_was_written()}" if self.pending is not None else ""
        return Refused(
            f"{self.service} at {self.endpoint} refused{self.doing()}: {fault_reason(exc, self.deadline)}: "
            f"{_said(exc)}{written}{fix}"
        )

    def conflict(self, exc: BaseException) -> WriteConflict:
        return WriteConflict(
            f"{self.service} at {self.endpoint} refused{self.doing()}: {fault_reason(exc, self.deadline)}: "
            f"{_said(exc)} (what it was made for changed since it was read, or the name is taken; nothing was "
            f"overwritten).{self._tail(exc)}"
        )

    def error(self, exc: BaseException) -> ReleaseError | None:
        """The ReleaseError ``exc`` means here, or None for what is no cloud fault (a bug, our own error)."""
        if isinstance(exc, ReleaseError):
            return None
        if isinstance(exc, _CREDENTIALS_REFUSED):
            return self.credentials_refused(exc)
        if isinstance(exc, auth_exceptions.DefaultCredentialsError):
            return self.no_credentials(exc)
        if isinstance(exc, UNREACHABLE):
            return self.unavailable(exc)
        if isinstance(exc, gexc.NotFound):
            return self.on_404(self, exc) if self.on_404 else self.not_found(exc)
        if isinstance(exc, gexc.Forbidden):
            return self.on_403(self, exc) if self.on_403 else self.refused(exc)
        if isinstance(exc, _CONFLICT):
            return self.conflict(exc)
        if isinstance(exc, gexc.GoogleAPICallError):
            return self.refused(exc)
        return None


@contextlib.contextmanager
def reporting(
    what: str,
    endpoint: str,
    *,
    deadline: float = DEFAULT_DEADLINE,
    pending: Iterable[str] | None = None,
    on_404: OnFault | None = None,
    on_403: OnFault | None = None,
    rerun: str | Callable[[BaseException], str] = "",
    verb: str = "failed",
    retrying: bool = False,
    setting: str = "",
) -> Iterator[Calls]:
    """The one place a cloud call's faults become ReleaseErrors (the table in the module docstring).

    ``what`` names the API; ``pending`` lists what the block means to write (the line then says what is
    written and what is not); ``on_404`` / ``on_403`` say what a 404 / 403 means here; ``rerun`` is the
    advice that ends a fault's line. The block reports its requests on the ``Calls`` it gets.
    """
    calls = Calls(
        service=what,
        endpoint=endpoint,
        deadline=deadline,
        rerun=rerun,
        pending=None if pending is None else list(pending),
        verb=verb,
        retrying=retrying,
        setting=setting,
        on_404=on_404,
        on_403=on_403,
    )
    try:
        yield calls
    except Exception as exc:
        error = calls.error(exc)
        if error is None:
            raise
        raise error from exc


def missing_bucket(calls: Calls, exc: BaseException) -> MissingBucket:
    """``on_404`` of a storage request whose 404 can only mean a missing bucket (a write, a listing)."""
    bucket = calls.target.removeprefix("gs://").partition("/")[0]
    return MissingBucket(
        f"Bucket gs://{bucket} does not exist at {calls.endpoint} (the {calls.action} of {calls.target} got "
        f"404). {calls.what_was_written()} Create the bucket, or fix cicd.bucket or the gs:// path."
    )


def missing_table(calls: Calls, exc: BaseException) -> MissingData:
    """``on_404`` of BigQuery's tables.get: the table (or its dataset, or project) is not there. Google's message
    says which ("Not found: Table P:D.T", "Not found: Dataset P:D")."""
    return MissingData(
        f"BigQuery at {calls.endpoint} has no table {calls.target} (the {calls.action} got "
        f"{fault_reason(exc, calls.deadline)}: {_said(exc)}): create it and load the training rows, or fix "
        "cicd.bigquery_table."
    )


def storage_reporting(
    client, deadline: float, rerun: str, pending: Iterable[str] = ()
) -> contextlib.AbstractContextManager[Calls]:
    """``reporting`` for google-cloud-storage calls made with ``request_options(deadline)``."""
    return reporting(
        "Cloud Storage",
        storage_endpoint(client),
        deadline=deadline,
        pending=pending,
        rerun=rerun,
        retrying=True,
    )
