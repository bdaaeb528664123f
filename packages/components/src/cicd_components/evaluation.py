"""The Evaluator's numbers, read from its TFMA output: the one reader the registry uploader and the local
run report share (TFX writes no metric onto the evaluation artifact itself)."""


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
