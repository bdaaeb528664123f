"""The data statistics of a run, from StatisticsGen's output: per split and feature, counts, missing values,
mean, spread and range, or a string feature's distinct and most frequent values."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tensorflow_metadata.proto.v0 import statistics_pb2

STATS_FILE = "FeatureStats.pb"  # what StatisticsGen (TFX 1.16) writes under each Split-<name> folder


@dataclasses.dataclass(frozen=True)
class FeatureStats:
    name: str
    type: str  # INT, FLOAT, STRING, BYTES, STRUCT
    present: int  # examples that have the feature
    missing: int
    mean: float | None = None
    std_dev: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    distinct: int | None = None
    top_values: tuple[tuple[str, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class SplitStats:
    split: str
    examples: int
    features: list[FeatureStats]


def _counts(common: statistics_pb2.CommonStatistics) -> tuple[int, int]:
    """(examples with a value, examples without one). CsvExampleGen writes an empty CSV cell as the feature
    with no value, which TFDV counts as present: for a one-value feature, its total of values tells."""
    if common.max_num_values <= 1:
        present = int(common.tot_num_values)
        return present, int(common.num_missing + common.num_non_missing) - present
    return int(common.num_non_missing), int(common.num_missing)


def _feature(feature: statistics_pb2.FeatureNameStatistics) -> FeatureStats:
    name = ".".join(feature.path.step) or feature.name
    kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
    which = feature.WhichOneof("stats")
    if which == "num_stats":
        n = feature.num_stats
        return FeatureStats(
            name,
            kind,
            *_counts(n.common_stats),
            mean=n.mean,
            std_dev=n.std_dev,
            minimum=n.min,
            maximum=n.max,
        )
    if which == "string_stats":
        s = feature.string_stats
        return FeatureStats(
            name,
            kind,
            *_counts(s.common_stats),
            distinct=int(s.unique),
            top_values=tuple((v.value, int(v.frequency)) for v in s.top_values[:5]),
        )
    common = getattr(feature, which).common_stats if which else statistics_pb2.CommonStatistics()
    return FeatureStats(name, kind, *_counts(common))


def read_split(path: Path, split: str) -> SplitStats:
    """The statistics StatisticsGen wrote for one split (`path` is its FeatureStats.pb)."""
    stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(path.read_bytes())
    if not stats.datasets:
        return SplitStats(split, 0, [])
    dataset = stats.datasets[0]
    features = sorted((_feature(f) for f in dataset.features), key=lambda f: f.name)
    return SplitStats(split, int(dataset.num_examples), features)


def read_statistics(uri: str, split_names: str) -> list[SplitStats]:
    """Every split of an ExampleStatistics artifact (its uri and its `split_names` property, a JSON list)."""
    splits = json.loads(split_names) if split_names else []
    found = []
    for split in splits:
        path = Path(uri) / f"Split-{split}" / STATS_FILE
        if path.is_file():
            found.append(read_split(path, split))
    return found
