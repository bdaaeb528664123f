import pytest

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.release.settings import Settings, SettingsError

GOOD = dict(
    project="my-project-123",
    region="europe-west4",
    bucket="my-project-ml",
    image_repo="europe-west4-docker.pkg.dev/my-project-123/training",
    service_account="vertex@my-project-123.iam.gserviceaccount.com",
)


def test_good_settings_pass_and_derive_paths():
    settings = Settings.from_config(GOOD).require(GOOD)
    assert settings.pipeline_root == "gs://my-project-ml/pipeline_root"
    assert settings.registry == "vertex:projects/my-project-123/locations/europe-west4"
    assert settings.resolved_data_root == "gs://my-project-ml/data/penguins"


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("project", "", "cicd.project is missing: set `cicd.project` in invoke.yaml, or INVOKE_CICD_PROJECT"),
        ("region", "Europe", "cicd.region='Europe' is malformed"),
        ("bucket", "gs://my-bucket", "cicd.bucket='gs://my-bucket' is malformed"),
        ("image_repo", "gcr.io/my-project/x", "Artifact Registry path"),
        ("service_account", "me@gmail.com", "cicd.service_account='me@gmail.com' is malformed"),
    ],
)
def test_a_bad_setting_is_named_with_the_fix(name, value, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_config({**GOOD, name: value}).require([name])


def test_unknown_settings_are_refused():
    with pytest.raises(SettingsError, match="cicd.projcet"):
        Settings.from_config({"projcet": "x"})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"train_steps": 0}, "must be positive"),
        ({"accuracy_threshold": 1.5}, "within"),
        ({"hyperparameters": "[1]"}, "JSON object"),
        ({"pipeline_name": "a b"}, "pipeline_name"),
    ],
)
def test_training_config_validates(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**overrides)
