"""The judge's rules, without TFX: which checks a model must pass, with what tolerance, and the lines that say
why it was blessed or refused.

Two sets judge a model. The new data's eval split comes from the data the model was trained on: bad data
corrupts it along with the model (a one-class data set scores its one-class model 1.0). The holdout is a fixed
set that new data does not replace, versioned with the trainer: there the candidate must not fall behind the
baseline by more than the tolerance. The threshold applies on both sets.

The metric follows the task: accuracy (higher is better) for a classifier, the root mean squared error
(RMSE, lower is better) for a regression. The rules are the same for both; only the direction of "better"
and the standard error that sets the default tolerance differ (`Metric`).
"""

import dataclasses
import json
import math

ACCURACY = "sparse_categorical_accuracy"
RMSE = "root_mean_squared_error"
EXAMPLE_COUNT = "example_count"
EVAL_SPLIT = "eval split"
HOLDOUT = "holdout"
# The judge's output layout, named here (no TFX) so that its readers need not import the executor:
VERDICT_FILE = (
    "verdict.json"  # every check, the metric and the numbers, beside TFMA's output for the eval split
)
HOLDOUT_DIR = "holdout"  # the holdout's TFMA output, under the evaluation artifact's folder
TRAINING_STATISTICS_DIR = "training_statistics"  # under a blessing: what trained the blessed model


@dataclasses.dataclass(frozen=True)
class Metric:
    """What the judge measures a model by: its name in settings and lines, the key TFMA reports it under, the
    TFMA (Keras) metric class that computes it, and which way is better."""

    name: str
    key: str
    class_name: str
    higher_is_better: bool

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    def meets(self, value: float, threshold: float) -> bool:
        """Whether `value` is at or beyond `threshold` on the good side."""
        return value >= threshold if self.higher_is_better else value <= threshold

    def worse_by(self, value: float, baseline: float) -> float:
        """How much worse than the baseline `value` is (negative: better)."""
        return baseline - value if self.higher_is_better else value - baseline

    def standard_error(self, value: float, examples: int) -> float:
        """One standard error of this metric measured at `value` on `examples` examples."""
        if self.key == RMSE:
            return rmse_standard_error(value, examples)
        return standard_error(value, examples)

    def to_dict(self) -> dict:
        return {"name": self.name, "key": self.key, "direction": self.direction}


ACCURACY_METRIC = Metric("accuracy", ACCURACY, "SparseCategoricalAccuracy", higher_is_better=True)
RMSE_METRIC = Metric("rmse", RMSE, "RootMeanSquaredError", higher_is_better=False)
METRICS = {m.name: m for m in (ACCURACY_METRIC, RMSE_METRIC)}
# The metric each task is judged by (the first is the default); a metric outside its task's list is refused.
TASK_METRICS = {"classification": ("accuracy",), "regression": ("rmse",)}


@dataclasses.dataclass(frozen=True)
class Scores:
    """One set's numbers: the candidate's value of the metric, the baseline's (None before the first blessed
    model), and the number of examples."""

    value: float
    examples: int
    baseline: float | None = None

    @classmethod
    def from_metrics(cls, metrics: dict[str, float], metric: Metric = ACCURACY_METRIC) -> "Scores":
        """From `cicd_components.evaluation.overall_metrics` of one evaluation."""
        return cls(
            value=metrics[metric.key],
            examples=int(metrics.get(EXAMPLE_COUNT, 0)),
            baseline=metrics.get(f"{metric.key} (baseline)"),
        )


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    line: str


def standard_error(accuracy: float, examples: int) -> float:
    """One standard error of an accuracy measured on `examples` examples.

    Agresti-Coull (two successes and two failures added): a perfect score on a small set still has a width,
    so a baseline at 1.0 on 67 examples does not make the tolerance zero and the gate flip on noise.
    """
    n = max(examples, 0) + 4
    p = (accuracy * max(examples, 0) + 2) / n
    return math.sqrt(p * (1 - p) / n)


def rmse_standard_error(rmse: float, examples: int) -> float:
    """One standard error of an RMSE measured on `examples` examples: RMSE / sqrt(2n).

    The mean squared error is a mean of n squared errors; for normal errors of spread s each squared error
    has variance 2 s^4, so the MSE's standard error is s^2 sqrt(2/n), and the delta method (d sqrt(m) = dm /
    (2 sqrt(m))) gives s / sqrt(2n) for its root: the classic standard error of a standard deviation. With
    heavier tails than normal the noise is larger than this; set training.regression_tolerance then.
    """
    return abs(rmse) / math.sqrt(2 * max(examples, 1))


