"""`invoke compare BASE HEAD`, as a pull request's workflow runs it: on a clone of this repository whose head
commit changes the model, each ref trained by its own code, then one table with both.

Two real pipeline runs (about a minute each here with 20 training steps): the one such test. The table's
formatting is tested in packages/pipeline/tests/test_compare.py.
"""

import json
import os
import re
from pathlib import Path

from tests.support.checkout import git, invoke

MODEL = "packages/trainer/src/cicd_trainer/model.py"


def recorded_learning_rate(state: Path) -> float:
    """The learning rate the Trainer of the run in `state` trained with (model.py writes its hyperparameters)."""
    [path] = state.glob("pipeline_root/Trainer/model_run/*/hyperparameters.json")
    return json.loads(path.read_text())["learning_rate"]


def test_compare_trains_base_and_head_each_by_its_own_code_and_shows_both(clone):
    base = git(clone, "rev-parse", "HEAD")
    model = clone / MODEL
    text = model.read_text()
    assert '"learning_rate": 0.01,' in text
    model.write_text(text.replace('"learning_rate": 0.01,', '"learning_rate": 0.05,'))
    git(clone, "commit", "--quiet", "-am", "a faster learning rate")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    out, seconds = invoke(clone, env, "compare", base, "HEAD", "--markdown", "--train-steps", "20")

    table = out[out.index("## What this pull request will train") :]
    assert f"| | base `{base}` | head `HEAD` | head − base |" in table
    head = git(clone, "rev-parse", "HEAD")
    assert f"| commit | {base[:12]} | {head[:12]} |" in table
    verdicts = re.search(r"^\| verdict \| \*\*(.+?)\*\* \| \*\*(.+?)\*\* \|", table, re.MULTILINE)
    assert verdicts and {verdicts[1], verdicts[2]} <= {"BLESSED", "NOT BLESSED"}, table
    for row in ("eval split accuracy", "holdout accuracy", "· holdout, species=Adelie"):
        numbers = re.search(
            rf"^\| {re.escape(row)} \| (\d\.\d{{4}}) \(\d+\) \| (\d\.\d{{4}}) \(\d+\) \|", table, re.M
        )
        assert numbers, f"no numbers for {row!r} in:\n{table}"
    assert "holdout (67 examples): accuracy" in table  # the judge's own checks, for each ref
    # The plan of the change: a trainer change uploads the module and retrains, no image build.
    assert "### Release plan: `modules`" in table, table

    # Each ref ran its own model.py: the base with 0.01, the head with its edit.
    compare = clone / ".cicd" / "compare"
    assert recorded_learning_rate(compare / "base") == 0.01
    assert recorded_learning_rate(compare / "head") == 0.05
    assert (compare / "base.html").read_text().startswith("<!DOCTYPE html>")
    assert (compare / "head.html").is_file()
    # The worktrees are gone, from the disk and from git's list.
    assert not (compare / "worktrees" / "base").exists()
    assert git(clone, "worktree", "list").count("\n") == 0


def test_compare_a_ref_that_is_not_a_commit_stops_in_one_line(clone):
    out, _ = invoke(clone, dict(os.environ), "compare", "no-such-branch", "HEAD", code=2)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("CompareError: 'no-such-branch' is not a commit in")
    assert not (clone / ".cicd" / "compare" / "base").exists()  # nothing ran
