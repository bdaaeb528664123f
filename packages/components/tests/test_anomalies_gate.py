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
