"""The run's contract: what a training run consumes, named once for the runners and for the release chain.

What is trained (this package) and how it ships (cicd_release) meet here: the trainer's files and where they
sit in the repository, the runtime parameters of the compiled spec, and the labels a registered model
carries. The local run, the Vertex compile, the module upload and every Vertex run import these, so a model
trained locally and one trained on Vertex carry the same labels by construction.

Import-light on purpose (hashlib, json, re): no TFX, so the release chain and a run with nothing changed
can read it in a blink.
"""

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

# The compiled spec's runtime parameters: `invoke pipeline.submit` passes a value for each. Keep them stable.
DATA_ROOT = "data_root"
SCHEMA_FILE = "schema_file"
PREPROCESSING_MODULE = "preprocessing_module"
MODEL_MODULE = "model_module"
# The folder of the fixed holdout set (CsvExampleGen reads a folder): its content-addressed upload's folder.
HOLDOUT_ROOT = "holdout_root"
HYPERPARAMETERS = "hyperparameters"
# A JSON object of labels for the Model Registry version (commit, package versions, module and data digests).
MODEL_LABELS = "model_labels"
RUNTIME_PARAMETERS = (
    DATA_ROOT,
    SCHEMA_FILE,
    PREPROCESSING_MODULE,
    MODEL_MODULE,
    HOLDOUT_ROOT,
    HYPERPARAMETERS,
    MODEL_LABELS,
)
# A BigQuery source's spec (cicd.source=bigquery) takes the run's query here in place of DATA_ROOT: the
# ExampleGen's input_config as JSON (cicd_pipeline.bigquery_source.input_config).
BIGQUERY_INPUT = "bigquery_input"
# The holdout travels as a file (uploaded, copied, labelled) and reaches the pipeline as its folder.
HOLDOUT_FILE = "holdout_file"

# The trainer's files a run reads, by name, as repository paths: the local run reads them from the working
# tree, the release chain uploads them. Nothing imports the trainer: TFX loads its modules by path.
TRAINER_FILES = {
    PREPROCESSING_MODULE: "packages/trainer/src/cicd_trainer/preprocessing.py",
    MODEL_MODULE: "packages/trainer/src/cicd_trainer/model.py",
    SCHEMA_FILE: "packages/trainer/src/cicd_trainer/schema/schema.pbtxt",
    # The fixed holdout set the Judge also scores candidate and baseline on; the run reads its folder.
    HOLDOUT_FILE: "packages/trainer/src/cicd_trainer/holdout/holdout.csv",
}
# Their names in the bucket (`modules/<sha256>/<name>`): the repository path's last part.
BUCKET_NAMES = {name: PurePosixPath(path).name for name, path in TRAINER_FILES.items()}

# Vertex AI keeps label values to 63 characters; 16 hex digits name a content digest well enough there.
LABEL_DIGEST = 16


def file_digest(path: Path) -> str:
    """sha256 (hex) of a file's bytes: what its content-addressed copy or upload is named by."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot_digest(files: list[dict] | tuple[dict, ...]) -> str:
    """sha256 over each file's name and sha256, in name order: the same files, the same snapshot."""
    digest = hashlib.sha256()
    for entry in sorted(files, key=lambda f: f["name"]):
        digest.update(f"{entry['name']}\0{entry['sha256']}\n".encode())
    return digest.hexdigest()


def folder_digest(source: Path) -> str:
    """The sha256 a snapshot of ``source`` would have (its files directly inside), without the data check:
    what a local run labels its model with, so a model trained locally names the snapshot of the same data."""
    files = [
        {"name": path.name, "sha256": file_digest(path)}
        for path in sorted(source.iterdir())
        if path.is_file()
    ]
    return snapshot_digest(files)


def model_labels(
    file_digests: Mapping[str, str], data_digest: str, versions: Mapping[str, str]
) -> dict[str, str]:
    """What a registered model carries of its inputs, local or on Vertex: each package's version, each trainer
    file's digest (`<name>_sha`) and the data's (`data_sha`, a snapshot's digest), cut to LABEL_DIGEST."""
    return {
        **{f"{package}_version": version for package, version in versions.items()},
        **{f"{name}_sha": digest[:LABEL_DIGEST] for name, digest in file_digests.items()},
        "data_sha": data_digest[:LABEL_DIGEST],
    }


def runtime_parameters(
    files: Mapping[str, str],
    data_root: str,
    hyperparameters: str,
    labels: str,
    *,
    bigquery_input: str | None = None,
) -> dict[str, str]:
    """The compiled spec's parameter values for one run: `files` (the trainer's files' URIs, by the names of
    TRAINER_FILES), the data folder, the hyperparameters and the model labels (both JSON). With
    `bigquery_input` (a BigQuery source's spec) that replaces the data folder, which such a spec does not have."""
    parameters = {name: uri for name, uri in files.items() if name != HOLDOUT_FILE}
    if HOLDOUT_FILE in files:
        # CsvExampleGen reads a folder: the holdout's content-addressed folder holds that one file.
        parameters[HOLDOUT_ROOT] = files[HOLDOUT_FILE].rsplit("/", 1)[0]
    data = {BIGQUERY_INPUT: bigquery_input} if bigquery_input is not None else {DATA_ROOT: data_root}
    return {**parameters, **data, HYPERPARAMETERS: hyperparameters, MODEL_LABELS: labels}


_TABLE = re.compile(r"^\s*\[\s*([^\]\s]+)\s*\]")
_VERSION = re.compile(r"""^\s*version\s*=\s*["']([^"'\n]+)["']""")


def package_versions(checkout: Path) -> dict[str, str]:
    """Each package's static `[project] version` in the checkout at `checkout` (packages/*/pyproject.toml):
    what the models trained from it are labelled with. A package without one is a ValueError naming it."""
    versions = {}
    for pyproject in sorted(Path(checkout).glob("packages/*/pyproject.toml")):
        table = None
        for line in pyproject.read_text(encoding="utf-8").splitlines():
            if header := _TABLE.match(line):
                table = header.group(1)
            elif table == "project" and (match := _VERSION.match(line)):
                versions[pyproject.parent.name] = match.group(1).strip()
                break
        else:
            raise ValueError(f'{pyproject}: no static `version = "X.Y.Z"` in its [project] table.')
    return versions
