"""`invoke setup` against the admin stand-in: the real invoke, the real Google clients, a project that starts empty."""

from __future__ import annotations

import re

import pytest

from cicd_release.provision import desired
from tests.support.gcp_admin_fixtures import (
    GITHUB_OWNER_ID,
    GITHUB_REPO,
    GITHUB_REPO_ID,
    NUMBER,
    PROJECT,
    cloud_env,
    invoke,
)
from tests.support.gcp_admin_iam import ROLES, known_permission, role_grants

EMAILS = {i.key: f"{i.account_id}@{PROJECT}.iam.gserviceaccount.com" for i in desired.IDENTITIES}
BUCKET, STAGING = f"{PROJECT}-ml", f"{PROJECT}_cloudbuild"
REPOSITORY = f"projects/{PROJECT}/locations/europe-west4/repositories/training"
PRINCIPAL = (
    f"principalSet://iam.googleapis.com/projects/{NUMBER}/locations/global/workloadIdentityPools/github/"
    f"attribute.repository_id/{GITHUB_REPO_ID}"
)
# The repository and its owner by their ids, and only the main branch.
CONDITION = (
    f"assertion.repository_owner_id == '{GITHUB_OWNER_ID}' && assertion.repository_id == '{GITHUB_REPO_ID}' "
    "&& assertion.ref == 'refs/heads/main'"
)


POLICY_READER = f"projects/{PROJECT}/roles/{desired.POLICY_READER.role_id}"


def role_of(grant: desired.Grant) -> str:
    return grant.role.replace(desired.CUSTOM_ROLE_PREFIX, f"projects/{PROJECT}/roles/")


def lines(result, verb: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(f"{verb} ")]


def test_every_permission_the_table_names_is_in_its_role():
    """desired.GRANTS lists what the chain uses from each role; the stand-in's role table holds Google's."""
    custom = {f"projects/PROJECT/roles/{r.role_id}": frozenset(r.permissions) for r in desired.CUSTOM_ROLES}
    for grant in desired.GRANTS:
        assert grant.role in ROLES or grant.role in custom, grant.role
        for permission in grant.permissions:
            assert role_grants(grant.role, permission, custom), f"{grant.role} lacks {permission}"
    for role in desired.CUSTOM_ROLES:
        assert all(known_permission(p) for p in role.permissions), role


def test_the_plan_lists_every_action_with_its_reason_and_changes_nothing(admin_standin, owner_key):
    result = invoke(cloud_env(admin_standin, owner_key), "setup", "--github-repo", GITHUB_REPO)

    assert result.returncode == 0, result.stderr
    created = lines(result, "create")
    disabled = [
        a for a in desired.APIS if a.name not in ("serviceusage.googleapis.com", "storage.googleapis.com")
    ]
    # APIs, three accounts, two buckets, the repository, pool and provider, the custom role, every grant.
    assert len(created) == len(disabled) + 3 + 2 + 1 + 2 + len(desired.CUSTOM_ROLES) + len(desired.GRANTS)
    for grant in desired.GRANTS:
        [line] = [
            c
            for c in created
            if f"role {role_of(grant)} for " in c
            and grant.reason in c
            and (grant.member == desired.GITHUB or EMAILS[grant.member] in c)
            and (
                grant.on not in (desired.BUCKET, desired.STAGING)
                or (f"gs://{BUCKET if grant.on == desired.BUCKET else STAGING} " in c + " ")
            )
        ]
    assert f"bucket gs://{BUCKET} in europe-west4, uniform access" in result.stdout
    assert "Nothing was changed. To make these changes: invoke setup" in result.stdout
    assert admin_standin.writes() == []
    assert not admin_standin.accounts.keys() - {f"project-admin@{PROJECT}.iam.gserviceaccount.com"}
    # Resource Manager is still disabled, so the provider's number is a placeholder, said as such.
    assert "GCP_WORKLOAD_IDENTITY_PROVIDER=projects/PROJECT_NUMBER/" in result.stdout


