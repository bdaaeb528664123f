"""What a training run is, independent of where it runs: names, step counts, thresholds, hyperparameters."""

import dataclasses
import json


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    pipeline_name: str = "penguin-cicd"
    model_name: str = "penguin"
    train_steps: int = 200
    eval_steps: int = 50
    # The Evaluator blesses a model only at or above this accuracy on the eval split (and with no regression).
    accuracy_threshold: float = 0.6
    # Overrides of the model's own defaults (which live in the trainer's model.py, and which the Trainer
    # records with the model in hyperparameters.json): "{}" trains with the defaults.
    hyperparameters: str = "{}"

    def __post_init__(self):
        if not self.pipeline_name or not all(c.isalnum() or c in "-_" for c in self.pipeline_name):
            raise ValueError(
                f"pipeline_name {self.pipeline_name!r} must be non-empty letters, digits, '-' or '_'."
            )
        if self.train_steps <= 0 or self.eval_steps <= 0:
            raise ValueError(
                f"train_steps and eval_steps must be positive, got {self.train_steps}, {self.eval_steps}."
            )
        if not 0.0 <= self.accuracy_threshold <= 1.0:
            raise ValueError(f"accuracy_threshold must be within [0, 1], got {self.accuracy_threshold}.")
        try:
            values = json.loads(self.hyperparameters)
        except json.JSONDecodeError as err:
            raise ValueError(f"hyperparameters is not valid JSON ({err}): {self.hyperparameters!r}") from None
        if not isinstance(values, dict):
            raise ValueError(f"hyperparameters must be a JSON object, got {self.hyperparameters!r}")