def tolerance_for(scores: Scores, configured: float | None, metric: Metric = ACCURACY_METRIC) -> float:
    """The configured tolerance, or (None) one standard error of the baseline's value on this set."""
    if configured is not None:
        return configured
    return metric.standard_error(
        scores.baseline if scores.baseline is not None else scores.value, scores.examples
    )


def _number(metric: Metric, value: float) -> str:
    return f"{value:.2f}" if metric.higher_is_better and 0 <= value <= 1 else f"{value:g}"


def _threshold(name: str, scores: Scores, threshold: float, metric: Metric) -> Check:
    passed = metric.meets(scores.value, threshold)
    if metric.higher_is_better:
        relation = ">=" if passed else "<"
        direction = ""
    else:
        relation = "<=" if passed else ">"
        direction = f" ({metric.direction})"
    return Check(
        f"{name}: threshold",
        passed,
        f"{name} ({scores.examples} examples): {metric.name} {scores.value:.4f} {relation} threshold "
        f"{_number(metric, threshold)}{direction}: {'passed' if passed else 'refused'}",
    )


def _no_regression(name: str, scores: Scores, tolerance: float, metric: Metric) -> Check:
    if scores.baseline is None:
        return Check(
            f"{name}: no regression",
            True,
            f"{name} ({scores.examples} examples): {metric.name} {scores.value:.4f}, no baseline yet "
            "(the first blessed model): passed",
        )
    change = scores.value - scores.baseline
    # A hair of slack for float rounding, so a candidate exactly at the bound is not refused by it.
    passed = metric.worse_by(scores.value, scores.baseline) <= tolerance + 1e-9
    # Accuracy's lines read as they always have; a lower-is-better metric says so next to its change.
    direction = "" if metric.higher_is_better else f" ({metric.direction})"
    return Check(
        f"{name}: no regression",
        passed,
        f"{name} ({scores.examples} examples): {metric.name} {scores.value:.4f} vs baseline "
        f"{scores.baseline:.4f}, change {change:+.4f}{direction}, {'within' if passed else 'outside'} "
        f"tolerance ±{tolerance:.4f}: {'passed' if passed else 'refused'}",
    )


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The judge's decision, every check behind it, and (for readers such as a comparison of two runs) the
    metric with its direction, the threshold, the tolerance used and each set's numbers."""

    blessed: bool
    checks: list[Check]
    metric: Metric = ACCURACY_METRIC
    threshold: float | None = None
    tolerance: float | None = None
    scores: dict[str, Scores] = dataclasses.field(default_factory=dict)

    @property
    def refusals(self) -> list[str]:
        return [c.line for c in self.checks if not c.passed]

    def to_json(self) -> str:
        return json.dumps(
            {
                "blessed": self.blessed,
                "checks": [dataclasses.asdict(c) for c in self.checks],
                "metric": self.metric.to_dict(),
                "threshold": self.threshold,
                "tolerance": self.tolerance,
                "scores": {name: dataclasses.asdict(s) for name, s in self.scores.items()},
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> "Verdict":
        """Also reads a verdict written before the metric was kept (accuracy then)."""
        data = json.loads(text)
        metric = METRICS.get((data.get("metric") or {}).get("name", ACCURACY_METRIC.name), ACCURACY_METRIC)
        return cls(
            bool(data["blessed"]),
            [Check(**c) for c in data["checks"]],
            metric,
            data.get("threshold"),
            data.get("tolerance"),
            {name: Scores(**s) for name, s in (data.get("scores") or {}).items()},
        )


def judge(
    eval_split: Scores,
    holdout: Scores | None,
    threshold: float,
    tolerance: float | None,
    metric: Metric = ACCURACY_METRIC,
) -> Verdict:
    """Blessed when the candidate meets the threshold on each set and does not fall behind the baseline on the
    holdout (on the eval split when no holdout is configured) by more than the tolerance."""
    checks = [_threshold(EVAL_SPLIT, eval_split, threshold, metric)]
    scores = {EVAL_SPLIT: eval_split}
    if holdout is not None:
        scores[HOLDOUT] = holdout
        used = tolerance_for(holdout, tolerance, metric)
        checks.append(_threshold(HOLDOUT, holdout, threshold, metric))
        checks.append(_no_regression(HOLDOUT, holdout, used, metric))
    else:
        used = tolerance_for(eval_split, tolerance, metric)
        checks.append(_no_regression(EVAL_SPLIT, eval_split, used, metric))
    return Verdict(all(c.passed for c in checks), checks, metric, threshold, used, scores)
