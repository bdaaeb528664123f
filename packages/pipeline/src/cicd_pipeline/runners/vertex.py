"""The Vertex AI runner: compiles the pipeline to a Kubeflow Pipelines v2 IR spec (JSON) for Vertex AI Pipelines.

The inputs that change from run to run without a code change of the pipeline (data, curated schema, the
trainer's module files, hyperparameters) are pipeline *runtime parameters*: TFX then does not pack the module
files into a wheel at compile time, so the spec does not depend on them, and each run passes the
content-addressed gs:// URIs that `invoke modules.upload` printed. A trainer change needs no recompile.
The same IR is what a self-hosted Kubeflow Pipelines (v2) accepts.
"""

import json
import os
import tempfile
from pathlib import Path

from tfx import v1 as tfx
from tfx.v1.dsl.experimental import RuntimeParameter

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.pipeline import create_pipeline
from cicd_pipeline.runners import IN_MEMORY_BEAM_ARGS

# Parameter names are the interface of `invoke pipeline.submit`: keep them stable.
DATA_ROOT = "data_root"
SCHEMA_FILE = "schema_file"
PREPROCESSING_MODULE = "preprocessing_module"
MODEL_MODULE = "model_module"
HYPERPARAMETERS = "hyperparameters"
RUNTIME_PARAMETERS = (DATA_ROOT, SCHEMA_FILE, PREPROCESSING_MODULE, MODEL_MODULE, HYPERPARAMETERS)

# Fields the compiler stamps that do not come from our inputs; tests compare specs without them.
STAMPED_FIELDS = ("sdkVersion", "labels")

DEFAULT_BEAM_ARGS = IN_MEMORY_BEAM_ARGS


def build_vertex_pipeline(
    *,
    config: TrainingConfig,
    pipeline_root: str,
    serving_model_dir: str,
    registry: str,
    serving_image: str | None = None,
    beam_args=DEFAULT_BEAM_ARGS,
):
    def param(name: str, default: str | None = None) -> RuntimeParameter:
        return RuntimeParameter(name=name, ptype=str, default=default)

    return create_pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root,
        data_root=param(DATA_ROOT),
        schema_file=param(SCHEMA_FILE),
        preprocessing_module=param(PREPROCESSING_MODULE),
        model_module=param(MODEL_MODULE),
        hyperparameters=param(HYPERPARAMETERS, config.hyperparameters),
        serving_model_dir=serving_model_dir,
        registry=registry,
        model_name=config.model_name,
        train_steps=config.train_steps,
        eval_steps=config.eval_steps,
        accuracy_threshold=config.accuracy_threshold,
        serving_image=serving_image,
        enable_cache=True,
        beam_pipeline_args=list(beam_args),
    )


def compile_vertex_spec(
    *,
    config: TrainingConfig,
    pipeline_root: str,
    serving_model_dir: str,
    registry: str,
    image: str,
    serving_image: str | None = None,
    beam_args=DEFAULT_BEAM_ARGS,
) -> dict:
    """The compiled pipeline job (a dict holding `pipelineSpec` and `runtimeConfig`); writes nothing of ours."""
    if not image or image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
        raise ValueError(f"image {image!r} must be a pinned tag (NAME:<version>-<hash>), never latest.")
    pipeline = build_vertex_pipeline(
        config=config,
        pipeline_root=pipeline_root,
        serving_model_dir=serving_model_dir,
        registry=registry,
        serving_image=serving_image,
        beam_args=beam_args,
    )
    with tempfile.TemporaryDirectory() as tmp:
        runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
            config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
            output_dir=tmp,
            output_filename="pipeline.json",
        )
        runner.run(pipeline, write_out=True)
        return json.loads(Path(tmp, "pipeline.json").read_text())


def write_spec(job: dict, out_dir: Path, name: str) -> Path:
    """Writes the spec as canonical JSON at out_dir/name, atomically; refuses to replace different content."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    data = json.dumps(job, indent=2, sort_keys=True) + "\n"
    if target.exists():
        if target.read_text() != data:
            raise FileExistsError(f"{target} exists with other content; specs are never overwritten.")
        return target
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".spec-")
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.replace(tmp, target)
    return target
