"""cloudbuild.yaml and `invoke ci` must be the same chain: same steps, each waiting for the same ones (the step
table), nothing in YAML but invoke."""

import re
from pathlib import Path

import yaml

from cicd_release.plan import changes as plan
from cicd_release.steps import STEPS as STEP_TABLE

STEPS = tuple(STEP_TABLE)

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


def test_the_step_table_is_keyed_by_the_plans_step_vocabulary_in_its_order():
    assert STEPS == plan.STEPS
    assert all(step.name == name for name, step in STEP_TABLE.items())
    for step in STEP_TABLE.values():
        assert set(step.after) <= set(STEPS), step.name


def test_every_waitfor_names_a_step_before_it():
    seen = set()
    for step in BUILD["steps"]:
        assert step["waitFor"] == ["-"] or set(step["waitFor"]) <= seen, step["id"]
        seen.add(step["id"])


def test_each_step_waits_for_what_it_needs_as_the_step_table_says():
    """Not a chain: after the tests, the image (after its wheels), the compile, the module and data uploads run
    side by side; the rehearsal waits for the image and the spec, the submit for all five (the run needs each)."""
    waits = {step["id"]: set(step["waitFor"]) for step in BUILD["steps"]}
    assert (waits["install.lock"], waits["install"], waits["doctor"], waits["plan"], waits["test"]) == (
        {"-"},
        {"install.lock"},
        {"install"},
        {"doctor"},
        {"plan"},
    )
    for name, step in STEP_TABLE.items():
        if name != "test":
            assert waits[name] == set(step.after), name
    assert waits["build.image"] == {"build.wheels"}
    for name in ("build.wheels", "pipeline.compile", "modules.upload", "data.upload"):
        assert waits[name] == {"test"}, f"{name} starts as soon as the tests passed"
    # The rehearsal runs the compiled spec's tasks in the image it names: it needs both.
    assert waits["pipeline.rehearse"] == {"build.image", "pipeline.compile"}
    assert waits["pipeline.submit"] == {
        "build.image",
        "pipeline.compile",
        "pipeline.rehearse",
        "modules.upload",
        "data.upload",
    }
    assert waits["schedule.move"] == {"pipeline.submit"}


def test_nothing_is_built_or_uploaded_before_the_tests_pass():
    def before(name: str) -> set[str]:
        found = set(STEP_TABLE[name].after)
        for earlier in STEP_TABLE[name].after:
            found |= before(earlier)
        return found

    for name in STEPS[1:]:
        assert "test" in before(name), name


def test_each_step_has_a_timeout_and_a_comment():
    text = (ROOT / "cloudbuild.yaml").read_text()
    for step in BUILD["steps"]:
        assert re.fullmatch(r"\d+s", step["timeout"]), step["id"]
        assert re.search(rf"  # [^\n]+\n  - id: {re.escape(step['id'])}\n", text), (
            f"{step['id']} has no comment"
        )


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


def test_the_build_ends_before_the_job_that_waits_for_it():
    """A queued build could outlive its workflow job, and the run's follow the submit step (cloud review #26)."""
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    seconds = lambda text: int(text.rstrip("s"))  # noqa: E731
    [submit] = [s for s in build["steps"] if s["id"] == "pipeline.submit"]
    follow = int(submit["args"][submit["args"].index("--wait-seconds") + 1])
    assert follow + 300 <= seconds(submit["timeout"])  # the follow ends before the step is killed
    # The longest chain of step timeouts along waitFor fits in the build's own timeout.
    finish: dict[str, int] = {}
    for step in build["steps"]:  # each waits only for steps above it
        before = [finish[w] for w in step.get("waitFor", []) if w != "-"]
        finish[step["id"]] = max(before, default=0) + seconds(step["timeout"])
    assert max(finish.values()) <= seconds(build["timeout"])
    job_minutes = workflow["jobs"]["cloud-build"]["timeout-minutes"]
    assert seconds(build["queueTtl"]) + seconds(build["timeout"]) + 300 <= job_minutes * 60


def test_the_build_installs_the_lock_with_hashes():
    [lock] = [s for s in BUILD["steps"] if s["id"] == "install.lock"]
    assert lock["args"] == [
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--require-hashes",
        "-r",
        "requirements/lock.hashes.txt",
    ]


def test_the_hashed_lock_pins_what_the_lock_pins_each_with_its_hashes():
    """lock.txt is the constraints file of nox and the release workflow (pip refuses a hashed constraints file
    with unpinned requirements: it turns hash-checking on for them); lock.hashes.txt is the same set, hashed,
    for the build. `invoke lock` writes both."""

    def pins(name: str) -> dict[str, str]:
        text = (ROOT / "requirements" / name).read_text()
        return dict(re.findall(r"^([a-z0-9_.-]+)(?:\[[a-z0-9,_-]+\])?==(\S+)", text, re.MULTILINE))

    assert pins("lock.hashes.txt") == pins("lock.txt") and len(pins("lock.txt")) > 200
    text = (ROOT / "requirements" / "lock.hashes.txt").read_text()
    entries = re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[2])
    assert all("--hash=sha256:" in entry for entry in entries if "==" in entry)
