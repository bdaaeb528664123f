"""A local run as a package function: its output kept apart from its log, and its exit codes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_runstamp import record_run

from cicd_pipeline import local_session, runstamp
from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.runners.local import LocalInputs, LocalLayout

ROOT = Path(__file__).resolve().parents[3]


def test_the_output_of_this_process_and_its_children_goes_to_the_log_at_the_fd_level(tmp_path, capfd):
    log = tmp_path / "run.log"
    with local_session.output_to(log):
        os.write(2, b"as a C++ library writes at import\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('a child\\n')"], check=True)
    os.write(1, b"after\n")
    assert log.read_text().splitlines() == ["as a C++ library writes at import", "a child"]
    out, err = capfd.readouterr()
    assert (out, err) == ("after\n", "")


def run(inputs, layout, lines):
    return local_session.run(ROOT, layout, inputs, TrainingConfig(), say=lines.append)


def test_a_missing_input_is_exit_2_and_bad_data_exit_4_before_anything_runs(tmp_path):
    layout = LocalLayout(tmp_path / "state")
    lines = []
    missing = LocalInputs.in_checkout(ROOT, tmp_path / "no-data")
    result = run(missing, layout, lines)
    assert result.exit_code == 2 and result.message.startswith("Cannot run: data_root ")
    data = tmp_path / "data"
    data.mkdir()
    (data / "penguins.csv").write_text("species,bill_length_mm\nAdelie,39.1\n")
    result = run(LocalInputs.in_checkout(ROOT, data), layout, lines)
    assert result.exit_code == 4 and "data check: 1 problem(s)" in result.message
    assert "Nothing was run" in result.message
    assert lines == [] and not layout.root.exists()


def test_a_beam_mode_that_is_no_mode_is_exit_2_in_one_line_before_anything_runs(tmp_path):
    layout = LocalLayout(tmp_path / "state")
    lines = []
    inputs = LocalInputs.in_checkout(ROOT, ROOT / "data" / "penguins")

    result = local_session.run(ROOT, layout, inputs, TrainingConfig(), beam="threads", say=lines.append)

    assert result.exit_code == 2 and result.message.startswith(
        "Cannot run: Beam mode 'threads' is not one of"
    )
    assert "\n" not in result.message and lines == [] and not layout.root.exists()


def test_with_nothing_changed_the_last_result_stands_with_its_exit_code(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "penguins", data)
    inputs = LocalInputs.in_checkout(ROOT, data)
    layout = LocalLayout(tmp_path / "state")
    layout.root.mkdir()
    config = TrainingConfig()
    labels = local_session.model_labels(inputs, ROOT)
    fingerprint = runstamp.fingerprint(layout.root, inputs.files(), data, config, labels)
    record_run(layout.metadata_path, config.pipeline_name, "run-1")
    refused = ["eval split (68 examples): accuracy 0.50 < threshold 0.60: refused"]
    runstamp.write(layout.root, runstamp.Stamp(fingerprint, "run-1", "the kept report", False, refused))
    lines = []
    result = run(inputs, layout, lines)
    assert lines[0].startswith("data check: ") and lines[1] == "the kept report"
    assert "nothing changed since run run-1" in lines[2]
    assert result.exit_code == 5 and refused[0] in result.message and "Nothing was pushed" in result.message


def test_the_verdict_is_the_exit_code():
    assert local_session.verdict(True, []) == local_session.LocalResult(0)
    assert local_session.verdict(None, []).exit_code == 0, "not evaluated is not a refusal"
    assert local_session.verdict(False, []).message.startswith(
        "Not blessed: the judge refused the model (see"
    )


def test_the_local_models_labels_name_its_inputs_as_a_vertex_run_would(tmp_path):
    inputs = LocalInputs.in_checkout(ROOT, ROOT / "data" / "penguins")
    labels = local_session.model_labels(inputs, ROOT)
    assert set(labels) == {
        *(f"{p.parent.name}_version" for p in ROOT.glob("packages/*/pyproject.toml")),
        *(f"{name}_sha" for name in inputs.files()),
        "data_sha",
    }
    assert all(len(labels[f"{name}_sha"]) == 16 for name in inputs.files())
