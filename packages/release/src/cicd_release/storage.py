"""Immutable uploads to Cloud Storage: every object is written once and never overwritten.

Release artifacts (module files, wheels, the compiled pipeline spec) are named by content or version, so a
name that already exists must already hold the same bytes. Each write carries ``if_generation_match=0``
("create only if absent"), which GCS enforces atomically; an existing object is accepted only when its MD5
matches the local file, and anything else is an error naming the object, never a silent overwrite.

All functions take a ``google.cloud.storage.Client`` so callers (and tests, with an emulator) choose the
endpoint and credentials; nothing here reads the environment.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from google.api_core import exceptions as gexc
from google.cloud import storage

from cicd_release.errors import ReleaseError

_SCHEME = "gs://"
_READ_CHUNK = 1 << 20


class ImmutableObjectConflict(ReleaseError, RuntimeError):
    """An object already exists at the target name with different content; it was left untouched."""


class StorageInputError(ReleaseError, ValueError):
    """A gs:// URI or a local file given to an upload is malformed or unreadable."""

    exit_code = 2


class RecordConflict(ReleaseError, RuntimeError):
    """Another writer replaced a generation-matched object between our read and our write."""


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


def _matches(blob: storage.Blob, local: _LocalFile) -> bool:
    """Whether an existing object holds the local file's bytes.

    GCS records an MD5 for every object written in one piece; composite objects have none, so for those the
    object is downloaded and hashed (rare here: release artifacts are single uploads).
    """
    if blob.md5_hash:
        return blob.md5_hash == local.md5_b64
    return hashlib.sha256(blob.download_as_bytes()).hexdigest() == local.sha256


def _put_once(client: storage.Client, local: _LocalFile, bucket: str, name: str) -> str:
    """Create ``gs://bucket/name`` from ``local`` unless it exists; accept an identical existing object."""
    uri = f"{_SCHEME}{bucket}/{name}"
    bucket_ref = client.bucket(bucket)
    # Looking first skips re-sending bytes that are already there (the common case on a re-run) and lets the
    # check work on emulators that do not enforce preconditions on resumable uploads.
    existing = bucket_ref.get_blob(name)
    if existing is None:
        try:
            bucket_ref.blob(name).upload_from_filename(str(local.path), if_generation_match=0, checksum="md5")
            return uri
        except gexc.PreconditionFailed:
            # Someone created it between our look and our write: GCS kept theirs, so judge theirs.
            existing = bucket_ref.get_blob(name)
            if existing is None:
                raise
    if not _matches(existing, local):
        raise ImmutableObjectConflict(
            f"{uri} already exists with different content (md5 {existing.md5_hash}; local {local.path} "
            f"has md5 {local.md5_b64}); release objects are never overwritten. Publish under a new name "
            "(bump the version or let the content hash name it), or delete the object on purpose if it is "
            "garbage."
        )
    return uri


def upload_immutable(client: storage.Client, local_path: str | Path, gs_uri: str) -> str:
    """Upload one file to exactly ``gs_uri``, never overwriting; return ``gs_uri``.

    An existing object with the same bytes is a successful no-op; with other bytes it raises
    ImmutableObjectConflict. Used for objects whose name is chosen by the caller, e.g. a compiled spec named
    by version and commit.
    """
    bucket, name = _object_uri(gs_uri)
    return _put_once(client, _LocalFile.read(Path(local_path)), bucket, name)


def content_addressed_name(prefix: str, sha256: str, path: Path) -> str:
    """Object name ``<prefix>/<sha256>/<basename>``: the hash tells versions apart, the basename stays."""
    parts = [p for p in PurePosixPath(prefix).parts if p not in ("/", "")]
    return "/".join([*parts, sha256, path.name])


def upload_content_addressed(
    client: storage.Client, bucket_uri_prefix: str, files: Mapping[str, Path]
) -> dict[str, str]:
    """Upload each file to ``<bucket_uri_prefix>/<sha256 of its bytes>/<basename>``; return name -> gs:// URI.

    Every local file is read and hashed before the first upload, so a missing or unreadable file fails the
    whole call with nothing written. Re-uploading the same content is a no-op that returns the same URIs.
    """
    bucket, prefix = parse_gs_uri(bucket_uri_prefix)
    if not files:
        raise StorageInputError("No files to upload: pass a mapping of logical name -> local path.")
    locals_by_name = {logical: _LocalFile.read(Path(path)) for logical, path in files.items()}
    return {
        logical: _put_once(client, local, bucket, content_addressed_name(prefix, local.sha256, local.path))
        for logical, local in locals_by_name.items()
    }


def blob_exists(client: storage.Client, gs_uri: str) -> bool:
    """Whether ``gs_uri`` names an existing object."""
    bucket, name = _object_uri(gs_uri)
    return client.bucket(bucket).blob(name).exists()


def read_json_object(client: storage.Client, gs_uri: str) -> tuple[dict | None, int]:
    """The JSON object at ``gs_uri`` and its generation, or ``(None, 0)`` when there is none.

    The generation is what a later ``write_json_object`` must still find there (0: "still absent").
    """
    import json

    bucket, name = _object_uri(gs_uri)
    blob = client.bucket(bucket).get_blob(name)
    if blob is None:
        return None, 0
    data = blob.download_as_bytes(if_generation_match=blob.generation)
    return json.loads(data), int(blob.generation)


def write_json_object(client: storage.Client, gs_uri: str, data: dict, *, if_generation_match: int) -> int:
    """Writes ``data`` to ``gs_uri`` only if the object is still at ``if_generation_match`` (0: absent).

    GCS checks the precondition atomically, so of two writers that read the same generation exactly one
    wins; the other gets RecordConflict and nothing of it is written. Returns the new generation.
    """
    import json

    bucket, name = _object_uri(gs_uri)
    blob = client.bucket(bucket).blob(name)
    try:
        blob.upload_from_string(
            json.dumps(data, indent=2, sort_keys=True) + "\n",
            content_type="application/json",
            if_generation_match=if_generation_match,
        )
    except gexc.PreconditionFailed as exc:
        raise RecordConflict(
            f"{gs_uri} changed since it was read (expected generation {if_generation_match}): another "
            "release wrote it meanwhile. Nothing was written; run the release again to build on theirs."
        ) from exc
    return int(blob.generation)


def prefix_digest(client: storage.Client, folder_uri: str) -> tuple[str, int]:
    """(sha256 over the names and MD5s of every object under ``folder_uri``, how many objects there are).

    Names a data folder by its content without downloading it: an added, removed or edited file changes the
    digest. A folder with no objects gives ``("", 0)``.
    """
    bucket, prefix = parse_gs_uri(folder_uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    digest = hashlib.sha256()
    count = 0
    for blob in sorted(client.list_blobs(bucket, prefix=prefix), key=lambda b: b.name):
        if blob.name.endswith("/"):
            continue  # a "folder" placeholder object made by the console
        name = blob.name[len(prefix) :].encode()
        md5 = (blob.md5_hash or blob.etag or "").encode()
        digest.update(len(name).to_bytes(8, "big") + name + len(md5).to_bytes(8, "big") + md5)
        count += 1
    return (digest.hexdigest() if count else ""), count
