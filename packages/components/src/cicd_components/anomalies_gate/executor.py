"""AnomaliesGate's executor: reads each split's anomalies report and statistics, and raises DataGateError
(one message naming every problem with its counts) if the data cannot be trained on."""

import os
from typing import Any

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from cicd_components.judge.verdict import TRAINING_STATISTICS_DIR

# The file ExampleValidator writes in each split folder (tfx/components/example_validator/labels.py).
ANOMALIES_FILE = "SchemaDiff.pb"


class DataGateError(RuntimeError):
    """The data cannot be trained on: the run stops before training. The message says why, with counts."""


class DataAnomaliesError(DataGateError):
    """The data does not match the schema."""


class TooFewExamplesError(DataGateError):
    """A split, or a class of the label within a split, holds fewer examples than the minimum."""


class DataDriftError(DataGateError):
    """A distribution (the label's too) moved further from the data that trained the blessed model than the
    curated schema's drift comparators allow."""


DRIFT_SPLIT = "train"


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


def label_classes(schema_uri: str, label: str) -> list[str]:
    """The label's classes: the values of its string domain in the curated schema."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = read_schema(schema_uri)
    feature = next((f for f in schema.feature if f.name == label), None)
    if feature is None:
        return []
    if feature.HasField("string_domain"):
        return list(feature.string_domain.value)
    domain = next((d for d in schema.string_domain if d.name == feature.domain), schema_pb2.StringDomain())
    return list(domain.value)


def count_problems(
    statistics: types.Artifact,
    classes: list[str],
    label: str | None,
    min_per_split: int,
    min_per_class: int,
) -> list[str]:
    """One line per split or class below its minimum, with the counts found."""
    from tfx.components.statistics_gen import stats_artifact_utils

    problems = []
    for split in artifact_utils.decode_split_names(statistics.split_names):
        dataset = stats_artifact_utils.load_statistics(statistics, split).proto().datasets[0]
        if dataset.num_examples < min_per_split:
            problems.append(f"[{split}] {dataset.num_examples} examples (at least {min_per_split} needed)")
        if not (label and classes and min_per_class):
            continue
        counts = dict.fromkeys(classes, 0)
        for feature in dataset.features:
            if feature.path.step == [label] or feature.name == label:
                for bucket in feature.string_stats.rank_histogram.buckets:
                    counts[bucket.label] = int(bucket.sample_count)
        short = {c: n for c, n in counts.items() if n < min_per_class}
        if short:
            found = ", ".join(f"{c} {n}" for c, n in counts.items())
            problems.append(
                f"[{split}] {label}: {', '.join(short)} below {min_per_class} examples (counts: {found})"
            )
    return problems


def read_schema(schema_uri: str):
    from tfx.utils import io_utils

    return io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_uri))


def drift_problems(statistics: types.Artifact, baseline_blessing_uri: str, schema) -> list[str] | None:
    """One line per feature whose distribution moved past its drift comparator's threshold, largest first
    (relative to its threshold), comparing the train split with the one that trained the blessed model.

    None when there is nothing to compare with: no drift comparator in the schema, or a blessing that kept
    no statistics (a model blessed before the Judge kept them).
    """
    import tensorflow_data_validation as tfdv
    from tfx.components.statistics_gen import stats_artifact_utils

    if not any(f.HasField("drift_comparator") for f in schema.feature):
        return None
    previous_uri = os.path.join(baseline_blessing_uri, TRAINING_STATISTICS_DIR)
    if not fileio.exists(previous_uri):
        return None
    from tfx.types import standard_artifacts

    previous = standard_artifacts.ExampleStatistics()
    previous.uri = previous_uri
    previous.split_names = statistics.split_names
    current = stats_artifact_utils.load_statistics(statistics, DRIFT_SPLIT).proto()
    before = stats_artifact_utils.load_statistics(previous, DRIFT_SPLIT).proto()
    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=before)
    shifts = []
    for info in anomalies.drift_skew_info:
        feature = ".".join(info.path.step)
        for measurement in info.drift_measurements:
            if measurement.threshold and measurement.value > measurement.threshold:
                kind = (
                    measurement.DESCRIPTOR.fields_by_name["type"]
                    .enum_type.values_by_number[measurement.type]
                    .name
                )
                detail = (
                    anomalies.anomaly_info[feature].description if feature in anomalies.anomaly_info else ""
                )
                most = (
                    detail.rpartition("maximum difference is: ")[2] if "maximum difference" in detail else ""
                )
                shifts.append(
                    (
                        measurement.value / measurement.threshold,
                        f"{feature}: {kind} distance {measurement.value:.3f} from the blessed model's training "
                        f"data, above the threshold {measurement.threshold:g}"
                        + (f" (most changed: {most})" if most else ""),
                    )
                )
    return [line for _, line in sorted(shifts, key=lambda s: -s[0])]


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
        if input_dict.get("statistics"):
            label = exec_properties.get("label_feature") or None
            classes = (
                label_classes(artifact_utils.get_single_uri(input_dict["schema"]), label)
                if label and input_dict.get("schema")
                else []
            )
            counts = count_problems(
                artifact_utils.get_single_instance(input_dict["statistics"]),
                classes,
                label,
                int(exec_properties.get("min_examples_per_split") or 0),
                int(exec_properties.get("min_examples_per_class") or 0),
            )
            if counts:
                raise TooFewExamplesError(
                    "Too few examples to train and judge a model, so the run stops before training:\n  "
                    + "\n  ".join(counts)
                    + "\nAdd data, or lower training.min_examples_per_split / min_examples_per_class on purpose."
                )
        if input_dict.get("statistics") and input_dict.get("baseline_blessing") and input_dict.get("schema"):
            shifts = drift_problems(
                artifact_utils.get_single_instance(input_dict["statistics"]),
                artifact_utils.get_single_uri(input_dict["baseline_blessing"]),
                read_schema(artifact_utils.get_single_uri(input_dict["schema"])),
            )
            if shifts:
                raise DataDriftError(
                    "The data moved away from the data that trained the blessed model, so the run stops "
                    "before training (largest shift first):\n  "
                    + "\n  ".join(shifts)
                    + "\nCheck where the data came from; if the world really changed, raise the feature's "
                    "drift_comparator threshold in the curated schema, on purpose."
                )
