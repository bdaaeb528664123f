"""`invoke doctor` against the admin stand-in: one line per check, each failure with its fix, exit 3 on any."""

from __future__ import annotations

import json

import pytest

from cicd_release.core.settings import Settings
from cicd_release.plan.release_state import MODULE_FILES
from cicd_release.provision import desired
from cicd_release.provision.desired import Deployment
from cicd_release.provision.gcp_admin import Cloud
from cicd_release.provision.setup import apply
from tests.support.gcp_admin_fixtures import (
    GITHUB_OWNER_ID,
    GITHUB_REPO,
    GITHUB_REPO_ID,
    PROJECT,
    cloud_env,
    invoke,
)
from tests.support.gcs_emulator import free_port, make_storage_client

BUCKET = f"{PROJECT}-ml"
VERTEX = f"vertex-pipelines@{PROJECT}.iam.gserviceaccount.com"
BUILDER = f"cicd-builder@{PROJECT}.iam.gserviceaccount.com"
SUBMITTER = f"cicd-submitter@{PROJECT}.iam.gserviceaccount.com"
POLICY_READER = f"projects/{PROJECT}/roles/cicdPolicyReader"


@pytest.fixture
def applied(admin_standin, owner_key, monkeypatch, _gcs_emulator_process):
    """A project `invoke setup --apply` made, with the training data uploaded (as docs/deploy.md says)."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(owner_key))
    settings = Settings(
        project=PROJECT,
        github_repo=GITHUB_REPO,
        github_repo_id=GITHUB_REPO_ID,
        github_owner_id=GITHUB_OWNER_ID,
        cloud_api_endpoint=admin_standin.endpoint,
    )
    deployment = Deployment.from_settings(settings)
    apply(Cloud(desired.cloud_defaults(settings), PROJECT), deployment, say=lambda line: None)
    gcs = make_storage_client(_gcs_emulator_process.endpoint)
    gcs.bucket(BUCKET).blob("data/penguins/penguins.csv").upload_from_string("species,island\n")
    return admin_standin, gcs


def checks(result) -> dict[str, list[str]]:
    by_status = {"ok": [], "FAIL": [], "skip": []}
    for line in result.stdout.splitlines():
        status = line.split(" ", 1)[0]
        assert status in by_status, f"not a check line: {line!r}"
        by_status[status].append(line)
    return by_status


def test_doctor_passes_on_a_project_setup_made(applied, owner_key):
    standin, _ = applied
    writes = len(standin.writes())
    result = invoke(cloud_env(standin, owner_key, github_repo=GITHUB_REPO), "doctor")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = checks(result)
    assert lines["FAIL"] == [] and lines["skip"] == []
    # APIs, two buckets, the repository, three accounts, the custom role, every grant, the release, the data.
    assert len(lines["ok"]) == (
        len(desired.APIS) + 2 + 1 + 3 + len(desired.CUSTOM_ROLES) + len(desired.GRANTS) + 1 + 1
    )
    assert any(f"custom role {POLICY_READER}: " in line for line in lines["ok"])
    assert any("release: no release yet" in line for line in lines["ok"])
    assert len(standin.writes()) == writes


def test_a_removed_role_is_named_with_its_fix_and_exit_3(applied, owner_key):
    standin, _ = applied
    standin.policies.remove("project", PROJECT, "roles/aiplatform.user", f"serviceAccount:{VERTEX}")

    result = invoke(cloud_env(standin, owner_key, github_repo=GITHUB_REPO), "doctor")

    assert result.returncode == 3
    [failed] = checks(result)["FAIL"]
    assert f"serviceAccount:{VERTEX} lacks roles/aiplatform.user on project {PROJECT}" in failed
    assert (
        f"fix: gcloud projects add-iam-policy-binding {PROJECT} --member=serviceAccount:{VERTEX} "
        "--role=roles/aiplatform.user --condition=None"
    ) in failed
    assert "1 of" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_as_the_build_account_it_tests_its_own_permissions(applied, tmp_path):
    """What Cloud Build runs: the build's account, holding only the table's roles, asks testIamPermissions."""
    standin, _ = applied
    key = standin.key_file(tmp_path / "builder.json", BUILDER)
    env = cloud_env(standin, key)  # no cicd.github_repo on Cloud Build: that one binding is skipped, said so

    passing = invoke(env, "doctor")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert any("(this caller) holds iam.serviceAccounts.actAs" in line for line in checks(passing)["ok"])
    [skipped] = checks(passing)["skip"]
    assert "cicd.github_repo is not set" in skipped

    standin.policies.remove(
        "service account", VERTEX, "roles/iam.serviceAccountUser", f"serviceAccount:{BUILDER}"
    )
    failing = invoke(env, "doctor")

    assert failing.returncode == 3
    [failed] = checks(failing)["FAIL"]
    assert f"{BUILDER} (this caller) lacks iam.serviceAccounts.actAs on service account {VERTEX}" in failed
    assert f"gcloud iam service-accounts add-iam-policy-binding {VERTEX}" in failed
    assert "--role=roles/iam.serviceAccountUser" in failed


def test_as_the_build_account_a_custom_role_short_of_a_permission_is_named(applied, tmp_path):
    """The build's account holds cicdPolicyReader and nothing that reads role definitions: doctor reads its
    policies with the role, and when the role lacks one, both the role and the grant fail, naming it."""
    standin, _ = applied
    key = standin.key_file(tmp_path / "builder.json", BUILDER)
    env = cloud_env(standin, key)
    passing = invoke(env, "doctor")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert any(
        f"custom role {POLICY_READER}: {BUILDER} (this caller) holds its 5 permissions" in line
        for line in checks(passing)["ok"]
    )

    standin.roles[POLICY_READER]["includedPermissions"].remove("storage.buckets.getIamPolicy")
    failing = invoke(env, "doctor")

    assert failing.returncode == 3
    failed = checks(failing)["FAIL"]
    assert any(
        f"custom role {POLICY_READER}: {BUILDER} (this caller) lacks storage.buckets.getIamPolicy" in line
        for line in failed
    ), failed
    assert any(
        f"lacks storage.buckets.getIamPolicy on project {PROJECT}, from {POLICY_READER}" in line
        for line in failed
    ), failed
    # Without it, the bucket policies cannot be read to check the others' grants there: each says so.
    assert all(POLICY_READER in line or "cannot read the IAM policy" in line for line in failed), failed


def test_as_the_owner_a_changed_custom_role_and_a_widened_summary_grant_are_named(applied, owner_key):
    standin, _ = applied
    standin.roles[POLICY_READER]["includedPermissions"] += ["iam.roles.get"]
    policy = standin.policies.get("bucket", BUCKET)
    [summaries] = [b for b in policy["bindings"] if b.get("condition")]
    summaries["members"].remove(f"serviceAccount:{SUBMITTER}")
    policy["bindings"] = [b for b in policy["bindings"] if b["members"]]
    policy["bindings"].append(
        {"role": "roles/storage.objectViewer", "members": [f"serviceAccount:{SUBMITTER}"]}
    )
    standin.policies.set("bucket", BUCKET, policy)

    result = invoke(cloud_env(standin, owner_key, github_repo=GITHUB_REPO), "doctor")

    assert result.returncode == 3
    role, grant = checks(result)["FAIL"]
    assert f"custom role {POLICY_READER} has more than it needs: iam.roles.get" in role
    assert (
        f"serviceAccount:{SUBMITTER} lacks roles/storage.objectViewer on gs://{BUCKET} if run summaries"
        in grant
    )
    assert "--condition='^;^title=run summaries only;expression=" in grant


def test_a_disabled_api_a_missing_release_spec_and_no_data_are_each_a_line(applied, owner_key):
    standin, gcs = applied
    standin.services["aiplatform.googleapis.com"] = False
    gcs.bucket(BUCKET).blob("data/penguins/penguins.csv").delete()
    record = {
        "commit": "a" * 40,
        "inputs": {
            "spec": f"gs://{BUCKET}/specs/penguin-cicd-0.1.0-{'0' * 16}.json",
            # Not in the configured repository: the record is refused, and that registry is never asked.
            "image": f"127.0.0.1:{free_port()}/p/r/cicd-components:0.1.0-{'1' * 12}",
            "modules": {p: f"gs://{BUCKET}/modules/{'2' * 64}/{f}" for p, f in MODULE_FILES.items()},
            "hyperparameters": "{}",
        },
    }
    gcs.bucket(BUCKET).blob("releases/penguin-cicd/latest.json").upload_from_string(json.dumps(record))

    result = invoke(cloud_env(standin, owner_key, github_repo=GITHUB_REPO), "doctor")

    assert result.returncode == 3
    failed = checks(result)["FAIL"]
    assert len(failed) == 4, failed
    api, spec, image, data = failed
    assert f"fix: gcloud services enable aiplatform.googleapis.com --project={PROJECT}" in api
    assert "spec gs://" in spec and "missing" in spec and "_BASE=''" in spec
    assert "release image 127.0.0.1:" in image
    assert (
        f"no data under gs://{BUCKET}/data/penguins" in data
        and "gcloud storage cp data/penguins/*.csv" in data
    )


def test_an_unreachable_endpoint_fails_fast_in_one_line(admin_standin, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    email = admin_standin.add_account("cicd-builder")
    key = admin_standin.key_file(tmp_path / "builder.json", email)
    env = cloud_env(admin_standin, key, cloud_api_endpoint=closed)

    result = invoke(env, "doctor")

    assert result.returncode == 1
    [message] = result.stderr.strip().splitlines()
    assert f"cannot reach {closed}" in message and "Service Usage" in message
    assert result.stdout == ""


def test_a_tampered_release_record_is_reported_problem_by_problem(applied, owner_key):
    standin, gcs = applied
    modules = {p: f"gs://{BUCKET}/modules/{'2' * 64}/{f}" for p, f in MODULE_FILES.items()}
    modules["model_module"] = "https://attacker.example/model.py"
    record = {
        "commit": "a" * 40,
        "inputs": {
            "spec": "gs://attacker-bucket/specs/penguin-cicd-0.1.0-0000000000000000.json",
            "image": "attacker.example/evil:1",
            "modules": modules,
            "hyperparameters": "{}",
        },
    }
    blob = gcs.bucket(BUCKET).blob("releases/penguin-cicd/latest.json")
    blob.upload_from_string(json.dumps(record))

    result = invoke(cloud_env(standin, owner_key, github_repo=GITHUB_REPO), "doctor")

    assert result.returncode == 3 and "Traceback" not in result.stderr
    refused = [line for line in checks(result)["FAIL"] if "(the record is refused)" in line]
    assert len(refused) == 3, refused
    spec, module, image = refused
    assert "spec gs://attacker-bucket/" in spec and "is not a spec of this pipeline" in spec
    assert "module https://attacker.example/model.py is not" in module
    assert "release image attacker.example/evil:1 is not an image of the repository" in image
    assert "gcloud storage rm gs://" in image

    blob.upload_from_string(json.dumps({**record, "commit": "main"}))
    result = invoke(cloud_env(standin, owner_key, github_repo=GITHUB_REPO), "doctor")
    [line] = [line for line in checks(result)["FAIL"] if "release record" in line]
    assert "refused: its commit 'main' is not a 40-hex commit" in line


# --- the scale-out switches: checked only while on, and set up by `invoke setup --apply` when on


def setup_failures(result) -> list[str]:
    """The FAIL lines about the project's set-up: the release check reads the bucket of the emulator that every
    test of the process shares, where another test may have left a release record (read or refused: `FAIL
    release record ...`, and for a record naming a spec or image, `FAIL  release <commit>: spec ... missing`,
    `FAIL  release image ...`)."""
    return [line for line in checks(result)["FAIL"] if not line.startswith("FAIL  release ")]


def test_dataflow_on_makes_doctor_check_its_api_and_roles_and_setup_makes_them(applied, owner_key):
    standin, _ = applied
    off = invoke(cloud_env(standin, owner_key, github_repo=GITHUB_REPO), "doctor")
    assert (
        setup_failures(off) == [] and "dataflow" not in off.stdout
    )  # off: nothing of the switch is asked for

    env = cloud_env(standin, owner_key, github_repo=GITHUB_REPO, beam_runner="dataflow")
    on = invoke(env, "doctor")

    assert on.returncode == 3
    failed = setup_failures(on)
    assert any("API dataflow.googleapis.com disabled" in line for line in failed), failed
    for role in ("roles/dataflow.developer", "roles/dataflow.worker", "roles/artifactregistry.reader"):
        assert any(f"serviceAccount:{VERTEX} lacks {role}" in line for line in failed), role
    assert any(
        f"serviceAccount:{VERTEX} lacks roles/iam.serviceAccountUser on service account {VERTEX}" in line
        for line in failed
    )
    assert len(failed) == 1 + len([g for g in desired.SWITCHED_GRANTS if "dataflow" in g.when])

    made = invoke(env, "setup", "--github-repo", GITHUB_REPO, "--apply")
    assert made.returncode == 0, made.stdout + made.stderr
    again = invoke(env, "doctor")
    assert setup_failures(again) == [], again.stdout + again.stderr
    assert any("API dataflow.googleapis.com enabled" in line for line in checks(again)["ok"])


def test_bigquery_on_makes_doctor_check_its_api_and_roles_and_setup_makes_them(applied, owner_key):
    standin, _ = applied
    off = invoke(cloud_env(standin, owner_key, github_repo=GITHUB_REPO), "doctor")
    assert setup_failures(off) == [] and "bigquery" not in off.stdout  # off: nothing of the source's

    table = f"{PROJECT}.training.penguins"
    env = cloud_env(standin, owner_key, github_repo=GITHUB_REPO, source="bigquery", bigquery_table=table)
    on = invoke(env, "doctor")

    assert on.returncode == 3
    failed = setup_failures(on)
    assert any("API bigquery.googleapis.com disabled" in line for line in failed), failed
    for role in ("roles/bigquery.user", "roles/bigquery.dataViewer"):
        assert any(f"serviceAccount:{VERTEX} lacks {role}" in line for line in failed), role
    assert any(f"serviceAccount:{BUILDER} lacks roles/bigquery.metadataViewer" in line for line in failed)
    assert len(failed) == 4, failed

    made = invoke(env, "setup", "--github-repo", GITHUB_REPO, "--apply")
    assert made.returncode == 0, made.stdout + made.stderr
    again = invoke(env, "doctor")
    assert setup_failures(again) == [], again.stdout + again.stderr
    assert any("API bigquery.googleapis.com enabled" in line for line in checks(again)["ok"])


def test_vertex_training_on_asks_only_for_the_pipelines_account_acting_as_itself(applied, owner_key):
    standin, _ = applied
    env = cloud_env(standin, owner_key, github_repo=GITHUB_REPO, trainer_backend="vertex")
    on = invoke(env, "doctor")

    assert on.returncode == 3
    [failed] = setup_failures(on)
    assert f"serviceAccount:{VERTEX} lacks roles/iam.serviceAccountUser on service account {VERTEX}" in failed


@pytest.mark.parametrize(
    ("switch", "says"),
    [
        (
            {"beam_runner": "dataflow", "region": "us-west9"},
            "cicd.region='us-west9' is not a region Dataflow serves",
        ),
        ({"source": "bigquery"}, "cicd.bigquery_table is missing, and cicd.source=bigquery reads it"),
        (
            {"source": "bigquery", "bigquery_table": "training.penguins"},
            "cicd.bigquery_table='training.penguins' is not a BigQuery table",
        ),
    ],
)
def test_a_malformed_switch_setting_stops_doctor_in_one_line_before_any_call(
    applied, owner_key, switch, says
):
    standin, _ = applied
    requests = len(standin.requests)
    env = cloud_env(standin, owner_key, **switch)
    result = invoke(env, "doctor")

    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert says in line
    assert len(standin.requests) == requests
