"""Judge: TFX's Evaluator on the new data's eval split, and again on a fixed holdout set, with one blessing.

Why not a second Evaluator for the holdout: LatestBlessedModelStrategy (locally, and on Vertex its compiled
query) takes any ModelBlessing with blessed=1 as the mark of a blessed model. Two Evaluators would write two
blessings, and a model refused by one but blessed by the other would become the next run's baseline. The Judge
writes exactly one blessing, blessed only when every check passed.
"""

import tensorflow_model_analysis as tfma
from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from cicd_components.judge import executor
from cicd_components.judge.verdict import METRICS


class JudgeSpec(ComponentSpec):
    PARAMETERS = {
        # TFMA's configuration: the model, the label, the metrics (the judge's metric and the example count).
        "eval_config": ExecutionParameter(type=tfma.EvalConfig),
        # The metric the judge decides by (verdict.METRICS: accuracy, rmse); absent: accuracy.
        "metric": ExecutionParameter(type=str, optional=True),
        # The bound a model must meet on the eval split and on the holdout: the least accuracy, the largest
        # RMSE (the metric's direction says which).
        "threshold": ExecutionParameter(type=float),
        # How far behind the baseline the candidate may fall on the holdout; negative: one standard error of
        # the baseline's value on the holdout (cicd_components.judge.verdict.Metric.standard_error).
        "regression_tolerance": ExecutionParameter(type=float),
        # The split of the holdout examples to score (the holdout ExampleGen names its one split so).
        "holdout_split": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        # The new data's examples; the eval split is scored.
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        # The candidate, from the Trainer.
        "model": ChannelParameter(type=standard_artifacts.Model),
        # The last blessed model (absent before the first).
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        # The fixed holdout examples that new data does not replace.
        "holdout_examples": ChannelParameter(type=standard_artifacts.Examples, optional=True),
        # The statistics of the data the candidate was trained on: kept with a blessing, so the next run's
        # data gate compares new data with the data that trained the model in production.
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
    }
    OUTPUTS = {
        # TFMA's output for the eval split, the holdout's under holdout/, and verdict.json: every check.
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        # The one blessing: blessed=1 only when every check passed.
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class Judge(base_beam_component.BaseBeamComponent):
    """Blesses a model that meets the threshold of its metric on the eval split and on the holdout, and does not
    fall behind the baseline on the holdout by more than the tolerance (on the eval split with no holdout)."""

    SPEC_CLASS = JudgeSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        eval_config: tfma.EvalConfig,
        threshold: float,
        regression_tolerance: float | None = None,
        metric: str = "accuracy",
        baseline_model: types.BaseChannel | None = None,
        holdout_examples: types.BaseChannel | None = None,
        statistics: types.BaseChannel | None = None,
    ):
        """`metric` names one of verdict.METRICS; `regression_tolerance` None derives it from the holdout's size
        (one standard error)."""
        if metric not in METRICS:
            raise ValueError(f"metric {metric!r} is not one the judge knows: {', '.join(METRICS)}.")
        super().__init__(
            spec=JudgeSpec(
                examples=examples,
                model=model,
                baseline_model=baseline_model,
                holdout_examples=holdout_examples,
                statistics=statistics,
                eval_config=eval_config,
                metric=metric,
                threshold=float(threshold),
                regression_tolerance=-1.0 if regression_tolerance is None else float(regression_tolerance),
                holdout_split=executor.HOLDOUT_SPLIT,
                evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
                blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
