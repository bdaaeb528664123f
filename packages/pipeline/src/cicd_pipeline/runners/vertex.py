"""The Vertex AI compile: the pipeline as a Kubeflow Pipelines v2 IR spec (JSON) for Vertex AI Pipelines.

The inputs that change from run to run without a code change of the pipeline (data, curated schema, the
trainer's module files, hyperparameters, the labels the registered model carries) are pipeline *runtime
parameters*: TFX then does not pack the module files into a wheel at compile time, so the spec does not
depend on them, and each run passes the content-addressed gs:// URIs that `invoke modules.upload` printed.
A trainer change needs no recompile. The same IR is what a self-hosted Kubeflow Pipelines (v2) accepts.

`python -m cicd_pipeline.runners.vertex ARGS.json OUT.json` compiles in a process of its own: the release
chain runs it with the checkout's sources first on the path, so a spec is never compiled from a stale
installed copy of the pipeline.
"""

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from tfx import v1 as tfx
from tfx.v1.dsl.experimental import RuntimeParameter

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.engines import beam_pipeline_args
from cicd_pipeline.pipeline import create_pipeline
from cicd_pipeline.run_inputs import (  # the parameter names: the interface of `invoke pipeline.submit`
    BIGQUERY_INPUT,
    DATA_ROOT,
    HOLDOUT_ROOT,
    HYPERPARAMETERS,
    MODEL_LABELS,
    MODEL_MODULE,
    PREPROCESSING_MODULE,
    SCHEMA_FILE,
)
from cicd_pipeline.runners import training_arguments
from cicd_pipeline.vertex_training import TrainerBackend


def build_vertex_pipeline(
    *,
    config: TrainingConfig,
    pipeline_root: str,
    serving_model_dir: str,
    registry: str,
    serving_image: str | None = None,
    image: str = "",
    dataflow: dict | None = None,
    trainer_backend: TrainerBackend | None = None,
    bigquery: dict | None = None,
):
    def param(name: str, default: str | None = None) -> RuntimeParameter:
        return RuntimeParameter(name=name, ptype=str, default=default)

    return create_pipeline(
        **training_arguments(config),
        pipeline_root=pipeline_root,
        data_root=param(DATA_ROOT),
        # A BigQuery source: each run passes its query (a retrain's window ends on its own day) as the
        # ExampleGen's input_config; the spec then has no data_root.
        bigquery_query=param(BIGQUERY_INPUT) if bigquery else None,
        schema_file=param(SCHEMA_FILE),
        preprocessing_module=param(PREPROCESSING_MODULE),
        model_module=param(MODEL_MODULE),
        holdout_root=param(HOLDOUT_ROOT),
        hyperparameters=param(HYPERPARAMETERS, config.hyperparameters),
        serving_model_dir=serving_model_dir,
        registry=registry,
        serving_image=serving_image,
        registry_labels=param(MODEL_LABELS, "{}"),
        trainer_backend=trainer_backend,
        enable_cache=True,
        # Beam in the task's container, or on Dataflow with the components image (cicd.beam_runner).
        beam_pipeline_args=beam_pipeline_args(dataflow, image=image, bigquery=bigquery),
    )


def compile_vertex_spec(
    *,
    config: TrainingConfig,
    pipeline_root: str,
    serving_model_dir: str,
    registry: str,
    image: str,
    serving_image: str | None = None,
    dataflow: dict | None = None,
    trainer_backend: TrainerBackend | None = None,
    bigquery: dict | None = None,
) -> dict:
    """The compiled pipeline job (a dict holding `pipelineSpec` and `runtimeConfig`); writes nothing of ours.

    `dataflow`: cicd_release.core.scale.dataflow_options' dict to run the Beam components on Dataflow, else None.
    With `trainer_backend`, the Trainer runs as a Vertex AI custom job on the components image `image` (the
    one every task runs: TFX's run_executor and the module files' imports are there). `bigquery`:
    cicd_release.core.sources.bigquery_options' dict to read the rows through BigQueryExampleGen, else None.
    """
    if not image or image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
        raise ValueError(f"image {image!r} must be a pinned tag (NAME:<version>-<hash>), never latest.")
    pipeline = build_vertex_pipeline(
        config=config,
        pipeline_root=pipeline_root,
        serving_model_dir=serving_model_dir,
        registry=registry,
        serving_image=serving_image,
        image=image,
        dataflow=dataflow,
        bigquery=bigquery,
        trainer_backend=dataclasses.replace(trainer_backend, image=image) if trainer_backend else None,
    )
    with tempfile.TemporaryDirectory() as tmp:
        runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
            config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
            output_dir=tmp,
            output_filename="pipeline.json",
        )
        runner.run(pipeline, write_out=True)
        return json.loads(Path(tmp, "pipeline.json").read_text())


def main(argv: list[str]) -> int:
    """`ARGS.json OUT.json`: compile_vertex_spec's keyword arguments in (config as a dict), the job out."""
    if len(argv) != 2:
        print("usage: python -m cicd_pipeline.runners.vertex ARGS.json OUT.json", file=sys.stderr)
        return 2
    args = json.loads(Path(argv[0]).read_text())
    args["config"] = TrainingConfig(**args["config"])
    if args.get("trainer_backend"):
        args["trainer_backend"] = TrainerBackend(**args["trainer_backend"])
    job = compile_vertex_spec(**args)
    Path(argv[1]).write_text(json.dumps(job, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
