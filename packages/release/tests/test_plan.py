"""The change-aware plan, table-driven over real commits in temporary git repositories."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from cicd_release.core.errors import PlanError
from cicd_release.plan import changes as planmod
from cicd_release.plan.changes import classify_path, format_table, make_plan, needs

# The steps each workflow must run, written out here so a change to the plan's decisions shows in review.
FULL = (
    "test",
    "build.wheels",
    "build.image",
    "pipeline.compile",
    "pipeline.rehearse",
    "modules.upload",
    "pipeline.submit",
    "schedule.move",
)
PIPELINE = (
    "test",
    "pipeline.compile",
    "pipeline.rehearse",
    "modules.upload",
    "pipeline.submit",
    "schedule.move",
)
MODULES = ("test", "modules.upload", "pipeline.submit", "schedule.move")
DATA = ("test", "data.upload", "pipeline.submit", "schedule.move")
NONE = ("test",)
STEPS_OF = {"full": FULL, "pipeline": PIPELINE, "modules": MODULES, "data": DATA, "none": NONE}


def with_data(steps: tuple[str, ...]) -> tuple[str, ...]:
    """A code workflow's steps plus the data upload, in chain order."""
    return tuple(s for s in planmod.STEPS if s in steps or s == "data.upload")


# A small copy of the monorepo's layout: one file in every place the plan classifies.
LAYOUT = [
    "packages/components/pyproject.toml",
    "packages/components/src/cicd_components/gate/executor.py",
    "packages/components/tests/test_gate.py",
    "packages/pipeline/pyproject.toml",
    "packages/pipeline/src/cicd_pipeline/pipeline.py",
    "packages/pipeline/tests/test_pipeline.py",
    "packages/pipeline/src/cicd_pipeline/report.py",
    "packages/release/pyproject.toml",
    "packages/release/src/cicd_release/artifacts/image.py",
    "packages/release/tests/test_plan.py",
    "packages/trainer/pyproject.toml",
    "packages/trainer/CHANGELOG.md",
    "packages/trainer/src/cicd_trainer/model.py",
    "packages/trainer/src/cicd_trainer/preprocessing.py",
    "packages/trainer/src/cicd_trainer/schema/schema.pbtxt",
    "packages/trainer/tests/test_model.py",
    "tests/e2e/test_local_run.py",
    "docs/index.md",
    "README.md",
    "data/penguins.csv",
    "data/README.md",
    "data/penguins/penguins.csv",
    "noxfile.py",
    "tasks.py",
    "cloudbuild.yaml",
    "requirements/lock.txt",
    "docker/Dockerfile",
    ".github/workflows/ci.yml",
    ".ci/run",
    ".yamllint.yaml",
    ".gitignore",
    "pyproject.toml",
]

# Commit as a fixed identity, without signing or the user's hooks, whatever the machine's git config says.
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=GIT_ENV
    ).stdout.strip()


def commit(repo: Path, write=(), delete=(), rename=(), message="change") -> str:
    """Write, delete and rename files, commit everything, and return the new commit's sha."""
    for path in write:
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# {path} {message}\n" + (target.read_text() if target.exists() else ""))
    for path in delete:
        git(repo, "rm", "-q", path)
    for old, new in rename:
        (repo / new).parent.mkdir(parents=True, exist_ok=True)
        git(repo, "mv", old, new)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with the monorepo layout in one initial commit."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    commit(root, write=LAYOUT, message="initial")
    return root


COMPONENT = "packages/components/src/cicd_components/gate/executor.py"
PIPELINE_SRC = "packages/pipeline/src/cicd_pipeline/pipeline.py"
MODEL = "packages/trainer/src/cicd_trainer/model.py"
PREPROCESSING = "packages/trainer/src/cicd_trainer/preprocessing.py"

