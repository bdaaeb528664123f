"""The desired state of a project (cicd_release.provision.desired) and the pure parts of setup: one table that setup,
doctor, cloudbuild.yaml, the release workflow and docs/deploy.md all agree on."""

import re
from pathlib import Path

import pytest
import yaml

from cicd_release.core.errors import InputError, SettingsError
from cicd_release.core.settings import Settings
from cicd_release.provision import desired
from cicd_release.provision.desired import Deployment
from cicd_release.provision.gcp_admin import holds, with_bindings
from cicd_release.provision.setup import provider_body, provider_differences

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = (ROOT / "docs" / "deploy.md").read_text()


def deployment(**values) -> Deployment:
    return Deployment.from_settings(
        Settings(
            project="my-project-1",
            github_repo="my-org/penguins",
            github_repo_id="260064828",
            github_owner_id="1342004",
            **values,
        ),
        project_number="1234",
    )


def test_the_defaults_are_cloudbuilds():
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())["substitutions"]

    def substituted(value: str, region: str) -> str:
        return value.replace("${PROJECT_ID}", "my-project-1").replace("${_REGION}", region)

    got = desired.cloud_defaults(Settings(project="my-project-1"))
    assert got.region == build["_REGION"]
    assert got.bucket == substituted(build["_BUCKET"], got.region)
    assert got.image_repo == substituted(build["_IMAGE_REPO"], got.region)
    assert got.service_account == substituted(build["_SERVICE_ACCOUNT"], got.region)


def test_deploy_md_lists_every_api_and_every_role_with_its_reason():
    for api in desired.APIS:
        assert f"`{api.name}`" in DEPLOY, api.name
    rows = [
        line.strip() for line in DEPLOY.splitlines() if line.strip().startswith(("| `roles/", "| `projects/"))
    ]
    for grant in desired.GRANTS:
        member = "GitHub" if grant.member == desired.GITHUB else desired.IDENTITY[grant.member].account_id
        on = grant.on
        if on.startswith(desired.ON_ACCOUNT):
            on = desired.ON_ACCOUNT + desired.IDENTITY[on.removeprefix(desired.ON_ACCOUNT)].account_id
        matching = [
            row
            for row in rows
            if row.startswith(f"| `{grant.role}` | {member} | {on} |") and grant.reason in row
        ]
        assert len(matching) == 1, f"docs/deploy.md has no row for {grant}"
    assert len(rows) == len(desired.GRANTS), "docs/deploy.md lists a role the table does not have"


def test_every_github_variable_setup_prints_is_one_the_release_workflow_reads():
    workflow = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    read = set(re.findall(r"vars\.([A-Z_]+)", workflow))
    assert set(deployment().github_variables()) <= read
    # The three images are the user's choice, not setup's: setup says so, and the workflow reads them.
    assert {"GCP_SERVING_IMAGE", "GCP_BASE_IMAGE", "GCP_PYTHON_IMAGE"} <= read


def test_service_account_ids_follow_googles_rule():
    for identity in desired.IDENTITIES:
        assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", identity.account_id), identity


def test_every_grant_names_a_known_member_target_and_permissions():
    d = deployment()
    for grant in desired.GRANTS:
        assert grant.permissions and grant.reason
        kind, name = d.target(grant.on)
        assert kind in ("project", "bucket", "repository", "service account") and name
        assert d.member(grant.member).startswith(("serviceAccount:", "principalSet://"))


def test_the_github_member_and_provider_are_by_project_number():
    d = deployment()
    assert d.member(desired.GITHUB) == (
        "principalSet://iam.googleapis.com/projects/1234/locations/global/workloadIdentityPools/github/"
        "attribute.repository_id/260064828"
    )
    assert d.github_variables()["GCP_WORKLOAD_IDENTITY_PROVIDER"] == (
        "projects/1234/locations/global/workloadIdentityPools/github/providers/github-actions"
    )


def test_the_provider_takes_only_this_repository_and_owner_by_id_on_main():
    body = provider_body(deployment())
    assert body["attributeCondition"] == (
        "assertion.repository_owner_id == '1342004' && assertion.repository_id == '260064828' "
        "&& assertion.ref == 'refs/heads/main'"
    )
    mapped = body["attributeMapping"]
    assert mapped["attribute.repository_id"] == "assertion.repository_id"
    assert mapped["attribute.repository_owner_id"] == "assertion.repository_owner_id"
    assert all(re.fullmatch(r"google\.subject|attribute\.[a-z0-9_]{1,100}", key) for key in mapped)


def test_without_the_repositorys_ids_the_github_binding_is_left_out():
    d = Deployment.from_settings(Settings(project="my-project-1", github_repo="my-org/p"), project_number="1")
    assert all(g.member != desired.GITHUB for g in d.grants())
    assert "--github-repo-id=ID --github-owner-id=ID" in d.setup_command()


