"""The local runner: LocalDagRunner, Beam's DirectRunner in memory, ML Metadata in SQLite, a folder as bucket.

TFX is imported only when a pipeline is built: the layout, the inputs and their checks load in a blink, so a
run with nothing changed can say so without a 20-second import (see `cicd_pipeline.runstamp`).
"""

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path

from cicd_components.files import atomic_write
from cicd_pipeline.beam_mode import BeamMode
from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.run_inputs import TRAINER_FILES
from cicd_pipeline.runners import IN_MEMORY_BEAM_ARGS, training_arguments


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
    """`path` copied to `folder/<sha256>/<name>` (once), alone in its folder, like the Vertex runs' uploads.

    TFX caches ImportSchemaGen by its `schema_file` *path*: an edited schema at the same path would reuse the
    old one. A path named by the content makes an edit a cache miss, as it should be. For a module file the
    folder matters too: TFX fingerprints a module by its whole folder, so `model.py` and `preprocessing.py`
    side by side would make an edit of either re-run both Transform and Trainer.
    """
    data = path.read_bytes()
    target = folder / hashlib.sha256(data).hexdigest() / path.name
    if not target.exists():
        atomic_write(target, data)
    return target


@dataclasses.dataclass(frozen=True)
class LocalInputs:
    """What a local run reads: the data folder and the trainer's files, by the names of run_inputs.TRAINER_FILES."""

    data_root: Path
    schema_file: Path
    preprocessing_module: Path
    model_module: Path
    # The fixed holdout set (a CSV file) the Judge also scores candidate and baseline on; None: no holdout.
    holdout_file: Path | None = None

    @classmethod
    def in_checkout(cls, checkout: Path, data_root: Path) -> "LocalInputs":
        """The trainer's files as they are in the working tree at `checkout` (never an installed copy)."""
        return cls(data_root=Path(data_root), **{n: Path(checkout) / p for n, p in TRAINER_FILES.items()})

    def files(self) -> dict[str, Path]:
        """The trainer's files this run reads, by name (a holdout left out is not one)."""
        return {name: getattr(self, name) for name in TRAINER_FILES if getattr(self, name) is not None}

    def check(self) -> None:
        """Raises a ValueError naming the first missing input and what to pass instead."""
        if not self.data_root.is_dir() or not any(self.data_root.glob("*.csv")):
            raise ValueError(
                f"data_root {self.data_root} is not a folder holding CSV files: pass --data-root."
            )
        for name, path in self.files().items():
            if not path.is_file():
                raise ValueError(f"{name} {path} does not exist: pass an existing file.")


# Beam's DirectRunner in memory (or multi-processing: cicd_pipeline.beam_mode), plus switches for what only
# costs time here, where the graphs are rebuilt on every run and never leave this machine
# (docs/performance.md has the profile):
# - the construction-time type check of every transform (Beam's `get_signature` led the profile), and dill
#   as pickler (cloudpickle does the same job faster): together about 7 % of a cold run's CPU;
# - a named SDK container image. Given any Beam argument and none of extra_packages, setup_file,
#   requirements_file or an SDK image, each of TFX's Beam executors (four per cold run) copies TFX's whole
#   installed folder and runs `setup.py sdist` on it, for workers to install (tfx/utils/dependency_utils.py).
#   In memory there are no workers and the image is never pulled; naming the image Beam itself would use
#   tells TFX that dependencies are taken care of.
# The Vertex runner keeps Beam's and TFX's defaults: there the graph may go to Dataflow workers.
BEAM_SDK_IMAGE = "apache/beam_python3.10_sdk:2.59.0"
LOCAL_SWITCHES = (
    "--no_pipeline_type_check",
    "--pickle_library=cloudpickle",
    f"--sdk_container_image={BEAM_SDK_IMAGE}",
)
LOCAL_BEAM_ARGS = (*IN_MEMORY_BEAM_ARGS, *LOCAL_SWITCHES)

