"""The settings model: each field's rule, the one-line messages, require(), the switch, and the exit codes."""

import subprocess
import sys

import pytest

from cicd_release.core.errors import InputError, MissingResourceError, ReleaseError, SettingsError
from cicd_release.core.settings import Settings, parse_run_hyperparameters, setting_message

GOOD = dict(
    project="my-project-123",
    region="europe-west4",
    bucket="my-project-ml",
    image_repo="europe-west4-docker.pkg.dev/my-project-123/training",
    service_account="vertex@my-project-123.iam.gserviceaccount.com",
)
DIGEST = "sha256:" + "0" * 64


def test_good_settings_pass_and_derive_paths():
    settings = Settings.from_config(GOOD).require(GOOD)
    assert settings.pipeline_root == "gs://my-project-ml/pipeline_root"
    assert settings.serving_model_dir == "gs://my-project-ml/serving_model/penguin-cicd"
    assert settings.modules_prefix == "gs://my-project-ml/modules"
    assert settings.specs_prefix == "gs://my-project-ml/specs"
    assert settings.releases_prefix == "gs://my-project-ml/releases/penguin-cicd"
    assert settings.registry == "vertex:projects/my-project-123/locations/europe-west4"
    assert settings.resolved_data_root == "gs://my-project-ml/data/penguins"
    assert settings.anonymous_credentials is False


def test_the_defaults_are_valid_and_listed():
    assert Settings() == Settings.from_config({})
    assert Settings.defaults()["base_image"] == "", "no default: a base must be mirrored and pinned by digest"
    assert set(Settings.defaults()) == set(Settings.model_fields)


def test_the_settings_are_frozen():
    with pytest.raises(ValueError):
        Settings.from_config(GOOD).project = "other-project"


@pytest.mark.parametrize(
    "name, value",
    [
        ("project", "my-project-123"),
        ("project", "abcdef"),
        ("project", "a" + "b" * 28 + "c"),  # 30 characters
        ("region", "us-central1"),
        ("region", "northamerica-northeast2"),
        ("region", "europe-west12"),
        ("bucket", "abc"),
        ("bucket", "my_project-ml.data"),
        ("bucket", "ci-12345-1700000000"),
        ("bucket", "a" * 63),
        ("bucket", ".".join(["a" * 63] * 3)),  # dotted names may reach 222 characters
        ("image_repo", "us-docker.pkg.dev/my-project-123/training"),
        ("image_repo", "europe-west4-docker.pkg.dev/my-project-123/training"),
        ("image_repo", "127.0.0.1:5000/test-project/training"),
        ("image_repo", "localhost:5000/test-project/training"),
        ("image_name", "cicd-components"),
        ("base_image", f"127.0.0.1:5000/test-project/training/base@{DIGEST}"),
        ("base_image", f"gcr.io/tfx-oss-public/tfx@{DIGEST}"),
        ("serving_image", f"europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest@{DIGEST}"),
        ("service_account", "vertex-pipelines@test-project.iam.gserviceaccount.com"),
        ("pipeline_name", "penguin-cicd"),
        ("pipeline_name", "p"),
        ("pipeline_name", "p" * 50),
        ("data_root", "gs://my-project-ml/data/penguins"),
        ("api_endpoint", "http://127.0.0.1:8080"),
        ("api_endpoint", "europe-west4-aiplatform.googleapis.com"),
        ("api_endpoint", "https://europe-west4-aiplatform.googleapis.com"),
        ("request_deadline_seconds", 30),
        ("request_deadline_seconds", 2.5),
        ("request_deadline_seconds", 600),
        ("local_beam", "auto"),
        ("local_beam", "in_memory"),
        ("local_beam", "multi_processing:4"),
    ],
)
def test_a_rule_accepts_good_values(name, value):
    assert getattr(Settings.from_config({name: value}), name) == value


