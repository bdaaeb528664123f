"""AnomaliesGate: the data gate. Stops the run before anything is trained when ExampleValidator found anomalies,
or when a split holds too few examples, or a class of the label too few of its own, or when the data drifted
from the data that trained the blessed model."""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from cicd_components.anomalies_gate import executor


class AnomaliesGateSpec(ComponentSpec):
    PARAMETERS = {
        # The fewest examples a split may hold: ten rows pass the schema and give a judge of three examples.
        "min_examples_per_split": ExecutionParameter(type=int, optional=True),
        # The fewest examples each class of the label (the values of its schema domain) needs in every split:
        # a one-class data set passes the schema and trains a model that only ever predicts that class.
        "min_examples_per_class": ExecutionParameter(type=int, optional=True),
        # The label feature whose classes are counted (its schema domain lists the classes).
        "label_feature": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        # ExampleValidator's output: one anomalies report per split.
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        # StatisticsGen's output, for the counts.
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
        # The curated schema, for the label's classes and the drift comparators' thresholds.
        "schema": ChannelParameter(type=standard_artifacts.Schema, optional=True),
        # The blessing of the current model (the Judge keeps the statistics of its training data there): the
        # new data is compared with the data that trained the model in production.
        "baseline_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
    }
    OUTPUTS = {}


class AnomaliesGate(base_component.BaseComponent):
    """Fails when the data cannot be trained on. Make the first training step depend on it (add_upstream_node)."""

    SPEC_CLASS = AnomaliesGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        anomalies: types.BaseChannel,
        statistics: types.BaseChannel | None = None,
        schema: types.BaseChannel | None = None,
        min_examples_per_split: int | None = None,
        min_examples_per_class: int | None = None,
        label_feature: str | None = None,
        baseline_blessing: types.BaseChannel | None = None,
    ):
        """`anomalies` from ExampleValidator; with `statistics`, `schema` and the minimums, the counts too."""
        super().__init__(
            spec=AnomaliesGateSpec(
                anomalies=anomalies,
                statistics=statistics,
                schema=schema,
                min_examples_per_split=min_examples_per_split,
                min_examples_per_class=min_examples_per_class,
                label_feature=label_feature,
                baseline_blessing=baseline_blessing,
            )
        )