def test_apply_makes_the_project_and_a_second_apply_changes_nothing(admin_standin, owner_key):
    env = cloud_env(admin_standin, owner_key)
    first = invoke(env, "setup", "--github-repo", GITHUB_REPO, "--apply")

    assert first.returncode == 0, first.stderr
    assert all(admin_standin.services[a.name] for a in desired.APIS)
    assert (
        admin_standin.buckets[BUCKET]["location"] == "EUROPE-WEST4"
        and admin_standin.buckets[BUCKET]["uniform"]
    )
    assert STAGING in admin_standin.buckets
    assert admin_standin.repositories[REPOSITORY]["format"] == "DOCKER"
    assert set(EMAILS.values()) <= admin_standin.accounts.keys()
    provider = admin_standin.providers[
        f"projects/{PROJECT}/locations/global/workloadIdentityPools/github/providers/github-actions"
    ]
    assert provider["attributeCondition"] == CONDITION
    assert provider["attributeMapping"]["attribute.repository_id"] == "assertion.repository_id"
    kinds = {
        desired.BUCKET: ("bucket", BUCKET),
        desired.STAGING: ("bucket", STAGING),
        desired.REPOSITORY: ("repository", REPOSITORY),
        desired.PROJECT: ("project", PROJECT),
    }
    for grant in desired.GRANTS:
        kind, name = kinds.get(grant.on) or (
            "service account",
            EMAILS[grant.on.removeprefix(desired.ON_ACCOUNT)],
        )
        member = PRINCIPAL if grant.member == desired.GITHUB else f"serviceAccount:{EMAILS[grant.member]}"
        policy = admin_standin.policies.get(kind, name)
        assert any(b["role"] == role_of(grant) and member in b["members"] for b in policy["bindings"]), grant
    role = admin_standin.roles[POLICY_READER]
    assert role["includedPermissions"] == sorted(desired.POLICY_READER.permissions) and role["stage"] == "GA"
    bucket_policy = admin_standin.policies.get("bucket", BUCKET)
    assert bucket_policy["version"] == 3
    [summaries] = [b for b in bucket_policy["bindings"] if b.get("condition")]
    assert summaries["role"] == "roles/storage.objectViewer"
    assert summaries["members"] == [f"serviceAccount:{EMAILS['submitter']}"]
    assert summaries["condition"]["expression"].startswith(
        f'resource.name.startsWith("projects/_/buckets/{BUCKET}/objects/releases/penguin-cicd/summaries/")'
    )
    assert (
        f"GCP_WORKLOAD_IDENTITY_PROVIDER=projects/{NUMBER}/locations/global/workloadIdentityPools/github/"
        "providers/github-actions" in first.stdout
    )
    assert f"GCP_CLOUDBUILD_SERVICE_ACCOUNT={EMAILS['builder']}" in first.stdout
    writes = len(admin_standin.writes())

    second = invoke(env, "setup", "--github-repo", GITHUB_REPO, "--apply")

    assert second.returncode == 0, second.stderr
    assert re.search(r"Nothing to change: all \d+ in place\.", second.stdout)
    assert lines(second, "create") == [] and lines(second, "change") == []
    assert len(admin_standin.writes()) == writes


def test_apply_puts_back_a_provider_whose_condition_was_widened(admin_standin, owner_key):
    env = cloud_env(admin_standin, owner_key)
    assert invoke(env, "setup", "--github-repo", GITHUB_REPO, "--apply").returncode == 0
    name = f"projects/{PROJECT}/locations/global/workloadIdentityPools/github/providers/github-actions"
    admin_standin.providers[name]["attributeCondition"] = "assertion.repository_owner == 'penguin-org'"

    plan = invoke(env, "setup", "--github-repo", GITHUB_REPO)
    [change] = lines(plan, "change")
    assert "attributeCondition differ" in change
    assert invoke(env, "setup", "--github-repo", GITHUB_REPO, "--apply").returncode == 0
    assert admin_standin.providers[name]["attributeCondition"] == CONDITION


def test_a_bucket_in_another_region_stops_setup_with_the_way_out(admin_standin, owner_key):
    env = cloud_env(admin_standin, owner_key)
    admin_standin.buckets[BUCKET] = {"name": BUCKET, "location": "US", "uniform": True, "project": PROJECT}
    admin_standin.policies.create("bucket", BUCKET)

    result = invoke(env, "setup", "--github-repo", GITHUB_REPO)

    assert result.returncode == 3
    [message] = result.stderr.strip().splitlines()
    assert f"gs://{BUCKET} is in us, not in europe-west4" in message and "Set cicd.bucket" in message


