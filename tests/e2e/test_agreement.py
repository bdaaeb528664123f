"""The pipeline's hyperparameter table and the trainer's defaults name the same keys with the same types.

They live apart because TFX copies the trainer's model.py alone (it cannot import the pipeline's table); this
test is what keeps them one rule. It is here because only the e2e session installs both packages.
"""

import cicd_trainer.model as model
from cicd_components.canonical import canonical_json
from cicd_components.hyperparameters.rule import parse_hyperparameters
from cicd_pipeline.config import HYPERPARAMETER_TYPES

PYTHON_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def test_the_table_names_the_model_defaults_with_their_types():
    assert set(HYPERPARAMETER_TYPES) == set(model.DEFAULT_HYPERPARAMETERS)
    for key, default in model.DEFAULT_HYPERPARAMETERS.items():
        assert type(default) is PYTHON_TYPES[HYPERPARAMETER_TYPES[key]], key


def test_the_model_defaults_pass_the_rule_and_the_trainer_reads_them_back():
    values = parse_hyperparameters(
        canonical_json(model.DEFAULT_HYPERPARAMETERS, spaced=True), HYPERPARAMETER_TYPES
    )
    assert model.hyperparameters_from(values) == model.DEFAULT_HYPERPARAMETERS