CASES = [
    # id, files written, files deleted, workflow, changed_packages
    ("components-src", [COMPONENT], [], "full", ["components"]),
    ("components-pyproject", ["packages/components/pyproject.toml"], [], "full", ["components"]),
    ("pipeline-src", [PIPELINE_SRC], [], "pipeline", ["pipeline"]),
    ("trainer-module", [MODEL], [], "modules", ["trainer"]),
    ("trainer-schema", ["packages/trainer/src/cicd_trainer/schema/schema.pbtxt"], [], "modules", ["trainer"]),
    ("trainer-new-module", ["packages/trainer/src/cicd_trainer/features.py"], [], "modules", ["trainer"]),
    ("trainer-tests-only", ["packages/trainer/tests/test_model.py"], [], "none", []),
    ("trainer-changelog", ["packages/trainer/CHANGELOG.md"], [], "none", []),
    ("components-tests", ["packages/components/tests/test_gate.py"], [], "none", []),
    ("docs-only", ["docs/index.md", "docs/new.md"], [], "none", []),
    ("readme-data-readme-gitignore", ["README.md", "data/README.md", ".gitignore"], [], "none", []),
    # A file directly in data/ is not in a data set (CsvExampleGen reads a set's folder): docs.
    ("file-directly-in-data", ["data/penguins.csv"], [], "none", []),
    # The training data: check, upload a snapshot, train on it; no image, no compile.
    ("data-set", ["data/penguins/penguins.csv"], [], "data", []),
    ("data-set-new-file", ["data/penguins/2024-06.csv"], [], "data", []),
    ("data-set-and-docs", ["data/penguins/penguins.csv", "docs/index.md"], [], "data", []),
    ("data-set-deleted-file", [], ["data/penguins/penguins.csv"], "data", []),
    ("root-tool-config", ["pyproject.toml"], [], "none", []),
    ("cross-package-tests", ["tests/e2e/test_local_run.py"], [], "none", []),
    ("ci-checker-config", [".ci/run", ".yamllint.yaml"], [], "none", []),
    # The release tooling builds every artifact: an image-builder edit must run the image build.
    ("release-src", ["packages/release/src/cicd_release/artifacts/image.py"], [], "full", ["release"]),
    ("release-pyproject", ["packages/release/pyproject.toml"], [], "full", ["release"]),
    ("release-tests-only", ["packages/release/tests/test_plan.py"], [], "none", []),
    # Paths propose a recompile; the spec's bytes then decide whether a run starts (test_ci_chain pins that).
    ("pipeline-report", ["packages/pipeline/src/cicd_pipeline/report.py"], [], "pipeline", ["pipeline"]),
    ("noxfile", ["noxfile.py"], [], "full", []),
    ("tasks-module", ["tasks.py"], [], "full", []),
    ("tasks-package", ["tasks/__init__.py"], [], "full", []),
    ("lock-file", ["requirements/lock.txt"], [], "full", []),
    ("cloudbuild", ["cloudbuild.yaml"], [], "full", []),
    ("dockerfile", ["docker/Dockerfile"], [], "full", []),
    ("github-workflow", [".github/workflows/ci.yml"], [], "full", []),
    ("unknown-top-level", ["Makefile"], [], "full", []),
    ("trainer-and-pipeline", [MODEL, PIPELINE_SRC], [], "pipeline", ["pipeline", "trainer"]),
    ("trainer-and-docs", [PREPROCESSING, "docs/index.md"], [], "modules", ["trainer"]),
    (
        "all-three",
        [MODEL, "packages/pipeline/pyproject.toml", COMPONENT],
        [],
        "full",
        ["components", "pipeline", "trainer"],
    ),
    ("delete-trainer-module", [], [PREPROCESSING], "modules", ["trainer"]),
    ("delete-components-file", [], [COMPONENT], "full", ["components"]),
]


