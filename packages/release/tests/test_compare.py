"""`invoke compare`'s orchestration, in seconds: refs resolved, each ref's own `invoke run` in a worktree removed
after, the notes on what differs, and the pull-request job that runs it without a secret. The real two-run
compare is tests/e2e/test_compare.py."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cicd_pipeline.run_inputs import TRAINER_FILES
from cicd_release.core.errors import CompareError
from cicd_release.run.compare import notes, resolve, run_ref

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

# A stand-in for a ref's tasks: `invoke run --root DIR` says which cicd_pipeline it imports, and exits 5.
TASKS = """
from invoke import Collection, Exit, task


@task
def run(c, root, train_steps=None):
    import cicd_pipeline

    print(f"root={root} steps={train_steps} pipeline={cicd_pipeline.MARK}")
    raise Exit("Not blessed: this ref's model", code=5)


ns = Collection(run)
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=ENV
    ).stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    return repo


def test_a_ref_that_is_not_a_commit_is_an_input_error_naming_it(repo):
    commit(repo, {"README.md": "x"}, "first")
    assert resolve(repo, "HEAD") == git(repo, "rev-parse", "HEAD")
    with pytest.raises(CompareError, match=r"^'nope' is not a commit in .*fetch-depth: 0") as err:
        resolve(repo, "nope")
    assert err.value.exit_code == 2


def test_each_ref_runs_its_own_code_in_a_worktree_that_is_removed_after(repo, tmp_path):
    base = commit(
        repo,
        {"tasks/__init__.py": TASKS, "packages/pipeline/src/cicd_pipeline/__init__.py": "MARK = 'base'\n"},
        "base",
    )
    commit(repo, {"packages/pipeline/src/cicd_pipeline/__init__.py": "MARK = 'head'\n"}, "head")
    folder = tmp_path / "compare"
    seen = []

    run = run_ref(
        repo,
        base,
        folder / "worktrees" / "base",
        folder / "base",
        folder / "base.out",
        ["--train-steps", "7"],
        seen.append,
    )

    assert run.exit_code == 5
    assert seen == [f"  root={folder / 'base'} steps=7 pipeline=base"]  # the base's package, not the head's
    assert run.stopped == []  # not blessed: the verdict says why, not the error lines
    assert "Not blessed: this ref's model" in (folder / "base.out").read_text()
    assert not (folder / "worktrees" / "base").exists()
    assert git(repo, "worktree", "list").count("\n") == 0


def test_a_worktree_left_registered_by_a_killed_run_is_taken_over(repo, tmp_path):
    sha = commit(
        repo,
        {"tasks/__init__.py": TASKS, "packages/pipeline/src/cicd_pipeline/__init__.py": "MARK = 1\n"},
        "x",
    )
    worktree = tmp_path / "compare" / "worktrees" / "base"
    git(repo, "worktree", "add", "--detach", "--quiet", str(worktree), sha)
    shutil.rmtree(worktree)  # deleted, still registered
    run = run_ref(repo, sha, worktree, tmp_path / "state", tmp_path / "out", (), lambda line: None)
    assert run.exit_code == 5
    assert git(repo, "worktree", "list").count("\n") == 0


def test_a_ref_whose_run_fails_keeps_the_lines_it_stopped_with(repo, tmp_path):
    sha = commit(repo, {"tasks/__init__.py": "raise SystemExit('tasks: broken on purpose')\n"}, "broken")
    folder = tmp_path / "compare"
    run = run_ref(repo, sha, folder / "worktrees" / "head", folder / "head", folder / "head.out", (), print)
    assert run.exit_code not in (0, 5)
    assert run.stopped and not (folder / "worktrees" / "head").exists()


def test_notes_name_a_holdout_data_or_lock_that_differs(repo, tmp_path):
    holdout = TRAINER_FILES["holdout_file"]
    files = {holdout: "a\n", "data/penguins/p.csv": "a\n", "requirements/lock.txt": "tfx==1.16.0\n"}
    base = commit(repo, files, "base")
    same = commit(repo, {"README.md": "docs only"}, "docs")
    installed = tmp_path / "lock.txt"
    installed.write_text("tfx==1.16.0\n")
    assert notes(repo, base, same, installed) == []

    head = commit(
        repo, {holdout: "b\n", "data/penguins/p.csv": "b\n", "requirements/lock.txt": "tfx==1.17\n"}, "all"
    )
    found = notes(repo, base, head, installed)
    assert found[0].startswith("the holdout differs")
    assert found[1].startswith("the shipped data differs")
    assert found[2].startswith("the head's requirements/lock.txt differs from")
    assert len(found) == 3  # the base's lock is the installed one


def test_the_pull_request_compare_job_needs_no_secret_and_uploads_both_reports():
    text = (ROOT / ".github" / "workflows" / "pull-request.yml").read_text()
    job = yaml.safe_load(text)["jobs"]["compare"]
    assert job["permissions"] == {"contents": "read"}
    assert "secrets." not in yaml.safe_dump(job) and "id-token" not in yaml.safe_dump(job)
    [checkout] = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == 0 and checkout["with"]["persist-credentials"] is False
    [run] = [s["run"] for s in job["steps"] if "compare" in s.get("run", "")]
    assert run == 'nox -s tasks -- compare "$BASE" HEAD --markdown >> "$GITHUB_STEP_SUMMARY"'
    [upload] = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()" and upload["with"]["include-hidden-files"] is True
    assert upload["with"]["path"].split() == [".cicd/compare/base.html", ".cicd/compare/head.html"]
