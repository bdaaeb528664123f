"""HyperparametersGen: turns a pipeline parameter into the Trainer's hyperparameters artifact."""

from collections.abc import Mapping

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.placeholder import placeholder
from tfx.orchestration import data_types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from cicd_components.hyperparameters import executor
from cicd_components.hyperparameters.rule import encode_known, parse_hyperparameters


class HyperparametersGenSpec(ComponentSpec):
    PARAMETERS = {
        # A JSON object of scalar hyperparameters, e.g. '{"learning_rate": 0.01}'. A string, not a dict, so it
        # can be a RuntimeParameter: one pipeline parameter that a run overrides without a recompile.
        "values": ExecutionParameter(type=str),
        # The keys the model takes and their types, as a JSON object such as '{"learning_rate": "float"}'
        # (rule.encode_known). Fixed at compile time; absent or "" checks only for a JSON object of scalars.
        "known": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {
        # The artifact TFX's Trainer accepts as `hyperparameters` and hands to run_fn.
        "hyperparameters": ChannelParameter(type=standard_artifacts.HyperParameters),
    }


class HyperparametersGen(base_component.BaseComponent):
    """Writes the hyperparameters artifact that the Trainer reads (a Tuner can take its place)."""

    SPEC_CLASS = HyperparametersGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        values: str | data_types.RuntimeParameter | placeholder.Placeholder,
        known: Mapping[str, str] | None = None,
    ) -> None:
        """A component whose executor checks `values` and writes them for the Trainer.

        Args:
          values: a JSON object string such as '{"learning_rate": 0.02}', or a RuntimeParameter of type str
            holding one (so each run can override it).
          known: the keys the model takes, each mapped to "int", "float", "str" or "bool". With it, the executor
            refuses an unknown key or a value of the wrong type; without it, it only checks for a JSON object
            of numbers, strings and booleans.

        Raises:
          HyperparametersError: `values` is a plain string that breaks the rule (found now, not mid-run).
        """
        encoded = encode_known(known) if known is not None else None
        if isinstance(values, str):
            parse_hyperparameters(values, known)
        output = types.Channel(type=standard_artifacts.HyperParameters)
        super().__init__(spec=HyperparametersGenSpec(values=values, known=encoded, hyperparameters=output))
