"""What a training run is, independent of where it runs: names, step counts, thresholds, hyperparameters.

Import-light on purpose (no TFX): the release settings reuse its pipeline-name rule and hyperparameter table,
and the tasks check a user's input with them before anything heavy loads.
"""

import dataclasses
import re

from cicd_components.hyperparameters.rule import HyperparametersError, parse_hyperparameters


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
    return f"set training.{field} in invoke.yaml or INVOKE_TRAINING_{field.upper()}{flag}"


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
    train_steps: int = 200
    eval_steps: int = 50
    # The judge blesses a model only at or above this accuracy on the eval split and on the holdout.
    accuracy_threshold: float = 0.6
    # Overrides of the model's own defaults (which live in the trainer's model.py, and which the Trainer
    # records with the model in hyperparameters.json): "{}" trains with the defaults. Keys and types: see
    # HYPERPARAMETER_TYPES.
    hyperparameters: str = "{}"
    # How far below the baseline (the last blessed model) the candidate's accuracy on the holdout may be and
    # still be blessed. None (the default): one standard error of the baseline's accuracy on the holdout,
    # computed by each run from the set's size (about ±0.019 for 0.97 on the shipped 67 rows). Zero tolerance
    # rejected a model trained on the same rows repeated: the gate flipped on noise.
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
        _number("accuracy_threshold", self.accuracy_threshold, float)
        if not 0.0 <= self.accuracy_threshold <= 1.0:
            raise ConfigError(
                f"training.accuracy_threshold={self.accuracy_threshold!r} is not within [0, 1]; expected a "
                f"fraction such as 0.6; {_fix('accuracy_threshold')}."
            )
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

    def _check_tolerance(self) -> None:
        _number("regression_tolerance", self.regression_tolerance, float)
        if not 0.0 <= self.regression_tolerance <= 1.0:
            raise ConfigError(
                f"training.regression_tolerance={self.regression_tolerance!r} is not within [0, 1]; expected a "
                f"fraction such as 0.02, or none for one standard error of the holdout accuracy; "
                f"{_fix('regression_tolerance')}."
            )
