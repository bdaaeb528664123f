import json

import pytest
from tfx.types import standard_artifacts

from cicd_components.registry import executor
from cicd_components.registry.component import RegisteredModel


def register(make_artifact, pushed, registry, labels='{"commit": "abc123"}', model=None):
    out = make_artifact(RegisteredModel, "registered")
    executor.Executor().Do(
        {"pushed_model": [pushed], **({"model": [model]} if model else {})},
        {"registered_model": [out]},
        {"registry": registry, "model_name": "penguin", "labels": labels},
    )
    return out


def test_pushed_models_get_increasing_versions(tmp_path, make_artifact, pushed_model):
    registry = tmp_path / "registry"
    first = register(make_artifact, pushed_model(True, "/serving/1"), f"local:{registry}")
    second = register(make_artifact, pushed_model(True, "/serving/2"), f"local:{registry}")
    models = json.loads((registry / "registry.json").read_text())["models"]
    assert [(m["version"], m["pushed_destination"]) for m in models] == [(1, "/serving/1"), (2, "/serving/2")]
    assert models[0]["labels"] == {"commit": "abc123"}
    assert first.get_int_custom_property("version") == 1
    assert second.get_int_custom_property("version") == 2
    assert second.get_int_custom_property("registered") == 1
    assert not list(registry.glob(".registry-*")), "no temporary file is left behind"


def test_the_same_trained_model_is_registered_once(tmp_path, make_artifact, pushed_model):
    registry = tmp_path / "registry"
    model = make_artifact(standard_artifacts.Model, "model")
    register(make_artifact, pushed_model(True, "/serving/1"), f"local:{registry}", model=model)
    again = register(make_artifact, pushed_model(True, "/serving/2"), f"local:{registry}", model=model)
    models = json.loads((registry / "registry.json").read_text())["models"]
    assert [(m["version"], m["model_uri"]) for m in models] == [(1, model.uri)]
    assert again.get_int_custom_property("version") == 1


def test_a_model_that_was_not_pushed_is_not_registered(tmp_path, make_artifact, pushed_model):
    registry = tmp_path / "registry"
    out = register(make_artifact, pushed_model(False), f"local:{registry}")
    assert out.get_int_custom_property("registered") == 0
    assert not (registry / "registry.json").exists()


@pytest.mark.parametrize(
    "registry", ["local:", "s3://bucket", "vertex:projects/p", "vertex:projects//locations/x"]
)
def test_bad_registry_names_the_forms_it_accepts(registry, make_artifact, pushed_model):
    with pytest.raises(ValueError, match="local:<folder>"):
        register(make_artifact, pushed_model(True), registry)


def test_the_evaluators_verdict_is_recorded_on_the_output_whether_or_not_it_was_pushed(
    tmp_path, make_artifact, pushed_model
):
    # Vertex keeps an output artifact's properties: this is how a run's outcome is read back without files.
    blessing = make_artifact(standard_artifacts.ModelBlessing, "blessing")
    blessing.set_int_custom_property("blessed", 0)
    out = make_artifact(RegisteredModel, "registered")
    executor.Executor().Do(
        {"pushed_model": [pushed_model(False)], "blessing": [blessing]},
        {"registered_model": [out]},
        {"registry": f"local:{tmp_path / 'registry'}", "model_name": "penguin", "labels": "{}"},
    )
    assert (out.get_int_custom_property("blessed"), out.get_int_custom_property("registered")) == (0, 0)


def test_the_artifact_type_name_imports_the_class_as_tfx_does_on_vertex():
    # TFX's v2 container entrypoint imports a custom artifact class from "<module>.<Class>".
    import importlib

    module, _, name = RegisteredModel.TYPE_NAME.rpartition(".")
    assert getattr(importlib.import_module(module), name) is RegisteredModel
