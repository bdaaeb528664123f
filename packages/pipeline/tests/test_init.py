"""`invoke init`'s decisions and texts: the column analysis, the holdout, the threshold, the schema, the module
files from the templates, and invoke.yaml's blocks. Plain Python over CSV text: no pipeline runs here (the e2e
tests run `invoke init` and `invoke run` on iris and diabetes)."""

import ast
import csv
import io
import random
import statistics
from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.init import render
from cicd_pipeline.init.columns import infer, infer_task, left_out
from cicd_pipeline.init.project import InitError, Table, analyse, check_name, default_name, read_table
from cicd_pipeline.init.write import Layout, check_source, check_targets, describe, files_for, write


def table(header: list[str], rows: list[list]) -> Table:
    return Table(header, [[("" if v is None else str(v)) for v in r] for r in rows], ())


def flowers(per_class=(20, 20, 20), seed=0) -> Table:
    """An iris-like table: two measurements, a text feature and a class label."""
    rng = random.Random(seed)
    rows = []
    for cls, n in zip(("a", "b", "c"), per_class, strict=False):
        for _ in range(n):
            rows.append([round(rng.uniform(1, 5), 1), rng.randint(10, 20), rng.choice(["x", "y"]), cls])
    return table(["length", "count", "colour", "kind"], rows)


# ------------------------------------------------------------------------------------------ column analysis


def test_a_columns_type_is_what_csv_example_gen_infers():
    assert infer("a", ["1", "2", "-3"]).kind == "int"
    assert infer("a", ["1", "2.5", ""]).kind == "float"
    assert infer("a", ["1", "x"]).kind == "string"
    column = infer("a", ["1.5", "", "NA", "2"])
    assert (column.kind, column.present, column.tokens, column.values) == ("float", 2, 1, (1.5, 2.0))
    # In a text column NA is a value like any other.
    assert infer("a", ["x", "NA"]).values == ("x", "NA")


@pytest.mark.parametrize(
    "name, cells, what",
    [
        ("customer", [f"c{i}" for i in range(50)], "identifier-like"),
        ("row", [str(i) for i in range(1, 51)], "identifier-like"),
        ("order_id", [str(i * 7919 % 100003) for i in range(50)], "identifier-like"),
        ("country", ["nl"] * 30, "constant"),
        ("comment", ["x", "y"] + [""] * 8, "empty in 8 of 10 rows"),
        ("blank", [""] * 10, "empty in every row"),
    ],
)
def test_a_misleading_column_is_left_out_with_its_reason(name, cells, what):
    finding = left_out(infer(name, cells))
    assert finding is not None and what in finding.what and finding.column == name
    assert "left out of the model" in finding.line() and "\n" not in finding.line()


@pytest.mark.parametrize(
    "name, cells",
    [
        ("weight", [f"{50 + i * 0.37:.2f}" for i in range(50)]),  # measurements: every value distinct, fine
        ("income", [str(1000 + i * i * 37) for i in range(50)]),  # distinct integers, no run, no key name
        ("colour", ["red", "green", "blue"] * 10),
        ("few", ["a", "b", "c"]),  # too few rows to call anything an identifier
    ],
)
def test_a_useful_column_feeds_the_model(name, cells):
    assert left_out(infer(name, cells)) is None


def test_the_task_follows_the_label():
    assert infer_task(infer("y", ["a", "b"]))[0] == "classification"
    assert infer_task(infer("y", ["0", "1", "2"] * 5))[0] == "classification"
    assert infer_task(infer("y", [str(i) for i in range(100)]))[0] == "regression"
    assert infer_task(infer("y", ["1.5", "2.5"]))[0] == "regression"


# ---------------------------------------------------------------------------------------------- decisions


def test_the_holdout_is_every_fifth_complete_row_of_each_class():
    project = analyse(flowers((20, 20, 20)), "kind", name="flowers")
    assert project.task == "classification" and project.classes == ("a", "b", "c")
    assert project.numeric == ("length", "count") and project.categorical == ("colour",)
    assert [r[3] for r in project.holdout_rows] == ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    assert len(project.train_rows) == 48
    # A third each: always answering one class scores 0.33; the threshold is 0.05 above.
    assert project.threshold == 0.39 and "0.33" in project.threshold_why


