"""`invoke setup`: the project the release chain needs (cicd_release/provision/desired.py), compared with what exists,
as a plan of one action per line; with `apply`, the actions carried out, in order. Idempotent: a second apply
finds everything in place and changes nothing.

Reads first, writes nothing without `apply`. The APIs come first: in a new project IAM, Artifact Registry and
Resource Manager refuse every call until they are enabled, so a plan reads what it can and counts what sits
behind a disabled API as missing; an apply enables the APIs, then reads again and plans the rest for real.
A policy is changed by read-modify-write with the etag read, re-read and retried when another writer got there
first (Google answers a stale etag with 409 or 412).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

from cicd_release.core.errors import ProjectNotReady, Refused, WriteConflict
from cicd_release.provision import desired
from cicd_release.provision.desired import Deployment
from cicd_release.provision.gcp_admin import Cloud, holds, with_bindings

# The API each kind of resource is read through: behind a disabled API, a resource is taken as missing.
API_OF = {
    "service account": "iam.googleapis.com",
    "pool": "iam.googleapis.com",
    "custom role": "iam.googleapis.com",
    "bucket": "storage.googleapis.com",
    "repository": "artifactregistry.googleapis.com",
    "project": "cloudresourcemanager.googleapis.com",
}
POLICY_ATTEMPTS = 3
NEW_ACCOUNT_WAIT_SECONDS = 60.0
UNKNOWN_NUMBER = "PROJECT_NUMBER"


@dataclasses.dataclass
class Action:
    verb: str  # "create", "change" or "ok"
    what: str
    why: str = ""
    run: Callable[[], None] | None = None

    def line(self) -> str:
        return f"{self.verb:<6}  {self.what}" + (f"  ({self.why})" if self.why else "")


@dataclasses.dataclass
class Plan:
    deployment: Deployment
    actions: list[Action]

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.verb != "ok"]

    def summary(self) -> str:
        count = {verb: sum(a.verb == verb for a in self.actions) for verb in ("create", "change", "ok")}
        if not self.changes:
            return f"Nothing to change: all {count['ok']} in place."
        return f"{count['create']} to create, {count['change']} to change, {count['ok']} in place."


def make_plan(cloud: Cloud, deployment: Deployment) -> Plan:
    """Every resource and grant of the desired state, each `ok` or what would make it so."""
    enabled = cloud.enabled_services(api.name for api in deployment.apis())
    actions = [
        Action("ok", f"API {api.name}")
        if enabled.get(api.name)
        else Action(
            "create",
            f"API {api.name} (enable)",
            api.reason,
            lambda api=api: cloud.enable_services([api.name]),
        )
        for api in deployment.apis()
    ]

    def readable(kind: str) -> bool:
        return bool(enabled.get(API_OF[kind]))

    if not deployment.project_number and readable("project"):
        deployment = dataclasses.replace(deployment, project_number=cloud.project_number())
    if deployment.github and not deployment.project_number:
        # Plan only (Resource Manager still disabled): the member is shown with a placeholder.
        deployment = dataclasses.replace(deployment, project_number=UNKNOWN_NUMBER)

    exists: dict[tuple[str, str], bool] = {}
    for identity in desired.IDENTITIES:
        email = deployment.accounts[identity.key]
        found = readable("service account") and cloud.service_account(email) is not None
        exists[("service account", email)] = found
        actions.append(
            Action("ok", f"service account {email}")
            if found
            else Action(
                "create",
                f"service account {email}",
                identity.does,
                lambda identity=identity: cloud.create_service_account(
                    deployment.account_id(identity.key), identity.title, identity.does
                ),
            )
        )
    for name, why, region_matters in (
        (deployment.bucket, "modules, specs, data, the pipeline root, release records", True),
        (deployment.staging_bucket, "`gcloud builds submit` uploads the source here", False),
    ):
        actions.append(_bucket_action(cloud, deployment, name, why, region_matters, readable("bucket")))
        exists[("bucket", name)] = actions[-1].verb != "create"
    found = readable("repository") and cloud.repository(deployment.repository)
    if found and found["format"] != "DOCKER":
        raise ProjectNotReady(
            f"{deployment.repository} is a {found['format']} repository, not DOCKER: set cicd.image_repo to a "
            "Docker repository."
        )
    exists[("repository", deployment.repository)] = bool(found)
    actions.append(
        Action("ok", f"repository {deployment.repository}")
        if found
        else Action(
            "create",
            f"repository {deployment.repository} (Docker)",
            "the components image",
            lambda: cloud.create_repository(deployment.repository, "Components images of the release chain"),
        )
    )
    exists[("project", deployment.project)] = True
    if deployment.github:
        actions += _federation_actions(cloud, deployment, readable("pool"))
    readable_roles = readable("custom role")
    actions += [_custom_role_action(cloud, deployment, r, readable_roles) for r in desired.CUSTOM_ROLES]
    actions += _grant_actions(cloud, deployment, exists, readable)
    return Plan(deployment, actions)


def apply(cloud: Cloud, deployment: Deployment, say: Callable[[str], None] = print) -> Plan:
    """Enables the missing APIs, then plans the rest against what exists now and carries it out, in order."""
    plan = make_plan(cloud, deployment)
    apis = [a for a in plan.changes if a.what.startswith("API ")]
    if apis:
        cloud.enable_services([a.what.split()[1] for a in apis])
        for action in apis:
            say(action.line())
        plan = make_plan(cloud, deployment)
    for action in plan.changes:
        say(action.line())
        assert action.run is not None
        action.run()
    return plan


# --- one kind of resource each ---------------------------------------------------------------------------


def _bucket_action(
    cloud: Cloud, deployment: Deployment, name: str, why: str, region_matters: bool, readable: bool
) -> Action:
    found = cloud.bucket(name) if readable else None
    what = f"bucket gs://{name}"
    if found is None:
        return Action(
            "create",
            f"{what} in {deployment.region}, uniform access",
            why,
            lambda: cloud.create_bucket(name, deployment.region),
        )
    if region_matters and found["location"] != deployment.region:
        raise ProjectNotReady(
            f"gs://{name} is in {found['location']}, not in {deployment.region}: Model Registry needs a model's "
            "artifacts in its region, and a bucket cannot move. Set cicd.bucket to a new bucket name (setup "
            f"creates it in {deployment.region}) or cicd.region to {found['location']}."
        )
    if not found["uniform"]:
        return Action(
            "change",
            f"{what}: turn on uniform bucket-level access",
            "access is granted by IAM roles alone, not by object ACLs",
            lambda: _uniform_access(cloud, name),
        )
    return Action("ok", what)


def _uniform_access(cloud: Cloud, name: str) -> None:
    with cloud.reporting("Cloud Storage", "storage.googleapis.com"):
        bucket = cloud.storage.get_bucket(name, timeout=cloud.timeout)
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        bucket.patch(timeout=cloud.timeout)


def provider_body(deployment: Deployment) -> dict[str, Any]:
    return {
        "displayName": "GitHub Actions",
        "description": f"GitHub Actions of {deployment.github_repo} on {desired.RELEASE_REF}",
        "attributeMapping": dict(desired.ATTRIBUTE_MAPPING),
        "attributeCondition": desired.attribute_condition(
            deployment.github_repo_id, deployment.github_owner_id
        ),
        "oidc": {"issuerUri": desired.GITHUB_ISSUER},
    }


def provider_differences(found: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """The fields of a provider that differ from what setup makes (an update mask)."""
    fields = []
    if found.get("attributeCondition", "") != body["attributeCondition"]:
        fields.append("attributeCondition")
    if found.get("attributeMapping", {}) != body["attributeMapping"]:
        fields.append("attributeMapping")
    if found.get("oidc", {}).get("issuerUri") != body["oidc"]["issuerUri"]:
        fields.append("oidc")
    if found.get("disabled"):
        fields.append("disabled")
    return fields


def _federation_actions(cloud: Cloud, deployment: Deployment, readable: bool) -> list[Action]:
    pool = cloud.pool(deployment.pool) if readable else None
    if pool and pool.get("state") == "DELETED":
        raise ProjectNotReady(
            f"The Workload Identity pool {deployment.pool} is deleted (kept 30 days, its id cannot be reused): "
            f"`gcloud iam workload-identity-pools undelete {desired.POOL_ID} --location=global "
            f"--project={deployment.project}`, then run setup again."
        )
    actions = [
        Action("ok", f"Workload Identity pool {desired.POOL_ID}")
        if pool
        else Action(
            "create",
            f"Workload Identity pool {desired.POOL_ID}",
            "GitHub Actions sign in without a key",
            lambda: cloud.create_pool(deployment.pool, "GitHub Actions", "Release builds from GitHub"),
        )
    ]
    body = provider_body(deployment)
    found = cloud.provider(deployment.provider) if pool else None
    what = (
        f"Workload Identity provider {desired.PROVIDER_ID}: issuer {desired.GITHUB_ISSUER}, "
        f'condition "{body["attributeCondition"]}"'
    )
    why = f"only {deployment.github_repo}'s GitHub Actions on {desired.RELEASE_REF} may sign in"
    if found is None:
        actions.append(Action("create", what, why, lambda: cloud.create_provider(deployment.provider, body)))
    else:
        fields = provider_differences(found, body)
        if fields:
            patch = {**body, "disabled": False}
            actions.append(
                Action(
                    "change",
                    f"{what} (was: {', '.join(fields)} differ)",
                    why,
                    lambda: cloud.update_provider(deployment.provider, patch, fields),
                )
            )
        else:
            actions.append(Action("ok", what))
    return actions


def _custom_role_action(
    cloud: Cloud, deployment: Deployment, role: desired.CustomRole, readable: bool
) -> Action:
    """The project's custom role: created; its permission list put back when it differs (PATCH
    updateMask=includedPermissions); undeleted when deleted (IAM keeps a deleted role's id 37 days, so a create
    with it fails; the undeleted role's permissions are then set as well)."""
    name = deployment.custom_role(role)
    found = cloud.custom_role(name) if readable else None
    wanted = sorted(role.permissions)
    what = f"custom role {name}: {', '.join(wanted)}"
    if found is None:
        return Action(
            "create",
            what,
            role.description,
            lambda: cloud.create_custom_role(role.role_id, role.title, role.description, wanted),
        )
    have = sorted(found.get("includedPermissions", []))
    if found.get("deleted"):

        def undelete() -> None:
            cloud.undelete_custom_role(name, found.get("etag", ""))
            if have != wanted:
                cloud.update_custom_role(name, wanted)

        return Action("change", f"{what} (was deleted: undelete)", role.description, undelete)
    if have != wanted:
        return Action(
            "change",
            f"{what} (was: {', '.join(have) or 'no permissions'})",
            role.description,
            lambda: cloud.update_custom_role(name, wanted, found.get("etag", "")),
        )
    return Action("ok", what)


def _grant_actions(
    cloud: Cloud, deployment: Deployment, exists: dict[tuple[str, str], bool], readable: Callable[[str], bool]
) -> list[Action]:
    """One line per grant of the table; the missing ones of a resource applied in one policy write."""
    by_target: dict[tuple[str, str], list[desired.Grant]] = {}
    for grant in deployment.grants():
        by_target.setdefault(deployment.target(grant.on), []).append(grant)
    actions = []
    for (kind, name), grants in by_target.items():
        present = exists.get((kind, name), False) and readable(kind)
        policy = cloud.policy(kind, name) if present else {}
        missing: list[tuple] = []
        for grant in grants:
            member, role = deployment.member(grant.member), deployment.role(grant)
            condition = deployment.condition(grant)
            what = f"role {role} for {member} on {deployment.shown(grant.on)}"
            if condition:
                what += f' if "{condition["expression"]}"'
            if holds(policy, role, member, condition):
                actions.append(Action("ok", what, grant.reason))
                continue
            if not missing:
                # The first missing grant of a resource writes all of them in one policy change.
                action_run = functools.partial(grant_roles, cloud, kind, name, missing)
            else:
                action_run = _nothing
            missing.append((role, member, condition))
            actions.append(Action("create", what, grant.reason, action_run))
    return actions


def _nothing() -> None:
    """A grant written by the first missing grant of the same resource."""


def grant_roles(cloud: Cloud, kind: str, name: str, wanted: list[tuple]) -> None:
    """Adds (role, member, condition) bindings by read-modify-write with the etag read; retried on a concurrent change.

    A service account made a moment ago can be refused as a member ("does not exist") until IAM has spread
    it: Google documents this eventual consistency, so that refusal is waited out for up to a minute.
    """
    attempts, waited = 0, 0.0
    while attempts < POLICY_ATTEMPTS:
        policy = cloud.policy(kind, name)
        if all(holds(policy, *binding) for binding in wanted):
            return
        try:
            cloud.set_policy(kind, name, with_bindings(policy, wanted))
            return
        except WriteConflict:
            attempts += 1  # another writer changed the policy since it was read (a stale etag): read it again
        except Refused as err:
            if "does not exist" not in str(err) or waited >= NEW_ACCOUNT_WAIT_SECONDS:
                raise
            time.sleep(2.0)
            waited += 2.0
    raise WriteConflict(
        f"The IAM policy of {kind} {name} kept changing while setup wrote it ({POLICY_ATTEMPTS} tries): "
        "run `invoke setup --apply` again."
    )


def format_plan(plan: Plan, applied: bool) -> list[str]:
    """The plan's lines, its summary, then the GitHub variables to set."""
    lines = [action.line() for action in plan.actions]
    lines.append(plan.summary())
    if plan.changes and not applied:
        lines.append(f"Nothing was changed. To make these changes: {plan.deployment.setup_command()}")
    lines += ["", *github_lines(plan.deployment)]
    return lines


def github_lines(deployment: Deployment) -> list[str]:
    repo = deployment.github_repo or "OWNER/REPO"
    variables = deployment.github_variables()
    lines = [
        f"GitHub repository variables for {repo} (Settings > Secrets and variables > Actions > Variables):"
    ]
    lines += [f"  {name}={value}" for name, value in variables.items()]
    lines += [
        "  GCP_SERVING_IMAGE, GCP_BASE_IMAGE and GCP_PYTHON_IMAGE (the build steps' image): images pinned by",
        "  digest (docs/deploy.md says how to get them)",
        "or with the GitHub CLI:",
        *[f"  gh variable set {name} --repo {repo} --body '{value}'" for name, value in variables.items()],
    ]
    return lines