def test_a_caller_without_the_roles_is_refused_by_the_api_in_one_line(admin_standin, tmp_path):
    email = admin_standin.add_account("intern")
    key = admin_standin.key_file(tmp_path / "intern.json", email)

    result = invoke(cloud_env(admin_standin, key), "setup", "--github-repo", GITHUB_REPO, "--apply")

    assert result.returncode == 1
    [message] = result.stderr.strip().splitlines()
    assert "Permission 'serviceusage.services.get' denied" in message
    assert admin_standin.writes() == []


def test_a_missing_github_repo_is_a_setting_error_before_any_call(admin_standin, owner_key):
    result = invoke(cloud_env(admin_standin, owner_key), "setup")

    assert result.returncode == 2
    assert "cicd.github_repo is missing" in result.stderr and "--github-repo" in result.stderr
    assert admin_standin.requests == []


def test_setup_needs_the_repositorys_numeric_ids_and_says_how_to_find_them(admin_standin, owner_key):
    env = cloud_env(admin_standin, owner_key)
    env.pop("INVOKE_CICD_GITHUB_REPO_ID")

    result = invoke(env, "setup", "--github-repo", GITHUB_REPO)

    assert result.returncode == 2 and admin_standin.requests == []
    [message] = result.stderr.strip().splitlines()
    assert "cicd.github_repo_id is missing" in message and "--github-repo-id" in message
    assert "gh api repos/OWNER/REPOSITORY --jq .id" in message
    flags = invoke(env, "setup", "--github-repo", GITHUB_REPO, "--github-repo-id", GITHUB_REPO_ID)
    assert flags.returncode == 0, flags.stderr


def test_a_name_based_or_any_branch_condition_is_put_back(admin_standin, owner_key):
    """A provider bound by the repository's name only (what setup made before) lets a deleted repository's
    name, claimed again, and every branch act as the submitter: setup narrows it to the ids and main."""
    env = cloud_env(admin_standin, owner_key)
    assert invoke(env, "setup", "--github-repo", GITHUB_REPO, "--apply").returncode == 0
    name = f"projects/{PROJECT}/locations/global/workloadIdentityPools/github/providers/github-actions"
    admin_standin.providers[name]["attributeCondition"] = f"assertion.repository == '{GITHUB_REPO}'"

    [change] = lines(invoke(env, "setup", "--github-repo", GITHUB_REPO), "change")
    assert "attributeCondition differ" in change and "refs/heads/main" in change
    assert invoke(env, "setup", "--github-repo", GITHUB_REPO, "--apply").returncode == 0
    assert admin_standin.providers[name]["attributeCondition"] == CONDITION


@pytest.mark.parametrize(
    ("mapping", "refused"),
    [
        ({"google.subject": "assertion.sub", "attribute.Repository-Id": "assertion.repository_id"}, "key"),
        ({"google.subject": "assertion.sub", "attribute.x": "a" * 2049}, "1-2048 characters"),
        (
            {"google.subject": "assertion.sub", **{f"attribute.a{i}": "assertion.sub" for i in range(51)}},
            "50",
        ),
        ({"attribute.repository_id": "assertion.repository_id"}, "google.subject"),
    ],
    ids=["key", "expression-length", "51-attributes", "no-subject"],
)
def test_the_stand_in_refuses_what_google_refuses_in_a_provider(
    admin_standin, owner_key, monkeypatch, mapping, refused
):
    from cicd_release.core.settings import Settings
    from cicd_release.provision.gcp_admin import Cloud, Refused

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(owner_key))
    admin_standin.services["iam.googleapis.com"] = True
    cloud = Cloud(Settings(project=PROJECT, cloud_api_endpoint=admin_standin.endpoint), PROJECT)
    pool = f"projects/{PROJECT}/locations/global/workloadIdentityPools/github"
    cloud.create_pool(pool, "GitHub", "test")
    body = {
        "attributeMapping": mapping,
        "attributeCondition": desired.attribute_condition(GITHUB_REPO_ID, GITHUB_OWNER_ID),
        "oidc": {"issuerUri": desired.GITHUB_ISSUER},
    }
    with pytest.raises(Refused, match=refused):
        cloud.create_provider(f"{pool}/providers/github-actions", body)
    with pytest.raises(Refused, match="4096"):
        cloud.create_provider(
            f"{pool}/providers/github-actions",
            {
                **body,
                "attributeMapping": desired.ATTRIBUTE_MAPPING,
                "attributeCondition": "assertion.x" * 400,
            },
        )


