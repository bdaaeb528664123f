"""Uncommitted edits are never released under HEAD's commit: a step that uploads, builds or submits what the
checkout holds refuses a dirty working tree, unless --allow-dirty, and then the run and the record say dirty.

The outside probe: one uncommitted line in model.py was uploaded and submitted under the clean commit's id and
label; once the edit was reverted, `plan --base :release` said `none`, and the committed model was never trained.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from cicd_release.core import git as git_lib
from cicd_release.core.errors import InputError
from cicd_release.core.settings import Settings
from cicd_release.core.workspace import Workspace
from cicd_release.plan import release_state
from cicd_release.plan.release_state import ReleaseRecord
from cicd_release.publish.snapshots import RunData
from cicd_release.run.launch import RunRequest
from cicd_release.steps import STEPS, StepContext

ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
MODEL = "packages/trainer/src/cicd_trainer/model.py"


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    return subprocess.run(
        ["git", "-C", str(repo), *identity, *args], env=ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / MODEL).parent.mkdir(parents=True)
    (tmp_path / MODEL).write_text("UNITS = 8\n")
    (tmp_path / ".gitignore").write_text(".cicd/\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "a")
    return tmp_path


def context(repo: Path, **options) -> StepContext:
    return StepContext(ws=Workspace(repo), settings=Settings(), config=None, **options)


CHECKOUT_STEPS = [
    "build.wheels",
    "build.image",
    "pipeline.compile",
    "modules.upload",
    "data.upload",
    "pipeline.submit",
]


@pytest.mark.parametrize("step", CHECKOUT_STEPS)
def test_a_step_that_releases_the_checkout_refuses_uncommitted_changes(repo, step):
    (repo / MODEL).write_text("UNITS = 16\n")
    with pytest.raises(InputError) as caught:
        context(repo).check_clean([step])
    message = str(caught.value)
    assert MODEL in message and "commit or stash them" in message and "--allow-dirty" in message
    assert caught.value.exit_code == 2 and "\n" not in message


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "notes.txt").write_text("untracked\n"),
        lambda r: (r / MODEL).unlink(),
        lambda r: (git(r, "mv", MODEL, "model2.py"),),
        lambda r: ((r / "a b.py").write_text("x"), git(r, "add", "a b.py")),
    ],
    ids=["untracked", "deleted", "renamed", "staged-with-a-space"],
)
def test_every_kind_of_change_counts(repo, change):
    change(repo)
    assert git_lib.changed_paths(repo), "git status saw it"
    with pytest.raises(InputError, match="uncommitted changes"):
        context(repo).check_clean(["modules.upload"])


def test_a_clean_tree_ignored_outputs_and_steps_that_release_nothing_pass(repo):
    (repo / ".cicd").mkdir()
    (repo / ".cicd" / "plan.json").write_text("{}")
    context(repo).check_clean(CHECKOUT_STEPS)  # ignored outputs are not changes
    (repo / MODEL).write_text("UNITS = 16\n")
    context(repo).check_clean(["test", "schedule.move"])
    assert not any(STEPS[s].checkout for s in ("test", "schedule.move"))


def test_allow_dirty_lets_it_run_and_says_so(repo):
    (repo / MODEL).write_text("UNITS = 16\n")
    ctx = context(repo, allow_dirty=True)
    ctx.check_clean(CHECKOUT_STEPS)
    assert ctx.dirty is True
    (repo / MODEL).write_text("UNITS = 8\n")
    assert ctx.dirty is False, "allowed, but nothing uncommitted: not dirty"
    assert context(repo).dirty is False


def request(dirty: bool) -> RunRequest:
    data = RunData(uri="gs://b/data/penguins/" + "d" * 64, digest="d" * 64, name="penguins", kind="snapshot")
    return RunRequest(
        spec="gs://b/specs/s.json",
        image="r/i:1",
        modules={},
        data=data,
        hyperparameters="{}",
        commit="a" * 40,
        versions={"trainer": "0.1.0"},
        trigger="release",
        dirty=dirty,
    )


def test_a_dirty_runs_commit_label_says_dirty():
    assert request(False).labels()["commit"] == "a" * 12
    assert request(True).labels()["commit"] == "a" * 12 + "-dirty"
    assert request(True).model_labels()["commit"] == "a" * 12 + "-dirty"


def test_the_record_says_dirty_only_when_it_was():
    uri = "gs://b/releases/p/latest.json"
    clean = ReleaseRecord(uri=uri, commit="a" * 40)
    assert "dirty" not in clean.to_json()
    dirty = dataclasses.replace(clean, dirty=True)
    assert dirty.to_json()["dirty"] is True
    assert ReleaseRecord.from_json(dirty.to_json(), 3, uri).dirty is True
    moved = dirty.released_by_same_run("b" * 40)
    assert moved.dirty is False and moved.run_commit == "a" * 40, "a clean commit the same run released"


def test_a_plan_from_a_dirty_release_builds_everything(repo, monkeypatch):
    head = git(repo, "rev-parse", "HEAD")
    dirty = ReleaseRecord(uri="gs://b/r.json", generation=1, commit=head, dirty=True)
    monkeypatch.setattr(release_state, "read_record", lambda settings, client: dirty)
    monkeypatch.setattr(release_state, "complete_plan", lambda ctx, plan, last=None: plan)
    ctx = context(repo)
    monkeypatch.setattr(ctx, "check_settings", lambda steps: None)

    planned = release_state.plan(repo, release_state.RELEASE_BASE, cloud=ctx)

    assert planned.workflow == "full" and planned.base is None
    assert "made from uncommitted changes (--allow-dirty)" in planned.reasons[0]
    clean = dataclasses.replace(dirty, dirty=False)
    monkeypatch.setattr(release_state, "read_record", lambda settings, client: clean)
    assert release_state.plan(repo, release_state.RELEASE_BASE, cloud=ctx).workflow == "none"
