import json
import os

import pytest
from tfx.types import standard_artifacts
from tfx.utils import io_utils
from tfx.v1.dsl.experimental import RuntimeParameter

from cicd_components import HyperparametersGen
from cicd_components.hyperparameters import executor


def run(values, make_artifact):
    out = make_artifact(standard_artifacts.HyperParameters, "hyperparameters")
    executor.Executor().Do({}, {"hyperparameters": [out]}, {"values": values})
    return out


def test_writes_the_single_file_the_trainer_reads(make_artifact):
    out = run('{"learning_rate": 0.05, "hidden_units": 16}', make_artifact)
    # Exactly what TFX's Trainer does with a hyperparameters artifact (fn_args_utils).
    path = io_utils.get_only_uri_in_dir(out.uri)
    assert os.path.basename(path) == executor.FILE_NAME
    assert json.loads(open(path).read()) == {"learning_rate": 0.05, "hidden_units": 16}
    assert json.loads(out.get_string_custom_property("values")) == {"hidden_units": 16, "learning_rate": 0.05}


@pytest.mark.parametrize(
    "values, message",
    [
        ("{learning_rate: 1}", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"layers": [8, 8]}', "'layers' must be a number"),
    ],
)
def test_bad_values_name_the_problem(values, message, make_artifact):
    with pytest.raises(ValueError, match=message):
        run(values, make_artifact)


def test_values_can_be_a_runtime_parameter():
    component = HyperparametersGen(values=RuntimeParameter(name="hyperparameters", ptype=str, default="{}"))
    assert isinstance(component.exec_properties["values"], RuntimeParameter)
    assert component.outputs["hyperparameters"].type is standard_artifacts.HyperParameters
