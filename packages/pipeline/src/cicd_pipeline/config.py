"""What a training run is, independent of where it runs: the label and the task, names, step counts, the
judge's metric and threshold, hyperparameters.

The data set's own names (its label column above all) come from the training config (`training:` in
invoke.yaml, which `invoke init` writes), never from this package: the pipeline trains whatever the config
and the trainer's module files say.

Import-light on purpose (no TFX): the release settings reuse its pipeline-name rule and hyperparameter table,
and the tasks check a user's input with them before anything heavy loads.
"""

import dataclasses
import math
import re

from cicd_components.hyperparameters.rule import HyperparametersError, parse_hyperparameters
from cicd_components.judge.verdict import METRICS, TASK_METRICS, Metric

# What a model is trained to do: predict one of a set of classes, or a number.
TASKS = tuple(TASK_METRICS)


def module_config(label: str, task: str) -> dict[str, str]:
    """What Transform and Trainer hand the module files (their `custom_config`), so the files name no label:
    the label column, the task, the name of the transformed label (which the Evaluator reads through the
    model's `transform_features` signature), and the serving output the Evaluator reads predictions from
    (class probabilities; for a regression, the predicted value under the label's own name)."""
    return {
        "label": label,
        "task": task,
        "transformed_label": f"{label}_xf",
        "prediction_key": "probabilities" if task == "classification" else label,
    }


class ConfigError(ValueError):
    """A training setting is wrong; the one-line message names it, its value and the fix."""


# The model's hyperparameters and their types: the keys of DEFAULT_HYPERPARAMETERS in the trainer's model.py,
# which cannot import this table (TFX copies that module file alone); tests/e2e/test_agreement.py keeps the two
# the same. HyperparametersGen, TrainingConfig and `pipeline.submit` all check overrides against it.
HYPERPARAMETER_TYPES: dict[str, str] = {
    "learning_rate": "float",
    "hidden_units": "int",
    "num_layers": "int",
    "batch_size": "int",
    "seed": "int",
}

# A pipeline name becomes a Vertex AI label value and the start of each run's job id,
# `<name>-<commit sha12>-<YYYYmmddHHMMSS>-<8 hex>`, which must match ^[a-z][-a-z0-9]{0,127}$ (google-cloud-aiplatform's
# PipelineJob check). 50 characters leave room for the 37-character suffix and fit a label value (<= 63).
PIPELINE_NAME_RULE = re.compile(r"^[a-z][-a-z0-9]{0,49}$")
PIPELINE_NAME_EXPECTED = "1-50 lowercase letters, digits or '-', starting with a letter, e.g. penguin-cicd"


def check_pipeline_name(value: str) -> str | None:
    """What is wrong with `value` as a pipeline name, or None if it is fine."""
    if not isinstance(value, str):
        return f"is {type(value).__name__}, not text"
    if PIPELINE_NAME_RULE.match(value):
        return None
    if not value:
        return "is empty"
    if len(value) > 50:
        return f"is {len(value)} characters long"
    if not value[0].isascii() or not value[0].islower():
        return "does not start with a lowercase letter"
    return "has a character other than lowercase letters, digits and '-'"


# The settings that `invoke run` also takes as a flag.
_FLAGS = {"train_steps": "--train-steps", "hyperparameters": "--hyperparameters"}


def _fix(field: str) -> str:
    flag = f", or pass {_FLAGS[field]}" if field in _FLAGS else ""
    init = " (`invoke init` writes it)" if field in ("label", "task", "rmse_threshold") else ""
    return f"set training.{field} in invoke.yaml{init} or INVOKE_TRAINING_{field.upper()}{flag}"


