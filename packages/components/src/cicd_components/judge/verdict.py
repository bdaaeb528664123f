"""The judge's rules, without TFX: which checks a model must pass, with what tolerance, and the lines that say
why it was blessed or refused.

Two sets judge a model. The new data's eval split comes from the data the model was trained on: bad data
corrupts it along with the model (a one-class data set scores its one-class model 1.0). The holdout is a fixed
set that new data does not replace, versioned with the trainer: there the candidate must not fall below the
baseline by more than the tolerance. The accuracy threshold applies on both sets.
"""

import dataclasses
import json
import math

ACCURACY = "sparse_categorical_accuracy"
EXAMPLE_COUNT = "example_count"
EVAL_SPLIT = "eval split"
HOLDOUT = "holdout"
# The judge's output layout, named here (no TFX) so that its readers need not import the executor:
VERDICT_FILE = "verdict.json"  # every check, beside TFMA's output for the eval split
HOLDOUT_DIR = "holdout"  # the holdout's TFMA output, under the evaluation artifact's folder
TRAINING_STATISTICS_DIR = "training_statistics"  # under a blessing: what trained the blessed model


@dataclasses.dataclass(frozen=True)
class Scores:
    """One set's numbers: the candidate's accuracy, the baseline's (None before the first blessed model)."""

    accuracy: float
    examples: int
    baseline: float | None = None

    @classmethod
    def from_metrics(cls, metrics: dict[str, float]) -> "Scores":
        """From `cicd_components.evaluation.overall_metrics` of one evaluation."""
        return cls(
            accuracy=metrics[ACCURACY],
            examples=int(metrics.get(EXAMPLE_COUNT, 0)),
            baseline=metrics.get(f"{ACCURACY} (baseline)"),
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


def tolerance_for(scores: Scores, configured: float | None) -> float:
    """The configured tolerance, or (None) one standard error of the baseline's accuracy on this set."""
    if configured is not None:
        return configured
    return standard_error(
        scores.baseline if scores.baseline is not None else scores.accuracy, scores.examples
    )


def _threshold(name: str, scores: Scores, threshold: float) -> Check:
    passed = scores.accuracy >= threshold
    relation = ">=" if passed else "<"
    return Check(
        f"{name}: threshold",
        passed,
        f"{name} ({scores.examples} examples): accuracy {scores.accuracy:.4f} {relation} threshold "
        f"{threshold:.2f}: {'passed' if passed else 'refused'}",
    )


def _no_regression(name: str, scores: Scores, tolerance: float) -> Check:
    if scores.baseline is None:
        return Check(
            f"{name}: no regression",
            True,
            f"{name} ({scores.examples} examples): accuracy {scores.accuracy:.4f}, no baseline yet "
            "(the first blessed model): passed",
        )
    change = scores.accuracy - scores.baseline
    # A hair of slack for float rounding, so a candidate exactly at the bound is not refused by it.
    passed = change >= -tolerance - 1e-9
    return Check(
        f"{name}: no regression",
        passed,
        f"{name} ({scores.examples} examples): accuracy {scores.accuracy:.4f} vs baseline "
        f"{scores.baseline:.4f}, change {change:+.4f}, {'within' if passed else 'outside'} tolerance "
        f"±{tolerance:.4f}: {'passed' if passed else 'refused'}",
    )


@dataclasses.dataclass(frozen=True)
class Verdict:
    blessed: bool
    checks: list[Check]

    @property
    def refusals(self) -> list[str]:
        return [c.line for c in self.checks if not c.passed]

    def to_json(self) -> str:
        return json.dumps(
            {"blessed": self.blessed, "checks": [dataclasses.asdict(c) for c in self.checks]},
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> "Verdict":
        data = json.loads(text)
        return cls(bool(data["blessed"]), [Check(**c) for c in data["checks"]])


def judge(eval_split: Scores, holdout: Scores | None, threshold: float, tolerance: float | None) -> Verdict:
    """Blessed when the candidate meets the threshold on each set and does not regress on the holdout (on the
    eval split when no holdout is configured) by more than the tolerance."""
    checks = [_threshold(EVAL_SPLIT, eval_split, threshold)]
    if holdout is not None:
        checks.append(_threshold(HOLDOUT, holdout, threshold))
        checks.append(_no_regression(HOLDOUT, holdout, tolerance_for(holdout, tolerance)))
    else:
        checks.append(_no_regression(EVAL_SPLIT, eval_split, tolerance_for(eval_split, tolerance)))
    return Verdict(all(c.passed for c in checks), checks)
