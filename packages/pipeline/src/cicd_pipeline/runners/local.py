"""The local runner: LocalDagRunner, Beam's DirectRunner in memory, ML Metadata in SQLite, a folder as bucket."""

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

from tfx import v1 as tfx

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.pipeline import create_pipeline
from cicd_pipeline.runners import IN_MEMORY_BEAM_ARGS


@dataclasses.dataclass(frozen=True)
class LocalLayout:
    """Where a local run keeps its state, all under one folder (the local stand-in for the bucket)."""

    root: Path

    @property
    def pipeline_root(self) -> Path:
        return self.root / "pipeline_root"

    @property
    def metadata_path(self) -> Path:
        return self.root / "metadata.sqlite"

    @property
    def serving_model_dir(self) -> Path:
        return self.root / "serving_model"

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def inputs_dir(self) -> Path:
        return self.root / "inputs"


def content_addressed_copy(path: Path, folder: Path) -> Path:
    """`path` copied to `folder/<sha256>/<name>` (once), like the Vertex runs' uploaded inputs.

    TFX caches ImportSchemaGen by its `schema_file` *path*: an edited schema at the same path would reuse the
    old one. A path named by the content makes an edit a cache miss, as it should be.
    """
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    target = folder / digest / path.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    return target


@dataclasses.dataclass(frozen=True)
class LocalInputs:
    data_root: Path
    schema_file: Path
    preprocessing_module: Path
    model_module: Path
    # The fixed holdout set (a CSV file) the Judge also scores candidate and baseline on; None: no holdout.
    holdout_file: Path | None = None

    def check(self) -> None:
        """Raises a ValueError naming the first missing input and what to pass instead."""
        if not self.data_root.is_dir() or not any(self.data_root.glob("*.csv")):
            raise ValueError(
                f"data_root {self.data_root} is not a folder holding CSV files: pass --data-root."
            )
        files = {
            "preprocessing_module": self.preprocessing_module,
            "model_module": self.model_module,
            "schema_file": self.schema_file,
            "holdout_file": self.holdout_file,
        }
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} does not exist: pass an existing file.")


def build_local_pipeline(
    layout: LocalLayout, inputs: LocalInputs, config: TrainingConfig, labels: dict[str, str] | None = None
):
    """The pipeline over local files; `labels` go with the registered model (e.g. module digests)."""
    inputs.check()
    return create_pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=str(layout.pipeline_root),
        data_root=str(inputs.data_root.resolve()),
        schema_file=str(content_addressed_copy(inputs.schema_file, layout.inputs_dir)),
        preprocessing_module=str(inputs.preprocessing_module.resolve()),
        model_module=str(inputs.model_module.resolve()),
        # In a folder of its own named by its content, as on Vertex: CsvExampleGen reads a folder, and an
        # edited holdout is a new input, never a cache hit.
        holdout_root=(
            str(content_addressed_copy(inputs.holdout_file, layout.inputs_dir).parent)
            if inputs.holdout_file
            else None
        ),
        hyperparameters=config.hyperparameters,
        serving_model_dir=str(layout.serving_model_dir),
        registry=f"local:{layout.registry_dir}",
        model_name=config.model_name,
        train_steps=config.train_steps,
        eval_steps=config.eval_steps,
        accuracy_threshold=config.accuracy_threshold,
        regression_tolerance=config.regression_tolerance,
        min_examples_per_split=config.min_examples_per_split,
        min_examples_per_class=config.min_examples_per_class,
        registry_labels=json.dumps(labels or {}, sort_keys=True),
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(layout.metadata_path)
        ),
        beam_pipeline_args=list(IN_MEMORY_BEAM_ARGS),
    )


def run_local(
    layout: LocalLayout,
    inputs: LocalInputs,
    config: TrainingConfig,
    labels: dict[str, str] | None = None,
    progress=None,
) -> None:
    """Runs the whole pipeline; earlier runs' outputs in `layout` are reused through TFX's cache.

    `progress(pipeline)`, when given, is the context manager the run happens in (progress.Progress).
    """
    layout = LocalLayout(layout.root.resolve())
    os.makedirs(layout.root, exist_ok=True)
    pipeline = build_local_pipeline(layout, inputs, config, labels)
    with progress(pipeline) if progress else contextlib.nullcontext():
        tfx.orchestration.LocalDagRunner().run(pipeline)