def _number(field: str, value, kind: type) -> None:
    # bool is an int in Python; `True` steps is a typo, not a count.
    accepted = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise ConfigError(
            f"training.{field}={value!r} is {type(value).__name__}; expected {kind.__name__}; {_fix(field)}."
        )


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    # The name of the pipeline, its runs and its bucket folders: the setting cicd.pipeline_name.
    pipeline_name: str = "penguin-cicd"
    model_name: str = "penguin"
    # The column the model predicts. Empty here: the data's own name comes from invoke.yaml (the penguins'
    # is `species`); a pipeline is not built without one.
    label: str = ""
    # classification (the label is a class) or regression (the label is a number).
    task: str = "classification"
    # The judge's metric (cicd_components.judge.verdict.METRICS): empty for the task's own, accuracy for a
    # classification, rmse (root mean squared error, in the label's units) for a regression.
    metric: str = ""
    train_steps: int = 200
    eval_steps: int = 50
    # The judge blesses a classifier only at or above this accuracy on the eval split and on the holdout.
    accuracy_threshold: float = 0.6
    # The judge blesses a regression only at or below this RMSE on both sets; no default (it is in the
    # label's units): `invoke init` sets the label's standard deviation, what predicting the mean scores.
    rmse_threshold: float | None = None
    # Overrides of the model's own defaults (which live in the trainer's model.py, and which the Trainer
    # records with the model in hyperparameters.json): "{}" trains with the defaults. Keys and types: see
    # HYPERPARAMETER_TYPES.
    hyperparameters: str = "{}"
    # How far behind the baseline (the last blessed model) the candidate's metric on the holdout may be and
    # still be blessed: accuracy below it, RMSE above it. None (the default): one standard error of the
    # baseline's value on the holdout, computed by each run from the set's size (accuracy: Agresti-Coull,
    # about ±0.019 for 0.97 on the shipped 67 rows; RMSE: RMSE / sqrt(2n)). Zero tolerance rejected a model
    # trained on the same rows repeated: the gate flipped on noise.
    regression_tolerance: float | None = None
    # The data gate: the fewest examples a split may hold, and each class of the label in every split.
    min_examples_per_split: int = 20
    min_examples_per_class: int = 5

    def __post_init__(self):
        wrong = check_pipeline_name(self.pipeline_name)
        if wrong:
            raise ConfigError(
                f"cicd.pipeline_name={self.pipeline_name!r} {wrong}; expected {PIPELINE_NAME_EXPECTED}; "
                "set cicd.pipeline_name in invoke.yaml or INVOKE_CICD_PIPELINE_NAME."
            )
        if not isinstance(self.model_name, str) or not self.model_name:
            raise ConfigError(
                f"training.model_name={self.model_name!r} is empty; expected a name such as penguin; "
                f"{_fix('model_name')}."
            )
        for field in ("train_steps", "eval_steps"):
            value = getattr(self, field)
            _number(field, value, int)
            if value <= 0:
                raise ConfigError(
                    f"training.{field}={value!r} must be positive; expected an integer >= 1; {_fix(field)}."
                )
        self._check_task()
        _number("accuracy_threshold", self.accuracy_threshold, float)
        if not 0.0 <= self.accuracy_threshold <= 1.0:
            raise ConfigError(
                f"training.accuracy_threshold={self.accuracy_threshold!r} is not within [0, 1]; expected a "
                f"fraction such as 0.6; {_fix('accuracy_threshold')}."
            )
        self._check_rmse_threshold()
        if self.regression_tolerance is not None:
            self._check_tolerance()
        for field in ("min_examples_per_split", "min_examples_per_class"):
            value = getattr(self, field)
            _number(field, value, int)
            if value < 0:
                raise ConfigError(
                    f"training.{field}={value!r} is negative; expected an integer >= 0; {_fix(field)}."
                )
        try:
            parse_hyperparameters(self.hyperparameters, HYPERPARAMETER_TYPES)
        except HyperparametersError as err:
            raise ConfigError(f"training.hyperparameters: {err} ({_fix('hyperparameters')}).") from None

    @property
    def judge_metric(self) -> Metric:
        """The metric the judge decides by: the configured one, or the task's own."""
        return METRICS[self.metric or TASK_METRICS[self.task][0]]

    @property
    def threshold(self) -> float | None:
        """The judge's threshold for its metric: the least accuracy, or the largest RMSE."""
        return self.rmse_threshold if self.judge_metric.name == "rmse" else self.accuracy_threshold

    def module_config(self) -> dict[str, str]:
        """The module files' `custom_config` (see `module_config`)."""
        return module_config(self.label, self.task)

    def _check_task(self) -> None:
        if not isinstance(self.label, str):
            raise ConfigError(
                f"training.label={self.label!r} is {type(self.label).__name__}, not a column name; "
                f"{_fix('label')}."
            )
        if self.task not in TASKS:
            raise ConfigError(
                f"training.task={self.task!r} is not a task; expected one of {', '.join(TASKS)}; {_fix('task')}."
            )
        if self.metric and self.metric not in TASK_METRICS[self.task]:
            raise ConfigError(
                f"training.metric={self.metric!r} does not judge a {self.task}; expected "
                f"{' or '.join(TASK_METRICS[self.task])} (or none, for the task's own); {_fix('metric')}."
            )

    def _check_rmse_threshold(self) -> None:
        if self.rmse_threshold is not None:
            _number("rmse_threshold", self.rmse_threshold, float)
            if not (math.isfinite(self.rmse_threshold) and self.rmse_threshold > 0):
                raise ConfigError(
                    f"training.rmse_threshold={self.rmse_threshold!r} must be a positive number in the "
                    f"label's units; {_fix('rmse_threshold')}."
                )
        elif self.judge_metric.name == "rmse":
            raise ConfigError(
                "training.rmse_threshold is not set, and a regression is judged by it: the largest RMSE a "
                "model may have, in the label's units (the label's standard deviation is what predicting "
                f"the mean scores); {_fix('rmse_threshold')}."
            )

    def _check_tolerance(self) -> None:
        _number("regression_tolerance", self.regression_tolerance, float)
        if self.judge_metric.name == "rmse":
            if not (math.isfinite(self.regression_tolerance) and self.regression_tolerance >= 0):
                raise ConfigError(
                    f"training.regression_tolerance={self.regression_tolerance!r} is negative; expected an "
                    "RMSE margin >= 0 in the label's units, or none for one standard error of the holdout "
                    f"RMSE; {_fix('regression_tolerance')}."
                )
            return
        if not 0.0 <= self.regression_tolerance <= 1.0:
            raise ConfigError(
                f"training.regression_tolerance={self.regression_tolerance!r} is not within [0, 1]; expected a "
                f"fraction such as 0.02, or none for one standard error of the holdout accuracy; "
                f"{_fix('regression_tolerance')}."
            )
