"""Fixtures of the pipeline package's tests."""

import pytest
from mlmd_writer import MlmdWriter


@pytest.fixture
def mlmd_store(tmp_path) -> MlmdWriter:
    """An empty ML Metadata store in TFX's layout, to record runs into (see mlmd_writer.py)."""
    return MlmdWriter(tmp_path / "metadata.sqlite")
