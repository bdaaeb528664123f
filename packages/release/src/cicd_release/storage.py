"""Immutable uploads to Cloud Storage: every object is written once and never overwritten.

Release artifacts (module files, wheels, the compiled pipeline spec) are named by content or version, so a
name that already exists must already hold the same bytes. Each write carries ``if_generation_match=0``
("create only if absent"), which GCS enforces atomically; an existing object is accepted only when its MD5
matches the local file, and anything else is an error naming the object, never a silent overwrite.

All functions take a ``google.cloud.storage.Client`` so callers (and tests, with an emulator) choose the
endpoint and credentials; nothing here reads the environment.

Faults fail fast and in one line. Every request carries the library's own retry (``DEFAULT_RETRY``, or for
writes ``DEFAULT_RETRY_IF_GENERATION_SPECIFIED``: every write here has a generation precondition, so a retry
cannot write twice) cut to ``deadline`` seconds, and a per-request timeout of the same length; the library's
default of 120 s kept an unreachable endpoint busy for 96 s and ended in a 108-line RetryError. What is
still failing then becomes StorageUnavailable (exit 1) or MissingBucket (exit 3) in ``reporting_faults``,
naming the endpoint, the operation and object, and what was and was not written.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exceptions
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY, ConditionalRetryPolicy, is_generation_specified

from cicd_components import untrusted
from cicd_release.errors import MissingResourceError, RecordRefused, ReleaseError

T = TypeVar("T")
_SCHEME = "gs://"
_READ_CHUNK = 1 << 20

# Seconds a call keeps retrying transient faults (and the longest one request may take); the release steps
# pass cicd.request_deadline_seconds, whose default this is.
DEFAULT_DEADLINE = 30.0


class ImmutableObjectConflict(ReleaseError, RuntimeError):
    """An object already exists at the target name with different content; it was left untouched."""


class StorageInputError(ReleaseError, ValueError):
    """A gs:// URI or a local file given to an upload is malformed or unreadable."""

    exit_code = 2


class RecordConflict(ReleaseError, RuntimeError):
    """Another writer replaced a generation-matched object between our read and our write."""


class StorageUnavailable(ReleaseError, RuntimeError):
    """Cloud Storage did not answer, or kept answering 429/5xx, until the deadline ran out."""


class MissingBucket(MissingResourceError, LookupError):
    """The bucket an upload or a listing needs does not exist (exit 3: create it)."""


# --------------------------------------------------------------------------------------- bounded calls


def request_options(deadline: float, *, write: bool = False) -> dict[str, Any]:
    """``retry=`` and ``timeout=`` for one client call: retry transient faults for at most ``deadline`` s.

    ``Retry.with_timeout`` is api-core's current name for the deprecated ``with_deadline``. Media uploads and
    downloads (google-resumable-media) take only the delays and the deadline from it, and count the deadline
    against their sleeps, not the time spent in requests: the per-request timeout is what bounds those.
    """
    if not deadline > 0:
        raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")  # a bug
    retry = DEFAULT_RETRY.with_timeout(deadline)
    if write:
        # The library's rule for writes: retry only a request that carries a generation precondition.
        retry = ConditionalRetryPolicy(retry, is_generation_specified, ["query_params"])
    return {"retry": retry, "timeout": deadline}


# Faults that mean "storage did not answer usefully in time" once the retries above have given up: a
# RetryError (JSON API calls), or the last error itself (media uploads and downloads re-raise it). The
# statuses are the library's retryable ones (storage.retry._RETRYABLE_TYPES); a 501, say, stays a bug.
_UNAVAILABLE = (
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
    auth_exceptions.TransportError,
)


def _endpoint(client: storage.Client) -> str:
    return getattr(client, "api_endpoint", None) or client._connection.API_BASE_URL


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


