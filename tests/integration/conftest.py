"""Fixtures for integration tests: a real local GCS (fake-gcs-server) and a Vertex AI REST stand-in.

The google client libraries are used as shipped; only their endpoints point at loopback. Servers live for the
session (fake-gcs-server starts in ~0.1 s, but there is no reason to pay it per test); state is made fresh per
test: a new bucket, a reset stand-in, and clean process-wide settings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import storage

from tests.support.checkout import clone  # noqa: F401 (a fixture)

# podman's Docker API, the local base image and the stand-in packages for the image tests.
from tests.support.container_engine import (  # noqa: F401 (fixtures)
    auth_registry,
    base_image,
    components_package,
    docker_client,
    docker_host,
    image_cleanup,
    package_factory,
    pinned_tfx_like_base_image,
    tfx_like_base_image,
)
from tests.support.fault_fixtures import _gcs_fault_proxy, _vertex_fault_proxy, gcs_faults, vertex_faults  # noqa: F401 (fixtures)
from tests.support.gcp_admin_fixtures import admin_standin, owner_key  # noqa: F401 (fixtures)
from tests.support.gcs_emulator import GcsEmulator, create_bucket, make_storage_client, running_gcs_emulator
from tests.support.gcs_iam_fixtures import _gcs_iam_proxy_server, gcs_as, gcs_iam_proxy  # noqa: F401 (fixtures)
from tests.support.vertex_standin import VertexStandIn, running_vertex_standin
from tests.support.xdist_groups import scheduler

# The modules that share a fixture, each group on one pytest-xdist process (tests/support/xdist_groups.py).
XDIST_GROUPS = {
    # the session's images, built on podman, and the two registries on fixed ports
    "tests/integration/test_ci_chain.py": "podman",
    "tests/integration/test_image.py": "podman",
    "tests/integration/test_rehearsal_engine.py": "podman",
    # each module's compiled spec (and the Vertex Training module's pipeline run)
    "tests/integration/test_vertex_training.py": "vertex_training",
    "tests/integration/test_vertex_executor.py": "vertex_executor",
    "tests/integration/test_dataflow_handoff.py": "dataflow_handoff",
}


def pytest_xdist_make_scheduler(config, log):
    return scheduler(config, log, XDIST_GROUPS)


@pytest.fixture(autouse=True)
def no_ambient_google_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make every Application Default Credentials lookup fail at once, whatever the developer's machine has.

    aiplatform's pipeline-root ownership check asks Resource Manager for the project number, with the global
    aiplatform credentials or else ADC, and Resource Manager has no endpoint override. With ADC pointing at a
    file that does not exist, google.auth.default() raises immediately, aiplatform logs and skips the check,
    and no test can reach a real Google endpoint with a developer's own identity (or hang ~45 s retrying one).
    """
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-adc-in-tests.json"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # skip the metadata-server probe on non-GCE machines
    for name in ("GOOGLE_CLOUD_PROJECT", "CLOUD_ML_PROJECT_ID", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def _gcs_emulator_process() -> Iterator[GcsEmulator]:
    with running_gcs_emulator() as emulator:
        yield emulator


@pytest.fixture
def gcs_emulator(_gcs_emulator_process: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> GcsEmulator:
    """The session's fake-gcs-server, with STORAGE_EMULATOR_HOST set for this test only.

    The variable matters for clients we do not build ourselves: aiplatform reads gs:// templates and checks
    the pipeline-root bucket with its own storage.Client, which honours it.
    """
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", _gcs_emulator_process.endpoint)
    return _gcs_emulator_process


@pytest.fixture
def gcs_client(gcs_emulator: GcsEmulator) -> storage.Client:
    """A real google-cloud-storage client on the emulator (anonymous credentials, project test-project)."""
    return make_storage_client(gcs_emulator.endpoint)


@pytest.fixture
def gcs_bucket(gcs_client: storage.Client) -> storage.Bucket:
    """A new, empty bucket per test, so tests never see each other's objects."""
    return create_bucket(gcs_client, f"test-{uuid.uuid4().hex[:20]}")


@pytest.fixture(scope="session")
def _vertex_standin_server() -> Iterator[VertexStandIn]:
    with running_vertex_standin() as standin:
        yield standin


@pytest.fixture
def vertex_standin(_vertex_standin_server: VertexStandIn, monkeypatch: pytest.MonkeyPatch) -> VertexStandIn:
    """The Vertex AI stand-in, emptied for this test, with aiplatform's process-wide settings made fresh.

    ``aiplatform.init`` keeps endpoint, transport and credentials in a module-level object; code under test
    sets them, so each test starts from a fresh copy and the previous values come back afterwards. Stale
    global credentials would also send aiplatform's Resource Manager lookup to the network (~45 s of retries).
    """
    from google.cloud.aiplatform import initializer

    fresh = vars(initializer._Config())
    for attribute in vars(initializer.global_config):
        monkeypatch.setattr(initializer.global_config, attribute, fresh.get(attribute))
    _vertex_standin_server.reset()
    return _vertex_standin_server
