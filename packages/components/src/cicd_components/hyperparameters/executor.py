"""HyperparametersGen's executor: checks the JSON object and writes it as the only file of the artifact."""

import json
import os
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from cicd_components.canonical import canonical_json
from cicd_components.hyperparameters.rule import decode_known, parse_hyperparameters

# TFX's Trainer reads the single file in the artifact's folder (io_utils.get_only_uri_in_dir).
FILE_NAME = "hyperparameters.json"


def parse_values(text: str, known: str = "") -> dict[str, Any]:
    """The hyperparameters as a dict, or a HyperparametersError (a ValueError) saying what is wrong.

    `known` is the component's `known` parameter: a JSON object of key -> type name, or "" to check only
    that `text` is a JSON object of numbers, strings and booleans.
    """
    return parse_hyperparameters(text, decode_known(known))


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        # Checked again here, not only when the pipeline is built: a run can override `values` at submit time.
        values = parse_values(exec_properties["values"], exec_properties.get("known") or "")
        artifact = artifact_utils.get_single_instance(output_dict["hyperparameters"])
        fileio.makedirs(artifact.uri)
        with fileio.open(os.path.join(artifact.uri, FILE_NAME), "w") as f:
            f.write(json.dumps(values, indent=2, sort_keys=True))
        # Shown beside the artifact in the Vertex AI and MLMD UIs without opening the file.
        artifact.set_string_custom_property("values", canonical_json(values, spaced=True))