@pytest.mark.parametrize(
    "name, value, wrong",
    [
        ("project", "My-Project", "is not a project id"),
        ("project", "proj", "is 4 characters long"),
        ("project", "my-project-", "is not a project id"),
        ("project", "1project", "is not a project id"),
        ("region", "Europe", "is not a region"),
        ("region", "europe-west", "is not a region"),
        ("bucket", "gs://my-bucket", "starts with gs://"),
        ("bucket", "a/b", "has a '/'"),
        ("bucket", "My-Bucket", "has a character other than"),
        ("local_beam", "threads", "is not a Beam mode"),
        ("local_beam", "in_memory:2", "is not a Beam mode"),
        ("bucket", "ab", "is 2 characters long"),
        ("bucket", "a" * 64, "is 64 characters long"),
        ("bucket", "-bucket", "does not start and end with a letter or digit"),
        ("bucket", "bucket_", "does not start and end with a letter or digit"),
        ("bucket", "a..b", "dot-separated part"),
        ("bucket", "a" * 64 + ".com", "dot-separated part"),
        ("bucket", "192.168.5.4", "is an IP address"),
        ("bucket", "googbucket", "goog"),
        ("bucket", "my-google-bucket", "goog"),
        ("image_repo", "gcr.io/my-project/x", "Container Registry"),
        ("image_repo", "eu.gcr.io/my-project/x", "Container Registry"),
        ("image_repo", "https://europe-west4-docker.pkg.dev/my-project-123/training", "has a scheme"),
        ("image_repo", "europe-west4-docker.pkg.dev/my-project-123", "is not an Artifact Registry"),
        (
            "image_repo",
            "europe-west4-docker.pkg.dev/my-project-123/training/sub",
            "is not an Artifact Registry",
        ),
        ("image_repo", "docker.io/library/training", "is not an Artifact Registry"),
        ("image_repo", "registry.example.com:5000/test-project/training", "is not an Artifact Registry"),
        ("image_repo", "europe-west4-docker.pkg.dev/My_Project/training", "which is not a project id"),
        ("image_repo", "europe-west4-docker.pkg.dev/my-project-123/Training", "names the repository"),
        ("image_name", "CICD", "is not an image name"),
        ("image_name", "cicd_components", "is not an image name"),
        ("base_image", "gcr.io/tfx-oss-public/tfx:latest", "uses the latest tag"),
        ("base_image", "gcr.io/tfx-oss-public/tfx:1.16.0", "pin the digest"),
        ("base_image", "gcr.io/tfx-oss-public/tfx", "has no tag"),
        ("base_image", "127.0.0.1:5000/tfx", "has no tag"),
        ("base_image", "gcr.io/tfx-oss-public/tfx@sha256:abc", "has a digest that is not"),
        # A ',' or '=' would add a Cloud Build substitution where release.yml passes the image as one.
        ("base_image", f"gcr.io/x,_PYTHON_IMAGE=evil@{DIGEST}", "is not an image path"),
        ("serving_image", "Europe-docker.pkg.dev/vertex-ai/Prediction:1", "is not an image path"),
        ("serving_image", "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest", "latest"),
        ("service_account", "me@gmail.com", "is not a service account e-mail"),
        ("service_account", "vertex@my-project-123.iam.gserviceaccount.com.evil", "is not a service account"),
        ("service_account", "abc@my-project-123.iam.gserviceaccount.com", "is not a service account e-mail"),
        ("pipeline_name", "Bad_Name", "does not start with a lowercase letter"),
        ("pipeline_name", "bad_name", "has a character other than"),
        ("pipeline_name", "p" * 51, "is 51 characters long"),
        ("data_root", "/data/penguins", "is not a gs:// folder"),
        ("data_root", "gs://My_Bucket/data", "names the bucket 'My_Bucket'"),
        # The client sends a signed token with every request: never in clear over a network.
        ("api_endpoint", "http://vertex.example.com:8080", "is plain http to another machine"),
        ("api_endpoint", "http://10.0.0.5", "is plain http to another machine"),
        ("api_endpoint", "europe-west4-aiplatform.googleapis.com/v1", "is not HOST[:PORT]"),
        ("cloud_api_endpoint", "http://admin.example.com", "is plain http to another machine"),
        ("request_deadline_seconds", "0", "is not more than 0 seconds"),
        ("request_deadline_seconds", "-5", "is not more than 0 seconds"),
        ("request_deadline_seconds", "601", "is more than 600 seconds"),
        ("request_deadline_seconds", "inf", "is more than 600 seconds"),
        ("request_deadline_seconds", "30s", "is not a number of seconds"),
        ("request_deadline_seconds", "nan", "is not a number of seconds"),
    ],
)
def test_a_rule_refuses_a_bad_value_in_one_line_naming_the_setting(name, value, wrong):
    with pytest.raises(SettingsError) as caught:
        Settings.from_config({**GOOD, name: value})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cicd.{name}={value!r} ") or "characters)" in message
    assert wrong in message
    assert "; expected " in message
    assert f"set cicd.{name} in invoke.yaml or INVOKE_CICD_{name.upper()}" in message
    # A flag is suggested only where a task has one (no `--region` exists anywhere).
    assert ("--" in message) == (name in ("image_repo", "base_image")), message