def test_an_incomplete_row_stays_in_training_and_out_of_the_holdout():
    data = flowers((10, 10, 10))
    for row in data.rows[:10]:
        row[0] = ""
    project = analyse(data, "kind", name="flowers")
    assert "a" not in [r[3] for r in project.holdout_rows]
    assert sum(r[3] == "a" for r in project.train_rows) == 10


def test_a_class_too_small_for_the_holdout_is_named_and_the_gate_lowered():
    project = analyse(flowers((30, 30, 3)), "kind", name="flowers")
    lines = [f.line() for f in project.findings]
    assert any(line.startswith("kind: class 'c' has 3 row(s), too few for the holdout") for line in lines)
    assert "c" not in {r[3] for r in project.holdout_rows}
    assert project.min_examples_per_class == 0
    assert any("training.min_examples_per_class set to 0" in line for line in lines)


def test_a_label_with_one_class_stops_init():
    data = table(["x", "y"], [[i, "a"] for i in range(30)])
    with pytest.raises(InitError, match=r"label 'y' has one class \('a' in 30 rows\)"):
        analyse(data, "y", name="d")


def test_a_label_that_is_not_a_column_names_the_columns():
    with pytest.raises(InitError, match="'colour_name' is not a column of the data; its columns are length"):
        analyse(flowers(), "colour_name", name="d")


def test_rows_without_a_label_are_left_out_and_said():
    data = flowers()
    data.rows[0][3] = ""
    project = analyse(data, "kind", name="flowers")
    assert len(project.train_rows) + len(project.holdout_rows) == 59
    assert any(f.line().startswith("kind: empty in 1 row(s): those rows left out") for f in project.findings)


def test_a_regression_holdout_spans_the_labels_range():
    rows = [[i % 7, i * 1.5, i] for i in range(100)]
    random.Random(1).shuffle(rows)
    project = analyse(table(["a", "b", "y"], rows), "y", name="d")
    assert project.task == "regression"
    holdout = sorted(int(r[2]) for r in project.holdout_rows)
    assert holdout == list(range(4, 100, 5)), "every fifth value in the label's order"
    # Predicting the mean scores the training label's standard deviation; the threshold is 5 % below.
    trained = [float(r[2]) for r in project.train_rows]
    assert project.threshold == pytest.approx(0.95 * statistics.pstdev(trained), rel=1e-3)


def test_a_text_label_cannot_be_a_regression_and_decimals_cannot_be_classes():
    with pytest.raises(InitError, match="a regression predicts a number; pass --task classification"):
        analyse(flowers(), "kind", "regression", name="d")
    data = table(["x", "y"], [[i, i / 3] for i in range(40)])
    with pytest.raises(InitError, match="pass --task regression"):
        analyse(data, "y", "classification", name="d")


def test_missing_value_tokens_become_empty_cells_and_whole_decimals_stay_decimals():
    data = table(
        ["x", "y"], [["NA" if i == 3 else ("2" if i == 4 else f"{i}.5"), "ab"[i % 2]] for i in range(40)]
    )
    project = analyse(data, "y", name="d")
    cells = {r[0] for r in project.train_rows + project.holdout_rows}
    assert "NA" not in cells and "" in cells and "2.0" in cells and "2" not in cells
    assert any("missing-value token" in f.line() for f in project.findings)


def test_small_data_lowers_the_gates_minimum_per_split():
    project = analyse(flowers((12, 12, 12)), "kind", name="flowers")
    assert project.min_examples_per_split == len(project.train_rows) // 6 < 20


@pytest.mark.parametrize("name", ["Iris", "1st", "a_b", "x" * 46, ""])
def test_a_bad_name_is_refused(name):
    with pytest.raises(InitError, match="--name"):
        check_name(name)


