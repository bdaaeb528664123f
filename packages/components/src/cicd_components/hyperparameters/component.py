"""HyperparametersGen: turns a pipeline parameter into the Trainer's hyperparameters artifact."""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from cicd_components.hyperparameters import executor


class HyperparametersGenSpec(ComponentSpec):
    PARAMETERS = {
        # A JSON object of scalar hyperparameters, e.g. '{"learning_rate": 0.01}'. A string, not a dict, so it
        # can be a RuntimeParameter: one pipeline parameter that a run overrides without a recompile.
        "values": ExecutionParameter(type=str),
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

    def __init__(self, values):
        """`values`: a JSON object string, or a RuntimeParameter of type str holding one."""
        output = types.Channel(type=standard_artifacts.HyperParameters)
        super().__init__(spec=HyperparametersGenSpec(values=values, hyperparameters=output))
