"""The run's contract: the trainer's files, the runtime parameters and the model labels, named once."""

import dataclasses
import hashlib
from pathlib import Path

import pytest

from cicd_pipeline import run_inputs
from cicd_pipeline.runners.local import LocalInputs

ROOT = Path(__file__).resolve().parents[3]


def test_the_trainer_files_are_in_the_checkout_and_keep_their_names_in_the_bucket():
    for name, path in run_inputs.TRAINER_FILES.items():
        assert (ROOT / path).is_file(), f"{name}: {path}"
        assert run_inputs.BUCKET_NAMES[name] == Path(path).name
    assert run_inputs.BUCKET_NAMES["model_module"] == "model.py"


def test_the_local_inputs_are_the_data_and_the_trainer_files():
    fields = {f.name for f in dataclasses.fields(LocalInputs)}
    assert fields == {"data_root", *run_inputs.TRAINER_FILES}
    inputs = LocalInputs.in_checkout(ROOT, ROOT / "data" / "penguins")
    assert inputs.files() == {n: ROOT / p for n, p in run_inputs.TRAINER_FILES.items()}
    inputs.check()
    without_holdout = dataclasses.replace(inputs, holdout_file=None)
    assert "holdout_file" not in without_holdout.files()


def test_a_runs_parameters_are_the_compiled_specs_with_the_holdouts_folder():
    files = {n: f"gs://b/modules/{'a' * 64}/{name}" for n, name in run_inputs.BUCKET_NAMES.items()}
    values = run_inputs.runtime_parameters(files, "gs://b/data/penguins/" + "d" * 64, "{}", '{"x": "y"}')
    assert set(values) == set(run_inputs.RUNTIME_PARAMETERS)
    assert values["holdout_root"] == f"gs://b/modules/{'a' * 64}"
    assert values["model_module"] == files["model_module"]
    assert (values["hyperparameters"], values["model_labels"]) == ("{}", '{"x": "y"}')
    no_holdout = {n: u for n, u in files.items() if n != "holdout_file"}
    assert "holdout_root" not in run_inputs.runtime_parameters(no_holdout, "gs://b/d", "{}", "{}")


def test_model_labels_name_versions_files_and_data_by_short_digests():
    labels = run_inputs.model_labels({"model_module": "a" * 64}, "d" * 64, {"trainer": "0.1.0"})
    assert labels == {"trainer_version": "0.1.0", "model_module_sha": "a" * 16, "data_sha": "d" * 16}


def test_a_folders_digest_is_the_snapshot_digest_of_its_files(tmp_path):
    (tmp_path / "b.csv").write_text("x\n2\n")
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "nested").mkdir()  # a snapshot is the files directly inside
    files = [
        {"name": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in tmp_path.glob("*.csv")
    ]
    assert run_inputs.folder_digest(tmp_path) == run_inputs.snapshot_digest(files)
    assert run_inputs.file_digest(tmp_path / "a.csv") == hashlib.sha256(b"x\n1\n").hexdigest()


def test_package_versions_are_the_checkouts_static_versions(tmp_path):
    versions = run_inputs.package_versions(ROOT)
    assert set(versions) == {p.parent.name for p in ROOT.glob("packages/*/pyproject.toml")}
    assert versions["pipeline"].count(".") == 2
    package = tmp_path / "packages" / "odd"
    package.mkdir(parents=True)
    (package / "pyproject.toml").write_text('[tool.x]\nversion = "9"\n[project]\nname = "odd"\n')
    with pytest.raises(ValueError, match=r"odd/pyproject.toml: no static `version"):
        run_inputs.package_versions(tmp_path)
    (package / "pyproject.toml").write_text('[tool.x]\nversion = "9"\n[project]\nversion = "1.2.3"\n')
    assert run_inputs.package_versions(tmp_path) == {"odd": "1.2.3"}


def test_the_contract_is_import_light():
    import subprocess
    import sys

    script = (
        "import sys, cicd_pipeline.run_inputs\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tfx', 'tensorflow', 'apache_beam')))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
