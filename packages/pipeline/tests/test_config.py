"""TrainingConfig's rules: one-line ConfigErrors naming the setting, its value and the fix."""

import subprocess
import sys

import pytest

from cicd_pipeline.config import (
    HYPERPARAMETER_TYPES,
    PIPELINE_NAME_RULE,
    ConfigError,
    TrainingConfig,
    check_pipeline_name,
)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"pipeline_name": "p"},
        {"pipeline_name": "penguin-cicd-2"},
        {"train_steps": 1, "eval_steps": 1},
        {"accuracy_threshold": 0},
        {"accuracy_threshold": 1.0},
        {"hyperparameters": '{"learning_rate": 0.02, "hidden_units": 16}'},
        {"hyperparameters": '{"learning_rate": 1, "num_layers": 3, "batch_size": 8, "seed": 0}'},
    ],
)
def test_good_values_are_accepted(overrides):
    config = TrainingConfig(**overrides)
    for name, value in overrides.items():
        assert getattr(config, name) == value


@pytest.mark.parametrize(
    "overrides, start, wrong",
    [
        ({"pipeline_name": "Bad_Name"}, "cicd.pipeline_name='Bad_Name' ", "does not start with a lowercase"),
        ({"pipeline_name": "a b"}, "cicd.pipeline_name='a b' ", "has a character other than"),
        ({"pipeline_name": ""}, "cicd.pipeline_name='' ", "is empty"),
        ({"pipeline_name": "p" * 51}, "cicd.pipeline_name=", "is 51 characters long"),
        ({"model_name": ""}, "training.model_name='' ", "is empty"),
        ({"train_steps": 0}, "training.train_steps=0 ", "must be positive"),
        ({"eval_steps": -1}, "training.eval_steps=-1 ", "must be positive"),
        ({"train_steps": "5"}, "training.train_steps='5' ", "expected int"),
        ({"train_steps": True}, "training.train_steps=True ", "expected int"),
        ({"accuracy_threshold": 1.5}, "training.accuracy_threshold=1.5 ", "is not within [0, 1]"),
        ({"accuracy_threshold": "0.5"}, "training.accuracy_threshold='0.5' ", "expected float"),
        ({"hyperparameters": '{"dropout": 0.5}'}, "training.hyperparameters: ", "'dropout'=0.5 is not one"),
        ({"hyperparameters": '{"hidden_units": "8"}'}, "training.hyperparameters: ", "must be int"),
        ({"hyperparameters": '{"hidden_units": 8.0}'}, "training.hyperparameters: ", "not a number"),
        ({"hyperparameters": '{"layers": [8]}'}, "training.hyperparameters: ", "'layers'=[8] is not one"),
        ({"hyperparameters": '{"learning_rate": true}'}, "training.hyperparameters: ", "must be float"),
        ({"hyperparameters": "[1]"}, "training.hyperparameters: ", "must be a JSON object"),
        ({"hyperparameters": "{learning_rate: 1}"}, "training.hyperparameters: ", "not valid JSON"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting_and_the_fix(overrides, start, wrong):
    with pytest.raises(ConfigError) as caught:
        TrainingConfig(**overrides)
    message = str(caught.value)
    assert message.startswith(start)
    assert wrong in message
    assert "\n" not in message
    assert "invoke.yaml" in message


def test_a_hyperparameter_message_lists_the_known_keys_and_types():
    with pytest.raises(ConfigError, match=r"known: batch_size \(int\), hidden_units \(int\), learning_rate"):
        TrainingConfig(hyperparameters='{"dropout": 0.5}')


def test_config_errors_are_value_errors():
    # Callers that caught ValueError before keep working.
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("name", ["penguin-cicd", "a", "a-1", "x" * 50])
def test_the_pipeline_name_rule_leaves_room_for_the_job_id_suffix(name):
    assert check_pipeline_name(name) is None and PIPELINE_NAME_RULE.match(name)
    # <name>-<sha12>-<YYYYmmddHHMMSS> must still be a Vertex AI job id: ^[a-z][-a-z0-9]{0,127}$.
    job_id = f"{name}-0123456789ab-20240101120000"
    assert len(job_id) <= 128


def test_the_hyperparameter_table_uses_known_type_names():
    assert set(HYPERPARAMETER_TYPES.values()) <= {"int", "float", "str", "bool"}


def test_the_config_module_imports_without_tfx():
    # The release settings import it at the start of every task.
    code = "import sys, cicd_pipeline.config; print([m for m in sys.modules if m.startswith(('tfx', 'tensorflow'))])"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_the_task_decides_the_judges_metric_and_threshold():
    classifier = TrainingConfig(label="species")
    assert (classifier.judge_metric.name, classifier.threshold) == ("accuracy", 0.6)
    assert classifier.judge_metric.direction == "higher is better"
    regression = TrainingConfig(label="target", task="regression", rmse_threshold=70.5)
    assert (regression.judge_metric.name, regression.threshold) == ("rmse", 70.5)
    assert regression.judge_metric.direction == "lower is better"
    assert regression.module_config() == {
        "label": "target",
        "task": "regression",
        "transformed_label": "target_xf",
        "prediction_key": "target",
    }


def test_an_rmse_tolerance_is_in_the_labels_units():
    # Accuracy's tolerance is a fraction; an RMSE's is a margin in the label's units, above 1 if need be.
    assert (
        TrainingConfig(task="regression", rmse_threshold=70, regression_tolerance=3.5).regression_tolerance
        == 3.5
    )


@pytest.mark.parametrize(
    "overrides, start, wrong",
    [
        ({"task": "ranking"}, "training.task='ranking' ", "is not a task"),
        ({"metric": "rmse"}, "training.metric='rmse' ", "does not judge a classification"),
        ({"task": "regression"}, "training.rmse_threshold is not set", "label's units"),
        ({"task": "regression", "rmse_threshold": -1}, "training.rmse_threshold=-1 ", "positive"),
        (
            {"task": "regression", "rmse_threshold": 9, "regression_tolerance": -2},
            "training.regression_tolerance",
            "negative",
        ),
        ({"label": 3}, "training.label=3 ", "not a column name"),
    ],
)
def test_a_bad_task_metric_or_threshold_is_one_line(overrides, start, wrong):
    with pytest.raises(ConfigError) as caught:
        TrainingConfig(**overrides)
    message = str(caught.value)
    assert message.startswith(start) and wrong in message and "\n" not in message
    assert "invoke.yaml" in message