def test_direct_construction_applies_the_same_rules():
    with pytest.raises(SettingsError, match=r"^cicd.bucket='a/b' has a '/'"):
        Settings(bucket="a/b")
    with pytest.raises(SettingsError, match=r"^cicd.project=5 is not valid"):
        Settings(project=5)


def test_empty_means_not_set_and_is_not_checked():
    settings = Settings.from_config({name: "" for name in GOOD} | {"data_root": None})
    assert settings.bucket == "" and settings.data_root == ""


def test_unknown_settings_are_named_with_the_known_ones():
    with pytest.raises(SettingsError) as caught:
        Settings.from_config({"projcet": "x", "buckett": "y", "region": "europe-west4"})
    message = str(caught.value)
    assert "cicd.buckett, cicd.projcet" in message
    assert "known settings: " in message and "project, region, bucket" in message
    assert "'x'" not in message  # an unknown key might hold anything: its value is not printed
    # The switches (sources.py's data source, scale.py's scale-out) come first: Settings builds on them.
    with pytest.raises(
        SettingsError,
        match="Unknown setting cicd.projcet; known settings: source, bigquery_table, .*beam_runner,.* project",
    ):
        Settings(projcet="x")


def test_the_request_deadline_defaults_to_30_seconds_and_empty_means_the_default():
    # Storage and Vertex calls retry for this long: well under a minute for an unreachable endpoint.
    assert Settings().request_deadline_seconds == 30.0
    assert Settings.from_config({"request_deadline_seconds": ""}).request_deadline_seconds == 30.0
    assert Settings.from_config({"request_deadline_seconds": "2"}).request_deadline_seconds == 2.0


def test_config_values_are_text_except_the_switch():
    # YAML may read a bare word or number; an INVOKE_CICD_* variable is always text.
    assert Settings.from_config({"image_name": 123}).image_name == "123"


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, True),
        (False, False),
        ("true", True),
        ("True", True),
        ("1", True),
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("no", False),
        ("off", False),
        ("yes", True),
        ("on", True),
        ("", False),
        (None, False),
        (1, True),
        (0, False),
    ],
)
def test_anonymous_credentials_reads_yaml_flags_and_environment_text(value, expected):
    assert Settings.from_config({"anonymous_credentials": value}).anonymous_credentials is expected


@pytest.mark.parametrize("value", ["yes please", "2", 2, "http://127.0.0.1:8080"])
def test_anonymous_credentials_refuses_anything_else_without_echoing_it(value):
    with pytest.raises(SettingsError) as caught:
        Settings.from_config({"anonymous_credentials": value})
    message = str(caught.value)
    assert message.startswith("cicd.anonymous_credentials (value not shown) is not true or false;")
    assert "INVOKE_CICD_ANONYMOUS_CREDENTIALS" in message