@pytest.mark.parametrize("value", ["0", "-1", "12a", "1e5", "my-org"])
def test_a_github_id_that_is_not_a_number_is_refused(value):
    with pytest.raises(SettingsError, match="cicd.github_repo_id"):
        Settings(github_repo_id=value)


def test_without_a_github_repo_the_github_binding_is_left_out():
    d = Deployment.from_settings(Settings(project="my-project-1"), project_number="1234")
    assert all(g.member != desired.GITHUB for g in d.grants())
    assert len(list(deployment().grants())) == len(desired.GRANTS)


@pytest.mark.parametrize(
    ("values", "wrong"),
    [
        ({"image_repo": "localhost:5000/my-project-1/training"}, "not an Artifact Registry repository"),
        ({"image_repo": "europe-west4-docker.pkg.dev/other-project/training"}, "in project 'other-project'"),
        ({"service_account": "vertex@other-project.iam.gserviceaccount.com"}, "not an account of project"),
    ],
)
def test_resources_outside_the_project_are_refused(values, wrong):
    with pytest.raises(InputError, match=wrong):
        deployment(**values)


def test_the_fix_commands_are_gclouds():
    d = deployment()
    by_kind = {}
    for grant in desired.GRANTS:
        by_kind.setdefault(d.target(grant.on)[0], d.fix_grant(grant))
    assert by_kind["project"].startswith("gcloud projects add-iam-policy-binding my-project-1 --member=")
    assert by_kind["bucket"].startswith("gcloud storage buckets add-iam-policy-binding gs://")
    assert by_kind["repository"].startswith(
        "gcloud artifacts repositories add-iam-policy-binding training --location=europe-west4"
    )
    assert by_kind["service account"].startswith("gcloud iam service-accounts add-iam-policy-binding ")
    assert d.fix_bucket("b").endswith("--location=europe-west4 --uniform-bucket-level-access")


def test_with_bindings_adds_only_what_is_missing_and_keeps_the_rest():
    policy = {
        "etag": "BwX=",
        "version": 3,
        "bindings": [
            {"role": "roles/viewer", "members": ["user:a@example.com"]},
            {
                "role": "roles/aiplatform.user",
                "members": ["user:b@example.com"],
                "condition": {"expression": "x"},
            },
        ],
    }
    wanted = [
        ("roles/aiplatform.user", "serviceAccount:v@p.iam.gserviceaccount.com"),
        ("roles/viewer", "user:a@example.com"),
    ]
    updated = with_bindings(policy, wanted)

    assert updated["etag"] == "BwX=" and updated["version"] == 3
    assert all(holds(updated, role, member) for role, member in wanted)
    assert policy["bindings"][0]["members"] == ["user:a@example.com"], "the policy read is not changed"
    conditional = [b for b in updated["bindings"] if b.get("condition")]
    assert conditional == [policy["bindings"][1]], "a conditional binding is kept as it was"
    assert with_bindings(updated, wanted) == updated


def test_a_conditional_binding_does_not_count_as_held():
    policy = {
        "bindings": [{"role": "roles/owner", "members": ["user:a@x.com"], "condition": {"expression": "y"}}]
    }
    assert not holds(policy, "roles/owner", "user:a@x.com")


def test_a_provider_is_changed_only_where_it_differs():
    d = deployment()
    body = provider_body(d)
    # By the ids and the main branch (it was "assertion.repository == 'my-org/penguins'": any branch, by name).
    assert body["attributeCondition"] == desired.attribute_condition("260064828", "1342004")
    assert provider_differences(dict(body), body) == []
    widened = {**body, "attributeCondition": "assertion.repository_owner == 'my-org'", "disabled": True}
    assert provider_differences(widened, body) == ["attributeCondition", "disabled"]


@pytest.mark.parametrize("value", ["my-org", "-org/repo", "org/re po", "org/.."])
def test_a_github_repo_that_is_not_owner_slash_repo_is_refused(value):
    with pytest.raises(SettingsError, match="cicd.github_repo"):
        Settings(github_repo=value)


@pytest.mark.parametrize("value", ["http://10.0.0.5:8080", "ftp://127.0.0.1", "http://127.0.0.1:80/v1"])
def test_a_cloud_api_endpoint_must_be_local_http_or_https_with_no_path(value):
    with pytest.raises(SettingsError, match="cicd.cloud_api_endpoint"):
        Settings(cloud_api_endpoint=value)