@pytest.mark.parametrize(
    ("write", "delete", "workflow", "packages"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_workflow_for_change(repo, write, delete, workflow, packages):
    base = git(repo, "rev-parse", "HEAD")
    head = commit(repo, write=write, delete=delete)
    plan = make_plan(repo, base, head)
    assert (plan.workflow, list(plan.changed_packages)) == (workflow, packages)
    assert plan.steps == STEPS_OF[workflow]
    assert set(plan.changed_files) == set(write) | set(delete)
    assert (plan.base, plan.head) == (base, head)
    assert plan.reasons and plan.reasons[0].startswith(f"{workflow}:")


DATA_FILE = "data/penguins/penguins.csv"


@pytest.mark.parametrize(
    ("code", "workflow"),
    [([MODEL], "modules"), ([PIPELINE_SRC], "pipeline"), ([COMPONENT], "full"), (["noxfile.py"], "full")],
    ids=["trainer", "pipeline", "components", "shared-build-input"],
)
def test_data_with_code_takes_the_code_workflow_plus_the_upload(repo, code, workflow):
    base = git(repo, "rev-parse", "HEAD")
    plan = make_plan(repo, base, commit(repo, write=[*code, DATA_FILE]))
    assert plan.workflow == workflow
    assert plan.steps == with_data(STEPS_OF[workflow])
    assert plan.steps.index("data.upload") < plan.steps.index("pipeline.submit")
    assert any(r.startswith("data: the training data data/penguins/ changed") for r in plan.reasons)


def test_a_data_only_change_builds_nothing_and_uploads_before_the_run(repo):
    base = git(repo, "rev-parse", "HEAD")
    plan = make_plan(repo, base, commit(repo, write=[DATA_FILE]))
    assert (plan.workflow, plan.steps, plan.changed_packages) == ("data", DATA, ())
    assert not {"build.wheels", "build.image", "pipeline.compile", "modules.upload"} & set(plan.steps)
    assert "(no image, no compile)" in plan.reasons[0] and DATA_FILE in plan.reasons[0]


def test_a_code_change_alone_never_uploads_data(repo):
    """The snapshot a team uploaded from elsewhere stays what runs train on until data/ itself changes."""
    base = git(repo, "rev-parse", "HEAD")
    for write in ([MODEL], [PIPELINE_SRC], [COMPONENT]):
        assert "data.upload" not in make_plan(repo, base, commit(repo, write=write)).steps
    assert "data.upload" not in make_plan(repo, None).steps


def test_unknown_top_level_path_is_named_in_the_reasons(repo):
    base = git(repo, "rev-parse", "HEAD")
    plan = make_plan(repo, base, commit(repo, write=["Makefile"]))
    assert any("'Makefile'" in reason for reason in plan.reasons)


def test_rename_counts_both_sides(repo):
    base = git(repo, "rev-parse", "HEAD")
    old, new = "packages/trainer/src/cicd_trainer/model.py", "docs/old_model.py"
    plan = make_plan(repo, base, commit(repo, rename=[(old, new)]))
    assert set(plan.changed_files) == {old, new}
    assert (plan.workflow, plan.changed_packages) == ("modules", ("trainer",))


def test_rename_into_components_counts_the_new_side(repo):
    base = git(repo, "rev-parse", "HEAD")
    old, new = "docs/index.md", "packages/components/src/cicd_components/gate/notes.md"
    plan = make_plan(repo, base, commit(repo, rename=[(old, new)]))
    assert set(plan.changed_files) == {old, new}
    assert plan.workflow == "full"


@pytest.mark.parametrize("path", ["packages/unknown/x.py", "packages/stray.py", "packages/trainer"])
def test_unknown_path_under_packages_is_an_error(repo, path):
    base = git(repo, "rev-parse", "HEAD")
    if path == "packages/trainer":  # A file in place of a package folder: checked on classify_path alone.
        with pytest.raises(PlanError, match="packages/trainer"):
            classify_path(path)
        return
    head = commit(repo, write=[path])
    with pytest.raises(PlanError) as info:
        make_plan(repo, base, head)
    assert path in str(info.value) and "PACKAGES" in str(info.value) and "move it" in str(info.value)


MISSING_BASES = ["0" * 40, "1234567890abcdef1234567890abcdef12345678", "origin/no-such-branch", None, ""]


@pytest.mark.parametrize("base", MISSING_BASES)
def test_missing_base_builds_everything_and_says_so(repo, base):
    head = commit(repo, write=["docs/index.md"])
    plan = make_plan(repo, base, head)
    assert (plan.base, plan.workflow, plan.steps) == (None, "full", FULL)
    assert plan.changed_packages == ("components", "pipeline", "release", "trainer")
    assert len(plan.reasons) == 1 and "base" in plan.reasons[0].lower()
    if base:
        assert base in plan.reasons[0]


def test_shallow_clone_without_the_base_builds_everything(repo, tmp_path):
    parent = git(repo, "rev-parse", "HEAD")
    commit(repo, write=["docs/index.md"])
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)],
        check=True,
        capture_output=True,
        env=GIT_ENV,
    )
    plan = make_plan(clone, parent)
    assert (plan.base, plan.workflow) == (None, "full")
    assert parent in plan.reasons[0] and "shallow" in plan.reasons[0]


def test_head_defaults_to_HEAD_and_refs_resolve_to_full_shas(repo):
    head = commit(repo, write=[PIPELINE_SRC])
    plan = make_plan(str(repo), "HEAD~1")
    assert plan.head == head and plan.base == git(repo, "rev-parse", "HEAD~1") and len(plan.base) == 40
    assert plan.workflow == "pipeline"


def test_no_change_runs_tests_only(repo):
    head = git(repo, "rev-parse", "HEAD")
    plan = make_plan(repo, head, head)
    assert (plan.changed_files, plan.changed_packages, plan.workflow, plan.steps) == ((), (), "none", NONE)
    assert "No files differ" in plan.reasons[0]


def test_bad_head_is_an_error_naming_it(repo):
    with pytest.raises(PlanError, match="no-such-ref"):
        make_plan(repo, "HEAD", "no-such-ref")


