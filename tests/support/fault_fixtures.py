"""Fixtures that put a fault proxy (tests/support/fault_proxy.py) between the real clients and the stand-ins.

``gcs_faults`` is the proxy in front of the session's fake-gcs-server (point a real client at
``gcs_faults.endpoint``); ``vertex_faults`` is the proxy in front of the Vertex stand-in. The proxies live
for the session; each test starts healed (no faults, listening, empty log) and leaves them healed and idle
(a slow request still on its way upstream would otherwise land in the next test's stand-in: what slow()
still holds when the test ends is dropped, not forwarded). Buckets
are still made with ``gcs_bucket`` (straight to the emulator), so only the code under test meets the faults.

Imported by tests/integration/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fault_proxy import FaultProxy, running_fault_proxy
from tests.support.gcs_emulator import GcsEmulator
from tests.support.vertex_standin import VertexStandIn


@pytest.fixture(scope="session")
def _gcs_fault_proxy(_gcs_emulator_process: GcsEmulator) -> Iterator[FaultProxy]:
    with running_fault_proxy(_gcs_emulator_process.endpoint) as proxy:
        yield proxy


@pytest.fixture
def gcs_faults(_gcs_fault_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The fault proxy in front of fake-gcs-server: healthy at the start, healed again at the end."""
    _gcs_fault_proxy.heal()
    _gcs_fault_proxy.clear_log()
    yield _gcs_fault_proxy
    _gcs_fault_proxy.heal()
    _gcs_fault_proxy.drop_held()


@pytest.fixture(scope="session")
def _vertex_fault_proxy(_vertex_standin_server: VertexStandIn) -> Iterator[FaultProxy]:
    with running_fault_proxy(_vertex_standin_server.endpoint) as proxy:
        yield proxy


@pytest.fixture
def vertex_faults(_vertex_fault_proxy: FaultProxy, vertex_standin: VertexStandIn) -> Iterator[FaultProxy]:
    """The fault proxy in front of the (reset) Vertex stand-in: healthy at the start, healed at the end."""
    _vertex_fault_proxy.heal()
    _vertex_fault_proxy.clear_log()
    yield _vertex_fault_proxy
    _vertex_fault_proxy.heal()
    _vertex_fault_proxy.drop_held()
