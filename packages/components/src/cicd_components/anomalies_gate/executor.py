"""AnomaliesGate's executor: reads each split's anomalies report and raises if any is not empty."""

import os
from typing import Any

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

# The file ExampleValidator writes in each split folder (tfx/components/example_validator/labels.py).
ANOMALIES_FILE = "SchemaDiff.pb"


class DataAnomaliesError(RuntimeError):
    """The data does not match the schema: the run stops before training."""


def read_anomalies(split_uri: str) -> anomalies_pb2.Anomalies:
    path = os.path.join(split_uri, ANOMALIES_FILE)
    anomalies = anomalies_pb2.Anomalies()
    with fileio.open(path, "rb") as f:
        anomalies.ParseFromString(f.read())
    return anomalies


def describe(anomalies: anomalies_pb2.Anomalies) -> list[str]:
    """One line per anomalous feature (and for the data set as a whole), in feature order."""
    lines = [
        f"{feature}: {info.short_description} ({info.description})"
        for feature, info in sorted(anomalies.anomaly_info.items())
    ]
    if anomalies.HasField("dataset_anomaly_info"):
        lines.append(f"(data set): {anomalies.dataset_anomaly_info.description}")
    return lines


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        artifact = artifact_utils.get_single_instance(input_dict["anomalies"])
        problems = []
        for split in artifact_utils.decode_split_names(artifact.split_names):
            problems += [
                f"[{split}] {line}"
                for line in describe(read_anomalies(artifact_utils.get_split_uri([artifact], split)))
            ]
        if problems:
            raise DataAnomaliesError(
                "The examples do not match the schema, so the run stops before training:\n  "
                + "\n  ".join(problems)
                + "\nFix the data, or, if the data is right, update the curated schema "
                "that the pipeline imports."
            )
