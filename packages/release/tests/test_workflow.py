"""What the GitHub workflow hands to Cloud Build: the exact commit, the release base, and no credentials."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())


def steps():
    return WORKFLOW["jobs"]["cloud-build"]["steps"]


def test_the_checkout_keeps_no_token_in_git_config():
    # .git is uploaded (the plan diffs commits); actions/checkout would leave GITHUB_TOKEN in .git/config.
    [checkout] = [s for s in steps() if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["persist-credentials"] is False
    assert checkout["with"]["fetch-depth"] == 0, "the last released commit may be far back"


@pytest.fixture
def upload_list(tmp_path: Path):
    """Which paths gcloud would upload, judged by git's gitignore matcher over .gcloudignore (the same syntax)."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)

    def ignored(path: str) -> bool:
        result = subprocess.run(
            [
                "git",
                "-C",
                str(tmp_path),
                "-c",
                f"core.excludesFile={ROOT / '.gcloudignore'}",
                "check-ignore",
                "--no-index",
                "-q",
                path,
            ],
            env=env,
            check=False,
        )
        return result.returncode == 0

    return ignored


@pytest.mark.parametrize(
    "path",
    ["gha-creds-0f1e2d3c4b5a6978.json", ".cicd/plan.json", "dist/x.whl", "packages/a/__pycache__/m.pyc"],
)
def test_credentials_and_build_leftovers_are_not_uploaded(upload_list, path):
    assert upload_list(path)


@pytest.mark.parametrize(
    "path", ["cloudbuild.yaml", "packages/release/src/cicd_release/plan/changes.py", ".git/HEAD"]
)
def test_the_sources_and_the_history_are(upload_list, path):
    assert not upload_list(path)


def submitted(tmp_path: Path, **env: str) -> list[str]:
    """The arguments the submit step gives gcloud (run with bash, a recording `gcloud` first on PATH)."""
    [submit] = [s for s in steps() if "gcloud builds submit" in str(s.get("run", ""))]
    fake = tmp_path / "bin" / "gcloud"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    fake.chmod(0o755)
    path = f"{fake.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = subprocess.run(
        ["bash", "-e", "-c", submit["run"]],
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


SUBMIT_ENV = {
    "COMMIT_SHA": "0123456789abcdef0123456789abcdef01234567",
    "BASE": ":release",
    "REGION": "europe-west4",
    "SERVING_IMAGE": "s" + "@sha256:" + "0" * 64,
    "BASE_IMAGE": "b" + "@sha256:" + "0" * 64,
    "PYTHON_IMAGE": "p" + "@sha256:" + "0" * 64,
    "PROJECT": "my-project",
    "BUCKET": "my-project-ml",
    "BUILD_ACCOUNT": "cicd-builder@my-project.iam.gserviceaccount.com",
}


def test_the_build_runs_as_the_setup_account_and_stages_where_setup_granted(tmp_path):
    """invoke setup makes the build account and the staging bucket, and grants the submitter only there."""
    from cicd_release.core.settings import Settings
    from cicd_release.provision.desired import Deployment

    [submit] = [s for s in steps() if "gcloud builds submit" in str(s.get("run", ""))]
    staging = Deployment.from_settings(Settings(project="my-project")).staging_bucket
    args = submitted(tmp_path, **SUBMIT_ENV)
    assert args[:3] == ["builds", "submit", "."] and option(args, "--config") == "cloudbuild.yaml"
    account = "projects/my-project/serviceAccounts/cicd-builder@my-project.iam.gserviceaccount.com"
    assert option(args, "--service-account") == account
    assert staging == "my-project_cloudbuild"
    assert option(args, "--gcs-source-staging-dir") == f"gs://{staging}/source"
    assert submit["env"]["BUILD_ACCOUNT"] == "${{ vars.GCP_CLOUDBUILD_SERVICE_ACCOUNT }}"
    substitutions = dict(pair.split("=", 1) for pair in option(args, "--substitutions").split(","))
    assert substitutions["_BUCKET"] == "my-project-ml", "the build and the job summary read the same bucket"


def test_every_build_diffs_against_the_last_release_not_the_previous_push(tmp_path):
    [submit] = [s for s in steps() if "gcloud builds submit" in str(s.get("run", ""))]
    assert "github.event.before" not in str(submit), "a cancelled or failed push's changes would be lost"
    substitutions = option(submitted(tmp_path, **SUBMIT_ENV), "--substitutions").split(",")
    assert "_BASE=:release" in substitutions and "':release'" in submit["env"]["BASE"]
    assert "persist-credentials" not in str(submit)


PULL_REQUEST = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())


def test_a_pull_request_shows_its_plan_with_no_cloud_credentials():
    assert PULL_REQUEST["permissions"] == {"contents": "read"}, (
        "no id-token: a PR build cannot reach the cloud"
    )
    runs = [s.get("run", "") for s in PULL_REQUEST["jobs"]["plan"]["steps"]]
    [plan] = [r for r in runs if " plan " in r]
    assert "--markdown" in plan and '>> "$GITHUB_STEP_SUMMARY"' in plan and "--cloud" not in plan
    [compile_] = [r for r in runs if "pipeline.compile" in r]
    assert "--upload" not in compile_
    assert any("nox -s lint tests" in r for r in runs)


def test_the_release_job_ends_with_what_the_run_did():
    [summary] = [s for s in steps() if "GITHUB_STEP_SUMMARY" in str(s.get("run", ""))]
    assert summary["if"] == "always()" and "summaries/${COMMIT_SHA}/" in summary["run"]


