"""Bad data from a state that already holds a blessed model: nothing is pushed, the previous model stays, and
the run says why in a few lines, with a documented exit code and no traceback.

The blessed state is the one the shipped data's runs left (tests/e2e/conftest.py); each case runs against
it, the way a team's next run would, and must leave it as it was.
"""

import csv
import os
import random
import re
import subprocess
from pathlib import Path

import pytest

from cicd_components.anomalies_gate.executor import DataDriftError, TooFewExamplesError
from cicd_pipeline.runners.local import LocalInputs, LocalLayout, run_local
from tests.support.training import shipped_config
from tests.support.warm_python import run_module

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "data" / "penguins" / "penguins.csv"


def inputs(data_root: Path) -> LocalInputs:
    """The checkout's trainer files (never an installed cicd_trainer) over `data_root`."""
    return LocalInputs.in_checkout(ROOT, data_root)


@pytest.fixture
def blessed(runs) -> LocalLayout:
    """The state the shipped data's runs left (conftest.py): it holds a blessed, pushed, registered model."""
    layout, first, _ = runs
    assert first.blessed and pushed(layout)
    return layout


def pushed(layout: LocalLayout) -> list[str]:
    return (
        sorted(p.name for p in layout.serving_model_dir.iterdir())
        if layout.serving_model_dir.exists()
        else []
    )


def registry(layout: LocalLayout) -> str:
    path = layout.registry_dir / "registry.json"
    return path.read_text() if path.exists() else ""


def data_set(tmp_path: Path, keep) -> Path:
    """A folder holding one CSV: the shipped header and the shipped rows `keep(index, row)` selects."""
    folder = tmp_path / "data"
    folder.mkdir()
    with open(SHIPPED, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(folder / "penguins.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(row for index, row in enumerate(rows) if keep(index, row))
    return folder


def invoke_run(layout: LocalLayout, data_root: Path, *config: str) -> subprocess.CompletedProcess:
    """`invoke run` as a user types it, on the blessed state (`-f` a runtime config file, as invoke offers)."""
    return run_module(
        "invoke",
        *config,
        "run",
        "--root",
        str(layout.root),
        "--data-root",
        str(data_root),
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=900,
    )


def test_one_class_data_pushes_nothing_and_names_the_missing_classes(blessed, tmp_path):
    before = (pushed(blessed), registry(blessed))
    adelie_only = data_set(tmp_path, lambda _, row: row["species"] == "Adelie")
    with pytest.raises(TooFewExamplesError, match=r"species: Chinstrap, Gentoo below 5 examples"):
        run_local(blessed, inputs(adelie_only), shipped_config())
    assert (pushed(blessed), registry(blessed)) == before


def test_ten_rows_stop_at_the_gate_in_a_few_lines_with_exit_code_4(blessed, tmp_path, visit):
    before = (pushed(blessed), registry(blessed))
    ten_rows = data_set(tmp_path, lambda index, _: index % 34 == 0)
    result = invoke_run(blessed, ten_rows)
    assert result.returncode == 4, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and len(message) < 10, result.stderr
    assert "examples (at least 20 needed)" in result.stderr and "Full log:" in result.stderr
    assert (pushed(blessed), registry(blessed)) == before
    # The progress said where it stopped, and the run's report shows it: the gate failed, nothing after it ran.
    assert re.search(r"^ +AnomaliesGate +failed", result.stdout, re.MULTILINE), result.stdout
    report = Path(re.search(r"HTML report: (\S+)", result.stderr).group(1))
    seen = visit(report)
    assert seen.errors == [] and seen.requests == [report.as_uri()]
    states = dict(
        seen.page.locator("svg g.node").evaluate_all("gs => gs.map(g => [g.dataset.node, g.dataset.state])")
    )
    assert states["CsvExampleGen"] == "done"  # new data
    assert states["AnomaliesGate"] == "failed"
    assert {states[n] for n in ("Transform", "Trainer", "Evaluator", "Pusher")} == {"not run"}
    assert "STOPPED" in seen.page.locator(".verdict").inner_text()


def test_a_refused_model_says_which_check_refused_it_with_exit_code_5(blessed, shipped_copy, tmp_path):
    before = (pushed(blessed), registry(blessed))
    strict = tmp_path / "strict.yaml"
    strict.write_text("training:\n  accuracy_threshold: 0.9999\n")
    # The data the blessed state was trained on, where it read it: only the evaluation differs.
    result = invoke_run(blessed, shipped_copy, "-f", str(strict))
    assert result.returncode == 5, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) < 10, result.stderr
    assert "eval split (" in result.stdout and "< threshold 1.00: refused" in result.stdout
    assert "NOT BLESSED" in result.stdout and "Nothing was pushed" in result.stderr
    assert "HTML report:" in result.stdout
    assert (pushed(blessed), registry(blessed)) == before


def test_a_label_distribution_far_from_the_blessed_models_data_stops_at_the_gate(blessed, tmp_path):
    """Every class present (the counts pass), but Adelie's share moved from 0.44 to 0.82: the drift comparator
    of the curated schema, against the statistics the judge kept with the blessed model, stops it."""
    before = (pushed(blessed), registry(blessed))
    kept = {"Chinstrap": 0, "Gentoo": 0}

    def mostly_adelie(_, row):
        if row["species"] == "Adelie":
            return True
        kept[row["species"]] += 1
        return kept[row["species"]] <= 12

    with pytest.raises(
        DataDriftError, match=r"species: L_INFTY distance 0\.3\d\d .* \(most changed: Adelie\)"
    ):
        run_local(blessed, inputs(data_set(tmp_path, mostly_adelie)), shipped_config())
    assert (pushed(blessed), registry(blessed)) == before


def test_shuffled_labels_cannot_fool_the_judge_the_holdout_refuses_them(blessed, tmp_path):
    """With the threshold lowered out of the way, only the fixed holdout stands between shuffled labels and a
    push: new data's own eval split is shuffled too, and the baseline scores as badly there."""
    before = (pushed(blessed), registry(blessed))
    rows = data_set(tmp_path, lambda *_: True) / "penguins.csv"
    with open(rows, newline="") as f:
        table = list(csv.DictReader(f))
    labels = [row["species"] for row in table]
    random.Random(0).shuffle(labels)  # seeded: the same class counts, labels unrelated to the rows
    with open(rows, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows({**row, "species": label} for row, label in zip(table, labels, strict=True))
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("training:\n  accuracy_threshold: 0.3\n")
    result = invoke_run(blessed, rows.parent, "-f", str(lenient))
    assert result.returncode == 5, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) < 10, result.stderr
    refusals = [line for line in result.stdout.splitlines() if line.endswith(": refused")]
    assert len(refusals) == 1 and refusals[0].strip().startswith("holdout (67 examples)"), result.stdout
    assert "outside tolerance" in refusals[0]
    assert (pushed(blessed), registry(blessed)) == before
