"""`invoke compare BASE HEAD`: what a pull request will train, base and head each trained by its own code.

Each ref runs in a git worktree of its commit (under the compare folder, removed after), as
`python -m invoke run --root <state>` there, with PYTHONPATH set to that worktree's packages/*/src: the ref's
own tasks, pipeline, components and trainer files, on the ref's own shipped data, in this interpreter's
environment (its TFX, Beam and TensorFlow, installed from this checkout's lock). Each run starts from an empty
state folder, so neither has a baseline and blessed-or-not is each ref's own verdict. The state folders and
the two HTML reports stay (`<folder>/base.html`, `<folder>/head.html`); the worktrees do not.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cicd_pipeline.run_inputs import TRAINER_FILES
from cicd_release.core import git
from cicd_release.core.errors import CompareError, ReleaseError
from cicd_release.plan.changes import format_markdown, format_table, make_plan

ROLES = ("base", "head")
LOCK = "requirements/lock.txt"
# What differs between the refs and changes how their numbers compare: the path, and what a reader must know.
_SHARED_INPUTS = (
    (
        TRAINER_FILES["holdout_file"],
        "the holdout differs between base and head: their holdout numbers are not from the same rows.",
    ),
    (
        "data/penguins",
        "the shipped data differs between base and head: each trained and was judged on its own.",
    ),
)
# The lines a stopped run's error output ends with that say why (invoke's Exit message).
_STOP_LINES = 8


def resolve(repo: Path, ref: str) -> str:
    """The full sha of commit `ref` in `repo`, or a CompareError naming it and the fix."""
    result = git.run(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if result.returncode != 0 or not result.stdout.strip():
        raise CompareError(
            f"{ref!r} is not a commit in {repo}: name a branch, tag or sha this clone holds "
            "(`git fetch origin BRANCH` first for a remote branch; in CI check out with fetch-depth: 0)."
        )
    return result.stdout.strip()


@dataclasses.dataclass(frozen=True)
class RefRun:
    """How one ref's `invoke run` ended: its exit code, its seconds, the lines it stopped with."""

    exit_code: int | None
    seconds: float
    stopped: list[str]


def _remove_worktree(repo: Path, path: Path) -> None:
    """The worktree at `path` gone from disk and from git's list. No `git worktree prune`: the repository may
    be shared with other worktrees, whose records are theirs."""
    git.run(repo, "worktree", "remove", "--force", str(path))
    if path.exists():  # not a registered worktree (a half-made one)
        shutil.rmtree(path, ignore_errors=True)


def _source_path(worktree: Path) -> str:
    """The ref's packages first on the import path (all four are pure Python, src layout), then the caller's."""
    folders = [str(p) for p in sorted((worktree / "packages").glob("*/src")) if p.is_dir()]
    return os.pathsep.join([*folders, *filter(None, [os.environ.get("PYTHONPATH")])])


def run_ref(
    repo: Path,
    commit: str,
    worktree: Path,
    state: Path,
    output: Path,
    run_args: Sequence[str] = (),
    echo: Callable[[str], None] = print,
) -> RefRun:
    """`invoke run --root state` in a worktree of `commit`, the worktree removed after.

    Its output goes to `output`, its progress lines also to `echo` as they come.
    """
    _remove_worktree(repo, worktree)  # a leftover of a run that was killed
    worktree.parent.mkdir(parents=True, exist_ok=True)
    # --force: a worktree of this path whose folder was deleted (a killed run, `rm -rf .cicd`) is still
    # registered; git would refuse the path until pruned.
    git.git(
        repo,
        "worktree",
        "add",
        "--force",
        "--detach",
        "--quiet",
        str(worktree),
        commit,
        what="Cannot check out",
    )
    started = time.monotonic()
    try:
        # Unbuffered: its progress lines reach `echo` as they come, not in blocks at the end.
        env = {**os.environ, "PYTHONPATH": _source_path(worktree), "PYTHONUNBUFFERED": "1"}
        with open(output, "w") as out, tempfile.TemporaryFile("w+") as errors:
            process = subprocess.Popen(
                [sys.executable, "-m", "invoke", "run", "--root", str(state), *run_args],
                cwd=worktree,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                errors="replace",
            )
            for line in process.stdout:
                out.write(line)
                echo(f"  {line.rstrip()}")
            code = process.wait()
            errors.seek(0)
            error_text = errors.read()
            out.write(error_text)
    except OSError as err:  # the interpreter could not be started
        return RefRun(None, time.monotonic() - started, [f"could not start `invoke run`: {err}"])
    finally:
        _remove_worktree(repo, worktree)
    lines = [line.rstrip() for line in error_text.splitlines() if line.strip()]
    stopped = lines[-_STOP_LINES:] if code not in (0, 5) else []
    return RefRun(code, time.monotonic() - started, stopped)


