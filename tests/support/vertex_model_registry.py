"""The Vertex AI Model Registry part of the Vertex stand-in: the REST v1 subset ``Model.list/upload`` use.

Served through the stand-in's HTTP server (``tests/support/vertex_standin.py``), so the real
``google-cloud-aiplatform`` client drives it over REST. Paths as in
``aiplatform_v1/services/model_service/transports/rest_base.py`` (and, for operations, ``rest.py``):
    GET  /v1/projects/P/locations/L/models?filter=display_name="X"    list (default version of each model)
    POST /v1/projects/P/locations/L/models:upload                     upload: a long-running operation
    GET  /v1/projects/P/locations/L/models/MID[@VERSION_OR_ALIAS]     get
    GET  /ui/projects/P/locations/L/models/MID/operations/OID         the upload's operation (or /v1/...)

As on Vertex, an upload with ``parentModel`` adds a version (versionId + 1) to that model, which must exist in
the same project and location; one without it creates a model with a new ID and version 1. The ``default``
alias moves to the newest version unless the request leaves it out. The operation answers ``done: false`` and
completes on its first poll, so the client's polling path runs; the version itself is stored when the upload
is accepted. ``validate_upload`` holds Vertex's rules for the request itself.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
from typing import Any

from tests.support.vertex_standin import ApiError, utc_timestamp, validate_display_name, validate_labels

_PARENT = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_LIST_RE = re.compile(_PARENT + r"/models$")
_UPLOAD_RE = re.compile(_PARENT + r"/models:upload$")
_MODEL_RE = re.compile(_PARENT + r"/models/(?P<model_id>[^/@:]+)(?:@(?P<version>[^/@:]+))?$")
# The operations client takes the first matching rule of its list, which is the /ui/ one; /v1/ also works.
_OPERATION_RE = re.compile(
    r"^/(?:v1|ui)/(?P<name>projects/[^/]+/locations/[^/]+/models/[^/@:]+/operations/[^/:]+)$"
)
# The one filter the stand-in understands; anything else is refused rather than silently ignored.
_DISPLAY_NAME_FILTER_RE = re.compile(r'^\s*display_name\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*$')
# UploadModelRequest.model_id: "up to 63 characters, and valid characters are [a-z0-9_-]. The first character
# cannot be a number or hyphen." (Labels follow the Cloud label rules, checked by vertex_standin.validate_labels.)
_MODEL_ID_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")
# Prebuilt prediction images load the model from artifactUri, so Vertex requires it for them.
_PREBUILT_IMAGE_RE = re.compile(r"^(us|europe|asia)-docker\.pkg\.dev/vertex-ai/prediction/")
_TYPE = "type.googleapis.com/google.cloud.aiplatform.v1."


def validate_upload(body: dict[str, Any]) -> dict[str, Any]:
    """Return the request's Model, or raise ApiError(400) where Vertex would refuse the upload.

    Model.containerSpec is "Not required for AutoML Models", and aiplatform's own ``Model.upload`` sends a model
    with neither containerSpec nor artifactUri as a "referenced/place holder model"; so the serving image is
    required when there is an artifact to serve (artifactUri) or a containerSpec at all (its imageUri is
    "Required"), as ``gcloud ai models upload --container-image-uri`` requires it for a custom model.
    """
    model = body.get("model")
    if not isinstance(model, dict):
        raise ApiError(400, "UploadModelRequest.model is required.")
    if not model.get("displayName"):
        raise ApiError(400, "Model.displayName is required.")
    validate_display_name(model["displayName"], "Model.displayName")
    container_spec, artifact_uri = model.get("containerSpec"), model.get("artifactUri")
    image = (container_spec or {}).get("imageUri")
    if not image and (artifact_uri or container_spec is not None):
        raise ApiError(
            400,
            "Model.containerSpec.imageUri is required for a model with an artifactUri or a containerSpec "
            "(only AutoML and placeholder models have no serving container).",
        )
    if artifact_uri and not artifact_uri.startswith("gs://"):
        raise ApiError(
            400, f"Model.artifactUri must be a Cloud Storage path (gs://...); got {artifact_uri!r}."
        )
    if image and not artifact_uri and _PREBUILT_IMAGE_RE.match(image):
        raise ApiError(400, f"Model.artifactUri is required with the prebuilt serving image {image!r}.")
    validate_labels(model.get("labels"), "Model.labels")
    model_id = body.get("modelId")
    if model_id and not _MODEL_ID_RE.match(model_id):
        raise ApiError(400, f"UploadModelRequest.modelId {model_id!r} must match {_MODEL_ID_RE.pattern}.")
    return model


class ModelRegistry:
    """Models, each a list of versions (Model resources as the REST API shows them), and upload requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget all models, operations and recorded uploads."""
        with self._lock:
            self.models: dict[str, list[dict[str, Any]]] = {}
            self.upload_bodies: list[dict[str, Any]] = []
            self.operations: dict[str, dict[str, Any]] = {}
            # Vertex model IDs are long numbers; these look alike and never repeat within a test.
            self._ids = itertools.count(1_000_000_000_000_000_001)

    def versions(self, display_name: str) -> list[dict[str, Any]]:
        """All versions of every model called ``display_name``, oldest first (for test assertions)."""
        with self._lock:
            return [
                copy.deepcopy(version)
                for versions in self.models.values()
                for version in versions
                if version["displayName"] == display_name
            ]

    def route(self, method: str, path: str, query: dict[str, list[str]], body: dict) -> dict | None:
        """Answer a Model Registry request, or return None when ``path`` is not one of its paths."""
        if match := _LIST_RE.match(path):
            self._allow(method, "GET", path)
            return self.list(match["project"], match["location"], (query.get("filter") or [""])[0])
        if match := _UPLOAD_RE.match(path):
            self._allow(method, "POST", path)
            return self.upload(match["project"], match["location"], body)
        if match := _OPERATION_RE.match(path):
            self._allow(method, "GET", path)
            return self.get_operation(match["name"])
        if match := _MODEL_RE.match(path):
            self._allow(method, "GET", path)
            name = f"projects/{match['project']}/locations/{match['location']}/models/{match['model_id']}"
            return self.get(name, match["version"])
        return None

    # --- handlers; each takes the lock itself ---

    def upload(self, project: str, location: str, body: dict[str, Any]) -> dict[str, Any]:
        """Validate and store a new model or model version; answer the operation, not yet done."""
        model = validate_upload(body)
        with self._lock:
            parent, parent_model = f"projects/{project}/locations/{location}", body.get("parentModel")
            if parent_model:
                # A new version goes into a model of the request's own project and location.
                if not re.fullmatch(re.escape(parent) + r"/models/[^/@:]+", parent_model):
                    raise ApiError(
                        400,
                        f"UploadModelRequest.parentModel {parent_model!r} must be a model of {parent} "
                        f"(projects/P/locations/L/models/ID, the same project and location as the upload).",
                    )
                model_name, versions = parent_model, self._versions(parent_model)
                version_id = str(max(int(v["versionId"]) for v in versions) + 1)
            else:
                model_name = f"{parent}/models/{body.get('modelId') or next(self._ids)}"
                if model_name in self.models:
                    raise ApiError(409, f"Model {model_name} already exists.")
                versions, version_id = [], "1"
            self.upload_bodies.append(copy.deepcopy(body))
            stamp = utc_timestamp()
            aliases = list(model.get("versionAliases") or [])
            if not versions and "default" not in aliases:
                aliases.append("default")  # a model's first version is always its default
            for older in versions:  # an alias names one version: the new one takes it over
                older["versionAliases"] = [a for a in older["versionAliases"] if a not in aliases]
            created = versions[0]["createTime"] if versions else stamp
            versions.append(
                {
                    **copy.deepcopy(model),
                    "name": model_name,
                    "versionId": version_id,
                    "versionAliases": aliases,
                    "createTime": created,
                    "updateTime": stamp,
                    "versionCreateTime": stamp,
                    "versionUpdateTime": stamp,
                }
            )
            self.models[model_name] = versions
            operation_name = f"{model_name}/operations/{next(self._ids)}"
            self.operations[operation_name] = {
                "name": operation_name,
                "metadata": {
                    "@type": _TYPE + "UploadModelOperationMetadata",
                    "genericMetadata": {"createTime": stamp, "updateTime": stamp},
                },
                "done": False,
                "_response": {
                    "@type": _TYPE + "UploadModelResponse",
                    "model": model_name,
                    "modelVersionId": version_id,
                },
            }
            return self._public(self.operations[operation_name])

    def get_operation(self, name: str) -> dict[str, Any]:
        """Return the operation; the first poll completes it (the service takes a few seconds)."""
        with self._lock:
            try:
                operation = self.operations[name]
            except KeyError:
                raise ApiError(404, f"Operation {name} not found.") from None
            if not operation["done"]:
                operation.update(done=True, response=operation["_response"])
                operation["metadata"]["genericMetadata"]["updateTime"] = utc_timestamp()
            return self._public(operation)

    def get(self, name: str, version: str | None) -> dict[str, Any]:
        """Return one version: by ID or alias after '@', else the default version, as GetModel does."""
        with self._lock:
            versions = self._versions(name)
            wanted = version or "default"
            for candidate in versions:
                if candidate["versionId"] == wanted or wanted in candidate["versionAliases"]:
                    return copy.deepcopy(candidate)
            raise ApiError(404, f"Model {name}@{wanted} not found.")

    def list(self, project: str, location: str, filter_: str) -> dict[str, Any]:
        """Return the default version of each model under the parent, filtered by display name if asked."""
        display_name = None
        if filter_:
            match = _DISPLAY_NAME_FILTER_RE.match(filter_)
            if not match:
                raise ApiError(
                    400, f'The stand-in understands only filter=display_name="..."; got {filter_!r}.'
                )
            display_name = re.sub(r"\\(.)", r"\1", match["value"])
        prefix = f"projects/{project}/locations/{location}/models/"
        with self._lock:
            models = [
                copy.deepcopy(next(v for v in versions if "default" in v["versionAliases"]))
                for name, versions in self.models.items()
                if name.startswith(prefix)
            ]
        return {"models": [m for m in models if display_name is None or m["displayName"] == display_name]}

    def _versions(self, name: str) -> list[dict[str, Any]]:
        try:
            return self.models[name]
        except KeyError:
            raise ApiError(404, f"Model {name} not found.") from None

    @staticmethod
    def _allow(method: str, allowed: str, path: str) -> None:
        if method != allowed:
            raise ApiError(405, f"{method} {path} is not supported by the stand-in.")

    @staticmethod
    def _public(operation: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy({k: v for k, v in operation.items() if not k.startswith("_")})