def test_the_default_name_comes_from_the_file(tmp_path):
    path = tmp_path / "House Prices 2024.csv"
    path.write_text("a\n1\n")
    assert default_name(path) == "house-prices-2024"


# --------------------------------------------------------------------------------------------------- texts


@pytest.fixture
def project():
    return analyse(flowers((60, 60, 60)), "kind", name="flowers", source="flowers.csv")


def test_the_schema_parses_and_says_what_init_decided(project):
    schema = text_format.Parse(render.schema_text(project), schema_pb2.Schema())
    features = {f.name: f for f in schema.feature}
    assert list(features) == ["length", "count", "colour", "kind"]
    label = features["kind"]
    assert label.type == schema_pb2.BYTES and label.presence.min_fraction == 1.0
    assert label.shape.dim[0].size == 1 and label.drift_comparator.infinity_norm.threshold == 0.25
    domains = {d.name: list(d.value) for d in schema.string_domain}
    assert domains["kind"] == ["a", "b", "c"] and domains["colour"] == ["x", "y"]
    length = features["length"]
    assert length.type == schema_pb2.FLOAT and length.value_count.max == 1
    assert length.float_domain.min <= 1 and length.float_domain.max >= 5
    assert length.drift_comparator.jensen_shannon_divergence.threshold == 0.3
    assert features["count"].int_domain.min >= 0, "never negative in the data: not below 0 in the schema"


def test_a_left_out_column_keeps_only_its_type_in_the_schema():
    data = flowers()
    data.header.append("id")
    for i, row in enumerate(data.rows):
        row.append(str(i + 1))
    schema = text_format.Parse(render.schema_text(analyse(data, "kind", name="d")), schema_pb2.Schema())
    [ident] = [f for f in schema.feature if f.name == "id"]
    assert ident.type == schema_pb2.INT and not ident.HasField("int_domain")
    assert not ident.HasField("drift_comparator")


def test_the_module_files_stand_alone_and_list_the_features(project):
    for name, text in render.module_texts(project).items():
        tree = ast.parse(text, filename=name)
        imported = {
            a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not imported & {"cicd_trainer", "cicd_pipeline", "preprocessing", "model"}, name
        assigned = {
            t.id: ast.literal_eval(n.value)
            for n in tree.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name) and t.id.endswith("_FEATURES")
        }
        assert assigned == {"NUMERIC_FEATURES": ("length", "count"), "CATEGORICAL_FEATURES": ("colour",)}
        assert "kind" not in text, "the label comes from custom_config, never from the file"


def test_the_trainer_tests_get_the_pipelines_custom_config(project):
    texts = render.test_texts(project)
    conftest = ast.parse(texts["conftest.py"])
    [config] = [
        ast.literal_eval(n.value)
        for n in conftest.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "CUSTOM_CONFIG"
    ]
    assert config == TrainingConfig(label="kind").module_config()
    tests = ast.parse(texts["test_module_files.py"])
    assert any(isinstance(n, ast.FunctionDef) and n.name.startswith("test_") for n in tests.body)


def test_init_replaces_the_trainers_other_tests(tmp_path):
    layout = checkout(tmp_path)
    layout.trainer_tests.mkdir(parents=True)
    for name in ("conftest.py", "test_model.py", "test_preprocessing.py", "test_module_files.py"):
        (layout.trainer_tests / name).write_text("")
    assert [p.name for p in layout.replaced_tests()] == ["test_model.py", "test_preprocessing.py"]


def test_the_models_hyperparameters_are_the_pipelines():
    from cicd_pipeline.config import HYPERPARAMETER_TYPES

    text = render.module_texts(analyse(flowers(), "kind", name="d"))["model.py"]
    tree = ast.parse(text)
    [defaults] = [
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "DEFAULT_HYPERPARAMETERS"
    ]
    assert set(defaults) == set(HYPERPARAMETER_TYPES)


SHIPPED_YAML = """# a comment kept
cicd:
  project: my-project-123   # kept
  pipeline_name: penguin-cicd
  dataset: penguins
training:
  model_name: penguin
  label: species
  train_steps: 100

other:
  x: 1
"""


