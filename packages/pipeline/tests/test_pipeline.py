"""create_pipeline() builds the graph we mean: the components, their order, and the gates between them."""

import hashlib
import os
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tfx.v1.dsl.experimental import RuntimeParameter

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.pipeline import create_pipeline
from cicd_pipeline.runners.local import LocalInputs, LocalLayout, build_local_pipeline, content_addressed_copy

EXPECTED = [
    "CsvExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "AnomaliesGate",
    "Transform",
    "HyperparametersGen",
    "Trainer",
    "latest_blessed_model_resolver",
    "Evaluator",
    "Pusher",
    "ModelRegistryUploader",
]


def make(**overrides):
    args = dict(
        pipeline_name="p",
        pipeline_root="/tmp/root",
        data_root="/data",
        schema_file="/schema.pbtxt",
        preprocessing_module="/pre.py",
        model_module="/model.py",
        hyperparameters="{}",
        serving_model_dir="/serving",
        registry="local:/registry",
        model_name="penguin",
        train_steps=10,
        eval_steps=5,
        label="species",
        threshold=0.6,
    )
    return create_pipeline(**{**args, **overrides})


def upstream(pipeline, node_id):
    node = next(c for c in pipeline.components if c.id == node_id)
    return {n.id for n in node.upstream_nodes}


def test_every_component_once():
    ids = [c.id for c in make().components]
    assert sorted(ids) == sorted(EXPECTED)


def test_a_holdout_adds_its_own_example_gen_feeding_the_judge():
    pipeline = make(holdout_root="/holdout")
    assert sorted(c.id for c in pipeline.components) == sorted([*EXPECTED, "HoldoutExampleGen"])
    assert "HoldoutExampleGen" in upstream(pipeline, "Evaluator")
    holdout = next(c for c in pipeline.components if c.id == "HoldoutExampleGen")
    assert holdout.exec_properties["input_base"] == "/holdout"
    assert '"name": "holdout"' in holdout.exec_properties["input_config"]


def test_both_example_gens_read_with_the_fast_executor_unless_beam_runs_on_dataflow():
    from tfx.components.example_gen.csv_example_gen.executor import Executor as TfxCsvExecutor

    from cicd_components.fast_csv.executor import Executor as FastCsvExecutor

    def readers(**overrides):
        pipeline = make(holdout_root="/holdout", **overrides)
        return {
            c.id: c.executor_spec.executor_class for c in pipeline.components if c.id.endswith("ExampleGen")
        }

    assert readers() == {"CsvExampleGen": FastCsvExecutor, "HoldoutExampleGen": FastCsvExecutor}
    on_dataflow = readers(beam_pipeline_args=["--runner=DataflowRunner", "--project=p"])
    assert on_dataflow == {"CsvExampleGen": TfxCsvExecutor, "HoldoutExampleGen": TfxCsvExecutor}


def test_the_gates_sit_between_validation_and_training():
    pipeline = make()
    # The resolver gives the gate the blessed model's blessing, where the judge kept its training statistics.
    assert upstream(pipeline, "AnomaliesGate") == {
        "ExampleValidator",
        "StatisticsGen",
        "ImportSchemaGen",
        "latest_blessed_model_resolver",
    }
    assert "AnomaliesGate" in upstream(pipeline, "Transform"), "nothing is transformed before the gate passes"
    assert upstream(pipeline, "Trainer") >= {"Transform", "HyperparametersGen", "ImportSchemaGen"}
    assert upstream(pipeline, "Evaluator") >= {"Trainer", "latest_blessed_model_resolver", "CsvExampleGen"}
    assert upstream(pipeline, "Pusher") == {"Trainer", "Evaluator"}
    assert upstream(pipeline, "ModelRegistryUploader") == {"Pusher", "Trainer", "Evaluator"}


def test_the_judge_gets_the_threshold_and_the_tolerance():
    evaluator = next(
        c for c in make(threshold=0.75, regression_tolerance=0.03).components if c.id == "Evaluator"
    )
    config = json_format.Parse(evaluator.exec_properties["eval_config"], tfma.EvalConfig())
    [metric] = [m for m in config.metrics_specs[0].metrics if m.class_name == "SparseCategoricalAccuracy"]
    assert metric.threshold.value_threshold.lower_bound.value == 0.75
    # No TFMA change threshold: the no-regression rule is the judge's, with its own tolerance.
    assert not metric.threshold.HasField("change_threshold")
    assert evaluator.exec_properties["threshold"] == 0.75
    assert evaluator.exec_properties["regression_tolerance"] == pytest.approx(0.03)
    assert list(config.model_specs[0].preprocessing_function_names) == ["transform_features"]
    assert {m.class_name for m in config.metrics_specs[0].metrics} >= {"ExampleCount"}