def test_not_a_repository_is_an_error(tmp_path):
    with pytest.raises(PlanError, match="not a git repository"):
        make_plan(tmp_path, "HEAD")


def test_json_has_every_key_and_round_trips(repo):
    base = git(repo, "rev-parse", "HEAD")
    plan = make_plan(repo, base, commit(repo, write=[MODEL]))
    data = json.loads(plan.to_json())
    assert set(data) >= {"base", "head", "changed_files", "changed_packages", "workflow", "steps", "reasons"}
    assert data["steps"] == list(MODULES) and data["changed_packages"] == ["trainer"]
    assert json.loads(make_plan(repo, None).to_json())["base"] is None


def test_needs_follows_the_steps_and_rejects_typos(repo):
    base = git(repo, "rev-parse", "HEAD")
    plan = make_plan(repo, base, commit(repo, write=[MODEL]))
    assert [step for step in planmod.STEPS if needs(plan, step)] == list(MODULES)
    with pytest.raises(PlanError, match="build.imag'"):
        needs(plan, "build.imag")


def test_format_table_shows_workflow_steps_and_reasons(repo):
    base = git(repo, "rev-parse", "HEAD")
    plan = make_plan(repo, base, commit(repo, write=[PIPELINE_SRC]))
    table = format_table(plan)
    assert "pipeline" in table and "build.image" in table and "skip" in table and plan.reasons[0] in table


def test_every_workflow_runs_a_subsequence_of_the_chain():
    for workflow, steps in planmod.WORKFLOW_STEPS.items():
        assert steps[0] == "test", workflow
        assert [s for s in planmod.STEPS if s in steps] == list(steps), workflow


def test_markdown_for_a_pull_request_names_workflow_steps_and_reasons(repo):
    base = git(repo, "rev-parse", "HEAD")
    head = commit(repo, write=[MODEL])
    text = planmod.format_markdown(make_plan(repo, base, head))
    assert text.startswith("### Release plan: `modules`")
    assert "| build.image | skipped |" in text and "| pipeline.submit | runs |" in text
    assert "module files are runtime parameters" in text


@pytest.mark.parametrize("target", ["/etc/hostname", "../../../outside.txt"])
def test_a_symlink_under_packages_is_refused(repo, target):
    base = git(repo, "rev-parse", "HEAD")
    link = repo / "packages" / "trainer" / "src" / "cicd_trainer" / "features.py"
    link.symlink_to(target)
    head = commit(repo, message="link")
    with pytest.raises(PlanError, match="features.py is a symlink"):
        make_plan(repo, base, head)
    with pytest.raises(PlanError, match="is a symlink"):
        make_plan(repo, None, head)  # a full plan too: a link already there is no better


def test_a_file_name_cannot_forge_a_line_of_the_plan(repo):
    base = git(repo, "rev-parse", "HEAD")
    head = commit(repo, write=["docs/x\nworkflow  none.md"])
    table = format_table(make_plan(repo, base, head))
    assert "docs/x\\nworkflow  none.md" in table
    assert not any(line.startswith("workflow  none") for line in table.splitlines()[5:])


@pytest.mark.parametrize("target", ["/proc/self/environ", "../../outside.csv"])
def test_a_symlink_under_data_is_refused(repo, target):
    base = git(repo, "rev-parse", "HEAD")
    (repo / "data" / "penguins" / "more.csv").symlink_to(target)
    head = commit(repo, message="link data")
    with pytest.raises(PlanError, match=r"data/penguins/more.csv is a symlink: data/ may hold only regular"):
        make_plan(repo, base, head)
    with pytest.raises(PlanError, match="is a symlink"):
        make_plan(repo, None, head)


@pytest.mark.parametrize(
    "name",
    [
        "docs/![x](https:__attacker.example_t.png).md",
        "docs/<img src=x onerror=alert(1)>.md",
        "docs/[click](javascript:alert(1)).md",
        "docs/a|b`c*d*_e_.md",
        "docs/www.attacker.example.md",
    ],
)
def test_a_file_name_reaches_the_markdown_summary_as_text(repo, name):
    base = git(repo, "rev-parse", "HEAD")
    head = commit(repo, write=[name])
    text = planmod.format_markdown(make_plan(repo, base, head))
    [why] = [line for line in text.splitlines() if line.startswith("- ") and "docs" in line]
    assert not re.search(r"(?<!\\)[\[\]()<>!|`*_.]", why[2:]), why  # every such character escaped
    assert re.sub(r"\\(.)", r"\1", why[2:]).count(name) == 1, "unescaped, it reads as the file name"
