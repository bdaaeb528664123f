"""Has anything a local run consumes changed since the last run? If not, its result stands, said in a second.

TFX's cache would reach the same verdict, but only after importing TFX and TensorFlow (about 20 s with
bytecode, a minute without) to find every component cached. The stamp answers first, without TFX: the
fingerprint of everything the run consumes (the data, the trainer's files, the training config, the labels,
the pipeline and components code that runs, the TFX, Beam and TFMA versions) is kept next to the run's
report; the next run with the same fingerprint, on a store whose latest run is still that one, prints the
kept report instead. Anything else, including a run of another process in between, runs the pipeline.

Import-light on purpose: hashlib, json and ml_metadata (to read the latest run's id), nothing of TFX.
"""

import dataclasses
import hashlib
import json
from importlib import metadata
from pathlib import Path

from cicd_components.files import atomic_write

# The code a run executes besides the trainer's files: the pipeline's assembly and the custom components.
_CODE_PACKAGES = ("cicd_pipeline", "cicd_components")
# Third-party code whose upgrade changes what a cached result would be.
_DISTRIBUTIONS = ("tfx", "apache-beam", "tensorflow", "tensorflow-transform", "tensorflow-model-analysis")
STAMP_FILE = "last-run.json"


@dataclasses.dataclass(frozen=True)
class Stamp:
    fingerprint: str
    run_id: str
    report: str  # what the run printed about itself: components, metrics, verdict
    blessed: bool | None
    refusals: list[str]


def _tree_digest(folder: Path, suffix: str = "") -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob(f"*{suffix}") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def code_digest() -> str:
    """The pipeline's and the components' sources as this process imports them, and the versions of the
    libraries that execute them."""
    import importlib

    h = hashlib.sha256()
    for name in _CODE_PACKAGES:
        folder = Path(importlib.import_module(name).__file__).parent
        h.update(f"{name}:{_tree_digest(folder, '.py')}\n".encode())
    for dist in _DISTRIBUTIONS:
        try:
            h.update(f"{dist}=={metadata.version(dist)}\n".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{dist} absent\n".encode())
    return h.hexdigest()


def fingerprint(root: Path, files: dict[str, Path], data_root: Path, config, labels: dict[str, str]) -> str:
    """One digest of what a run in `root` consumes: `files` (module files, schema) by content, every file
    under `data_root`, the training config, the labels and `code_digest()`."""
    parts = {
        "root": str(root.resolve()),
        "files": {n: hashlib.sha256(Path(p).read_bytes()).hexdigest() for n, p in sorted(files.items())},
        "data": _tree_digest(data_root.resolve()),
        "config": dataclasses.asdict(config),
        "labels": labels,
        "code": code_digest(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def latest_run_id(metadata_path: Path, pipeline_name: str) -> str | None:
    """The id of the latest run of `pipeline_name` in the SQLite ML Metadata store, or None."""
    if not metadata_path.exists():
        return None
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = mlmd.MetadataStore(config)
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return None
    executions = {e.id for e in store.get_executions_by_context(pipeline.id)}
    runs = [
        c
        for c in store.get_contexts_by_type("pipeline_run")
        if any(e.id in executions for e in store.get_executions_by_context(c.id))
    ]
    return max(runs, key=lambda c: c.create_time_since_epoch).name if runs else None


def read(root: Path) -> Stamp | None:
    try:
        return Stamp(**json.loads((root / STAMP_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None  # no stamp, or one from another version of this file: run


def unchanged(root: Path, fingerprint_: str, metadata_path: Path, pipeline_name: str) -> Stamp | None:
    """The last run's stamp if it has `fingerprint_` and is still the store's latest run, else None."""
    stamp = read(root)
    if stamp is None or stamp.fingerprint != fingerprint_:
        return None
    if latest_run_id(metadata_path, pipeline_name) != stamp.run_id:
        return None
    return stamp


def write(root: Path, stamp: Stamp) -> None:
    """Replaces the stamp atomically: a stopped write leaves the old stamp or none, never half of one."""
    atomic_write(root / STAMP_FILE, json.dumps(dataclasses.asdict(stamp), indent=2, sort_keys=True))


def forget(root: Path) -> None:
    """Drops the stamp (before a run starts: a run that fails half-way must not leave the old one standing)."""
    (root / STAMP_FILE).unlink(missing_ok=True)