def test_a_policy_changed_between_read_and_write_is_read_again(admin_standin, owner_key, monkeypatch):
    """The stand-in refuses the stale etag (409 ABORTED, as Resource Manager does); setup reads and writes again."""
    from cicd_release.core.settings import Settings
    from cicd_release.provision.gcp_admin import Cloud
    from cicd_release.provision.setup import grant_roles

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(owner_key))
    cloud = Cloud(Settings(project=PROJECT, cloud_api_endpoint=admin_standin.endpoint), PROJECT)
    admin_standin.services["cloudresourcemanager.googleapis.com"] = True
    email = admin_standin.add_account("vertex-pipelines")
    read = cloud.policy

    def read_then_someone_else_writes(kind, name):
        policy = read(kind, name)
        if not getattr(read_then_someone_else_writes, "raced", False):
            read_then_someone_else_writes.raced = True
            other = admin_standin.policies.get(kind, name)
            other["bindings"].append({"role": "roles/logging.logWriter", "members": ["user:ops@example.com"]})
            admin_standin.policies.set(kind, name, other)
        return policy

    monkeypatch.setattr(cloud, "policy", read_then_someone_else_writes)
    grant_roles(cloud, "project", PROJECT, [("roles/aiplatform.user", f"serviceAccount:{email}")])

    roles = {b["role"]: b["members"] for b in admin_standin.policies.get("project", PROJECT)["bindings"]}
    assert roles["roles/aiplatform.user"] == [f"serviceAccount:{email}"]
    assert roles["roles/logging.logWriter"] == ["user:ops@example.com"]  # the other writer's change is kept
    assert [r[3] for r in admin_standin.requests if r[2].endswith(":setIamPolicy")] == [409, 200]


@pytest.mark.parametrize("member", ["serviceAccount:nobody-here@penguin-prod-42.iam.gserviceaccount.com"])
def test_the_stand_in_refuses_a_member_that_does_not_exist(admin_standin, owner_key, monkeypatch, member):
    from cicd_release.core.errors import Refused
    from cicd_release.core.settings import Settings
    from cicd_release.provision.gcp_admin import Cloud

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(owner_key))
    admin_standin.services["cloudresourcemanager.googleapis.com"] = True
    cloud = Cloud(Settings(project=PROJECT, cloud_api_endpoint=admin_standin.endpoint), PROJECT)
    policy = cloud.policy("project", PROJECT)
    policy["bindings"].append({"role": "roles/aiplatform.user", "members": [member]})
    with pytest.raises(Refused, match="does not exist"):
        cloud.set_policy("project", PROJECT, policy)


def test_a_person_whose_credentials_name_no_quota_project_can_set_up(admin_standin):
    """`gcloud auth application-default login` may write no quota project, and Service Usage then refuses a
    person (cloud review #12): setup bills the project it sets up, which its owner may use."""
    from cicd_release.core.settings import Settings
    from cicd_release.provision.gcp_admin import Cloud

    cloud = Cloud(
        Settings(project=PROJECT, cloud_api_endpoint=admin_standin.endpoint),
        PROJECT,
        admin_standin.add_owner_person(),
    )
    enabled = cloud.enabled_services(["serviceusage.googleapis.com", "iam.googleapis.com"])

    assert enabled == {"serviceusage.googleapis.com": True, "iam.googleapis.com": False}
    services = [r for r in admin_standin.requests if "/services" in r[2]]
    assert services and all(r[0] == "user:ml-lead@example.com" and r[3] == 200 for r in services)


def test_the_stand_in_refuses_a_person_without_a_quota_project_as_google_does(admin_standin):
    import google.auth.transport.requests

    creds = admin_standin.add_owner_person()
    session = google.auth.transport.requests.AuthorizedSession(creds)
    url = f"{admin_standin.endpoint}/v1/projects/{PROJECT}/services:batchGet?names=projects/{PROJECT}/services/iam.googleapis.com"
    refused = session.get(url, timeout=10)
    assert refused.status_code == 403 and "requires a quota project" in refused.json()["error"]["message"]
    billed = session.get(url, headers={"x-goog-user-project": PROJECT}, timeout=10)
    assert billed.status_code == 200, billed.text


