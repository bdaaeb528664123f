"""A clone of this repository's committed state, for the tests that run the chain as Cloud Build would."""

import subprocess
import time
from pathlib import Path

import pytest

from tests.support.warm_python import run_fresh, run_module

ROOT = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def clone(tmp_path) -> Path:
    """The committed repository (not the working tree: commit before running these), with an author set."""
    repo = tmp_path / "repo"
    git(ROOT, "clone", "--quiet", str(ROOT), str(repo))
    git(repo, "config", "user.email", "ci@example.com")
    git(repo, "config", "user.name", "ci test")
    return repo


def invoke(
    repo: Path, env: dict, *args: str, code: int = 0, timeout: float = 1200, fresh: bool = False
) -> tuple[str, float]:
    """`python -m invoke ARGS` in `repo`, as Cloud Build runs a step: its output and its seconds; the exit code
    must be `code`. Started warm (tests/support/warm_python.py), or in a fresh interpreter with `fresh`."""
    started = time.monotonic()
    result = (run_fresh if fresh else run_module)("invoke", *args, cwd=repo, env=env, timeout=timeout)
    elapsed = time.monotonic() - started
    assert result.returncode == code, (
        f"invoke {' '.join(args)}: exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout + result.stderr, elapsed