def fault_reason(exc: BaseException, deadline: float) -> str:
    """A few words on why the last request failed; never the libraries' multi-line messages."""
    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, gexc.DeadlineExceeded) and exc.response is None:
        return exc.message  # our own wall-clock bound (_bounded), not an answer from the server
    if isinstance(exc, gexc.GoogleAPICallError) and exc.code is not None:
        code = int(exc.code)
        try:
            return f"HTTP {code} {http.HTTPStatus(code).phrase}"
        except ValueError:
            return f"HTTP {code}"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within {deadline:g} s"
    chain = list(_causes(exc))
    for inner in chain:
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror[:1].lower() + inner.strerror[1:]
    for inner in chain:
        if isinstance(inner, (http.client.HTTPException, ConnectionError)) and str(inner):
            return " ".join(str(inner).split())[:160]
    return type(exc).__name__


@dataclass
class _Progress:
    """What a storage function is doing and has written: the facts of its one-line fault report."""

    endpoint: str
    deadline: float
    rerun: str
    pending: list[str]  # objects this call writes that are not confirmed yet, in order
    written: list[str] = field(default_factory=list)
    action: str = ""
    uri: str = ""
    bucket_404: bool = False
    in_flight: str | None = None

    def now(self, action: str, uri: str, *, bucket_404: bool = False, writing: bool = False) -> None:
        """Names the request about to go out. ``bucket_404``: a 404 to it can only mean a missing bucket;
        ``writing``: it may create ``uri``."""
        self.action, self.uri, self.bucket_404 = action, uri, bucket_404
        self.in_flight = uri if writing else None

    def wrote(self, uri: str) -> None:
        """``uri`` now holds the bytes this call meant to write (by this call or an identical earlier one)."""
        self.written.append(uri)
        if uri in self.pending:
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

    def unavailable(self, exc: BaseException) -> StorageUnavailable:
        return StorageUnavailable(
            f"Cloud Storage at {self.endpoint} failed the {self.action} of {self.uri}: "
            f"{fault_reason(exc, self.deadline)}, still after retrying for up to {self.deadline:g} s "
            f"(cicd.request_deadline_seconds). {self.what_was_written()} {self.rerun}"
        )

    def missing_bucket(self) -> MissingBucket:
        bucket, _ = parse_gs_uri(self.uri)
        return MissingBucket(
            f"Bucket gs://{bucket} does not exist at {self.endpoint} (the {self.action} of {self.uri} got "
            f"404). {self.what_was_written()} Create the bucket, or fix cicd.bucket or the gs:// path."
        )


