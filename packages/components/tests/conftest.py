"""Helpers to make real TFX artifacts in a temporary folder."""

import pytest
from tfx.types import standard_artifacts


@pytest.fixture
def make_artifact(tmp_path):
    """make_artifact(cls, name) -> an artifact of `cls` whose uri is a fresh folder under tmp_path."""

    def make(cls, name):
        artifact = cls()
        artifact.uri = str(tmp_path / name)
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        return artifact

    return make


@pytest.fixture
def pushed_model(make_artifact):
    def make(pushed: bool, destination: str = "/serving/penguin/1700000000"):
        artifact = make_artifact(standard_artifacts.PushedModel, "pushed_model")
        artifact.set_int_custom_property("pushed", int(pushed))
        if pushed:
            artifact.set_string_custom_property("pushed_destination", destination)
        return artifact

    return make
