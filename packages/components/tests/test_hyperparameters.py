import json
import os
import subprocess
import sys

import pytest
from tfx.types import standard_artifacts
from tfx.utils import io_utils
from tfx.v1.dsl.experimental import RuntimeParameter

from cicd_components import HyperparametersGen
from cicd_components.hyperparameters import executor
from cicd_components.hyperparameters.rule import (
    HyperparametersError,
    decode_known,
    encode_known,
    parse_hyperparameters,
)

KNOWN = {"learning_rate": "float", "hidden_units": "int", "optimizer": "str", "shuffle": "bool"}


def run(values, make_artifact, known=None):
    out = make_artifact(standard_artifacts.HyperParameters, "hyperparameters")
    properties = {"values": values} if known is None else {"values": values, "known": encode_known(known)}
    executor.Executor().Do({}, {"hyperparameters": [out]}, properties)
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
        ('{"layers": [8, 8]}', "'layers'=[8, 8] must be a number, string or boolean"),
        ('{"seed": 1, "seed": 2}', "'seed' is given twice"),
    ],
)
def test_bad_values_name_the_problem(values, message, make_artifact):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        run(values, make_artifact)


def test_with_known_the_executor_refuses_an_unknown_key(make_artifact):
    with pytest.raises(HyperparametersError, match=r"'dropout'=0.5 is not one the model takes; known: "):
        run('{"dropout": 0.5}', make_artifact, known=KNOWN)


def test_with_known_the_executor_writes_good_values(make_artifact):
    out = run('{"hidden_units": 4, "shuffle": false}', make_artifact, known=KNOWN)
    assert json.loads(out.get_string_custom_property("values")) == {"hidden_units": 4, "shuffle": False}


# The rule itself: table-driven, no TFX needed.
@pytest.mark.parametrize(
    "text, expected",
    [
        ("{}", {}),
        ('{"learning_rate": 0.5}', {"learning_rate": 0.5}),
        ('{"learning_rate": 1}', {"learning_rate": 1}),  # a float takes an integer
        ('{"hidden_units": 8}', {"hidden_units": 8}),
        ('{"optimizer": "adam"}', {"optimizer": "adam"}),
        ('{"shuffle": true}', {"shuffle": True}),
    ],
)
def test_the_rule_accepts_values_of_the_right_type(text, expected):
    assert parse_hyperparameters(text, KNOWN) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"hidden_units": "8"}', "'hidden_units'=\"8\" must be int (e.g. 8), not a string"),
        ('{"hidden_units": 8.0}', "'hidden_units'=8.0 must be int (e.g. 8), not a number"),
        ('{"hidden_units": true}', "'hidden_units'=true must be int (e.g. 8), not a boolean"),
        ('{"learning_rate": true}', "'learning_rate'=true must be float"),
        ('{"learning_rate": "0.1"}', "'learning_rate'=\"0.1\" must be float"),
        ('{"learning_rate": NaN}', "not a non-finite number"),
        ('{"learning_rate": null}', "not null"),
        ('{"optimizer": 1}', "'optimizer'=1 must be str"),
        ('{"shuffle": 1}', "'shuffle'=1 must be bool"),
        ('{"layers": [8]}', "'layers'=[8] is not one the model takes"),
        ('"{}"', "must be a JSON object, not a string"),
        ("", "not valid JSON"),
    ],
)
def test_the_rule_refuses_in_one_line_with_the_known_keys_and_types(text, message):
    with pytest.raises(HyperparametersError) as caught:
        parse_hyperparameters(text, KNOWN)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "known: hidden_units (int), learning_rate (float), optimizer (str), shuffle (bool)" in str(
        caught.value
    )


def test_the_known_table_travels_as_json():
    assert decode_known(encode_known(KNOWN)) == KNOWN
    assert decode_known("") is None
    with pytest.raises(ValueError, match="not among int, float, str, bool"):
        encode_known({"learning_rate": "double"})
    with pytest.raises(ValueError, match="JSON object of key -> type name"):
        decode_known('["int"]')


def test_the_rule_module_imports_without_tfx():
    code = "import sys, cicd_components.hyperparameters.rule; print('tfx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_values_can_be_a_runtime_parameter():
    component = HyperparametersGen(values=RuntimeParameter(name="hyperparameters", ptype=str, default="{}"))
    assert isinstance(component.exec_properties["values"], RuntimeParameter)
    assert component.outputs["hyperparameters"].type is standard_artifacts.HyperParameters


def test_known_becomes_an_execution_parameter_and_checks_a_fixed_value_early():
    component = HyperparametersGen(values='{"hidden_units": 4}', known=KNOWN)
    assert decode_known(component.exec_properties["known"]) == KNOWN
    assert not HyperparametersGen(values="{}").exec_properties.get("known")
    with pytest.raises(HyperparametersError, match="'dropout'"):
        HyperparametersGen(values='{"dropout": 0.5}', known=KNOWN)
