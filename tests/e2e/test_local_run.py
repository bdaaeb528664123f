"""The whole pipeline on the shipped data with TFX's LocalDagRunner: the user's `invoke run`, as a test.

Two runs share one state folder: the first executes every component and pushes a blessed model; the second,
with nothing changed, must reuse every cached component. Last, new rows in the same folder: the run starts
again from CsvExampleGen.
"""

import csv
import json
from pathlib import Path

import pytest
import tensorflow as tf

from tests.support.training import shipped_config

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "penguins"
SPECIES = {"Adelie", "Chinstrap", "Gentoo"}
MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")


def as_example(row: dict) -> bytes:
    features = {}
    for key in MEASUREMENTS:
        if row[key]:
            features[key] = (
                tf.train.Feature(float_list=tf.train.FloatList(value=[float(row[key])]))
                if "bill" in key
                else tf.train.Feature(int64_list=tf.train.Int64List(value=[int(row[key])]))
            )
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def test_first_run_executes_everything_and_blesses(runs):
    _, first, _ = runs
    assert {c.state for c in first.components} == {"COMPLETE"}
    assert {"Transform", "Trainer", "Evaluator", "Pusher", "ModelRegistryUploader"} <= set(first.executed)
    assert first.blessed is True
    assert first.metrics["sparse_categorical_accuracy"] >= shipped_config().accuracy_threshold


def test_blessed_model_is_pushed_and_registered(runs):
    layout, first, _ = runs
    pushed = Path(first.pushed_destination)
    assert pushed.parent == layout.serving_model_dir
    assert (pushed / "saved_model.pb").exists()
    registry = json.loads((layout.registry_dir / "registry.json").read_text())["models"]
    assert [(m["version"], m["pushed_destination"]) for m in registry] == [(1, str(pushed))]
    # The outcome travels with the registry step's output (what a Vertex run is read back from).
    registered = registered_model(layout)
    assert registered.custom_properties["blessed"].int_value == 1
    metrics = json.loads(registered.custom_properties["metrics"].string_value)
    assert metrics["sparse_categorical_accuracy"] == pytest.approx(
        first.metrics["sparse_categorical_accuracy"]
    )


def registered_model(layout):
    """The first RegisteredModel artifact in the run's ML Metadata store."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    from cicd_components import RegisteredModel

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(layout.metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config).get_artifacts_by_type(RegisteredModel.TYPE_NAME)[0]


def test_pushed_model_loads_and_predicts_raw_rows(runs):
    _, first, _ = runs
    model = tf.saved_model.load(first.pushed_destination)
    with open(DATA / "penguins.csv") as f:
        rows = list(csv.DictReader(f))
    # Every 7th row, plus the one with no measurements at all (imputed, must still get an answer).
    sample = rows[::7] + [r for r in rows if not any(r[k] for k in MEASUREMENTS)][:1]
    out = model.signatures["serving_default"](examples=tf.constant([as_example(r) for r in sample]))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (len(sample), 3)
    assert probabilities.sum(axis=1) == pytest.approx(1.0, abs=1e-5)
    predicted = [s.decode() for s in out["species"].numpy()]
    assert set(predicted) <= SPECIES
    measured = [(p, r["species"]) for p, r in zip(predicted, sample, strict=True) if r["bill_length_mm"]]
    accuracy = sum(p == s for p, s in measured) / len(measured)
    assert accuracy >= 0.9, f"{accuracy:.2f} of {len(measured)} shipped rows predicted right"


def test_second_run_reuses_cached_components(runs):
    layout, first, second = runs
    assert second.run_id != first.run_id
    assert set(second.cached) >= {
        "CsvExampleGen",
        "StatisticsGen",
        "Transform",
        "HyperparametersGen",
        "Trainer",
    }
    # The first run had no blessed model to compare with; the second has one (the same model), so the
    # Evaluator's inputs changed and it runs again, and so do Pusher and the registry step after it.
    assert "Evaluator" in second.executed
    assert second.blessed is True
    registry = json.loads((layout.registry_dir / "registry.json").read_text())["models"]
    assert len(registry) == 1, "the same trained model is registered once"


def test_schema_bootstrap_infers_the_shipped_columns(tmp_path):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from cicd_pipeline.bootstrap import bootstrap_schema

    out = bootstrap_schema(DATA, tmp_path / "work", tmp_path / "schema.pbtxt")
    schema = text_format.Parse(out.read_text(), schema_pb2.Schema())
    assert {f.name for f in schema.feature} == {"species", *MEASUREMENTS}
    assert set(next(d for d in schema.string_domain if d.name == "species").value) == SPECIES
    with pytest.raises(FileExistsError, match="never replaced"):
        bootstrap_schema(DATA, tmp_path / "work2", out)


def test_new_data_in_the_same_folder_reruns_from_csvexamplegen(runs, shipped_copy):
    """CsvExampleGen fingerprints the files it reads (sizes and times): new rows are a new input, and every
    component that reads the examples runs again; the schema and hyperparameters stay cached."""
    from cicd_pipeline.report import summarize_run
    from cicd_pipeline.runners.local import LocalInputs, run_local
    from tests.e2e.conftest import trainer_files

    layout, _, second = runs
    assert "CsvExampleGen" in second.cached, "unchanged data stays cached (the fixture's second run)"
    data = shipped_copy / "penguins.csv"
    shipped = data.read_bytes()
    try:
        data.write_bytes(shipped + b"Gentoo,46.1,13.2,211,4500\nAdelie,37.8,18.3,174,3400\n")
        files = trainer_files()
        inputs = LocalInputs(
            data_root=shipped_copy,
            schema_file=files["schema_file"],
            preprocessing_module=files["preprocessing_module"],
            model_module=files["model_module"],
        )
        run_local(layout, inputs, shipped_config())
    finally:
        data.write_bytes(shipped)  # the shipped rows again (a new file time: a later run re-reads them too)
    third = summarize_run(layout.metadata_path, shipped_config().pipeline_name)
    assert {"CsvExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator"} <= set(third.executed)
    assert {"ImportSchemaGen", "HyperparametersGen"} <= set(third.cached)
