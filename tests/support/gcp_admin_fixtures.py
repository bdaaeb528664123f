"""Fixtures for `invoke setup` / `invoke doctor` tests: a fresh admin stand-in project per test, key files to act
as its owner or as one of the release's service accounts, and the real `invoke` run against it.

Imported by tests/integration/conftest.py.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gcp_admin_standin import AdminStandIn, running_admin_standin
from tests.support.gcs_emulator import GcsEmulator
from tests.support.warm_python import run_module

ROOT = Path(__file__).resolve().parents[2]
PROJECT, NUMBER, GITHUB_REPO = "penguin-prod-42", "738612950412", "penguin-org/penguin-training"
# GitHub's numeric ids of that repository and its owner (`gh api repos/OWNER/REPO --jq .id,.owner.id`).
GITHUB_REPO_ID, GITHUB_OWNER_ID = "260064828", "1342004"


@pytest.fixture
def admin_standin(_gcs_emulator_process: GcsEmulator) -> Iterator[AdminStandIn]:
    """A new, empty project (only Service Usage and Cloud Storage enabled) behind the admin stand-in."""
    with running_admin_standin(PROJECT, NUMBER, _gcs_emulator_process.endpoint) as standin:
        yield standin


@pytest.fixture
def owner_key(admin_standin: AdminStandIn, tmp_path: Path) -> Path:
    """A key file of a service account holding roles/owner on the project (who runs setup)."""
    return admin_standin.add_owner(tmp_path / "owner.json")


def cloud_env(standin: AdminStandIn, key: Path, **settings: str) -> dict[str, str]:
    """The environment of an `invoke` run against the stand-in, acting as the key's service account."""
    env = {
        **os.environ,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "NO_GCE_CHECK": "True",
        "INVOKE_CICD_PROJECT": PROJECT,
        "INVOKE_CICD_CLOUD_API_ENDPOINT": standin.endpoint,
        "INVOKE_CICD_REQUEST_DEADLINE_SECONDS": "10",
        # The repository's ids come with it (setup needs them with --github-repo); a test drops them to see why.
        "INVOKE_CICD_GITHUB_REPO_ID": GITHUB_REPO_ID,
        "INVOKE_CICD_GITHUB_OWNER_ID": GITHUB_OWNER_ID,
    }
    env.pop("STORAGE_EMULATOR_HOST", None)
    env.update({f"INVOKE_CICD_{k.upper()}": v for k, v in settings.items()})
    return env


def invoke(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The real `invoke` in a process of its own, from the repository root (started warm: warm_python.py)."""
    return run_module("invoke", *args, cwd=ROOT, env=env, timeout=300)