def test_the_policy_reader_is_a_custom_role_with_only_the_reads_doctor_makes():
    d = deployment()
    [grant] = [g for g in desired.GRANTS if g.role.endswith("/roles/cicdPolicyReader")]
    assert d.role(grant) == "projects/my-project-1/roles/cicdPolicyReader"
    assert (
        set(grant.permissions)
        == set(desired.POLICY_READER.permissions)
        == {
            "resourcemanager.projects.getIamPolicy",
            "iam.serviceAccounts.getIamPolicy",
            "storage.buckets.getIamPolicy",
            "artifactregistry.repositories.getIamPolicy",
            "iam.serviceAccounts.get",
        }
    )
    assert re.fullmatch(r"[a-zA-Z0-9_.]{3,64}", desired.POLICY_READER.role_id)
    assert all(g.role != "roles/iam.securityReviewer" for g in desired.GRANTS)
    assert "--role=projects/my-project-1/roles/cicdPolicyReader" in d.fix_grant(grant)


def test_the_submitter_reads_and_lists_run_summaries_only():
    d = deployment(pipeline_name="penguin-cicd")
    [grant] = [
        g for g in desired.GRANTS if g.member == "submitter" and g.role == "roles/storage.objectViewer"
    ]
    condition = d.condition(grant)
    assert condition["expression"] == (
        'resource.name.startsWith("projects/_/buckets/my-project-1-ml/objects/releases/penguin-cicd/summaries/")'
        ' || api.getAttribute("storage.googleapis.com/objectListPrefix", "")'
        '.startsWith("releases/penguin-cicd/summaries/")'
    )
    assert all(d.condition(g) is None for g in desired.GRANTS if g is not grant)
    assert "--condition='^;^title=run summaries only;expression=resource.name.startsWith(" in d.fix_grant(
        grant
    )


def test_a_conditional_binding_is_its_own_and_makes_the_policy_version_3():
    condition = {"title": "t", "expression": 'resource.name.startsWith("x")'}
    policy = {
        "etag": "e",
        "version": 1,
        "bindings": [{"role": "roles/storage.objectViewer", "members": ["user:a"]}],
    }
    updated = with_bindings(policy, [("roles/storage.objectViewer", "user:b", condition)])

    assert updated["version"] == 3
    assert holds(updated, "roles/storage.objectViewer", "user:b", condition)
    assert not holds(updated, "roles/storage.objectViewer", "user:b")
    assert not holds(updated, "roles/storage.objectViewer", "user:a", condition)
    assert updated["bindings"][0] == policy["bindings"][0]
    assert with_bindings(updated, [("roles/storage.objectViewer", "user:b", condition)]) == updated


# --- the scale-out switches (cicd_release/core/scale.py): their APIs and roles only while they are on


def test_with_the_switches_off_nothing_of_theirs_is_asked_for():
    d = deployment()
    assert d.apis() == desired.APIS
    assert "dataflow.googleapis.com" not in {api.name for api in d.apis()}
    assert list(d.grants()) == list(desired.GRANTS)


def test_dataflow_on_adds_its_api_and_the_pipelines_account_s_roles():
    d = deployment(beam_runner="dataflow")
    assert [api.name for api in d.apis()] == [*(a.name for a in desired.APIS), "dataflow.googleapis.com"]
    added = [g for g in d.grants() if g not in desired.GRANTS]
    assert {(g.member, g.role, g.on) for g in added} == {
        ("vertex", "roles/dataflow.developer", desired.PROJECT),
        ("vertex", "roles/dataflow.worker", desired.PROJECT),
        ("vertex", "roles/artifactregistry.reader", desired.REPOSITORY),
        ("vertex", "roles/iam.serviceAccountUser", desired.ON_ACCOUNT + "vertex"),
    }
    assert all(g.reason and g.permissions for g in added)  # least privilege, each with why
    fixes = [d.fix_grant(g) for g in added]
    assert any("--role=roles/dataflow.worker" in fix for fix in fixes)


def test_vertex_training_on_needs_the_pipelines_account_to_act_as_itself_and_no_new_api():
    d = deployment(trainer_backend="vertex")
    assert d.apis() == desired.APIS  # aiplatform.googleapis.com is there already
    [added] = [g for g in d.grants() if g not in desired.GRANTS]
    assert (added.member, added.role, added.on) == (
        "vertex",
        "roles/iam.serviceAccountUser",
        desired.ON_ACCOUNT + "vertex",
    )
    assert d.fix_grant(added) == (
        "gcloud iam service-accounts add-iam-policy-binding "
        "vertex-pipelines@my-project-1.iam.gserviceaccount.com --project=my-project-1 "
        "--member=serviceAccount:vertex-pipelines@my-project-1.iam.gserviceaccount.com "
        "--role=roles/iam.serviceAccountUser"
    )


def test_both_switches_on_grant_the_shared_role_once():
    grants = list(deployment(beam_runner="dataflow", trainer_backend="vertex").grants())
    scale_out = [g for g in desired.SWITCHED_GRANTS if {"dataflow", "vertex"} & set(g.when)]
    assert len(grants) == len(set(grants)) == len(desired.GRANTS) + len(scale_out)
    assert not any("bigquery" in g.when for g in grants)  # the source switch is off
