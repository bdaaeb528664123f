"""The JSON-API calls TensorFlow's GCS file system makes to create a folder, replayed over HTTP.

TFX writes to gs:// through ``tf.io.gfile`` (Pusher's ``io_utils.copy_dir`` -> ``fileio.makedirs``), and
TensorFlow's own GCS client cannot be pointed at an emulator (DESIGN.md). So the IAM rules that client meets
are tested by sending the same requests, in the same order, to the IAM gate in ``gcs_iam_proxy.py``, as the
pipelines' identity. The order follows TensorFlow's sources (tsl/platform/file_system.cc and
tsl/platform/cloud/gcs_file_system.cc):

- ``RecursivelyCreateDir`` walks up from the folder, calling ``FileExists`` on each ancestor, and stops at the
  first that exists; any answer other than OK or NOT_FOUND ends it with that error;
- ``FileExists`` of ``gs://B/`` (no object part) is ``BucketExists``: ``GET /storage/v1/b/B`` (bucket
  metadata, storage.buckets.get), where only 200 and 404 are absorbed, so a 403 becomes PermissionDenied;
- ``FileExists`` of a path: ``GET /b/B/o/OBJ`` (404 -> go on), then ``FolderExists``: a list with that
  prefix, one result;
- ``CreateDir``: ``FileExists`` of ``path/``, then an empty media upload of the object ``path/`` with
  ``ifGenerationMatch=0`` (412 means it exists already).

Only what these paths need is replayed; reads through the stat cache are not modelled (every call is sent).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request


class TfGcsError(Exception):
    """What TensorFlow's status would be: the HTTP code and the request it came from."""

    def __init__(self, code: int, method: str, path: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {code}")
        self.code, self.method, self.path = code, method, path


class TfGcs:
    """TensorFlow's GcsFileSystem calls for ``makedirs``, sent to ``endpoint`` with ``token`` as bearer."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.endpoint, self.token = endpoint.rstrip("/"), token
        self.sent: list[tuple[str, str, int]] = []

    def _send(self, method: str, path: str, data: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.endpoint + path, data=data, method=method, headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                self.sent.append((method, path.split("?")[0], resp.status))
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            self.sent.append((method, path.split("?")[0], err.code))
            return err.code, err.read()

    def _bucket_exists(self, bucket: str) -> bool:
        code, _ = self._send("GET", f"/storage/v1/b/{bucket}")
        if code == 200:
            return True
        if code == 404:
            return False
        raise TfGcsError(code, "GET", f"/storage/v1/b/{bucket}")

    def _object_exists(self, bucket: str, name: str) -> bool:
        quoted = urllib.parse.quote(name, safe="")
        code, _ = self._send("GET", f"/storage/v1/b/{bucket}/o/{quoted}?fields=size%2Cgeneration%2Cupdated")
        if code == 200:
            return True
        if code == 404:
            return False
        raise TfGcsError(code, "GET", f"/storage/v1/b/{bucket}/o/{name}")

    def _folder_exists(self, bucket: str, name: str) -> bool:
        prefix = urllib.parse.quote(name.rstrip("/") + "/", safe="")
        path = f"/storage/v1/b/{bucket}/o?fields=items%2Fname%2CnextPageToken&prefix={prefix}&maxResults=1"
        code, body = self._send("GET", path)
        if code != 200:
            raise TfGcsError(code, "GET", f"/storage/v1/b/{bucket}/o")
        return bool(json.loads(body or b"{}").get("items"))

    def file_exists(self, bucket: str, name: str) -> bool:
        if not name:
            return self._bucket_exists(bucket)
        return self._object_exists(bucket, name) or self._folder_exists(bucket, name)

    def _create_dir(self, bucket: str, name: str) -> None:
        marker = name.rstrip("/") + "/"
        if self.file_exists(bucket, marker):
            return
        query = urllib.parse.urlencode({"uploadType": "media", "name": marker, "ifGenerationMatch": "0"})
        code, _ = self._send("POST", f"/upload/storage/v1/b/{bucket}/o?{query}", data=b"")
        if code not in (200, 412):
            raise TfGcsError(code, "POST", f"/upload/storage/v1/b/{bucket}/o")

    def makedirs(self, uri: str) -> None:
        """``tf.io.gfile.makedirs(uri)`` on a ``gs://BUCKET/path`` URI."""
        bucket, _, path = uri.removeprefix("gs://").partition("/")
        parts = [p for p in path.split("/") if p]
        missing: list[str] = []
        while True:
            name = "/".join(parts)
            if self.file_exists(bucket, name):
                break
            if not parts:  # the bucket itself is missing
                raise TfGcsError(404, "GET", f"/storage/v1/b/{bucket}")
            missing.append(parts.pop())
        for part in reversed(missing):
            parts.append(part)
            self._create_dir(bucket, "/".join(parts))
