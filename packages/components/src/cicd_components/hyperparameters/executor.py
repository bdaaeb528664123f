"""HyperparametersGen's executor: validates the JSON object and writes it as the only file of the artifact."""

import json
import os
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

# TFX's Trainer reads the single file in the artifact's folder (io_utils.get_only_uri_in_dir).
FILE_NAME = "hyperparameters.json"


def parse_values(text: str) -> dict[str, Any]:
    """The hyperparameters as a dict, or a ValueError that says what is wrong and how to write it."""
    try:
        values = json.loads(text)
    except (TypeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"HyperparametersGen 'values' is not valid JSON ({err}): {text!r}. "
            'Pass a JSON object such as \'{"learning_rate": 0.01, "hidden_units": 8}\'.'
        ) from None
    if not isinstance(values, dict):
        raise ValueError(
            f"HyperparametersGen 'values' must be a JSON object, got {type(values).__name__}: {text!r}."
        )
    for key, value in values.items():
        if isinstance(value, (dict, list)) or value is None:
            raise ValueError(f"Hyperparameter {key!r} must be a number, string or boolean, got {value!r}.")
    return values


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        values = parse_values(exec_properties["values"])
        artifact = artifact_utils.get_single_instance(output_dict["hyperparameters"])
        fileio.makedirs(artifact.uri)
        with fileio.open(os.path.join(artifact.uri, FILE_NAME), "w") as f:
            f.write(json.dumps(values, indent=2, sort_keys=True))
        # Shown beside the artifact in the Vertex AI and MLMD UIs without opening the file.
        artifact.set_string_custom_property("values", json.dumps(values, sort_keys=True))
