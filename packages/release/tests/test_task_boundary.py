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


DEEP = "[" * 20_000 + "]" * 20_000
HUGE_INTEGER = '{"seed": ' + "9" * 5_000 + "}"
LONG_VALUE = '{"hidden_units": "' + "x" * 120_000 + '"}'
# The outside probe's inputs: each was a traceback (RecursionError, int()'s digit limit) or echoed whole.
CASES += [
    (f"{task}-{kind}", [task, *extra, "--hyperparameters", value], {}, "--hyperparameters")
    for task, extra in (
        ("pipeline.submit", []),
        ("pipeline.retrain", []),
        ("schedule.create", ["--cron", "0 3 * * 1"]),
    )
    for kind, value in (("deep", DEEP), ("huge-integer", HUGE_INTEGER), ("long-value", LONG_VALUE))
] + [
    ("window-long", ["pipeline.retrain", "--window", "x" * 120_000], {}, "--window"),
    ("base-long", ["settings.check", "--base", "x" * 120_000], {}, "--base"),
]


@pytest.mark.parametrize(("args", "env", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_value_exits_2_in_one_line_before_any_side_effect(checkout, args, env, names):
    result = invoke(checkout, *args, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert names in lines[0]
    assert len(lines[0]) < 1000, "a long value is clipped, never echoed whole"
    assert not (checkout / ".cicd").exists() and not (checkout / "dist").exists(), "nothing was written"


@pytest.mark.parametrize(
    "value", [DEEP, HUGE_INTEGER, LONG_VALUE], ids=["deep", "huge-integer", "long-value"]
)
def test_hyperparameters_in_invoke_yaml_past_a_bound_are_one_line(checkout, value):
    (checkout / "invoke.yaml").write_text(json.dumps({"training": {"hyperparameters": value}}))
    result = invoke(checkout, "pipeline.compile", "--upload", **SERVING)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    [line] = result.stderr.strip().splitlines()
    assert "training.hyperparameters" in line and len(line) < 1000


def test_an_unknown_setting_in_invoke_yaml_is_named(checkout):
    (checkout / "invoke.yaml").write_text("cicd:\n  buket: my-project-ml\n")
    result = invoke(checkout, "pipeline.compile")
    assert result.returncode == 2 and "cicd.buket" in result.stderr, result.stderr


def commit_all(checkout: Path) -> str:
    """Makes `checkout` a git repository with one commit of what it holds (outputs ignored); returns HEAD."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    (checkout / ".gitignore").write_text(".cicd/\ndist/\n__pycache__/\n")
    subprocess.run(["git", "init", "-q", str(checkout)], check=True, env=env)
    subprocess.run(["git", "-C", str(checkout), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(checkout), *identity, "commit", "-q", "-m", "a"], env=env, check=True)
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    return head.stdout.strip()


def test_a_plan_made_for_another_commit_is_refused(checkout):
    commit_all(checkout)
    (checkout / ".cicd").mkdir()
    stale = {"head": "0" * 40, "steps": ["modules.upload"], "workflow": "modules"}
    (checkout / ".cicd" / "plan.json").write_text(json.dumps(stale))
    result = invoke(checkout, "modules.upload", "--planned")
    assert result.returncode == 2 and "run `invoke plan` again" in result.stderr, result.stderr


# ------------------------------------------------------------------------------ corrupt hand-off files
# A `.cicd/` file cut short by a killed step, edited by hand or written by another version of the chain: every
# task that reads it stops in one line naming the file and the command that makes it again (was a KeyError,
# TypeError or JSONDecodeError traceback).

CORRUPT = {
    "not-json": "{",
    "not-an-object": "[]",
    "cut-short": '{"head": "',
    "wrong-types": json.dumps(
        {"head": 7, "steps": "modules.upload", "workflow": ["full"], "uri": 5, "x": []}
    ),
    "deep": "[" * 20_000 + "]" * 20_000,
    "huge-integer": '{"n": ' + "9" * 5_000 + "}",
    "not-utf-8": "\udcff",
}
PLANNED_TASKS = [
    ["build.wheels", "--planned"],
    ["build.image", "--planned"],
    ["pipeline.compile", "--planned"],
    ["modules.upload", "--planned"],
    ["data.upload", "--planned"],
    ["pipeline.submit", "--planned"],
    ["schedule.move", "--planned"],
    ["settings.check", "--planned"],
]
BASE_IMAGE = {"INVOKE_CICD_BASE_IMAGE": "127.0.0.1:5000/test-project/training/base@sha256:" + "0" * 64}
SERVING = {"INVOKE_CICD_SERVING_IMAGE": SERVING + "@sha256:" + "0" * 64}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8", "surrogateescape"))


def assert_one_line_naming(result: subprocess.CompletedProcess, *names: str) -> None:
    assert result.returncode not in (0,), result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    for name in names:
        assert name in lines[0], lines[0]


# Every task meets two kinds of damage; every kind is met by one task (each invoke costs seconds), and
# test_handoff.py reads every kind of every file in-process.
PLAN_CASES = [(args, kind) for args in PLANNED_TASKS for kind in ("cut-short", "wrong-types")] + [
    (["modules.upload", "--planned"], kind) for kind in CORRUPT if kind not in ("cut-short", "wrong-types")
]


@pytest.mark.parametrize(("args", "corrupt"), PLAN_CASES, ids=[f"{a[0]}-{k}" for a, k in PLAN_CASES])
def test_a_corrupt_plan_stops_every_planned_task_in_one_line(checkout, args, corrupt):
    commit_all(checkout)
    write(checkout / ".cicd" / "plan.json", CORRUPT[corrupt])
    result = invoke(checkout, *args, **BASE_IMAGE, **SERVING)
    assert_one_line_naming(result, ".cicd/plan.json", "invoke plan")


HAND_OFFS = [
    ("modules.json", ["pipeline.submit"], "invoke modules.upload"),
    ("spec.json", ["pipeline.submit"], "invoke pipeline.compile --upload"),
    ("wheels.json", ["build.image"], "invoke build.wheels"),
    ("wheels.json", ["build.wheels", "--package", "trainer"], "invoke build.wheels"),
]
HAND_OFF_CASES = [(*case, kind) for case in HAND_OFFS for kind in ("not-json", "wrong-types")]


@pytest.mark.parametrize(
    ("name", "args", "remade_by", "corrupt"),
    HAND_OFF_CASES,
    ids=[f"{c[0]}-{c[1][0]}-{c[3]}" for c in HAND_OFF_CASES],
)
def test_a_corrupt_hand_off_file_is_named_with_the_command_that_remakes_it(
    checkout, name, args, remade_by, corrupt
):
    commit_all(checkout)
    write(checkout / ".cicd" / name, CORRUPT[corrupt])
    result = invoke(checkout, *args, **BASE_IMAGE, **SERVING)
    assert_one_line_naming(result, f".cicd/{name}", remade_by)
    assert result.returncode == 1


# ------------------------------------------------------------------------------ uncommitted changes


@pytest.mark.parametrize(
    "args",
    [
        ["modules.upload"],
        ["pipeline.submit"],
        ["data.upload"],
        ["build.wheels"],
        ["pipeline.compile", "--upload"],
        ["ci", "--skip-tests", "--base", "0" * 40],
    ],
    ids=["modules.upload", "pipeline.submit", "data.upload", "build.wheels", "pipeline.compile", "ci"],
)
def test_uncommitted_changes_stop_a_task_that_would_release_them(checkout, args):
    commit_all(checkout)
    (checkout / "tasks" / "__init__.py").write_text(
        (checkout / "tasks" / "__init__.py").read_text() + "\n# x\n"
    )
    result = invoke(checkout, *args, **SERVING, **BASE_IMAGE)
    assert result.returncode == 2, result.stdout + result.stderr
    assert_one_line_naming(result, "uncommitted changes (tasks/__init__.py)", "--allow-dirty")
    assert not (checkout / "dist").exists() and not (checkout / ".cicd" / "modules.json").exists()
