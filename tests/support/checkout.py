"""A clone of this repository's committed state, for the tests that run the chain as Cloud Build would."""

import subprocess
from pathlib import Path

import pytest

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
