"""The Judge's executor: TFX's Evaluator executor run on the eval split and on the holdout, then one verdict.

TFMA computes the numbers (candidate, baseline, example counts); the rules live in verdict.py, so the
tolerance can follow from the size of the set and every check is written down (verdict.json) for the report.
"""

import json
import os
import tempfile
from typing import Any

from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from cicd_components.evaluation import overall_metrics
from cicd_components.judge.verdict import (
    HOLDOUT_DIR,
    METRICS,
    TRAINING_STATISTICS_DIR,
    VERDICT_FILE,
    Scores,
    judge,
)

HOLDOUT_SPLIT = "holdout"


def _copy_tree(source: str, target: str) -> None:
    for parent, _, files in fileio.walk(source):
        relative = os.path.relpath(parent, source)
        destination = os.path.normpath(os.path.join(target, relative))
        fileio.makedirs(destination)
        for name in files:
            fileio.copy(os.path.join(parent, name), os.path.join(destination, name), overwrite=True)


class Executor(evaluator_executor.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        # Of TFX's Evaluator parameters the Judge has eval_config only; each pass names its split.
        metric = METRICS[exec_properties.get("metric") or "accuracy"]
        evaluator_properties = {"eval_config": exec_properties["eval_config"]}
        evaluator_inputs = {
            k: v for k, v in input_dict.items() if k in ("examples", "model", "baseline_model") and v
        }
        super().Do(evaluator_inputs, output_dict, {**evaluator_properties, "example_splits": '["eval"]'})
        evaluation_uri = artifact_utils.get_single_uri(output_dict["evaluation"])
        eval_split = Scores.from_metrics(overall_metrics(evaluation_uri), metric)

        holdout = None
        if input_dict.get("holdout_examples"):
            holdout_evaluation = standard_artifacts.ModelEvaluation()
            holdout_evaluation.uri = os.path.join(evaluation_uri, HOLDOUT_DIR)
            fileio.makedirs(holdout_evaluation.uri)
            # TFX's executor writes a blessing of its own for each pass: the holdout's goes to a scratch
            # folder and is never recorded, so the pipeline holds one blessing per run.
            with tempfile.TemporaryDirectory() as scratch:
                scratch_blessing = standard_artifacts.ModelBlessing()
                scratch_blessing.uri = scratch
                super().Do(
                    {**evaluator_inputs, "examples": input_dict["holdout_examples"]},
                    {"evaluation": [holdout_evaluation], "blessing": [scratch_blessing]},
                    {
                        **evaluator_properties,
                        "example_splits": json.dumps([exec_properties.get("holdout_split") or HOLDOUT_SPLIT]),
                    },
                )
            holdout = Scores.from_metrics(overall_metrics(holdout_evaluation.uri), metric)

        tolerance = float(exec_properties["regression_tolerance"])
        verdict = judge(
            eval_split,
            holdout,
            float(exec_properties["threshold"]),
            None if tolerance < 0 else tolerance,
            metric,
        )
        with fileio.open(os.path.join(evaluation_uri, VERDICT_FILE), "w") as f:
            f.write(verdict.to_json())

        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        for name in ("BLESSED", "NOT_BLESSED"):
            path = os.path.join(blessing.uri, name)
            if fileio.exists(path):
                fileio.remove(path)
        # As TFX's Evaluator marks it (an empty file; a GFile opened and closed unwritten makes none).
        io_utils.write_string_file(
            os.path.join(blessing.uri, "BLESSED" if verdict.blessed else "NOT_BLESSED"), ""
        )
        blessing.set_int_custom_property("blessed", 1 if verdict.blessed else 0)
        if verdict.blessed and input_dict.get("statistics"):
            _copy_tree(
                artifact_utils.get_single_uri(input_dict["statistics"]),
                os.path.join(blessing.uri, TRAINING_STATISTICS_DIR),
            )
