"""cloudbuild.yaml and `invoke ci` must be the same chain: same steps, same order, nothing in YAML but invoke."""

import re
from pathlib import Path

import yaml

from cicd_release.steps import STEPS as STEP_TABLE

STEPS = tuple(step.name for step in STEP_TABLE)

ROOT = Path(__file__).resolve().parents[3]
BUILD = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())


def invoke_steps():
    return [s for s in BUILD["steps"] if s["args"][:2] == ["-m", "invoke"]]


def test_the_invoke_steps_are_doctor_plan_then_the_ci_chain_in_order():
    # The doctor first: a project that is not ready fails the build in seconds, before anything is built.
    tasks = [s["args"][2] for s in invoke_steps()]
    assert tasks == ["doctor", "plan", *STEPS]
    assert [s["id"] for s in invoke_steps()] == tasks


def test_every_step_after_plan_but_test_reads_the_plan():
    for step in invoke_steps():
        if step["id"] not in ("doctor", "plan", "test"):
            assert "--planned" in step["args"], step["id"]


def test_each_step_waits_for_the_one_before_and_has_a_timeout_and_a_comment():
    text = (ROOT / "cloudbuild.yaml").read_text()
    previous = None
    for step in BUILD["steps"]:
        assert step["waitFor"] == ([previous] if previous else ["-"]), step["id"]
        assert re.fullmatch(r"\d+s", step["timeout"]), step["id"]
        assert re.search(rf"  # [^\n]+\n  - id: {re.escape(step['id'])}\n", text), (
            f"{step['id']} has no comment"
        )
        previous = step["id"]


def test_no_shell_logic_and_no_latest_images():
    for step in BUILD["steps"]:
        assert step["entrypoint"] == "python", step["id"]
    # Every step runs in the one step image, which has no default: the workflow passes it, pinned by digest.
    assert {step["name"] for step in BUILD["steps"]} == {"${_PYTHON_IMAGE}"}
    assert BUILD["substitutions"]["_PYTHON_IMAGE"] == ""
    assert "--tag" in invoke_steps()[STEPS.index("build.image") + 2]["args"], (
        "the image is also tagged with the commit"
    )


def test_substitutions_are_user_defined_with_defaults():
    for name, value in BUILD["substitutions"].items():
        assert name.startswith("_") and value is not None, name


def test_the_install_step_installs_every_package_the_tasks_import():
    [install] = [s for s in BUILD["steps"] if s["id"] == "install"]
    packages = {p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml")}
    assert {a.removeprefix("./packages/") for a in install["args"] if a.startswith("./packages/")} == packages