def test_a_service_account_policy_is_read_with_an_empty_body_as_google_requires(
    admin_standin, owner_key, monkeypatch
):
    """serviceAccounts.getIamPolicy: "The request body must be empty"; the version is a query parameter."""
    from cicd_release.core.errors import Refused
    from cicd_release.core.settings import Settings
    from cicd_release.provision.gcp_admin import Cloud

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(owner_key))
    admin_standin.services["iam.googleapis.com"] = True
    email = admin_standin.add_account("vertex-pipelines")
    cloud = Cloud(Settings(project=PROJECT, cloud_api_endpoint=admin_standin.endpoint), PROJECT)

    assert cloud.policy("service account", email)["bindings"] == []

    path = f"projects/{PROJECT}/serviceAccounts/{email}:getIamPolicy"
    with pytest.raises(Refused, match='Unknown name "options"'):
        cloud._iam("POST", path, json={"options": {"requestedPolicyVersion": 3}})
    with pytest.raises(Refused, match="valid values are 0, 1 and 3"):
        cloud._iam("POST", path, params={"options.requestedPolicyVersion": 2})


def test_setup_puts_back_the_custom_roles_permissions_and_undeletes_it(admin_standin, owner_key):
    env = cloud_env(admin_standin, owner_key)
    assert invoke(env, "setup", "--github-repo", GITHUB_REPO, "--apply").returncode == 0
    role = admin_standin.roles[POLICY_READER]
    role["includedPermissions"] = ["resourcemanager.projects.getIamPolicy", "iam.roles.get"]

    plan = invoke(env, "setup", "--github-repo", GITHUB_REPO)
    [change] = lines(plan, "change")
    assert f"custom role {POLICY_READER}: " in change and "(was: iam.roles.get, " in change
    assert invoke(env, "setup", "--github-repo", GITHUB_REPO, "--apply").returncode == 0
    assert admin_standin.roles[POLICY_READER]["includedPermissions"] == sorted(
        desired.POLICY_READER.permissions
    )

    admin_standin.roles[POLICY_READER]["deleted"] = True
    plan = invoke(env, "setup", "--github-repo", GITHUB_REPO)
    [change] = lines(plan, "change")
    assert "(was deleted: undelete)" in change
    applied = invoke(env, "setup", "--github-repo", GITHUB_REPO, "--apply")
    assert applied.returncode == 0, applied.stderr
    assert not admin_standin.roles[POLICY_READER].get("deleted")
    again = invoke(env, "setup", "--github-repo", GITHUB_REPO)
    assert lines(again, "create") == [] and lines(again, "change") == []


def test_the_stand_in_refuses_custom_roles_google_refuses(admin_standin, owner_key):
    """A role id outside [a-zA-Z0-9_.]{3,64}, a second create of an id (also a deleted one), an unknown
    permission, and a binding to a role that does not exist are refused as IAM refuses them."""
    from cicd_release.core.errors import ReleaseError
    from cicd_release.core.settings import Settings
    from cicd_release.provision.gcp_admin import Cloud

    settings = Settings(project=PROJECT, cloud_api_endpoint=admin_standin.endpoint)
    admin_standin.services["iam.googleapis.com"] = True
    admin_standin.services["cloudresourcemanager.googleapis.com"] = True
    import google.auth

    creds, _ = google.auth.load_credentials_from_file(
        str(owner_key), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    cloud = Cloud(settings, PROJECT, creds)
    for bad_id in ("ab", "has-dash", "x" * 65):
        with pytest.raises(ReleaseError, match="role id"):
            cloud.create_custom_role(bad_id, "t", "d", ["storage.buckets.getIamPolicy"])
    with pytest.raises(ReleaseError, match="not valid"):
        cloud.create_custom_role("ok_id", "t", "d", ["notaservice.things.get"])
    cloud.create_custom_role("ok_id", "t", "d", ["storage.buckets.getIamPolicy"])
    admin_standin.roles[f"projects/{PROJECT}/roles/ok_id"]["deleted"] = True
    with pytest.raises(ReleaseError, match="already exists"):
        cloud.create_custom_role("ok_id", "t", "d", ["storage.buckets.getIamPolicy"])
    policy = cloud.policy("project", PROJECT)
    policy["bindings"].append({"role": f"projects/{PROJECT}/roles/ok_id", "members": ["user:a@example.com"]})
    with pytest.raises(ReleaseError, match="does not exist"):
        cloud.set_policy("project", PROJECT, policy)
