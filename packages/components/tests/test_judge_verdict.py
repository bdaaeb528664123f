"""The judge's rules (verdict.py): which checks bless or refuse a model, and the tolerance from the set size."""

import json
import math

import pytest

from cicd_components.judge.verdict import (
    ACCURACY_METRIC,
    RMSE_METRIC,
    Scores,
    Verdict,
    judge,
    rmse_standard_error,
    standard_error,
    tolerance_for,
)


def test_standard_error_is_wide_enough_at_a_perfect_score():
    # A baseline at 1.0 must not make the tolerance zero: the gate would flip on noise.
    assert standard_error(1.0, 67) > 0.015
    assert standard_error(0.97, 67) == pytest.approx(
        math.sqrt((0.97 * 67 + 2) / 71 * (1 - (0.97 * 67 + 2) / 71) / 71)
    )
    assert standard_error(0.97, 1000) < standard_error(0.97, 100)


def test_a_configured_tolerance_wins():
    scores = Scores(value=0.9, examples=50, baseline=0.95)
    assert tolerance_for(scores, 0.1) == 0.1
    assert tolerance_for(scores, None) == pytest.approx(standard_error(0.95, 50))


def test_one_class_data_fools_the_eval_split_but_not_the_holdout():
    # The case: the one-class model scores 1.0 on its own (one-class) eval split, 0.44 on the holdout.
    verdict = judge(
        Scores(1.0, 38, baseline=0.947), Scores(0.44, 67, baseline=0.985), threshold=0.6, tolerance=None
    )
    assert not verdict.blessed
    assert [c.name for c in verdict.checks if not c.passed] == [
        "holdout: threshold",
        "holdout: no regression",
    ]
    assert "holdout (67 examples): accuracy 0.4400 vs baseline 0.9850" in verdict.refusals[1]


def test_shuffled_labels_regress_on_the_holdout_even_above_the_threshold():
    verdict = judge(Scores(0.7, 90, baseline=0.55), Scores(0.7, 67, baseline=0.97), 0.6, None)
    assert not verdict.blessed
    assert verdict.refusals == [verdict.checks[2].line]
    assert "outside tolerance" in verdict.refusals[0]


def test_noise_within_one_standard_error_is_blessed_and_says_the_margin():
    verdict = judge(Scores(0.98, 90, baseline=0.99), Scores(0.9701, 67, baseline=0.985), 0.6, None)
    assert verdict.blessed
    line = verdict.checks[2].line
    assert line.startswith("holdout (67 examples): accuracy 0.9701 vs baseline 0.9850, change -0.0149")
    assert f"within tolerance ±{standard_error(0.985, 67):.4f}: passed" in line


def test_without_a_holdout_the_eval_split_judges_the_regression():
    verdict = judge(Scores(0.90, 100, baseline=0.97), None, 0.6, 0.02)
    assert [c.name for c in verdict.checks] == ["eval split: threshold", "eval split: no regression"]
    assert not verdict.blessed


def test_the_first_model_has_no_baseline_and_passes_on_thresholds():
    verdict = judge(Scores(0.9, 90), Scores(0.95, 67), 0.6, None)
    assert verdict.blessed and "no baseline yet" in verdict.checks[2].line
    below = judge(Scores(0.5, 90), Scores(0.95, 67), 0.6, None)
    assert not below.blessed and below.refusals == [below.checks[0].line]


def test_the_verdict_round_trips_through_json():
    verdict = judge(Scores(0.9, 90, 0.91), Scores(0.95, 67, 0.96), 0.6, None)
    assert Verdict.from_json(verdict.to_json()) == verdict


def test_the_rmse_standard_error_is_that_of_a_standard_deviation():
    # RMSE / sqrt(2n): the delta method on the MSE of n normal errors.
    assert rmse_standard_error(50.0, 88) == pytest.approx(50.0 / math.sqrt(176))
    assert rmse_standard_error(50.0, 1000) < rmse_standard_error(50.0, 100)
    assert rmse_standard_error(50.0, 0) > 0, "no division by zero on an empty set"
    assert RMSE_METRIC.standard_error(50.0, 88) == rmse_standard_error(50.0, 88)
    assert ACCURACY_METRIC.standard_error(0.97, 67) == standard_error(0.97, 67)


def test_a_regression_is_judged_lower_is_better():
    verdict = judge(Scores(52.0, 120), Scores(55.0, 88), threshold=70.0, tolerance=None, metric=RMSE_METRIC)
    assert verdict.blessed
    assert verdict.checks[0].line == (
        "eval split (120 examples): rmse 52.0000 <= threshold 70 (lower is better): passed"
    )
    above = judge(Scores(75.0, 120), Scores(55.0, 88), 70.0, None, RMSE_METRIC)
    assert not above.blessed
    assert above.refusals == [
        "eval split (120 examples): rmse 75.0000 > threshold 70 (lower is better): refused"
    ]


def test_a_higher_rmse_than_the_baseline_beyond_one_standard_error_is_refused():
    tolerance = rmse_standard_error(50.0, 88)  # about 3.77
    within = judge(Scores(52, 120), Scores(53.0, 88, baseline=50.0), 70.0, None, RMSE_METRIC)
    assert within.blessed
    assert within.checks[2].line == (
        f"holdout (88 examples): rmse 53.0000 vs baseline 50.0000, change +3.0000 (lower is better), "
        f"within tolerance ±{tolerance:.4f}: passed"
    )
    outside = judge(Scores(52, 120), Scores(54.0, 88, baseline=50.0), 70.0, None, RMSE_METRIC)
    assert not outside.blessed and "outside tolerance" in outside.refusals[0]
    # Lower is better: a candidate far below the baseline is an improvement, not a regression.
    better = judge(Scores(52, 120), Scores(30.0, 88, baseline=50.0), 70.0, 0.0, RMSE_METRIC)
    assert better.blessed


def test_the_verdict_keeps_the_metric_its_direction_and_the_numbers():
    verdict = judge(Scores(52.0, 120, 51.0), Scores(55.0, 88, 54.0), 70.0, 2.5, RMSE_METRIC)
    data = json.loads(verdict.to_json())
    assert data["metric"] == {
        "name": "rmse",
        "key": "root_mean_squared_error",
        "direction": "lower is better",
    }
    assert data["threshold"] == 70.0 and data["tolerance"] == 2.5
    assert data["scores"]["holdout"] == {"value": 55.0, "examples": 88, "baseline": 54.0}
    assert Verdict.from_json(verdict.to_json()) == verdict


def test_a_verdict_written_before_the_metric_was_kept_reads_as_accuracy():
    old = '{"blessed": true, "checks": [{"name": "eval split: threshold", "passed": true, "line": "x"}]}'
    verdict = Verdict.from_json(old)
    assert verdict.metric == ACCURACY_METRIC and verdict.blessed and verdict.scores == {}
