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

from cicd_pipeline.release.errors import ReleaseError

_SCHEME = "gs://"
_READ_CHUNK = 1 << 20


class ImmutableObjectConflict(ReleaseError, RuntimeError):
    """An object already exists at the target name with different content; it was left untouched."""


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/path/to/object`` into ``("bucket", "path/to/object")``.

    The object part may be empty (``gs://bucket`` or ``gs://bucket/``); callers that need an object reject it.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"Expected a gs:// URI such as gs://my-bucket/path, got {uri!r} (empty).")
    if not uri.startswith(_SCHEME):
        raise ValueError(
            f"Expected a gs:// URI such as gs://my-bucket/path, got {uri!r}: it must start with gs://."
        )
    bucket, _, name = uri[len(_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"The gs:// URI {uri!r} has no bucket name: write it as gs://BUCKET/path.")
    return bucket, name


def _object_uri(uri: str) -> tuple[str, str]:
    """Like parse_gs_uri, but the URI must name an object, not just a bucket or a folder."""
    bucket, name = parse_gs_uri(uri)
    if not name or name.endswith("/"):
        raise ValueError(f"The gs:// URI {uri!r} names no object: write it as gs://{bucket}/path/to/file.")
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
            raise ValueError(
                f"{path} is a directory; upload files one by one (or pack them first)."
            ) from None
        except OSError as exc:
            raise FileNotFoundError(f"Cannot read local file {path} for upload: {exc.strerror}.") from exc
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
            bucket_ref.blob(name).upload_from_filename(str(local.path), if_generation_match=0)
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
        raise ValueError("No files to upload: pass a mapping of logical name -> local path.")
    locals_by_name = {logical: _LocalFile.read(Path(path)) for logical, path in files.items()}
    return {
        logical: _put_once(client, local, bucket, content_addressed_name(prefix, local.sha256, local.path))
        for logical, local in locals_by_name.items()
    }


def blob_exists(client: storage.Client, gs_uri: str) -> bool:
    """Whether ``gs_uri`` names an existing object."""
    bucket, name = _object_uri(gs_uri)
    return client.bucket(bucket).blob(name).exists()