def test_invoke_yaml_gets_the_training_block_and_keeps_every_other_line(project):
    text = render.invoke_yaml(SHIPPED_YAML, project)
    data = yaml.safe_load(text)
    assert data["cicd"] == {
        "project": "my-project-123",
        "pipeline_name": "flowers-cicd",
        "dataset": "flowers",
    }
    assert data["other"] == {"x": 1} and "# a comment kept" in text and "# kept" in text
    assert data["training"] == {
        "model_name": "flowers",
        "label": "kind",
        "task": "classification",
        "accuracy_threshold": 0.39,
    }
    # What init writes is a valid training config.
    config = TrainingConfig(**data["training"], pipeline_name=data["cicd"]["pipeline_name"])
    assert (config.label, config.threshold) == ("kind", 0.39)


def test_invoke_yaml_is_made_when_there_is_none_and_a_regression_says_its_threshold():
    rows = [[i % 7, i] for i in range(100)]
    project = analyse(table(["a", "odd label: y"], rows), "odd label: y", name="d")
    data = yaml.safe_load(render.invoke_yaml(None, project))
    assert data["cicd"] == {"pipeline_name": "d-cicd", "dataset": "d"}
    assert data["training"]["label"] == "odd label: y" and data["training"]["task"] == "regression"
    config = TrainingConfig(**data["training"])
    assert config.judge_metric.name == "rmse" and config.threshold == project.threshold


# ---------------------------------------------------------------------------------------------- the files


def checkout(tmp_path) -> Layout:
    trainer = tmp_path / "packages" / "trainer"
    names = {
        "preprocessing_module": "preprocessing.py",
        "model_module": "model.py",
        "schema_file": "schema/schema.pbtxt",
        "holdout_file": "holdout/holdout.csv",
    }
    return Layout(tmp_path, {k: trainer / v for k, v in names.items()})


def csv_file(path: Path, data: Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(data.header)
        writer.writerows(data.rows)
    return path


def test_init_writes_the_project_and_then_finds_nothing_to_replace(tmp_path):
    layout = checkout(tmp_path)
    source = csv_file(tmp_path / "in" / "flowers.csv", flowers())
    project = analyse(read_table(source), "kind", name="flowers", source="flowers.csv")
    files = files_for(project, layout)
    assert check_targets(files, source, layout, "flowers") == []
    write(files)
    assert read_table(tmp_path / "data" / "flowers").rows == project.train_rows
    assert check_targets(files_for(project, layout), source, layout, "flowers") == []
    layout.trainer["model_module"].write_text("# the penguins' model\n")
    assert check_targets(files, source, layout, "flowers") == [layout.trainer["model_module"]]
    lines = describe(project, files, layout)
    assert lines[-1].startswith("next: invoke run")
    assert any(line.strip().startswith("data/flowers/flowers.csv") for line in lines)


def test_init_never_writes_over_its_own_input_nor_beside_other_data(tmp_path):
    layout = checkout(tmp_path)
    inside = csv_file(tmp_path / "data" / "flowers" / "flowers.csv", flowers())
    project = analyse(read_table(inside), "kind", name="flowers")
    with pytest.raises(InitError, match="inside data/flowers, where init writes the training rows"):
        check_targets(files_for(project, layout), inside, layout, "flowers")
    outside = csv_file(tmp_path / "in.csv", flowers())
    csv_file(tmp_path / "data" / "flowers" / "2024.csv", flowers())
    inside.unlink()
    with pytest.raises(InitError, match=r"holds other files \(2024.csv\)"):
        check_targets(files_for(project, layout), outside, layout, "flowers")


def test_the_data_checks_rules_run_on_a_single_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    report = check_source(bad)
    assert not report.ok and report.problems[0].startswith("bad.csv:3")
    assert not check_source(tmp_path / "missing.csv").ok
    text = io.StringIO()
    csv.writer(text).writerows([["a"], ["1"]])
    (tmp_path / "good.csv").write_text(text.getvalue())
    assert check_source(tmp_path / "good.csv").ok