@contextlib.contextmanager
def reporting_faults(
    client: storage.Client, deadline: float, rerun: str, pending: tuple[str, ...] = ()
) -> Iterator[_Progress]:
    """The one place storage faults become user errors: StorageUnavailable, or MissingBucket on a 404 that
    can only mean the bucket. Anything else (403, 412, a bug) passes through unchanged.

    ``pending`` lists the objects the block means to write; the block reports its progress (``now``,
    ``wrote``) so the one line can say what is written and what is not. cicd_release.submit uses it too.
    """
    progress = _Progress(endpoint=_endpoint(client), deadline=deadline, rerun=rerun, pending=list(pending))
    try:
        yield progress
    except gexc.NotFound as exc:
        if not progress.bucket_404:
            raise
        raise progress.missing_bucket() from exc
    except _UNAVAILABLE as exc:
        raise progress.unavailable(exc) from exc


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/path/to/object`` into ``("bucket", "path/to/object")``.

    The object part may be empty (``gs://bucket`` or ``gs://bucket/``); callers that need an object reject it.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise StorageInputError(f"Expected a gs:// URI such as gs://my-bucket/path, got {uri!r} (empty).")
    if not uri.startswith(_SCHEME):
        raise StorageInputError(
            f"Expected a gs:// URI such as gs://my-bucket/path, got {uri!r}: it must start with gs://."
        )
    bucket, _, name = uri[len(_SCHEME) :].partition("/")
    if not bucket:
        raise StorageInputError(f"The gs:// URI {uri!r} has no bucket name: write it as gs://BUCKET/path.")
    return bucket, name


def _object_uri(uri: str) -> tuple[str, str]:
    """Like parse_gs_uri, but the URI must name an object, not just a bucket or a folder."""
    bucket, name = parse_gs_uri(uri)
    if not name or name.endswith("/"):
        raise StorageInputError(
            f"The gs:// URI {uri!r} names no object: write it as gs://{bucket}/path/to/file."
        )
    return bucket, name


@dataclass(frozen=True)
class _LocalFile:
    """A local file read once up front: its bytes' digests decide the object name and the equality check."""

    path: Path
    sha256: str
    md5_b64: str

    @classmethod
    def read(cls, path: Path) -> _LocalFile:
        sha, md5 = hashlib.sha256(), hashlib.md5()  # md5 only to compare with GCS's md5Hash, not for security
        try:
            with open(path, "rb") as handle:
                while chunk := handle.read(_READ_CHUNK):
                    sha.update(chunk)
                    md5.update(chunk)
        except IsADirectoryError:
            raise StorageInputError(
                f"{path} is a directory; upload files one by one (or pack them first)."
            ) from None
        except OSError as exc:
            raise StorageInputError(f"Cannot read local file {path} for upload: {exc.strerror}.") from exc
        return cls(path=Path(path), sha256=sha.hexdigest(), md5_b64=base64.b64encode(md5.digest()).decode())


def _matches(blob: storage.Blob, local: _LocalFile, deadline: float) -> bool:
    """Whether an existing object holds the local file's bytes.

    GCS records an MD5 for every object written in one piece; composite objects have none, so for those the
    object is downloaded and hashed (rare here: release artifacts are single uploads).
    """
    if blob.md5_hash:
        return blob.md5_hash == local.md5_b64
    return hashlib.sha256(blob.download_as_bytes(**request_options(deadline))).hexdigest() == local.sha256


# A create answered 412 finds nothing when it re-reads: the object was deleted in between. Creating again
# once covers that race; a second time means someone keeps creating and deleting it.
_CREATE_ATTEMPTS = 2


def _put_once(
    client: storage.Client, local: _LocalFile, bucket: str, name: str, progress: _Progress, deadline: float
) -> str:
    """Create ``gs://bucket/name`` from ``local`` unless it exists; accept an identical existing object."""
    uri = f"{_SCHEME}{bucket}/{name}"
    bucket_ref = client.bucket(bucket)
    # Looking first skips re-sending bytes that are already there (the common case on a re-run) and lets the
    # check work on emulators that do not enforce preconditions on resumable uploads.
    progress.now("lookup", uri)
    existing = bucket_ref.get_blob(name, **request_options(deadline))
    creates = 0
    while existing is None:
        if creates == _CREATE_ATTEMPTS:
            raise RecordConflict(
                f"{uri} was created by another writer and gone again, {creates} times while this upload "
                "ran (each create of ours was refused as 'already exists'; each re-read found nothing). "
                f"Nothing of ours was written there. Find what else writes under gs://{bucket}/, then run again."
            )
        creates += 1
        progress.now("upload", uri, bucket_404=True, writing=True)
        try:
            bucket_ref.blob(name).upload_from_filename(
                str(local.path),
                if_generation_match=0,
                checksum="md5",
                **request_options(deadline, write=True),
            )
            progress.wrote(uri)
            return uri
        except gexc.PreconditionFailed:
            # It exists: someone else's write, or our own earlier try whose answer was lost (the retry then
            # meets our object). Either way GCS kept what is there, so judge that.
            progress.now("lookup", uri)
            existing = bucket_ref.get_blob(name, **request_options(deadline))
    progress.now("check", uri)
    if not _matches(existing, local, deadline):
        raise ImmutableObjectConflict(
            f"{uri} already exists with different content (md5 {existing.md5_hash}; local {local.path} "
            f"has md5 {local.md5_b64}); release objects are never overwritten. Publish under a new name "
            "(bump the version or let the content hash name it), or delete the object on purpose if it is "
            "garbage."
        )
    progress.wrote(uri)
    return uri


def bounded(seconds: float, call: Callable[[], T]) -> T:
    """``call()``, waited on for at most ``seconds`` of wall-clock time, then DeadlineExceeded.

    The upload library counts only its sleeps against a retry deadline, not the time spent in requests: a
    host that accepts the connection and never answers holds one upload for every attempt times the
    per-request timeout. A call given up on may still finish in its (daemon) thread; every write here is
    content-addressed or names its bytes and carries a generation precondition, so a late write is the
    same bytes or nothing, never a wrong or partial object.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread as it is
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="storage-call", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise gexc.DeadlineExceeded(f"no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _put_bounded(
    client: storage.Client, local: _LocalFile, bucket: str, name: str, progress: _Progress, deadline: float
) -> str:
    # Twice the deadline: the retries' own deadline, and the requests around the upload (look-up, re-read).
    return bounded(2 * deadline, lambda: _put_once(client, local, bucket, name, progress, deadline))


def upload_immutable(
    client: storage.Client,
    local_path: str | Path,
    gs_uri: str,
    *,
    deadline: float = DEFAULT_DEADLINE,
    written: tuple[str, ...] = (),
) -> str:
    """Upload one file to exactly ``gs_uri``, never overwriting; return ``gs_uri``.

    An existing object with the same bytes is a successful no-op; with other bytes it raises
    ImmutableObjectConflict. Used for objects whose name is chosen by the caller, e.g. a compiled spec named
    by version and commit. Faults: StorageUnavailable or MissingBucket after ``deadline`` seconds of retries;
    ``written`` (what the caller's earlier calls wrote, one file of a set) is named there as written.
    """
    bucket, name = _object_uri(gs_uri)
    local = _LocalFile.read(Path(local_path))
    rerun = "Running it again is safe: an identical object already there is accepted."
    with reporting_faults(client, deadline, rerun, pending=(gs_uri,)) as progress:
        progress.written.extend(written)
        return _put_bounded(client, local, bucket, name, progress, deadline)


def content_addressed_name(prefix: str, sha256: str, path: Path) -> str:
    """Object name ``<prefix>/<sha256>/<basename>``: the hash tells versions apart, the basename stays."""
    parts = [p for p in PurePosixPath(prefix).parts if p not in ("/", "")]
    return "/".join([*parts, sha256, path.name])


def upload_content_addressed(
    client: storage.Client,
    bucket_uri_prefix: str,
    files: Mapping[str, Path],
    *,
    deadline: float = DEFAULT_DEADLINE,
) -> dict[str, str]:
    """Upload each file to ``<bucket_uri_prefix>/<sha256 of its bytes>/<basename>``; return name -> gs:// URI.

    Every local file is read and hashed before the first upload, so a missing or unreadable file fails the
    whole call with nothing written. Re-uploading the same content is a no-op that returns the same URIs, so
    after a fault (StorageUnavailable, naming what is written and what is not) a re-run completes the set.
    """
    bucket, prefix = parse_gs_uri(bucket_uri_prefix)
    if not files:
        raise StorageInputError("No files to upload: pass a mapping of logical name -> local path.")
    locals_by_name = {logical: _LocalFile.read(Path(path)) for logical, path in files.items()}
    names = {
        logical: content_addressed_name(prefix, local.sha256, local.path)
        for logical, local in locals_by_name.items()
    }
    rerun = "The names are content-addressed: running the upload again completes it."
    targets = tuple(f"{_SCHEME}{bucket}/{name}" for name in names.values())
    with reporting_faults(client, deadline, rerun, pending=targets) as progress:
        return {
            logical: _put_bounded(client, locals_by_name[logical], bucket, name, progress, deadline)
            for logical, name in names.items()
        }


def blob_exists(client: storage.Client, gs_uri: str, *, deadline: float = DEFAULT_DEADLINE) -> bool:
    """Whether ``gs_uri`` names an existing object (False also when its bucket does not exist)."""
    bucket, name = _object_uri(gs_uri)
    with reporting_faults(client, deadline, "Run it again once storage answers.") as progress:
        progress.now("existence check", gs_uri)
        return client.bucket(bucket).blob(name).exists(**request_options(deadline))


# A record replaced or deleted between its metadata and its bytes is read again, this many times in all.
_READ_ATTEMPTS = 3


def read_json_object(
    client: storage.Client, gs_uri: str, *, deadline: float = DEFAULT_DEADLINE
) -> tuple[dict | None, int]:
    """The JSON object at ``gs_uri`` and its generation, or ``(None, 0)`` when there is none.

    The generation is what a later ``write_json_object`` must still find there (0: "still absent"). A missing
    bucket reads as "no object" here (the client's get_blob answers None to either 404); the write that
    follows names the bucket.
    """
    bucket, name = _object_uri(gs_uri)
    bucket_ref = client.bucket(bucket)
    with reporting_faults(client, deadline, "Run it again once storage answers.") as progress:
        for _ in range(_READ_ATTEMPTS):
            progress.now("read", gs_uri)
            blob = bucket_ref.get_blob(name, **request_options(deadline))
            if blob is None:
                return None, 0
            try:
                data = blob.download_as_bytes(
                    if_generation_match=blob.generation, **request_options(deadline)
                )
            except (gexc.PreconditionFailed, gexc.NotFound):
                continue  # replaced or deleted after we read its metadata: read what is there now
            try:  # bounded first: anyone who can write the bucket can write this object
                return untrusted.loads(data), int(blob.generation)
            except (untrusted.TooLarge, UnicodeDecodeError, json.JSONDecodeError) as err:
                wrong = (
                    f"it {err}" if isinstance(err, untrusted.TooLarge) else f"not JSON ({type(err).__name__})"
                )
                raise RecordRefused(
                    f"{gs_uri} is refused: {wrong}. Nothing was submitted or written. Only the chain writes it: "
                    "find out who changed it, then delete it or put back a good copy."
                ) from None
    raise RecordConflict(
        f"{gs_uri} changed {_READ_ATTEMPTS} times while being read: another release is writing it right "
        "now. Nothing was written; run again when it is done."
    )


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # to compare with GCS's md5Hash only


def write_json_object(
    client: storage.Client,
    gs_uri: str,
    data: dict,
    *,
    if_generation_match: int,
    deadline: float = DEFAULT_DEADLINE,
) -> int:
    """Writes ``data`` to ``gs_uri`` only if the object is still at ``if_generation_match`` (0: absent).

    GCS checks the precondition atomically, so of two writers that read the same generation exactly one
    wins; the other gets RecordConflict and nothing of it is written. Returns the new generation. A retry
    after a lost answer (the write landed, the reply did not) meets its own bytes and counts as written.
    """
    bucket, name = _object_uri(gs_uri)
    payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    bucket_ref = client.bucket(bucket)
    blob = bucket_ref.blob(name)
    rerun = "The write is generation-checked, so running the release again cannot apply it twice."
    with reporting_faults(client, deadline, rerun, pending=(gs_uri,)) as progress:
        progress.now("write", gs_uri, bucket_404=True, writing=True)
        try:
            blob.upload_from_string(
                payload,
                content_type="application/json",
                if_generation_match=if_generation_match,
                **request_options(deadline, write=True),
            )
        except gexc.PreconditionFailed as exc:
            progress.now("re-read", gs_uri)
            current = bucket_ref.get_blob(name, **request_options(deadline))
            if current is not None and current.md5_hash == _md5_b64(payload):
                # Our own earlier try landed and its answer was lost; the library's retry then met it. The
                # record holds a timestamp, so equal bytes from another writer are not a real case.
                return int(current.generation)
            raise RecordConflict(
                f"{gs_uri} changed since it was read (expected generation {if_generation_match}): another "
                "release wrote it meanwhile. Nothing was written; run the release again to build on theirs."
            ) from exc
    return int(blob.generation)


def prefix_digest(
    client: storage.Client, folder_uri: str, *, deadline: float = DEFAULT_DEADLINE
) -> tuple[str, int]:
    """(sha256 over the names and MD5s of every object under ``folder_uri``, how many objects there are).

    Names a data folder by its content without downloading it: an added, removed or edited file changes the
    digest. A folder with no objects gives ``("", 0)``; a missing bucket is MissingBucket.
    """
    bucket, prefix = parse_gs_uri(folder_uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    digest = hashlib.sha256()
    count = 0
    with reporting_faults(client, deadline, "Run it again once storage answers.") as progress:
        progress.now("listing", folder_uri, bucket_404=True)
        # Each page is a request: the listing is consumed inside the block so its faults are reported too.
        blobs = sorted(
            client.list_blobs(bucket, prefix=prefix, **request_options(deadline)), key=lambda b: b.name
        )
    for blob in blobs:
        if blob.name.endswith("/"):
            continue  # a "folder" placeholder object made by the console
        name = blob.name[len(prefix) :].encode()
        md5 = (blob.md5_hash or blob.etag or "").encode()
        digest.update(len(name).to_bytes(8, "big") + name + len(md5).to_bytes(8, "big") + md5)
        count += 1
    return (digest.hexdigest() if count else ""), count


def copy_immutable(
    client: storage.Client, source_uri: str, target_uri: str, *, deadline: float = DEFAULT_DEADLINE
) -> str:
    """Copies an object inside Cloud Storage (no download), never over another one; returns ``target_uri``.

    As for uploads: an existing target with the source's bytes (by MD5) is a no-op, other bytes are
    ImmutableObjectConflict. The copy carries ``if_generation_match=0``, which GCS enforces atomically.
    """
    source_bucket, source_name = _object_uri(source_uri)
    target_bucket, target_name = _object_uri(target_uri)
    rerun = "Running it again is safe: an identical object already there is accepted."
    with reporting_faults(client, deadline, rerun, pending=(target_uri,)) as progress:
        progress.now("lookup", source_uri, bucket_404=True)
        source = client.bucket(source_bucket).get_blob(source_name, **request_options(deadline))
        if source is None:
            raise StorageInputError(f"Cannot copy {source_uri}: there is no such object.")
        progress.now("lookup", target_uri)
        existing = client.bucket(target_bucket).get_blob(target_name, **request_options(deadline))
        if existing is None:
            progress.now("copy", target_uri, bucket_404=True, writing=True)
            try:
                client.bucket(source_bucket).copy_blob(
                    source,
                    client.bucket(target_bucket),
                    target_name,
                    if_generation_match=0,
                    **request_options(deadline, write=True),
                )
                progress.wrote(target_uri)
                return target_uri
            except gexc.PreconditionFailed:
                existing = client.bucket(target_bucket).get_blob(target_name, **request_options(deadline))
        if existing is None or existing.md5_hash != source.md5_hash:
            raise ImmutableObjectConflict(
                f"{target_uri} already exists with other content than {source_uri} (md5 "
                f"{getattr(existing, 'md5_hash', None)} against {source.md5_hash}); it is never overwritten."
            )
        progress.wrote(target_uri)
        return target_uri


def list_folder(
    client: storage.Client, folder_uri: str, *, deadline: float = DEFAULT_DEADLINE
) -> tuple[list[str], list[str]]:
    """(names of the objects directly in ``folder_uri``, names of its subfolders), both without the prefix."""
    bucket, prefix = parse_gs_uri(folder_uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    with reporting_faults(client, deadline, "Run it again once storage answers.") as progress:
        progress.now("listing", folder_uri, bucket_404=True)
        listing = client.list_blobs(bucket, prefix=prefix, delimiter="/", **request_options(deadline))
        names = [blob.name[len(prefix) :] for blob in listing]
        folders = sorted(p[len(prefix) :].rstrip("/") for p in listing.prefixes)
    return sorted(n for n in names if n), folders
