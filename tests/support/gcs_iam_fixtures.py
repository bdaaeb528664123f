"""Fixtures that run release code as an identity holding only some IAM roles, against the local GCS.

``gcs_as(roles, bucket)`` returns a real ``storage.Client`` whose requests go through the IAM gate in
``tests/support/gcs_iam_proxy.py`` with a bearer token bound to a fresh principal that holds exactly
``roles`` on ``bucket``. Buckets are still made with ``gcs_bucket`` (straight to the emulator, as an admin
would), so only the code under test meets the permission checks.

Registered from tests/integration/conftest.py with ``pytest_plugins``.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator

import pytest
from google.cloud import storage
from google.oauth2.credentials import Credentials

from tests.support.gcs_emulator import TEST_PROJECT, GcsEmulator
from tests.support.gcs_iam_proxy import GcsIamProxy, running_gcs_iam_proxy

GcsAs = Callable[[list[str], str], storage.Client]

_principal_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def _gcs_iam_proxy_server(_gcs_emulator_process: GcsEmulator) -> Iterator[GcsIamProxy]:
    with running_gcs_iam_proxy(_gcs_emulator_process.endpoint) as proxy:
        yield proxy


@pytest.fixture
def gcs_iam_proxy(_gcs_iam_proxy_server: GcsIamProxy) -> GcsIamProxy:
    """The session's IAM gate in front of fake-gcs-server, with no grants but its admin token's."""
    _gcs_iam_proxy_server.reset()
    return _gcs_iam_proxy_server


@pytest.fixture
def gcs_as(gcs_iam_proxy: GcsIamProxy, monkeypatch: pytest.MonkeyPatch) -> GcsAs:
    """A factory: ``gcs_as(["roles/storage.objectAdmin"], bucket_name)`` -> client acting as a new principal.

    The client is built the way production builds it (no ``client_options``): google-cloud-storage 2.19 takes
    its endpoint from STORAGE_EMULATOR_HOST, and falls back to anonymous credentials there only when none
    are given, so explicit credentials keep sending ``Authorization: Bearer <token>`` (client.py,
    ``Client.__init__``). The variable is set for the rest of the test, so clients that code under test
    builds itself also go through the gate (and, holding no token, are refused as anonymous).
    """

    def make(roles: list[str], bucket: str) -> storage.Client:
        token = secrets.token_urlsafe(24)
        principal = f"release-{next(_principal_numbers)}@{TEST_PROJECT}.iam.gserviceaccount.com"
        gcs_iam_proxy.grant(token, principal, roles, bucket=bucket)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_iam_proxy.endpoint)
        return storage.Client(project=TEST_PROJECT, credentials=Credentials(token=token))

    return make
