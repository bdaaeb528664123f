import os

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import artifact_utils, standard_artifacts

from cicd_components.anomalies_gate import executor

SCHEMA = """
feature { name: "body_mass_g" type: INT int_domain { min: 2000 max: 7000 } presence { min_fraction: 1.0 } }
feature { name: "species" type: BYTES presence { min_fraction: 1.0 } }
"""


def anomalies_artifact(make_artifact, frames):
    """An ExampleAnomalies artifact whose splits hold TFDV's real validation of each frame against SCHEMA."""
    schema = text_format.Parse(SCHEMA, schema_pb2.Schema())
    artifact = make_artifact(standard_artifacts.ExampleAnomalies, "anomalies")
    artifact.split_names = artifact_utils.encode_split_names(list(frames))
    for split, frame in frames.items():
        anomalies = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(frame), schema)
        uri = artifact_utils.get_split_uri([artifact], split)
        os.makedirs(uri, exist_ok=True)
        with open(os.path.join(uri, executor.ANOMALIES_FILE), "wb") as f:
            f.write(anomalies.SerializeToString())
    return artifact


GOOD = pd.DataFrame({"body_mass_g": [3000, 4000], "species": ["Adelie", "Gentoo"]})
HEAVY = pd.DataFrame({"body_mass_g": [3000, 90000], "species": ["Adelie", "Gentoo"]})


def test_clean_data_passes(make_artifact):
    artifact = anomalies_artifact(make_artifact, {"train": GOOD, "eval": GOOD})
    executor.Executor().Do({"anomalies": [artifact]}, {}, {})


def test_anomalies_stop_the_run_naming_split_and_feature(make_artifact):
    artifact = anomalies_artifact(make_artifact, {"train": GOOD, "eval": HEAVY})
    with pytest.raises(executor.DataAnomaliesError, match=r"\[eval\] body_mass_g") as err:
        executor.Executor().Do({"anomalies": [artifact]}, {}, {})
    assert "[train]" not in str(err.value)
    assert "curated schema" in str(err.value)


CLASSES_SCHEMA = """
feature { name: "species" type: BYTES domain: "species" }
string_domain { name: "species" value: "Adelie" value: "Chinstrap" value: "Gentoo" }
"""


def statistics_artifact(make_artifact, frames):
    """An ExampleStatistics artifact holding TFDV's real statistics of each frame, where StatisticsGen puts them."""
    artifact = make_artifact(standard_artifacts.ExampleStatistics, "statistics")
    artifact.split_names = artifact_utils.encode_split_names(list(frames))
    for split, frame in frames.items():
        uri = artifact_utils.get_split_uri([artifact], split)
        os.makedirs(uri, exist_ok=True)
        stats = tfdv.generate_statistics_from_dataframe(frame)
        with open(os.path.join(uri, "FeatureStats.pb"), "wb") as f:
            f.write(stats.SerializeToString())
    return artifact


def schema_artifact(make_artifact):
    artifact = make_artifact(standard_artifacts.Schema, "schema")
    with open(os.path.join(artifact.uri, "schema.pbtxt"), "w") as f:
        f.write(CLASSES_SCHEMA)
    return artifact


def gate(make_artifact, train, eval_, **limits):
    inputs = {
        "anomalies": [anomalies_artifact(make_artifact, {"train": GOOD, "eval": GOOD})],
        "statistics": [statistics_artifact(make_artifact, {"train": train, "eval": eval_})],
        "schema": [schema_artifact(make_artifact)],
    }
    properties = {
        "label_feature": "species",
        "min_examples_per_split": 20,
        "min_examples_per_class": 5,
        **limits,
    }
    executor.Executor().Do(inputs, {}, properties)


def frame(counts):
    rows = [name for name, n in counts.items() for _ in range(n)]
    return pd.DataFrame({"body_mass_g": [4000] * len(rows), "species": rows})


BALANCED = {"Adelie": 10, "Chinstrap": 10, "Gentoo": 10}


def test_enough_examples_of_every_class_pass(make_artifact):
    gate(make_artifact, frame(BALANCED), frame(BALANCED))


def test_ten_rows_stop_the_run_with_the_counts(make_artifact):
    tiny = frame({"Adelie": 4, "Chinstrap": 2, "Gentoo": 1})
    with pytest.raises(executor.TooFewExamplesError) as err:
        gate(make_artifact, tiny, frame({"Adelie": 2, "Chinstrap": 1}))
    message = str(err.value)
    assert "[train] 7 examples (at least 20 needed)" in message
    assert "[eval] 3 examples (at least 20 needed)" in message


def test_a_one_class_data_set_stops_the_run_naming_the_missing_classes(make_artifact):
    adelie = frame({"Adelie": 60})
    with pytest.raises(executor.TooFewExamplesError) as err:
        gate(make_artifact, adelie, frame({"Adelie": 30}))
    assert (
        "[train] species: Chinstrap, Gentoo below 5 examples (counts: Adelie 60, Chinstrap 0, Gentoo 0)"
        in str(err.value)
    )
    assert isinstance(err.value, executor.DataGateError)