DIGEST = "@sha256:" + "0" * 64
# The check step's environment, as GitHub fills it from the repository variables (GCP_*) and the base.
GOOD_INPUTS = {
    "BASE": ":release",
    "PYTHON_IMAGE": "python:3.10.15-bookworm" + DIGEST,
    "BUILD_ACCOUNT": "cicd-builder@my-project.iam.gserviceaccount.com",
    "INVOKE_CICD_PROJECT": "my-project",
    "INVOKE_CICD_REGION": "europe-west12",
    "INVOKE_CICD_BUCKET": "my-project-ml",
    "INVOKE_CICD_SERVING_IMAGE": "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15" + DIGEST,
    "INVOKE_CICD_BASE_IMAGE": "europe-west4-docker.pkg.dev/my-project/mirror/tfx" + DIGEST,
}


def check_step():
    [check] = [s for s in steps() if s.get("name") == "Check the build's inputs"]
    return check


def check_inputs(**overrides: str) -> subprocess.CompletedProcess:
    """Runs the workflow's own input check (its `run:` script, with bash as GitHub does, `python` being this
    interpreter with the project installed) on these values."""
    bin_dir = Path(sys.executable).parent
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
    env = {**clean, "PATH": f"{bin_dir}{os.pathsep}{clean.get('PATH', '')}", **GOOD_INPUTS, **overrides}
    return subprocess.run(
        ["bash", "-e", "-c", check_step()["run"]], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_the_check_reads_the_variables_the_build_is_submitted_with():
    """What is checked is what is submitted: each value the submit step passes comes from the same expression."""
    [submit] = [s for s in steps() if s.get("name") == "Submit the build for this commit"]
    checked = set(check_step()["env"].values())
    for name in (
        "BASE",
        "REGION",
        "SERVING_IMAGE",
        "BASE_IMAGE",
        "PYTHON_IMAGE",
        "BUCKET",
        "BUILD_ACCOUNT",
        "PROJECT",
    ):
        assert submit["env"][name] in checked, name
    assert "settings.check" in check_step()["run"], (
        "the project's own settings check, not a copy of its rules"
    )


@pytest.mark.parametrize("base", ["", ":release", "0123456789abcdef0123456789abcdef01234567"])
def test_the_inputs_a_manual_run_may_give_pass(base):
    result = check_inputs(BASE=base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "settings: ok" in result.stdout


@pytest.mark.parametrize(
    "overrides",
    [
        {"BASE": "x,_PYTHON_IMAGE=attacker/evil:1"},  # a comma adds a substitution
        {"BASE": "main"},
        {"INVOKE_CICD_REGION": "europe-west4,_BUCKET=other"},
        {"INVOKE_CICD_BASE_IMAGE": "gcr.io/tfx-oss-public/tfx:1.16.0"},  # not by digest
        {"INVOKE_CICD_SERVING_IMAGE": "x" + DIGEST + ",_PYTHON_IMAGE=evil:1"},
        {"PYTHON_IMAGE": "python:3.10.15-bookworm"},  # a tag alone can move under a build
        {"PYTHON_IMAGE": ""},  # required
        {"PYTHON_IMAGE": "python:3.10" + DIGEST + ",_BUCKET=other"},
        {"INVOKE_CICD_BUCKET": "my-project-ml,_PYTHON_IMAGE=evil:1"},
        {"BUILD_ACCOUNT": ""},  # not set: the build would run as the project's default account
        # The settings model's rules, which the old bash regexes lacked or did not have:
        {"INVOKE_CICD_BUCKET": "192.168.5.4"},  # an IP address
        {"INVOKE_CICD_BUCKET": "goog-ml"},  # reserved by Google
        {"INVOKE_CICD_REGION": ""},  # the build is submitted to a region
        {"INVOKE_CICD_PROJECT": "My_Project"},
        {"PYTHON_IMAGE": "evil,_BUCKET=x" + DIGEST},  # a comma before the digest
    ],
)
def test_a_value_that_could_inject_a_substitution_stops_the_job(overrides):
    result = check_inputs(**overrides)
    assert result.returncode == 1 and "::error::" in result.stdout
    assert len(result.stdout.strip().splitlines()) == 1, "one line: an annotation naming the input"
    assert "Traceback" not in result.stdout + result.stderr


def test_the_step_image_comes_from_a_variable_never_from_a_manual_run(tmp_path):
    [submit] = [s for s in steps() if s.get("name") == "Submit the build for this commit"]
    assert submit["env"]["PYTHON_IMAGE"] == "${{ vars.GCP_PYTHON_IMAGE }}"
    substitutions = option(submitted(tmp_path, **SUBMIT_ENV), "--substitutions").split(",")
    assert f"_PYTHON_IMAGE={SUBMIT_ENV['PYTHON_IMAGE']}" in substitutions
    assert set(WORKFLOW[True]["workflow_dispatch"]["inputs"]) == {"base"}


def test_only_main_releases_and_any_other_branch_is_told_why(tmp_path):
    jobs = WORKFLOW["jobs"]
    assert jobs["cloud-build"]["if"] == "github.ref == 'refs/heads/main'"
    assert jobs["cloud-build"]["environment"] == "release", "a protected environment gates each release"
    refuse = jobs["refuse-other-branches"]
    assert refuse["if"] == "github.ref != 'refs/heads/main'"
    [step] = refuse["steps"]
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={**os.environ, "REF": "refs/heads/feature"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "::error::release.yml runs only on refs/heads/main, not on refs/heads/feature" in result.stdout
