"""A bad setting or input stops a task first: exit 2, one line naming the setting, nothing built or uploaded.

The tasks run as a user runs them (`python -m invoke ...`) from a copy of the `tasks/` package in an empty
folder, so the workspace the chain would write to (`.cicd/`, `dist/`) is one this test can watch.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GOOD = {
    "INVOKE_CICD_PROJECT": "my-project",
    "INVOKE_CICD_REGION": "europe-west4",
    "INVOKE_CICD_BUCKET": "my-project-ml",
    "INVOKE_CICD_IMAGE_REPO": "europe-west4-docker.pkg.dev/my-project/training",
    "INVOKE_CICD_SERVICE_ACCOUNT": "vertex-pipelines@my-project.iam.gserviceaccount.com",
}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "tasks", tmp_path / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def invoke(checkout: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=checkout,
        env={**clean, **GOOD, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


SERVING = "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15"

CASES = [
    # id, task and flags, environment, what the one line must name
    ("pipeline-name", ["pipeline.compile"], {"INVOKE_CICD_PIPELINE_NAME": "Bad_Name"}, "cicd.pipeline_name"),
    # Without a serving container every blessed run would end FAILED in ModelRegistryUploader, an hour in.
    ("serving-image-missing", ["pipeline.compile"], {}, "cicd.serving_image"),
    (
        "serving-image-latest",
        ["pipeline.compile"],
        {"INVOKE_CICD_SERVING_IMAGE": SERVING + ":latest"},
        "latest",
    ),
    ("bucket-with-slash", ["modules.upload"], {"INVOKE_CICD_BUCKET": "a/b"}, "cicd.bucket"),
    ("bucket-in-ci", ["ci", "--skip-tests"], {"INVOKE_CICD_BUCKET": "a/b"}, "cicd.bucket"),
    (
        "container-registry",
        ["build.image"],
        {"INVOKE_CICD_IMAGE_REPO": "gcr.io/my-project"},
        "cicd.image_repo",
    ),
    (
        "hyperparameters-not-json",
        ["pipeline.submit", "--hyperparameters", "{lr: 1}"],
        {},
        "--hyperparameters",
    ),
    (
        "hyperparameters-unknown-key",
        ["pipeline.submit", "--hyperparameters", '{"layers": [8]}'],
        {},
        "layers",
    ),
    (
        "hyperparameters-wrong-type",
        ["pipeline.submit", "--hyperparameters", '{"hidden_units": "8"}'],
        {},
        "hidden_units",
    ),
    ("data-set-name", ["data.upload", "--name", "Penguins/2024"], {}, "--name"),
    ("data-date", ["data.upload", "--date", "2024-13-01"], {}, "--date"),
    ("cron-fields", ["schedule.create", "--cron", "0 3 * *"], {}, "--cron"),
    ("cron-zone", ["schedule.create", "--cron", "TZ=Nowhere/Else 0 3 * * 1"], {}, "--cron"),
    ("window-zero", ["pipeline.retrain", "--window", "0"], {}, "--window"),
    (
        "retrain-hyperparameters",
        ["pipeline.retrain", "--hyperparameters", "{lr: 1}"],
        {},
        "--hyperparameters",
    ),
    (
        "schedule-hyperparameters",
        ["schedule.create", "--cron", "0 3 * * 1", "--hyperparameters", "[]"],
        {},
        "--hyperparameters",
    ),
]


@pytest.mark.parametrize(("args", "env", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_value_exits_2_in_one_line_before_any_side_effect(checkout, args, env, names):
    result = invoke(checkout, *args, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert names in lines[0]
    assert not (checkout / ".cicd").exists() and not (checkout / "dist").exists(), "nothing was written"


def test_an_unknown_setting_in_invoke_yaml_is_named(checkout):
    (checkout / "invoke.yaml").write_text("cicd:\n  buket: my-project-ml\n")
    result = invoke(checkout, "pipeline.compile")
    assert result.returncode == 2 and "cicd.buket" in result.stderr, result.stderr


def test_a_plan_made_for_another_commit_is_refused(checkout):
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(checkout)], check=True, env=env)
    subprocess.run(
        ["git", "-C", str(checkout), *identity, "commit", "-q", "--allow-empty", "-m", "a"],
        env=env,
        check=True,
    )
    (checkout / ".cicd").mkdir()
    stale = {"head": "0" * 40, "steps": ["modules.upload"], "workflow": "modules"}
    (checkout / ".cicd" / "plan.json").write_text(json.dumps(stale))
    result = invoke(checkout, "modules.upload", "--planned")
    assert result.returncode == 2 and "run `invoke plan` again" in result.stderr, result.stderr