@pytest.mark.parametrize(
    "name, shown",
    [("api_token", False), ("client_secret", False), ("service_account_key", False), ("bucket", True)],
)
def test_a_secret_shaped_name_never_has_its_value_printed(name, shown):
    message = setting_message(name, "s3cr3t-value", "is wrong", "something else")
    assert ("s3cr3t-value" in message) is shown
    assert message.startswith(f"cicd.{name}")


@pytest.mark.parametrize("missing", ["project", "region", "bucket", "image_repo", "service_account"])
def test_require_names_the_missing_setting_and_how_to_set_it(missing):
    settings = Settings.from_config({**GOOD, missing: ""})
    with pytest.raises(SettingsError) as caught:
        settings.require(GOOD)
    message = str(caught.value)
    assert message.startswith(f"cicd.{missing} is missing; expected ")
    assert f"INVOKE_CICD_{missing.upper()}" in message and "\n" not in message


def test_require_returns_the_settings_and_refuses_a_name_that_is_no_setting():
    settings = Settings.from_config(GOOD)
    assert settings.require(["project", "image_name"]) is settings
    with pytest.raises(ValueError, match="'projcet', which is not a setting"):
        settings.require(["projcet"])


def test_run_hyperparameters_follow_the_model_table_and_come_back_canonical():
    assert parse_run_hyperparameters('{"seed": 7, "learning_rate": 1}') == '{"learning_rate": 1, "seed": 7}'
    assert parse_run_hyperparameters("{}") == "{}"
    for text, wrong in [
        ('{"dropout": 0.5}', "'dropout'=0.5 is not one the model takes"),
        ('{"hidden_units": "8"}', "'hidden_units'=\"8\" must be int"),
        ("[1]", "must be a JSON object"),
    ]:
        with pytest.raises(InputError, match=wrong) as caught:
            parse_run_hyperparameters(text)
        assert "hidden_units (int)" in str(caught.value) or "not one" not in wrong
        assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "error, code",
    [(ReleaseError, 1), (SettingsError, 2), (InputError, 2), (MissingResourceError, 3)],
)
def test_exit_codes(error, code):
    assert error.exit_code == code
    assert issubclass(error, ReleaseError)


def test_the_module_imports_without_google_cloud_or_tfx():
    # Tasks import it at startup: the heavy clients load only in the steps that use them.
    code = (
        "import sys, cicd_release.core.settings; "
        "print(sorted(m for m in sys.modules if m.startswith(('tfx', 'tensorflow', 'google.cloud.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("region", ["europe-west12", "us-central1", "me-central2", "northamerica-northeast1"])
def test_real_regions_are_accepted(region):
    assert Settings.from_config({"region": region}).region == region


@pytest.mark.parametrize("region", ["mars-north1", "europe-west", "EU", "europe-west123"])
def test_made_up_regions_are_refused(region):
    with pytest.raises(SettingsError, match="cicd.region"):
        Settings.from_config({"region": region})


def test_a_pasted_key_is_never_echoed():
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    with pytest.raises(SettingsError) as raised:
        Settings.from_config({"bucket": key})
    assert "MIIE" not in str(raised.value) and "value not shown" in str(raised.value)
    with pytest.raises(SettingsError) as raised:
        Settings.from_config({"bucket": "x" * 500})
    assert "(500 characters)" in str(raised.value) and "x" * 100 not in str(raised.value)


@pytest.mark.parametrize(
    "token",
    [
        "ghp_" + "a1" * 18,
        "ghs_" + "B2" * 18,
        "gho_" + "c3" * 18,
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "glpat-" + "x" * 20,
        "AIza" + "S" * 35,
        "ya29.a0AfB_byC",
        "Bearer ghp_" + "d4" * 18,
    ],
    ids=[
        "github-classic",
        "github-actions",
        "github-oauth",
        "github-fine-grained",
        "gitlab",
        "google-api-key",
        "google-oauth",
        "inside-a-value",
    ],
)
def test_a_pasted_token_of_github_gitlab_or_google_is_never_echoed(token):
    with pytest.raises(SettingsError) as raised:
        Settings.from_config({"region": token})
    assert token not in str(raised.value) and "(value not shown)" in str(raised.value)
