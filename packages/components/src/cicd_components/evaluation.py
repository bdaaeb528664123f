"""The judge's numbers and verdict, read from its output: the one reader the registry uploader and the local
run report share (TFX writes no metric onto the evaluation artifact itself)."""

import os

from cicd_components.judge.verdict import EVAL_SPLIT, HOLDOUT, HOLDOUT_DIR, VERDICT_FILE


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """The overall slice's metrics; with a baseline, also each metric of the baseline and the change."""
    import tensorflow_model_analysis as tfma  # heavy: imported only when there is an evaluation to read

    metrics = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue  # only the overall slice
        for key_and_value in slice_metrics.metric_keys_and_values:
            key = key_and_value.key
            if key.is_diff:
                name = f"{key.name} (change vs baseline)"
            elif key.model_name == "baseline":
                name = f"{key.name} (baseline)"
            else:
                name = key.name
            if key_and_value.value.HasField("double_value"):
                metrics[name] = key_and_value.value.double_value.value
    return metrics


def slice_metrics(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """The candidate's metrics on each single-feature slice, by "feature=value" (e.g. "species=Adelie": one
    class of the label); empty for an evaluation sliced no further than overall (one from before 0.3.0)."""
    import tensorflow_model_analysis as tfma

    slices: dict[str, dict[str, float]] = {}
    for sliced in tfma.load_metrics(evaluation_uri):
        keys = sliced.slice_key.single_slice_keys
        if len(keys) != 1:
            continue  # the overall slice (no key), or a cross of features
        kind = keys[0].WhichOneof("kind")
        value = getattr(keys[0], kind) if kind else ""
        value = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        metrics = slices.setdefault(f"{keys[0].column}={value}", {})
        for key_and_value in sliced.metric_keys_and_values:
            key = key_and_value.key
            if key.is_diff or key.model_name == "baseline":
                continue  # the candidate's own numbers only
            if key_and_value.value.HasField("double_value"):
                metrics[key.name] = key_and_value.value.double_value.value
    return slices


def judged_slice_metrics(evaluation_uri: str) -> dict[str, dict[str, dict[str, float]]]:
    """`slice_metrics` of the eval split ("eval split") and, when the judge scored one, of the holdout."""
    from tfx.dsl.io import fileio

    sets = {EVAL_SPLIT: slice_metrics(evaluation_uri)}
    holdout = os.path.join(evaluation_uri, HOLDOUT_DIR)
    if fileio.exists(holdout):
        sets[HOLDOUT] = slice_metrics(holdout)
    return sets


def judged_metrics(evaluation_uri: str) -> dict[str, float]:
    """The eval split's overall metrics and, when the judge scored a holdout, the holdout's ("holdout: ...")."""
    from tfx.dsl.io import fileio

    metrics = overall_metrics(evaluation_uri)
    holdout = os.path.join(evaluation_uri, HOLDOUT_DIR)
    if fileio.exists(holdout):
        metrics.update({f"holdout: {k}": v for k, v in overall_metrics(holdout).items()})
    return metrics


def verdict_checks(evaluation_uri: str) -> list[dict] | None:
    """The judge's checks (name, passed, line), or None for an evaluation with no verdict (TFX's Evaluator)."""
    import json

    from tfx.dsl.io import fileio

    path = os.path.join(evaluation_uri, VERDICT_FILE)
    if not fileio.exists(path):
        return None
    with fileio.open(path) as f:
        return json.loads(f.read())["checks"]


def validation_failures(evaluation_uri: str) -> list[str]:
    """Why the Evaluator refused a model: one line per failed threshold, empty when it passed them all."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    if result.validation_ok:
        return []
    lines = []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            key = failure.metric_key
            what = f"{key.name} (change vs baseline)" if key.is_diff else key.name
            lines.append(f"{what}: {failure.message.strip() or 'below its threshold'}")
    if result.missing_thresholds or result.missing_slices:
        lines.append("the evaluation lacked a metric or slice its thresholds name")
    return lines or ["validation failed (TFMA gave no details)"]