# TFX packs each module file's folder into a wheel at pipeline construction (a `setup.py bdist_wheel` per
# module) and `pip install`s it in each executor: four subprocesses and a few seconds per run, for a copy of a
# file that is already here. This switch (read in the Transform and Trainer constructors) makes them import the
# file by path instead; the cache key still follows the content, because the path is content-addressed and
# TFX hashes a `module_file`'s text into the key. The Vertex compile never sets it: there the wheel is how
# the code reaches the container.
_LOAD_MODULES_FROM_SOURCE = "UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES"


@contextlib.contextmanager
def _modules_loaded_from_source():
    saved = os.environ.get(_LOAD_MODULES_FROM_SOURCE)
    os.environ[_LOAD_MODULES_FROM_SOURCE] = "1"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[_LOAD_MODULES_FROM_SOURCE]
        else:
            os.environ[_LOAD_MODULES_FROM_SOURCE] = saved


def load() -> None:
    """Imports TFX and the pipeline now (seconds): e.g. before a run is timed, so its time is the pipeline's."""
    import cicd_pipeline.pipeline  # noqa: F401


def build_local_pipeline(
    layout: LocalLayout,
    inputs: LocalInputs,
    config: TrainingConfig,
    labels: dict[str, str] | None = None,
    beam: BeamMode | None = None,
    trainer_backend=None,
):
    """The pipeline over local files; `labels` go with the registered model (e.g. module digests); `beam`:
    the DirectRunner's mode (None: in memory).

    `trainer_backend` (a cicd_pipeline.vertex_training.TrainerBackend) sends the Trainer to Vertex AI Training
    as a custom job; None, the default of `invoke run`, trains in this process.
    """
    from tfx.orchestration import metadata

    from cicd_pipeline.pipeline import create_pipeline

    inputs.check()
    # Beam's worker processes cannot import a module file loaded by path in this one (TFX names it
    # user_module_N here only): with multi-processing, the modules go as wheels, as TFX does by default.
    in_one_process = beam is None or beam.mode == "in_memory"
    with _modules_loaded_from_source() if in_one_process else contextlib.nullcontext():
        return create_pipeline(
            **training_arguments(config),
            pipeline_root=str(layout.pipeline_root),
            data_root=str(inputs.data_root.resolve()),
            schema_file=str(content_addressed_copy(inputs.schema_file, layout.inputs_dir)),
            preprocessing_module=str(content_addressed_copy(inputs.preprocessing_module, layout.inputs_dir)),
            model_module=str(content_addressed_copy(inputs.model_module, layout.inputs_dir)),
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
            registry_labels=json.dumps(labels or {}, sort_keys=True),
            trainer_backend=trainer_backend,
            enable_cache=True,
            metadata_connection_config=metadata.sqlite_metadata_connection_config(str(layout.metadata_path)),
            beam_pipeline_args=[*beam.args, *LOCAL_SWITCHES] if beam else list(LOCAL_BEAM_ARGS),
        )


def run_local(
    layout: LocalLayout,
    inputs: LocalInputs,
    config: TrainingConfig,
    labels: dict[str, str] | None = None,
    progress=None,
    beam: BeamMode | None = None,
    trainer_backend=None,
) -> None:
    """Runs the whole pipeline; earlier runs' outputs in `layout` are reused through TFX's cache.

    `progress(pipeline)`, when given, is the context manager the run happens in (progress.Progress).
    """
    # Not `tfx.v1`: it loads TFX's Google Cloud extensions and with them the Vertex AI client (about 2 s of
    # CPU), which a local run never uses.
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    layout = LocalLayout(layout.root.resolve())
    os.makedirs(layout.root, exist_ok=True)
    pipeline = build_local_pipeline(layout, inputs, config, labels, beam, trainer_backend)
    with progress(pipeline) if progress else contextlib.nullcontext():
        LocalDagRunner().run(pipeline)
