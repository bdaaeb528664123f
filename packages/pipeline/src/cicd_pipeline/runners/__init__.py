"""Runners: where the pipeline runs (locally with LocalDagRunner, or compiled for Vertex AI Pipelines)."""

# Beam's DirectRunner in memory, in one process: on 2 cores the penguin pipeline ran in about half the time
# of multi_processing (see docs/platform.md); the data is small. Both runners start from it (inside each
# Vertex component container too) until a setting asks for Dataflow.
IN_MEMORY_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")


def training_arguments(config) -> dict:
    """`create_pipeline`'s arguments that come from the training config, the same for every runner: a new
    training setting reaches the local run and the Vertex compile alike."""
    return {
        "pipeline_name": config.pipeline_name,
        "model_name": config.model_name,
        "train_steps": config.train_steps,
        "eval_steps": config.eval_steps,
        "label": config.label,
        "task": config.task,
        "metric": config.judge_metric.name,
        "threshold": config.threshold,
        "regression_tolerance": config.regression_tolerance,
        "min_examples_per_split": config.min_examples_per_split,
        "min_examples_per_class": config.min_examples_per_class,
    }
