"""Every INVOKE_* variable a message or a document names reaches its setting, as text the settings read.

invoke maps an environment variable only onto a key its config already declares, and casts the text by the
type of the declared value (a bool default made INVOKE_CICD_ANONYMOUS_CREDENTIALS=false true; a float default
made INVOKE_CICD_REQUEST_DEADLINE_SECONDS=abc a traceback; training: declared empty ignored every
INVOKE_TRAINING_* variable). These tests load the tasks' own config the way `invoke` does and walk the names.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path

import pytest

from cicd_pipeline import config as training_lib
from cicd_release.core.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[3]
VARIABLE = re.compile(r"\bINVOKE_(CICD|TRAINING)_([A-Z0-9_]+[A-Z0-9])\b")


@pytest.fixture
def load(monkeypatch):
    """config(env) -> invoke's config for the tasks with `env` set, loaded as `invoke` loads it."""
    monkeypatch.syspath_prepend(str(ROOT))
    from invoke import Config

    from tasks import ns

    def config(env: dict[str, str]):
        for name in [n for n in os.environ if n.startswith("INVOKE_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        loaded = Config()
        loaded.load_collection(ns.configuration())
        loaded.load_shell_env()
        return loaded

    yield config
    sys.modules.pop("tasks", None)


def named_in_messages() -> set[str]:
    """The variables the settings' and the training config's messages tell a user to set."""
    names = {VARIABLE.search(_how_message(name))[0] for name in Settings.model_fields}
    fields = [f.name for f in dataclasses.fields(training_lib.TrainingConfig) if f.name != "pipeline_name"]
    return names | {VARIABLE.search(training_lib._fix(field))[0] for field in fields}


def _how_message(name: str) -> str:
    try:
        Settings().require([name])
    except SettingsError as err:
        return str(err)
    return (
        f"INVOKE_CICD_{name.upper()}"  # a setting with a default is never missing: its variable all the same
    )


def named_in_files() -> set[str]:
    """Every INVOKE_CICD_* / INVOKE_TRAINING_* variable spelled out in the code, the docs and the build files."""
    files = [
        *ROOT.glob("packages/*/src/**/*.py"),
        *ROOT.glob("tasks/*.py"),
        *ROOT.glob("docs/*.md"),
        ROOT / "README.md",
        ROOT / "cloudbuild.yaml",
        *ROOT.glob(".github/workflows/*.yml"),
    ]
    return {m[0] for path in files for m in VARIABLE.finditer(path.read_text())}


def test_every_variable_a_message_or_a_document_names_reaches_its_key_as_text(load):
    names = named_in_messages() | named_in_files()
    assert "INVOKE_TRAINING_TRAIN_STEPS" in names and "INVOKE_CICD_BUCKET" in names
    for variable in sorted(names):
        section, key = VARIABLE.match(variable).groups()
        loaded = load({variable: "probe-text"})[section.lower()]
        assert key.lower() in loaded, f"{variable} names no setting invoke knows"
        assert loaded[key.lower()] == "probe-text", (
            f"{variable} did not reach {section.lower()}.{key.lower()}"
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("false", False),
        ("no", False),
        ("0", False),
        ("off", False),
        ("true", True),
        ("yes", True),
        ("1", True),
    ],
)
def test_the_switch_is_read_from_the_variables_text(load, text, expected):
    config = load({"INVOKE_CICD_ANONYMOUS_CREDENTIALS": text})
    assert Settings.from_config(config.cicd).anonymous_credentials is expected


def test_a_number_that_is_not_one_reaches_the_settings_rule(load):
    config = load({"INVOKE_CICD_REQUEST_DEADLINE_SECONDS": "abc"})
    with pytest.raises(SettingsError, match="request_deadline_seconds='abc' is not a number of seconds"):
        Settings.from_config(config.cicd)
    assert Settings.from_config(load({}).cicd) == Settings(), "nothing set: every default holds"


def test_training_variables_set_the_training_config(load, monkeypatch):
    from invoke import Context

    from tasks._common import training_config

    env = {
        "INVOKE_TRAINING_TRAIN_STEPS": "300",
        "INVOKE_TRAINING_ACCURACY_THRESHOLD": "0.7",
        "INVOKE_TRAINING_REGRESSION_TOLERANCE": "none",
        "INVOKE_TRAINING_HYPERPARAMETERS": '{"seed": 3}',
        "INVOKE_TRAINING_LABEL": "species",
    }
    config = training_config(Context(config=load(env)))
    assert (config.train_steps, config.accuracy_threshold, config.regression_tolerance) == (300, 0.7, None)
    assert config.hyperparameters == '{"seed": 3}' and config.eval_steps == 50 and config.label == "species"
    with pytest.raises(Exception, match="INVOKE_TRAINING_TRAIN_STEPS") as caught:
        training_config(
            Context(config=load({"INVOKE_TRAINING_TRAIN_STEPS": "many", "INVOKE_TRAINING_LABEL": "species"}))
        )
    assert "training.train_steps='many'" in str(caught.value)
