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
still failing then becomes one line at the fault boundary (cicd_release.core.faults): CloudUnavailable (exit 1),
MissingBucket (exit 3), Refused for a 403, naming the endpoint, the operation and object, and what was and was
not written.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from google.api_core import exceptions as gexc
from google.cloud import storage

from cicd_components import untrusted
from cicd_release.core.errors import InputError, RecordRefused, WriteConflict
from cicd_release.core.faults import (
    DEFAULT_DEADLINE,
    Calls,
    Progress,
    bounded,
    missing_bucket,
    request_options,
    storage_reporting,
)

_SCHEME = "gs://"
_READ_CHUNK = 1 << 20
# A file bigger than this goes up in chunks of this size (a resumable upload), each one a step forward for the
# stall clock (faults.bounded): an upload is given up when no chunk got through for the deadline, so a line
# slower than UPLOAD_CHUNK / deadline (2 MiB in 30 s: 70 KB/s) counts as stalled; a faster one, however big
# the file, finishes. GCS wants a multiple of 256 KiB; 2 MiB keeps a 200 MB file to 100 requests.
UPLOAD_CHUNK = 8 * (256 << 10)


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/path/to/object`` into ``("bucket", "path/to/object")``.

    The object part may be empty (``gs://bucket`` or ``gs://bucket/``); callers that need an object reject it.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise InputError(f"Expected a gs:// URI such as gs://my-bucket/path, got {uri!r} (empty).")
    if not uri.startswith(_SCHEME):
        raise InputError(
            f"Expected a gs:// URI such as gs://my-bucket/path, got {uri!r}: it must start with gs://."
        )
    bucket, _, name = uri[len(_SCHEME) :].partition("/")
    if not bucket:
        raise InputError(f"The gs:// URI {uri!r} has no bucket name: write it as gs://BUCKET/path.")
    return bucket, name


def _object_uri(uri: str) -> tuple[str, str]:
    """Like parse_gs_uri, but the URI must name an object, not just a bucket or a folder."""
    bucket, name = parse_gs_uri(uri)
    if not name or name.endswith("/"):
        raise InputError(f"The gs:// URI {uri!r} names no object: write it as gs://{bucket}/path/to/file.")
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
            raise InputError(
                f"{path} is a directory; upload files one by one (or pack them first)."
            ) from None
        except OSError as exc:
            raise InputError(f"Cannot read local file {path} for upload: {exc.strerror}.") from exc
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


class _Watched:
    """A file being uploaded in chunks: the library reads the next chunk only once the server took the one
    before, so reading further than ever before is a step forward (a retried chunk is read again: no step)."""

    def __init__(self, handle: BinaryIO, progress: Progress) -> None:
        self._handle, self._progress, self._furthest = handle, progress, 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        end = self._handle.tell()
        if end > self._furthest:
            if self._furthest:  # the first chunk's read says nothing about the line yet
                self._progress.advanced()
            self._furthest = end
        return data

    def __getattr__(self, name: str) -> Any:  # tell, seek, ...: the file's own
        return getattr(self._handle, name)


def _send(
    bucket_ref: storage.Bucket, name: str, local: _LocalFile, deadline: float, chunk: int, progress: Progress
) -> None:
    """One create-only write of ``local``: in one request up to ``chunk`` bytes, else resumable in chunks.

    ``size=None`` makes the library upload in chunks whatever the size (it sends a file of up to 8 MB in one
    request when told its size); the last chunk tells GCS the total.
    """
    with open(local.path, "rb") as handle:
        size = local.path.stat().st_size
        blob = bucket_ref.blob(name, chunk_size=chunk if size > chunk else None)
        blob.upload_from_file(
            _Watched(handle, progress) if size > chunk else handle,
            size=None if size > chunk else size,
            if_generation_match=0,
            checksum="md5",
            **request_options(deadline, write=True),
        )


def _put_once(
    client: storage.Client,
    local: _LocalFile,
    bucket: str,
    name: str,
    calls: Calls,
    deadline: float,
    chunk: int,
    progress: Progress,
) -> str:
    """Create ``gs://bucket/name`` from ``local`` unless it exists; accept an identical existing object."""
    uri = f"{_SCHEME}{bucket}/{name}"
    bucket_ref = client.bucket(bucket)
    # Looking first skips re-sending bytes that are already there (the common case on a re-run) and lets the
    # check work on emulators that do not enforce preconditions on resumable uploads.
    calls.now("lookup", uri)
    existing = bucket_ref.get_blob(name, **request_options(deadline))
    creates = 0
    while existing is None:
        if creates == _CREATE_ATTEMPTS:
            raise WriteConflict(
                f"{uri} was created by another writer and gone again, {creates} times while this upload "
                "ran (each create of ours was refused as 'already exists'; each re-read found nothing). "
                f"Nothing of ours was written there. Find what else writes under gs://{bucket}/, then run again."
            )
        creates += 1
        calls.now("upload", uri, on_404=missing_bucket, writing=True)
        try:
            _send(bucket_ref, name, local, deadline, chunk, progress)
            calls.wrote(uri)
            return uri
        except gexc.PreconditionFailed:
            # It exists: someone else's write, or our own earlier try whose answer was lost (the retry then
            # meets our object). Either way GCS kept what is there, so judge that.
            calls.now("lookup", uri)
            existing = bucket_ref.get_blob(name, **request_options(deadline))
    calls.now("check", uri)
    if not _matches(existing, local, deadline):
        raise WriteConflict(
            f"{uri} already exists with different content (md5 {existing.md5_hash}; local {local.path} "
            f"has md5 {local.md5_b64}); release objects are never overwritten. Publish under a new name "
            "(bump the version or let the content hash name it), or delete the object on purpose if it is "
            "garbage."
        )
    calls.wrote(uri)
    return uri


def _put_bounded(
    client: storage.Client,
    local: _LocalFile,
    bucket: str,
    name: str,
    calls: Calls,
    deadline: float,
    chunk: int,
) -> str:
    # Twice the deadline: the retries' own deadline, and the requests around the upload (look-up, re-read);
    # past that only while the upload keeps moving, each chunk within ``deadline`` of the one before.
    progress = Progress()
    return bounded(
        2 * deadline,
        lambda: _put_once(client, local, bucket, name, calls, deadline, chunk, progress),
        progress=progress,
        stall=deadline,
    )


def upload_immutable(
    client: storage.Client,
    local_path: str | Path,
    gs_uri: str,
    *,
    deadline: float = DEFAULT_DEADLINE,
    written: tuple[str, ...] = (),
    chunk: int = UPLOAD_CHUNK,
) -> str:
    """Upload one file to exactly ``gs_uri``, never overwriting; return ``gs_uri``.

    An existing object with the same bytes is a successful no-op; with other bytes it raises
    WriteConflict. Used for objects whose name is chosen by the caller, e.g. a compiled spec named
    by version and commit. Faults: CloudUnavailable or MissingBucket after ``deadline`` seconds of retries, or
    of an upload that stopped moving (a file over ``chunk`` bytes goes up in chunks of that size);
    ``written`` (what the caller's earlier calls wrote, one file of a set) is named there as written.
    """
    bucket, name = _object_uri(gs_uri)
    local = _LocalFile.read(Path(local_path))
    rerun = "Running it again is safe: an identical object already there is accepted."
    with storage_reporting(client, deadline, rerun, pending=(gs_uri,)) as calls:
        calls.written.extend(written)
        return _put_bounded(client, local, bucket, name, calls, deadline, chunk)


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
    chunk: int = UPLOAD_CHUNK,
) -> dict[str, str]:
    """Upload each file to ``<bucket_uri_prefix>/<sha256 of its bytes>/<basename>``; return name -> gs:// URI.

    Every local file is read and hashed before the first upload, so a missing or unreadable file fails the
    whole call with nothing written. Re-uploading the same content is a no-op that returns the same URIs, so
    after a fault (CloudUnavailable, naming what is written and what is not) a re-run completes the set.
    """
    bucket, prefix = parse_gs_uri(bucket_uri_prefix)
    if not files:
        raise InputError("No files to upload: pass a mapping of logical name -> local path.")
    locals_by_name = {logical: _LocalFile.read(Path(path)) for logical, path in files.items()}
    names = {
        logical: content_addressed_name(prefix, local.sha256, local.path)
        for logical, local in locals_by_name.items()
    }
    rerun = "The names are content-addressed: running the upload again completes it."
    targets = tuple(f"{_SCHEME}{bucket}/{name}" for name in names.values())
    with storage_reporting(client, deadline, rerun, pending=targets) as calls:
        return {
            logical: _put_bounded(client, locals_by_name[logical], bucket, name, calls, deadline, chunk)
            for logical, name in names.items()
        }


