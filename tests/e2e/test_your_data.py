"""Your own data in minutes, as a new user does it, from a clean clone: `invoke init` on a CSV and a label, then
`invoke run` ends BLESSED; an edit of the generated model file re-runs from the Trainer; the release plan
treats the generated files like the penguins'.

The data is public and written by no one here: the iris and diabetes sets that scikit-learn ships inside its
package (sklearn/datasets/data/), turned into plain CSV files with a header and named columns.
"""

import csv
import gzip
import json
import os
from importlib import resources
from pathlib import Path

import pytest

from cicd_release.plan.changes import make_plan
from tests.support.checkout import clone, git, invoke  # noqa: F401  (clone is a fixture)

SKLEARN_DATA = "sklearn.datasets"
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
# sklearn/datasets/descr/diabetes.rst: age, sex, body mass index, average blood pressure, six blood serum
# measurements; the target is a measure of disease progression one year after baseline.
DIABETES_COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "progression"]


def _data_file(name: str):
    return resources.files(SKLEARN_DATA).joinpath("data", name)


def iris_csv(folder: Path) -> Path:
    """iris.csv of scikit-learn: its first line is `150,4,setosa,versicolor,virginica`, the rows end in a class
    number. Written with a header and the species' names."""
    lines = _data_file("iris.csv").read_text().splitlines()
    names = lines[0].split(",")[2:]
    path = folder / "iris.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(IRIS_COLUMNS)
        for line in lines[1:]:
            *measurements, species = line.split(",")
            writer.writerow([*measurements, names[int(species)]])
    return path


def diabetes_csv(folder: Path) -> Path:
    """diabetes_data_raw.csv.gz (space-separated, no header) beside diabetes_target.csv.gz, as one CSV."""
    rows = gzip.decompress(_data_file("diabetes_data_raw.csv.gz").read_bytes()).decode().split("\n")
    targets = gzip.decompress(_data_file("diabetes_target.csv.gz").read_bytes()).decode().split("\n")
    rows, targets = [r.split() for r in rows if r.strip()], [t for t in targets if t.strip()]
    path = folder / "diabetes.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(DIABETES_COLUMNS)
        for row, target in zip(rows, targets, strict=True):
            writer.writerow([*row, f"{float(target):g}"])
    return path


CASES = {
    "iris": (iris_csv, "species", "classification", "accuracy", 150),
    "diabetes": (diabetes_csv, "progression", "regression", "rmse", 442),
}


def environment(repo: Path) -> dict:
    """The clone's own packages first on the path: the run is the clone's code, not the session's install."""
    sources = [str(repo / "packages" / p / "src") for p in ("components", "pipeline", "release", "trainer")]
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")},
        "PYTHONPATH": os.pathsep.join(sources),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def section(output: str, name: str) -> list[str]:
    """The components listed on the `  executed: ...` or `  cached: ...` line of a run's summary."""
    [line] = [ln for ln in output.splitlines() if ln.strip().startswith(f"{name}:")]
    return [c.strip() for c in line.split(":", 1)[1].split(",")]


def verdicts(repo: Path) -> list[dict]:
    """Every verdict.json the judge wrote in the clone's local runs, oldest first."""
    paths = sorted((repo / ".cicd" / "local" / "pipeline_root" / "Evaluator").rglob("verdict.json"))
    return [json.loads(p.read_text()) for p in paths]


@pytest.mark.parametrize("case", sorted(CASES))
def test_init_then_run_is_blessed_and_a_model_edit_reruns_from_the_trainer(case, clone, tmp_path):  # noqa: F811
    make_csv, label, task, metric, rows = CASES[case]
    source = make_csv(tmp_path)
    env = environment(clone)

    # The shipped penguins' files are there: init names them and replaces nothing without --force.
    out, _ = invoke(clone, env, "init", "--data", str(source), "--label", label, code=2)
    assert "would replace" in out and "--force" in out and "model.py" in out
    assert not git(clone, "status", "--porcelain", "--untracked-files=all"), "nothing was written"

    out, _ = invoke(clone, env, "init", "--data", str(source), "--label", label, "--force")
    assert out.splitlines()[0].startswith(f"{case}: {rows} rows")
    assert f"task {task}" in out and out.splitlines()[-1].startswith("next: invoke run")
    trainer = "packages/trainer/src/cicd_trainer"
    assert set(git(clone, "ls-files", "--modified").split("\n")) == {
        "invoke.yaml",
        f"{trainer}/model.py",
        f"{trainer}/preprocessing.py",
        f"{trainer}/schema/schema.pbtxt",
        f"{trainer}/holdout/holdout.csv",
        # The penguins' trainer tests give way to tests of the generated files (on the holdout's rows).
        "packages/trainer/tests/conftest.py",
        "packages/trainer/tests/test_model.py",
        "packages/trainer/tests/test_preprocessing.py",
    }, "init writes where the penguins' files live"
    assert set(git(clone, "ls-files", "--others", "--exclude-standard").split("\n")) == {
        f"data/{case}/{case}.csv",
        "packages/trainer/tests/test_module_files.py",
    }

    out, _ = invoke(clone, env, "run")
    assert "model: BLESSED" in out, out
    [first] = verdicts(clone)
    assert first["blessed"] and first["metric"]["name"] == metric
    if task == "regression":
        assert first["metric"]["direction"] == "lower is better"
        assert "rmse" in out and "(lower is better): passed" in out, out

    # The release chain: the init commit changes invoke.yaml (a shared build input: everything is rebuilt for
    # the new label and metric); a model edit is a trainer change, released as the penguins' module files are.
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", f"init {case}")
    assert make_plan(str(clone), "HEAD~1").workflow == "full"
    model = clone / trainer / "model.py"
    model.write_text(model.read_text() + "# edited: the next run starts at the Trainer\n")
    git(clone, "commit", "-q", "-am", "edit the model")
    plan = make_plan(str(clone), "HEAD~1")
    assert (plan.workflow, plan.changed_packages) == ("modules", ("trainer",))

    out, _ = invoke(clone, env, "run")
    assert "Trainer" in section(out, "executed") and "Transform" in section(out, "cached"), out
    assert "CsvExampleGen" in section(out, "cached")
    assert "model: BLESSED" in out, out
    second = verdicts(clone)[-1]
    assert second["scores"]["holdout"]["baseline"] is not None, "judged against the first model"