def test_no_tolerance_means_one_standard_error():
    evaluator = next(c for c in make().components if c.id == "Evaluator")
    assert evaluator.exec_properties["regression_tolerance"] < 0  # the judge derives it from the set


def test_registry_labels_reach_the_uploader_and_may_be_a_runtime_parameter():
    labels = RuntimeParameter(name="model_labels", ptype=str, default="{}")
    uploader = next(c for c in make(registry_labels=labels).components if c.id == "ModelRegistryUploader")
    assert uploader.exec_properties["labels"] is labels


def test_module_files_may_be_runtime_parameters():
    module = RuntimeParameter(name="model_module", ptype=str)
    trainer = next(c for c in make(model_module=module).components if c.id == "Trainer")
    assert trainer.exec_properties["module_file"] is module


def test_local_inputs_name_the_missing_one(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    inputs = LocalInputs(data, tmp_path / "schema.pbtxt", tmp_path / "pre.py", tmp_path / "model.py")
    with pytest.raises(ValueError, match="data_root .* is not a folder holding CSV files"):
        inputs.check()
    (data / "x.csv").write_text("a\n1\n")
    with pytest.raises(ValueError, match="preprocessing_module .*pre.py does not exist"):
        inputs.check()


def test_schema_reaches_the_pipeline_by_content_address(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text("feature {}\n")
    first = content_addressed_copy(schema, tmp_path / "inputs")
    schema.write_text("feature { name: 'x' }\n")
    second = content_addressed_copy(schema, tmp_path / "inputs")
    assert first != second and first.read_text() == "feature {}\n"
    assert content_addressed_copy(schema, tmp_path / "inputs") == second


def test_local_pipeline_uses_sqlite_metadata_and_in_memory_beam(tmp_path):
    for name in ("pre.py", "model.py", "schema.pbtxt"):
        (tmp_path / name).write_text("")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("a\n1\n")
    inputs = LocalInputs(
        tmp_path / "data", tmp_path / "schema.pbtxt", tmp_path / "pre.py", tmp_path / "model.py"
    )
    pipeline = build_local_pipeline(
        LocalLayout(tmp_path / "state"), inputs, TrainingConfig(label="species"), {"commit": "abc"}
    )
    assert pipeline.metadata_connection_config.sqlite.filename_uri == str(
        tmp_path / "state" / "metadata.sqlite"
    )
    assert "--direct_running_mode=in_memory" in pipeline.beam_pipeline_args
    assert Path(pipeline.pipeline_info.pipeline_root) == tmp_path / "state" / "pipeline_root"
    uploader = next(c for c in pipeline.components if c.id == "ModelRegistryUploader")
    assert uploader.exec_properties["labels"] == '{"commit": "abc"}', (
        "the local registry entry carries labels"
    )


LOADS_A_LOCAL_RUN = """
import sys
from pathlib import Path

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.runners.local import LocalInputs, LocalLayout, build_local_pipeline
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

tmp = Path(sys.argv[1])
pipeline = build_local_pipeline(
    LocalLayout(tmp / "state"),
    LocalInputs(tmp / "data", tmp / "schema.pbtxt", tmp / "pre.py", tmp / "model.py"),
    TrainingConfig(label="species"),
)
executors = [c.executor_spec.executor_class for c in pipeline.components if hasattr(c.executor_spec, "executor_class")]
print(len(executors), sorted(m for m in sys.modules if m.startswith("google.cloud.aiplatform")))
"""


def test_a_local_run_loads_no_vertex_ai_client(tmp_path):
    """What a local run imports (the pipeline, its components' executors, TFX's local runner) leaves out the
    Vertex AI client, which `tfx.v1` would load through its extensions: about 2 s of a cold run's CPU."""
    import subprocess
    import sys

    for name in ("pre.py", "model.py", "schema.pbtxt"):
        (tmp_path / name).write_text("")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("a\n1\n")
    result = subprocess.run(
        [sys.executable, "-c", LOADS_A_LOCAL_RUN, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    executors, loaded = result.stdout.split()[0], result.stdout.split(" ", 1)[1].strip()
    assert int(executors) >= 10 and loaded == "[]", result.stdout


def test_the_run_report_reads_the_registry_steps_artifact_type():
    from cicd_components import RegisteredModel
    from cicd_pipeline.report import REGISTERED_MODEL

    assert REGISTERED_MODEL == RegisteredModel.TYPE_NAME


def local_pipeline(
    tmp_path, preprocessing="def preprocessing_fn(i):\n    return i\n", model="def run_fn(a):\n    pass\n"
):
    """A local pipeline over small stand-in files in `tmp_path/src` (the files' text is what matters here)."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "preprocessing.py").write_text(preprocessing)
    (src / "model.py").write_text(model)
    (src / "schema.pbtxt").write_text("")
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "d.csv").write_text("a\n1\n")
    inputs = LocalInputs(tmp_path / "data", src / "schema.pbtxt", src / "preprocessing.py", src / "model.py")
    layout = LocalLayout(tmp_path / "state")
    pipeline = build_local_pipeline(layout, inputs, TrainingConfig(label="species"))
    return layout, {c.id: c for c in pipeline.components}


def module_of(component) -> Path:
    return Path(component.exec_properties["module_file"])


def test_each_module_file_sits_alone_in_a_folder_named_by_its_content(tmp_path):
    layout, components = local_pipeline(tmp_path)
    for node, name in (("Transform", "preprocessing.py"), ("Trainer", "model.py")):
        path = module_of(components[node])
        digest = hashlib.sha256((tmp_path / "src" / name).read_bytes()).hexdigest()
        assert path == layout.inputs_dir / digest / name
        assert sorted(p.name for p in path.parent.iterdir()) == [name], "alone: no sibling in its fingerprint"


def test_a_model_edit_moves_the_trainer_module_only(tmp_path):
    _, before = local_pipeline(tmp_path)
    _, after = local_pipeline(tmp_path, model="def run_fn(a):\n    pass  # edited\n")
    assert module_of(after["Transform"]) == module_of(before["Transform"])
    assert module_of(after["Trainer"]) != module_of(before["Trainer"])
    assert "# edited" in module_of(after["Trainer"]).read_text()


def test_local_modules_are_loaded_from_their_files_not_packed_into_wheels(tmp_path):
    _, components = local_pipeline(tmp_path)
    for node in ("Transform", "Trainer"):
        assert components[node]._pip_dependencies == [], f"{node} would build and pip-install a wheel"
    assert "UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES" not in os.environ, (
        "the switch is set only while building"
    )
    # The Vertex compile builds its components outside that switch: there the wheel is how code travels.
    trainer = next(c for c in make().components if c.id == "Trainer")
    assert len(trainer._pip_dependencies) == 1


def custom_config_of(pipeline, node_id) -> dict:
    import json

    node = next(c for c in pipeline.components if c.id == node_id)
    return json.loads(node.exec_properties["custom_config"])


def test_the_label_reaches_the_module_files_gate_and_judge_from_the_arguments():
    pipeline = make(label="target", task="regression", metric="rmse", threshold=70.0)
    expected = {
        "label": "target",
        "task": "regression",
        "transformed_label": "target_xf",
        "prediction_key": "target",
    }
    assert custom_config_of(pipeline, "Transform") == expected
    assert custom_config_of(pipeline, "Trainer") == expected
    gate = next(c for c in pipeline.components if c.id == "AnomaliesGate")
    assert gate.exec_properties["label_feature"] == "target"
    evaluator = next(c for c in pipeline.components if c.id == "Evaluator")
    config = json_format.Parse(evaluator.exec_properties["eval_config"], tfma.EvalConfig())
    assert config.model_specs[0].label_key == "target_xf"
    assert config.model_specs[0].prediction_key == "target"
    [rmse] = [m for m in config.metrics_specs[0].metrics if m.class_name == "RootMeanSquaredError"]
    # Lower is better: the threshold is an upper bound.
    assert rmse.threshold.value_threshold.upper_bound.value == 70.0
    assert not rmse.threshold.value_threshold.HasField("lower_bound")
    assert evaluator.exec_properties["metric"] == "rmse"


def test_a_classification_is_judged_by_accuracy_on_the_class_probabilities():
    evaluator = next(c for c in make().components if c.id == "Evaluator")
    config = json_format.Parse(evaluator.exec_properties["eval_config"], tfma.EvalConfig())
    assert (config.model_specs[0].label_key, config.model_specs[0].prediction_key) == (
        "species_xf",
        "probabilities",
    )
    assert evaluator.exec_properties["metric"] == "accuracy"


def test_a_pipeline_without_a_label_is_refused():
    with pytest.raises(ValueError, match="training.label"):
        make(label="")


def test_the_pipeline_package_names_no_column_of_the_shipped_data():
    # What is trained is configuration: the penguins' columns belong to invoke.yaml and the trainer's files.
    source = Path(__file__).resolve().parents[1] / "src" / "cicd_pipeline"
    for path in source.rglob("*.py"):
        text = path.read_text()
        for column in ("species", "bill_length_mm", "flipper_length_mm", "body_mass_g"):
            assert f'"{column}' not in text and f"'{column}" not in text, f"{path.name} names {column}"