def blob_exists(client: storage.Client, gs_uri: str, *, deadline: float = DEFAULT_DEADLINE) -> bool:
    """Whether ``gs_uri`` names an existing object (False also when its bucket does not exist)."""
    bucket, name = _object_uri(gs_uri)
    with storage_reporting(client, deadline, "Run it again once storage answers.") as calls:
        calls.now("existence check", gs_uri)
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
    with storage_reporting(client, deadline, "Run it again once storage answers.") as calls:
        for _ in range(_READ_ATTEMPTS):
            calls.now("read", gs_uri)
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
    raise WriteConflict(
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
    wins; the other gets WriteConflict and nothing of it is written. Returns the new generation. A retry
    after a lost answer (the write landed, the reply did not) meets its own bytes and counts as written.
    """
    bucket, name = _object_uri(gs_uri)
    payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    bucket_ref = client.bucket(bucket)
    blob = bucket_ref.blob(name)
    rerun = "The write is generation-checked, so running the release again cannot apply it twice."
    with storage_reporting(client, deadline, rerun, pending=(gs_uri,)) as calls:
        calls.now("write", gs_uri, on_404=missing_bucket, writing=True)
        try:
            blob.upload_from_string(
                payload,
                content_type="application/json",
                if_generation_match=if_generation_match,
                **request_options(deadline, write=True),
            )
        except gexc.PreconditionFailed as exc:
            calls.now("re-read", gs_uri)
            current = bucket_ref.get_blob(name, **request_options(deadline))
            if current is not None and current.md5_hash == _md5_b64(payload):
                # Our own earlier try landed and its answer was lost; the library's retry then met it. The
                # record holds a timestamp, so equal bytes from another writer are not a real case.
                return int(current.generation)
            raise WriteConflict(
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
    with storage_reporting(client, deadline, "Run it again once storage answers.") as calls:
        calls.now("listing", folder_uri, on_404=missing_bucket)
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
    WriteConflict. The copy carries ``if_generation_match=0``, which GCS enforces atomically.
    """
    source_bucket, source_name = _object_uri(source_uri)
    target_bucket, target_name = _object_uri(target_uri)
    rerun = "Running it again is safe: an identical object already there is accepted."
    with storage_reporting(client, deadline, rerun, pending=(target_uri,)) as calls:
        calls.now("lookup", source_uri, on_404=missing_bucket)
        source = client.bucket(source_bucket).get_blob(source_name, **request_options(deadline))
        if source is None:
            raise InputError(f"Cannot copy {source_uri}: there is no such object.")
        calls.now("lookup", target_uri)
        existing = client.bucket(target_bucket).get_blob(target_name, **request_options(deadline))
        if existing is None:
            calls.now("copy", target_uri, on_404=missing_bucket, writing=True)
            try:
                client.bucket(source_bucket).copy_blob(
                    source,
                    client.bucket(target_bucket),
                    target_name,
                    if_generation_match=0,
                    **request_options(deadline, write=True),
                )
                calls.wrote(target_uri)
                return target_uri
            except gexc.PreconditionFailed:
                existing = client.bucket(target_bucket).get_blob(target_name, **request_options(deadline))
        if existing is None or existing.md5_hash != source.md5_hash:
            raise WriteConflict(
                f"{target_uri} already exists with other content than {source_uri} (md5 "
                f"{getattr(existing, 'md5_hash', None)} against {source.md5_hash}); it is never overwritten."
            )
        calls.wrote(target_uri)
        return target_uri


def list_folder(
    client: storage.Client, folder_uri: str, *, deadline: float = DEFAULT_DEADLINE
) -> tuple[list[str], list[str]]:
    """(names of the objects directly in ``folder_uri``, names of its subfolders), both without the prefix."""
    bucket, prefix = parse_gs_uri(folder_uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    with storage_reporting(client, deadline, "Run it again once storage answers.") as calls:
        calls.now("listing", folder_uri, on_404=missing_bucket)
        listing = client.list_blobs(bucket, prefix=prefix, delimiter="/", **request_options(deadline))
        names = [blob.name[len(prefix) :] for blob in listing]
        folders = sorted(p[len(prefix) :].rstrip("/") for p in listing.prefixes)
    return sorted(n for n in names if n), folders