def _blob(repo: Path, commit: str, path: str) -> bytes | None:
    result = subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, check=False
    )
    return result.stdout if result.returncode == 0 else None


def notes(repo: Path, base: str, head: str, environment: Path | None = None) -> list[str]:
    """What differs between the refs (holdout, data) and between each ref's lock and `environment`'s (the
    lock file the running environment was installed from), which changes how the numbers compare."""
    lines = []
    for path, note in _SHARED_INPUTS:
        if git.run(repo, "diff", "--quiet", base, head, "--", path).returncode == 1:
            lines.append(note)
    if environment is not None and environment.is_file():
        installed = environment.read_bytes()
        for role, commit in zip(ROLES, (base, head), strict=True):
            lock = _blob(repo, commit, LOCK)
            if lock is not None and lock != installed:
                lines.append(
                    f"the {role}'s {LOCK} differs from {environment}, which this environment was installed "
                    f"from: the {role} ran its code on other library versions than its lock pins."
                )
    return lines


def plan_text(repo: Path, base: str, head: str, markdown: bool) -> str:
    """`invoke plan --base BASE --head HEAD`'s output; a plan refused is said, not raised: the runs still show."""
    try:
        plan = make_plan(str(repo), base, head)
    except ReleaseError as err:
        return f"The release plan was refused: {err}"
    return format_markdown(plan) if markdown else format_table(plan)


def compare(
    repo: Path,
    base: str,
    head: str,
    folder: Path,
    *,
    markdown: bool = False,
    run_args: Sequence[str] = (),
    environment: Path | None = None,
    echo: Callable[[str], None] = print,
):
    """Runs `base`, then `head`, each from a fresh state in `folder/<role>`, and puts them side by side
    (cicd_pipeline.compare.Comparison). A ref that is not a commit is a CompareError before anything runs."""
    from cicd_pipeline.compare import Comparison, read_outcome

    refs = dict(zip(ROLES, (base, head), strict=True))
    commits = {role: resolve(repo, ref) for role, ref in refs.items()}
    plan = plan_text(repo, commits["base"], commits["head"], markdown)
    outcomes = {}
    for role, ref in refs.items():
        state = folder / role
        shutil.rmtree(state, ignore_errors=True)
        (folder / f"{role}.html").unlink(missing_ok=True)
        echo(f"{role} {ref} ({commits[role][:12]}): `invoke run` in a worktree of it, state in {state} ...")
        worktree, output = folder / "worktrees" / role, folder / f"{role}.out"
        run = run_ref(repo, commits[role], worktree, state, output, run_args, echo)
        echo(f"{role}: exit {run.exit_code} after {run.seconds:.0f} s (its output: {output})")
        outcome = read_outcome(
            state, role, ref, commits[role], exit_code=run.exit_code, seconds=run.seconds, stopped=run.stopped
        )
        if outcome.report:  # a stable name for the upload, beside the state; shown from the clone's root
            copy = folder / f"{role}.html"
            shutil.copyfile(outcome.report, copy)
            shown = copy.relative_to(repo) if copy.is_relative_to(repo) else copy
            outcome = dataclasses.replace(outcome, report=str(shown))
        outcomes[role] = outcome
    return Comparison(
        outcomes["base"],
        outcomes["head"],
        notes(repo, commits["base"], commits["head"], environment),
        plan,
    )
