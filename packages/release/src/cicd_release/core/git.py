"""The one wrapper around the git command line: every error is a ReleaseError naming what was asked."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cicd_release.core.errors import GitError


def run(repo: str | Path, *args: str) -> subprocess.CompletedProcess:
    """Runs `git -C repo args...` and returns the result, whatever its exit status."""
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="surrogateescape",
            check=False,
        )
    except FileNotFoundError as exc:
        raise GitError("git is not on PATH: install git (the release chain reads commits with it).") from exc


def git(repo: str | Path, *args: str, what: str) -> str:
    """git's standard output, or a GitError starting with `what` and quoting git's own complaint."""
    result = run(repo, *args)
    if result.returncode != 0:
        raise GitError(f"{what}: git {' '.join(args)} said: {result.stderr.strip()}")
    return result.stdout


def head_commit(repo: str | Path) -> str:
    """HEAD's full sha: every artifact and run is traced to a commit."""
    return git(repo, "rev-parse", "HEAD", what=f"{repo} is not a git checkout with a commit").strip()


def is_dirty(repo: str | Path, paths: list[str]) -> bool:
    """Whether files under `paths` differ from HEAD (tracked edits or untracked files); a failure is an error."""
    out = git(repo, "status", "--porcelain", "--", *paths, what=f"Cannot read the state of {repo}")
    return bool(out.strip())


def changed_paths(repo: str | Path) -> list[str]:
    """Every path of the working tree that differs from HEAD (edited, staged, added, deleted or untracked and
    not ignored), as `git status` names them; a failure is an error."""
    out = git(
        repo, "status", "--porcelain", "-z", "--untracked-files=all", what=f"Cannot read the state of {repo}"
    )
    entries = out.split("\0")
    paths, skip = [], False
    for entry in entries:
        if skip or not entry:
            skip = False
            continue
        status, path = entry[:2], entry[3:]
        paths.append(path)
        skip = "R" in status or "C" in status  # a rename's or copy's source follows as its own entry
    return paths
