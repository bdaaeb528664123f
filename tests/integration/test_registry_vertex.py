"""ModelRegistryUploader's executor registering in Vertex AI Model Registry, against the Vertex stand-in.

The executor runs as TFX runs it (``Executor().Do`` on real artifacts) and calls the real aiplatform client,
which the test points at the stand-in over REST, as a Vertex pipeline step would be pointed at Vertex.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform
from tfx.types import standard_artifacts

from cicd_components.registry.component import RegisteredModel
from cicd_components.registry.executor import Executor
from tests.support.vertex_standin import VertexStandIn

PROJECT, REGION = "test-project", "us-central1"
REGISTRY = f"vertex:projects/{PROJECT}/locations/{REGION}"
SERVING_IMAGE = "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-16:20241201"
MODELS = f"projects/{PROJECT}/locations/{REGION}/models"


@pytest.fixture
def standin(vertex_standin: VertexStandIn) -> VertexStandIn:
    """The stand-in, with aiplatform's process-wide settings aimed at it (the fixture restores them)."""
    aiplatform.init(
        api_endpoint=vertex_standin.endpoint, api_transport="rest", credentials=AnonymousCredentials()
    )
    return vertex_standin


def _pushed_model(tmp_path: Path, name: str, destination: str | None) -> standard_artifacts.PushedModel:
    """Pusher's output: pushed=1 and where to, or pushed=0 (not blessed) when destination is None."""
    artifact = standard_artifacts.PushedModel()
    artifact.uri = str(tmp_path / name)
    artifact.set_int_custom_property("pushed", int(destination is not None))
    if destination is not None:
        artifact.set_string_custom_property("pushed_destination", destination)
    return artifact


def _register(tmp_path: Path, pushed: standard_artifacts.PushedModel, **overrides: Any) -> RegisteredModel:
    """Run the executor on ``pushed``; returns its RegisteredModel output."""
    registered = RegisteredModel()
    registered.uri = str(tmp_path / f"registered-{pushed.uri.rsplit('/', 1)[-1]}")
    Path(registered.uri).mkdir(parents=True)
    exec_properties = {
        "registry": REGISTRY,
        "model_name": "penguin",
        "serving_image": SERVING_IMAGE,
        "labels": json.dumps({"commit": "abc123", "trainer_version": "0.1.0"}),
        **overrides,
    }
    Executor().Do({"pushed_model": [pushed]}, {"registered_model": [registered]}, exec_properties)
    return registered


def test_first_registration_creates_version_1_with_labels_and_artifact_uri(
    tmp_path: Path, standin: VertexStandIn
) -> None:
    registered = _register(tmp_path, _pushed_model(tmp_path, "pushed-1", "gs://bucket/serving/1"))

    [version] = standin.model_registry.versions("penguin")
    assert version["name"].startswith(f"{MODELS}/")
    assert version["versionId"] == "1"
    assert version["versionAliases"] == ["default"]
    assert version["artifactUri"] == "gs://bucket/serving/1"
    assert version["containerSpec"]["imageUri"] == SERVING_IMAGE
    # Made valid for Model Registry, which refuses "0.1.0" as a label value.
    assert version["labels"] == {"commit": "abc123", "trainer_version": "0-1-0"}
    assert "parentModel" not in standin.model_registry.upload_bodies[0]
    assert registered.get_int_custom_property("registered") == 1
    assert registered.get_int_custom_property("version") == 1
    assert registered.get_string_custom_property("registry") == REGISTRY
    assert registered.get_string_custom_property("pushed_destination") == "gs://bucket/serving/1"
    # The client listed by name, uploaded, polled the operation and read the new version back.
    model_id = version["name"].rsplit("/", 1)[-1]
    assert standin.requests == [
        ("GET", f"/v1/{MODELS}"),
        ("POST", f"/v1/{MODELS}:upload"),
        ("GET", f"/ui/{next(iter(standin.model_registry.operations))}"),
        ("GET", f"/v1/{MODELS}/{model_id}@1"),
    ]


def test_second_registration_is_version_2_of_the_same_model(tmp_path: Path, standin: VertexStandIn) -> None:
    # Another model first: the executor must find "penguin" by name, not take whatever model is listed.
    _register(tmp_path, _pushed_model(tmp_path, "pushed-trout", "gs://bucket/trout/1"), model_name="trout")
    _register(tmp_path, _pushed_model(tmp_path, "pushed-1", "gs://bucket/serving/1"))

    registered = _register(tmp_path, _pushed_model(tmp_path, "pushed-2", "gs://bucket/serving/2"))

    first, second = standin.model_registry.versions("penguin")
    assert second["name"] == first["name"]
    [trout] = standin.model_registry.versions("trout")
    assert trout["name"] != first["name"]
    assert "parentModel" not in standin.model_registry.upload_bodies[1]
    assert standin.model_registry.upload_bodies[2]["parentModel"] == first["name"]
    assert [(v["versionId"], v["artifactUri"]) for v in (first, second)] == [
        ("1", "gs://bucket/serving/1"),
        ("2", "gs://bucket/serving/2"),
    ]
    assert (first["versionAliases"], second["versionAliases"]) == ([], ["default"])
    assert registered.get_int_custom_property("version") == 2


def test_a_model_that_was_not_pushed_registers_nothing(tmp_path: Path, standin: VertexStandIn) -> None:
    registered = _register(tmp_path, _pushed_model(tmp_path, "not-pushed", None))

    assert registered.get_int_custom_property("registered") == 0
    assert standin.requests == []


def test_missing_serving_image_is_named_before_any_request(tmp_path: Path, standin: VertexStandIn) -> None:
    pushed = _pushed_model(tmp_path, "pushed-1", "gs://bucket/serving/1")

    with pytest.raises(ValueError, match="needs 'serving_image' to register a model in Vertex AI"):
        _register(tmp_path, pushed, serving_image="")

    assert standin.requests == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"artifactUri": "/local/serving/1"}, "artifactUri must be a Cloud Storage path"),
        ({"artifactUri": None}, "artifactUri is required with the prebuilt serving image"),
        ({"containerSpec": None}, "containerSpec.imageUri is required"),
        ({"displayName": None}, "displayName is required"),
        ({"labels": {"trainer_version": "0.1.0"}}, "trainer_version=0.1.0"),
    ],
)
def test_stand_in_rejects_uploads_the_service_would(
    vertex_standin: VertexStandIn, change: dict[str, Any], message: str
) -> None:
    """The client lets these through (or stages local paths itself); the stand-in refuses them as Vertex does."""
    model = {
        "displayName": "penguin",
        "artifactUri": "gs://bucket/serving/1",
        "containerSpec": {"imageUri": SERVING_IMAGE},
    }
    model = {k: v for k, v in {**model, **change}.items() if v is not None}
    request = urllib.request.Request(
        f"{vertex_standin.endpoint}/v1/{MODELS}:upload",
        data=json.dumps({"model": model}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)

    error = json.loads(raised.value.read())["error"]
    assert (raised.value.code, error["status"]) == (400, "INVALID_ARGUMENT")
    assert message in error["message"]
    assert vertex_standin.model_registry.models == {}
