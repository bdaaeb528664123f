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
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform
from tfx.types import standard_artifacts

from cicd_components.registry.component import RegisteredModel
from cicd_components.registry.executor import Executor, record_vertex
from tests.support.vertex_standin import VertexStandIn

PROJECT, REGION = "test-project", "us-central1"
REGISTRY = f"vertex:projects/{PROJECT}/locations/{REGION}"
SERVING_IMAGE = "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-16:20241201"
MODELS = f"projects/{PROJECT}/locations/{REGION}/models"
# The serving image the CI chain registers with (tests/integration/test_ci_chain.py): pinned by digest.
CHAIN_SERVING_IMAGE = f"europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15@sha256:{'0' * 64}"


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


# --- Vertex's rules for an upload, each refused by the stand-in --------------------------------------------------
# Where aiplatform's Model.upload lets a bad value through, the request goes through it; where it refuses or
# rewrites the value first, the request goes over the wire directly (each row says why).


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # aiplatform stages a local artifact_uri to GCS itself (or refuses a path that does not exist).
        ({"artifactUri": "/local/serving/1"}, "artifactUri must be a Cloud Storage path"),
        ({"artifactUri": None}, "artifactUri is required with the prebuilt serving image"),
        # aiplatform refuses an artifact_uri without serving_container_image_uri with a ValueError.
        ({"containerSpec": None}, "containerSpec.imageUri is required"),
        # aiplatform always puts the image into the containerSpec it builds.
        ({"containerSpec": {"predictRoute": "/predict"}}, "containerSpec.imageUri is required"),
        # aiplatform generates a display name when none is given, and refuses one over 128 characters.
        ({"displayName": None}, "displayName is required"),
        ({"displayName": "p" * 129}, "Model.displayName must be at most 128 characters"),
        # The executor makes labels valid with vertex_labels before the client sees them.
        ({"labels": {"trainer_version": "0.1.0"}}, "value '0.1.0' of key 'trainer_version'"),
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
    assert (raised.value.code, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert message in error["message"]
    assert vertex_standin.model_registry.models == {}


def test_the_client_refuses_an_artifact_without_a_serving_image_before_any_request(
    standin: VertexStandIn,
) -> None:
    """Why the missing-image row above goes over the wire: aiplatform never sends such an upload."""
    with pytest.raises(ValueError, match="serving_container_image_uri` is required"):
        aiplatform.Model.upload(
            display_name="penguin", artifact_uri="gs://bucket/serving/1", project=PROJECT, location=REGION
        )

    assert standin.requests == []


_OTHER_PROJECT_MODEL = f"projects/other-project/locations/{REGION}/models/1000000000000000001"
_OTHER_REGION_MODEL = f"projects/{PROJECT}/locations/europe-west4/models/1000000000000000001"


@pytest.mark.parametrize(
    ("upload", "error", "status", "message"),
    [
        # aiplatform's utils.validate_labels only checks that keys and values are strings.
        ({"labels": {"Commit": "abc"}}, gexc.BadRequest, 400, "key 'Commit' must start with a lowercase"),
        ({"labels": {"trainer_version": "0.1.0"}}, gexc.BadRequest, 400, "value '0.1.0' of key"),
        ({"labels": {"commit": "c" * 64}}, gexc.BadRequest, 400, "at most 63 characters"),
        ({"labels": {f"l{i}": "v" for i in range(65)}}, gexc.BadRequest, 400, "has 65 entries; at most 64"),
        # aiplatform sends model_id as given.
        ({"model_id": "1penguin"}, gexc.BadRequest, 400, "modelId '1penguin' must match"),
        # aiplatform sends a full parent_model resource name as given, whatever its project and location.
        ({"parent_model": f"{MODELS}/999"}, gexc.NotFound, 404, f"Model {MODELS}/999 not found"),
        (
            {"parent_model": _OTHER_PROJECT_MODEL},
            gexc.BadRequest,
            400,
            f"must be a model of projects/{PROJECT}/",
        ),
        ({"parent_model": _OTHER_REGION_MODEL}, gexc.BadRequest, 400, f"locations/{REGION} (projects/P"),
    ],
    ids=[
        "key-upper",
        "value-dot",
        "value-64",
        "65-labels",
        "model-id-digit",
        "parent-missing",
        "parent-other-project",
        "parent-other-region",
    ],
)
def test_stand_in_refuses_uploads_the_client_lets_through(
    standin: VertexStandIn, upload: dict[str, Any], error: type[Exception], status: int, message: str
) -> None:
    with pytest.raises(error) as raised:
        aiplatform.Model.upload(
            display_name="penguin",
            artifact_uri="gs://bucket/serving/1",
            serving_container_image_uri=SERVING_IMAGE,
            project=PROJECT,
            location=REGION,
            **upload,
        )

    assert raised.value.code == status
    assert message in raised.value.message
    assert standin.model_registry.models == {}


def test_stand_in_accepts_uploads_vertex_accepts(standin: VertexStandIn) -> None:
    """Through the real client: a placeholder model (no image, no artifact) and international labels."""
    placeholder = aiplatform.Model.upload(display_name="placeholder", project=PROJECT, location=REGION)
    labelled = aiplatform.Model.upload(
        display_name="p" * 128,
        artifact_uri="gs://bucket/serving/1",
        serving_container_image_uri=SERVING_IMAGE,
        labels={"équipe": "données", "ラベル": "機械学習", "empty": ""},
        project=PROJECT,
        location=REGION,
    )

    assert placeholder.version_id == "1" and labelled.version_id == "1"
    [version] = standin.model_registry.versions("p" * 128)
    assert version["labels"] == {"équipe": "données", "ラベル": "機械学習", "empty": ""}


def test_record_vertex_registers_the_chains_model_with_its_labels_as_new_versions(
    standin: VertexStandIn,
) -> None:
    """The executor's Vertex path with what the chain gives it: model_labels as submit_run makes them, a
    digest-pinned serving image, and a second push that must become version 2 of the same model."""
    from cicd_release.publish.snapshots import RunData
    from cicd_release.run.launch import RunRequest

    version = "0.1.0+g0123456789ab.dirty89abcdef"
    request = RunRequest(
        spec="gs://b/specs/penguin-cicd-0.1.0-0123456789abcdef.json",
        image="unused",
        modules={
            name: f"gs://b/modules/{'0123456789abcdef' * 4}/{name}.py"
            for name in ("preprocessing_module", "model_module", "schema_file")
        },
        data=RunData(f"gs://b/data/penguins/{'f' * 64}", "fedcba9876543210" * 4, "penguins", "snapshot"),
        hyperparameters="{}",
        commit="0123456789ab" + "0" * 28,
        versions={p: version for p in ("components", "pipeline", "release", "trainer")},
        trigger="release",
    )
    # The pipeline parameter carries them as JSON, already made valid (cicd_release.run.launch.RunRequest).
    labels = json.loads(request.parameters()["model_labels"])
    assert labels["data_sha"] == "fedcba9876543210" and labels["data_name"] == "penguins"
    parent = f"projects/{PROJECT}/locations/{REGION}"
    entry = {"model_name": "penguin", "pushed_destination": "gs://bucket/serving/1", "labels": labels}

    first = record_vertex(parent, entry, CHAIN_SERVING_IMAGE)
    second = record_vertex(
        parent, {**entry, "pushed_destination": "gs://bucket/serving/2"}, CHAIN_SERVING_IMAGE
    )

    assert (first["version"], second["version"]) == ("1", "2")
    assert first["resource_name"] == second["resource_name"]
    versions = standin.model_registry.versions("penguin")
    assert [v["labels"] for v in versions] == [labels, labels]
    assert [v["containerSpec"]["imageUri"] for v in versions] == [CHAIN_SERVING_IMAGE] * 2
    assert standin.model_registry.upload_bodies[1]["parentModel"] == first["resource_name"]
