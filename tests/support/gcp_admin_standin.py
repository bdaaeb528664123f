"""A stand-in for the Google Cloud admin APIs `invoke setup` and `invoke doctor` call, at one local address.

The real clients talk to it over REST (cicd.cloud_api_endpoint): service-usage and Artifact Registry and
Resource Manager through their GAPIC REST transports, IAM through google-auth's AuthorizedSession, buckets
through google-cloud-storage. Paths are the clients' own (``*/transports/rest_base.py``) and the documented
REST references; object requests are checked, then forwarded to fake-gcs-server (tests/support/gcs_emulator.py).

Served, and what each refuses as Google does:
  POST /token                                              JWT-bearer grant (tests/support/gcp_admin_iam.py)
  GET  /v1/projects/P/services:batchGet?names=             at most 30 names
  POST /v1/projects/P/services:batchEnable                 at most 20; unknown service 403; an Operation
  GET  /v1/operations/ID                                   (Service Usage operations)
  GET  /v3/projects/P ; POST /v3/projects/P:{get,set}IamPolicy, :testIamPermissions
  GET/POST /v1/projects/P/serviceAccounts[/EMAIL]          account id 6-30 [a-z][a-z0-9-]*[a-z0-9]; 409 if taken
  POST /v1/projects/P/serviceAccounts/EMAIL:{get,set}IamPolicy, :testIamPermissions
  GET/POST/PATCH /v1/projects/P/roles[/ID], POST :undelete  custom roles: id [a-zA-Z0-9_.]{3,64}; 409 if it
       exists (deleted too: undelete it); permissions must be known; PATCH needs updateMask; stage GA etc.
  GET/POST /v1/projects/P/locations/global/workloadIdentityPools[/POOL[/providers[/PROVIDER]]], PATCH provider
       ids 4-32 [a-z0-9-], not gcp-; creates are Operations; a GitHub provider needs an attribute condition;
       attribute mappings and conditions by Google's key, count and length rules
  GET/POST /v1/projects/P/locations/L/repositories[/R]     id rule; 409 if taken; the create is an Operation
  GET  /v1/projects/P/locations/L/repositories/R:getIamPolicy ; POST :setIamPolicy, :testIamPermissions
  GET  /v1/projects/P/locations/L/operations/ID
  POST /storage/v1/b?project=P ; GET/PATCH /storage/v1/b/B ; GET/PUT /storage/v1/b/B/iam ; GET .../iam/testPermissions
  objects (/storage/v1/b/B/o..., /download/..., /upload/...)  checked, then forwarded to fake-gcs-server

Every call needs a caller (401 without), the permission Google requires for it (403, "Permission ... denied"),
and its API enabled in the project (403 SERVICE_DISABLED; a new project has only serviceusage and storage on).
setIamPolicy refuses a stale etag (409 ABORTED; 412 on buckets), unknown or ungrantable roles, and service
accounts that do not exist. Long-running operations are not done when created; the first poll finds them done.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.support.gcp_admin_iam import (
    CUSTOM_ROLE_ID,
    ROLES,
    ApiError,
    Identities,
    Policies,
    check_permissions_list,
    known_permission,
)
from tests.support.gcs_iam_proxy import GcsError, Need, route
from tests.support.http_forward import (
    ForwardingHandler,
    RequestBody,
    Upstream,
    end_to_end,
    running_server,
    with_json_rewritten,
    with_location_rewritten,
)

# APIs a project starts with on (a new project has Service Usage and Cloud Storage enabled).
ON_BY_DEFAULT = frozenset({"serviceusage.googleapis.com", "storage.googleapis.com"})
KNOWN_SERVICES = frozenset(
    {
        "aiplatform.googleapis.com",
        "artifactregistry.googleapis.com",
        "cloudbuild.googleapis.com",
        "cloudresourcemanager.googleapis.com",
        "iam.googleapis.com",
        "iamcredentials.googleapis.com",
        "logging.googleapis.com",
        "serviceusage.googleapis.com",
        "storage.googleapis.com",
        "sts.googleapis.com",
        "compute.googleapis.com",
        "dataflow.googleapis.com",
        "bigquery.googleapis.com",
    }
)
_ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_FEDERATION_ID = re.compile(r"^[a-z0-9-]{4,32}$")
_REPOSITORY_ID = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]{1,2}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
_SERVICE_USAGE = re.compile(r"^/v1/(projects/[^/]+/services|operations/)")


def _denied(permission: str, resource: str) -> ApiError:
    return ApiError(403, f"Permission '{permission}' denied on resource '{resource}' (or it may not exist).")


class AdminStandIn:
    """One project's admin state; ``endpoint`` once running. Tests make key files and read or change state."""

    def __init__(self, project: str, project_number: str, storage_upstream: str) -> None:
        self.project, self.number = project, project_number
        self.endpoint = ""
        self.identities = Identities()
        self.services = {name: name in ON_BY_DEFAULT for name in KNOWN_SERVICES}
        self.accounts: dict[str, dict] = {}
        self.buckets: dict[str, dict] = {}
        self.repositories: dict[str, dict] = {}
        self.pools: dict[str, dict] = {}
        self.providers: dict[str, dict] = {}
        self.operations: dict[str, dict] = {}
        self.roles: dict[str, dict] = {}  # custom roles by name projects/P/roles/ID
        self.policies = Policies(
            lambda email: email in self.accounts,
            project_number,
            lambda: {
                name: frozenset(role.get("includedPermissions", []))
                for name, role in list(self.roles.items())
                if not role.get("deleted")
            },
        )
        self.policies.create("project", project)
        self.requests: list[tuple[str, str, str, int]] = []  # caller, method, path, status
        self.storage = Upstream(storage_upstream)
        self.lock = threading.RLock()

    # --- for tests

    def add_owner(self, key_path: Path, account_id: str = "project-admin") -> Path:
        """A service account holding roles/owner on the project, and a key file to act as it."""
        email = self.add_account(account_id)
        policy = self.policies.get("project", self.project)
        policy["bindings"].append({"role": "roles/owner", "members": [f"serviceAccount:{email}"]})
        self.policies.set("project", self.project, policy)
        return self.key_file(key_path, email)

    def add_owner_person(self, email: str = "ml-lead@example.com"):
        """A person holding roles/owner on the project, and their user credentials with no quota project
        (what `gcloud auth application-default login` writes with no core/project set, or an older gcloud)."""
        from google.oauth2.credentials import Credentials

        policy = self.policies.get("project", self.project)
        policy["bindings"].append({"role": "roles/owner", "members": [f"user:{email}"]})
        self.policies.set("project", self.project, policy)
        return Credentials(
            token=None,
            refresh_token=self.identities.person(email),
            token_uri=f"{self.endpoint}/token",
            client_id="764086051850-standin.apps.googleusercontent.com",
            client_secret="standin-client-secret",  # not a secret: a stand-in's made-up value
        )

    def add_account(self, account_id: str) -> str:
        email = f"{account_id}@{self.project}.iam.gserviceaccount.com"
        with self.lock:
            self.accounts[email] = {
                "name": f"projects/{self.project}/serviceAccounts/{email}",
                "projectId": self.project,
                "uniqueId": str(uuid.uuid4().int)[:21],
                "email": email,
                "displayName": account_id,
            }
        self.policies.create("service account", email)
        return email

    def key_file(self, path: Path, email: str) -> Path:
        return self.identities.key_file(path, email, f"{self.endpoint}/token")

    def writes(self) -> list[tuple[str, str, str, int]]:
        """Every request that could change state (not a read, a test, a poll or a token)."""
        return [
            r
            for r in self.requests
            if r[1] in ("POST", "PUT", "PATCH", "DELETE")
            and not re.search(r"(batchGet|getIamPolicy|testIamPermissions|/token)$", r[2].split("?")[0])
        ]

    # --- permissions

    def require(
        self, caller: str, permission: str, kind: str, name: str, resource: str, need: Need | None = None
    ) -> None:
        roles = self.policies.roles_of(caller, kind, name, self.project, need)
        if not any(self.policies.permissions_of(role, permission) for role in roles):
            raise _denied(permission, resource)

    def held(self, caller: str, kind: str, name: str, permissions: list[str]) -> list[str]:
        check_permissions_list(permissions)
        roles = self.policies.roles_of(caller, kind, name, self.project)
        return [p for p in permissions if any(self.policies.permissions_of(r, p) for r in roles)]

    def require_quota_project(self, caller: str, path: str, quota_project: str | None) -> None:
        """A person's credentials (not a service account's) must name a quota project for Service Usage.

        Google refuses such calls without an `X-Goog-User-Project` header ("... requires a quota project,
        which is not set by default"), and with one the caller needs serviceusage.services.use on that
        project (https://cloud.google.com/docs/authentication/troubleshoot-adc#user-creds-client-based).
        """
        if not caller.startswith("user:") or not _SERVICE_USAGE.match(path):
            return
        if not quota_project:
            raise ApiError(
                403,
                "Your application is authenticating by using local Application Default Credentials. The "
                "serviceusage.googleapis.com API requires a quota project, which is not set by default. To learn "
                "how to set your quota project, see https://cloud.google.com/docs/authentication/adc-troubleshooting/user-creds .",
                "PERMISSION_DENIED",
            )
        self.require(
            caller, "serviceusage.services.use", "project", quota_project, f"projects/{quota_project}"
        )

    def require_service(self, service: str) -> None:
        if not self.services.get(service):
            raise ApiError(
                403,
                f"{service} has not been used in project {self.number} before or it is disabled. Enable it by "
                f"visiting https://console.developers.google.com/apis/api/{service}/overview?project={self.number} "
                "then retry.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "SERVICE_DISABLED",
                        "domain": "googleapis.com",
                        "metadata": {"service": service, "consumer": f"projects/{self.number}"},
                    }
                ],
            )

    def project_of(self, given: str) -> str:
        if given not in (self.project, self.number):
            raise ApiError(403, f"Permission denied on resource project {given} (or it may not exist).")
        return self.project

    # --- operations

    def operation(self, name: str, response: dict) -> dict:
        with self.lock:
            self.operations[name] = {"name": name, "done": True, "response": response}
        return {"name": name, "done": False}

    def poll(self, name: str) -> dict:
        with self.lock:
            if name not in self.operations:
                raise ApiError(404, f"Operation {name} not found.")
            return copy.deepcopy(self.operations[name])


# --- the APIs --------------------------------------------------------------------------------------------


def _policy_of(body: dict) -> dict:
    policy = body.get("policy")
    if not isinstance(policy, dict):
        raise ApiError(400, "Invalid JSON payload: 'policy' is required.")
    return policy


def service_usage(s: AdminStandIn, caller: str, method: str, path: str, query: dict, body: dict) -> dict:
    s.require_service("serviceusage.googleapis.com")
    if match := re.fullmatch(r"/v1/operations/(?P<id>[^/]+)", path):
        return s.poll(f"operations/{match['id']}")
    match = re.fullmatch(r"/v1/projects/(?P<p>[^/]+)/services(?P<rest>:batchGet|:batchEnable|/[^/:]+)", path)
    if match is None:
        raise ApiError(501, f"Service Usage stand-in: {method} {path} is not served.")
    project = s.project_of(match["p"])
    resource = f"projects/{s.number}"
    if match["rest"] == ":batchGet" and method == "GET":
        s.require(caller, "serviceusage.services.get", "project", project, resource)
        names = query.get("names", [])
        if len(names) > 30:
            raise ApiError(400, "Too many services requested: at most 30.")
        services = []
        for full in names:
            service = full.rsplit("/", 1)[-1]
            if service not in KNOWN_SERVICES:
                raise ApiError(403, f"Not found or permission denied for service(s): {service}.")
            state = "ENABLED" if s.services[service] else "DISABLED"
            services.append({"name": f"{resource}/services/{service}", "parent": resource, "state": state})
        return {"services": services}
    if match["rest"] == ":batchEnable" and method == "POST":
        s.require(caller, "serviceusage.services.enable", "project", project, resource)
        ids = body.get("serviceIds", [])
        if not ids or len(ids) > 20:
            raise ApiError(400, "serviceIds must name 1 to 20 services.")
        unknown = [i for i in ids if i not in KNOWN_SERVICES]
        if unknown:
            raise ApiError(403, f"Not found or permission denied for service(s): {', '.join(unknown)}.")
        with s.lock:
            for service in ids:
                s.services[service] = True
        response = {
            "@type": "type.googleapis.com/google.api.serviceusage.v1.BatchEnableServicesResponse",
            "services": [
                {"name": f"{resource}/services/{i}", "parent": resource, "state": "ENABLED"} for i in ids
            ],
        }
        return s.operation(f"operations/acat.p2-{s.number}-{uuid.uuid4()}", response)
    raise ApiError(501, f"Service Usage stand-in: {method} {path} is not served.")


def resource_manager(s: AdminStandIn, caller: str, method: str, path: str, query: dict, body: dict) -> dict:
    s.require_service("cloudresourcemanager.googleapis.com")
    match = re.fullmatch(
        r"/v3/projects/(?P<p>[^/:]+)(?P<verb>:getIamPolicy|:setIamPolicy|:testIamPermissions)?", path
    )
    if match is None:
        raise ApiError(501, f"Resource Manager stand-in: {method} {path} is not served.")
    project = s.project_of(match["p"])
    resource = f"projects/{project}"
    verb = match["verb"]
    if verb is None and method == "GET":
        s.require(caller, "resourcemanager.projects.get", "project", project, resource)
        return {
            "name": f"projects/{s.number}",
            "projectId": project,
            "state": "ACTIVE",
            "displayName": project,
        }
    if verb == ":getIamPolicy":
        s.require(caller, "resourcemanager.projects.getIamPolicy", "project", project, resource)
        return s.policies.get("project", project)
    if verb == ":setIamPolicy":
        s.require(caller, "resourcemanager.projects.setIamPolicy", "project", project, resource)
        return s.policies.set("project", project, _policy_of(body))
    if verb == ":testIamPermissions":
        return {"permissions": s.held(caller, "project", project, body.get("permissions", []))}
    raise ApiError(501, f"Resource Manager stand-in: {method} {path} is not served.")


def iam(s: AdminStandIn, caller: str, method: str, path: str, query: dict, body: dict) -> dict:
    s.require_service("iam.googleapis.com")
    if match := re.fullmatch(
        r"/v1/projects/(?P<p>[^/]+)/roles(?:/(?P<id>[^/:]+)(?P<verb>:undelete)?)?", path
    ):
        return _custom_roles(s, caller, method, match, query, body)
    if match := re.fullmatch(r"/v1/projects/(?P<p>[^/]+)/serviceAccounts", path):
        project = s.project_of(match["p"])
        if method != "POST":
            raise ApiError(501, "IAM stand-in: only serviceAccounts.create is served on the collection.")
        s.require(caller, "iam.serviceAccounts.create", "project", project, f"projects/{project}")
        account_id = body.get("accountId", "")
        if not _ACCOUNT_ID.match(account_id):
            raise ApiError(
                400,
                f"Invalid account ID {account_id!r}: 6-30 characters, lowercase letters, digits and '-', a letter "
                "first and no '-' last.",
            )
        email = f"{account_id}@{project}.iam.gserviceaccount.com"
        if email in s.accounts:
            raise ApiError(
                409, f"Service account {account_id} already exists within project projects/{project}."
            )
        s.add_account(account_id)
        with s.lock:
            s.accounts[email].update(
                {
                    k: v
                    for k, v in body.get("serviceAccount", {}).items()
                    if k in ("displayName", "description")
                }
            )
            return copy.deepcopy(s.accounts[email])
    if match := re.fullmatch(
        r"/v1/projects/(?P<p>[^/]+)/serviceAccounts/(?P<email>[^/:]+)(?P<verb>:getIamPolicy|:setIamPolicy|:testIamPermissions)?",
        path,
    ):
        project = s.project_of(match["p"])
        email, verb = match["email"], match["verb"]
        resource = f"projects/{project}/serviceAccounts/{email}"
        if verb is None and method == "GET":
            s.require(caller, "iam.serviceAccounts.get", "service account", email, resource)
            if email not in s.accounts:
                raise ApiError(404, f"Unknown service account {email}.")
            return copy.deepcopy(s.accounts[email])
        if email not in s.accounts:
            raise _denied(f"iam.serviceAccounts.{verb.lstrip(':') if verb else 'get'}", resource)
        if verb == ":getIamPolicy":
            # "The request body must be empty"; the version is the query parameter options.requestedPolicyVersion
            # (https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts/getIamPolicy).
            if body:
                names = ", ".join(f'"{k}"' for k in body)
                raise ApiError(
                    400,
                    f"Invalid JSON payload received. Unknown name {names}: Cannot find field. "
                    "(serviceAccounts.getIamPolicy takes no request body: send options.requestedPolicyVersion "
                    "as a query parameter.)",
                )
            requested = query.get("options.requestedPolicyVersion", ["0"])[-1]
            if requested not in ("0", "1", "3"):
                raise ApiError(
                    400, f"Invalid options.requestedPolicyVersion {requested!r}: valid values are 0, 1 and 3."
                )
            s.require(caller, "iam.serviceAccounts.getIamPolicy", "service account", email, resource)
            return s.policies.get("service account", email)
        if verb == ":setIamPolicy":
            s.require(caller, "iam.serviceAccounts.setIamPolicy", "service account", email, resource)
            return s.policies.set("service account", email, _policy_of(body))
        if verb == ":testIamPermissions":
            return {"permissions": s.held(caller, "service account", email, body.get("permissions", []))}
    if match := re.fullmatch(
        r"/v1/(?P<pool>projects/(?P<p>[^/]+)/locations/global/workloadIdentityPools(?:/(?P<pool_id>[^/]+))?)"
        r"(?P<rest>/providers(?:/(?P<provider_id>[^/]+))?)?(?P<op>/operations/[^/]+)?",
        path,
    ):
        return _federation(s, caller, method, match, query, body)
    raise ApiError(501, f"IAM stand-in: {method} {path} is not served.")


def _custom_roles(
    s: AdminStandIn, caller: str, method: str, match: re.Match, query: dict, body: dict
) -> dict:
    """IAM projects.roles: create, get, patch (updateMask), undelete; iam.roles.{create,get,update,undelete}."""
    project = s.project_of(match["p"])
    parent = f"projects/{project}"
    if match["id"] is None:
        if method != "POST":
            raise ApiError(501, "IAM stand-in: only roles.create is served on the collection.")
        s.require(caller, "iam.roles.create", "project", project, parent)
        role_id = body.get("roleId", "")
        if not CUSTOM_ROLE_ID.match(role_id):
            raise ApiError(400, f"The role id {role_id!r} is invalid: it must match [a-zA-Z0-9_.]{{3,64}}.")
        name = f"{parent}/roles/{role_id}"
        if name in s.roles:
            # A deleted role keeps its id (37 days): it is undeleted, not made again.
            raise ApiError(409, f"A role named {role_id} in {parent} already exists.")
        role = body.get("role") or {}
        permissions = _role_permissions(role.get("includedPermissions"))
        with s.lock:
            s.roles[name] = {
                "name": name,
                "title": role.get("title", ""),
                "description": role.get("description", ""),
                "includedPermissions": permissions,
                "stage": role.get("stage", "ALPHA"),
                "etag": _role_etag(),
            }
            return copy.deepcopy(s.roles[name])
    name = f"{parent}/roles/{match['id']}"
    if method == "GET" and not match["verb"]:
        s.require(caller, "iam.roles.get", "project", project, name)
        if name not in s.roles:
            raise ApiError(404, f"The role named {name} was not found.")
        return copy.deepcopy(s.roles[name])
    if match["verb"] == ":undelete" and method == "POST":
        s.require(caller, "iam.roles.undelete", "project", project, name)
        if name not in s.roles:
            raise ApiError(404, f"The role named {name} was not found.")
        if not s.roles[name].get("deleted"):
            raise ApiError(400, f"The role {name} is not deleted.", "FAILED_PRECONDITION")
        with s.lock:
            s.roles[name].pop("deleted")
            s.roles[name]["etag"] = _role_etag()
            return copy.deepcopy(s.roles[name])
    if method == "PATCH" and not match["verb"]:
        s.require(caller, "iam.roles.update", "project", project, name)
        if name not in s.roles:
            raise ApiError(404, f"The role named {name} was not found.")
        if s.roles[name].get("deleted"):
            raise ApiError(400, f"The role {name} is deleted: undelete it first.", "FAILED_PRECONDITION")
        mask = [f for f in (query.get("updateMask") or [""])[0].split(",") if f]
        allowed = {"title", "description", "includedPermissions", "stage"}
        if not mask or set(mask) - allowed:
            raise ApiError(400, f"updateMask must name some of {sorted(allowed)}.")
        if body.get("etag") and body["etag"] != s.roles[name]["etag"]:
            raise ApiError(409, "There were concurrent policy changes.", "ABORTED")
        update = {f: body.get(f) for f in mask}
        if "includedPermissions" in update:
            update["includedPermissions"] = _role_permissions(update["includedPermissions"])
        with s.lock:
            s.roles[name].update(update, etag=_role_etag())
            return copy.deepcopy(s.roles[name])
    raise ApiError(501, f"IAM stand-in: {method} on {name} is not served.")


def _role_permissions(permissions) -> list[str]:
    if not isinstance(permissions, list) or not permissions:
        raise ApiError(400, "A custom role needs includedPermissions.")
    for permission in permissions:
        if not isinstance(permission, str) or "*" in permission or not known_permission(permission):
            raise ApiError(400, f"Permission {permission} is not valid.")
    return sorted(set(permissions))


def _role_etag() -> str:
    return "BwY" + uuid.uuid4().hex[:8] + "="


def _federation(s: AdminStandIn, caller: str, method: str, match: re.Match, query: dict, body: dict) -> dict:
    project = s.project_of(match["p"])
    path = match.group(0)[len("/v1/") :]
    if match["op"]:
        return s.poll(path)
    pools = f"projects/{project}/locations/global/workloadIdentityPools"
    if match["rest"] is None:
        if match["pool_id"] is None:
            if method != "POST":
                raise ApiError(
                    501, "IAM stand-in: only workloadIdentityPools.create is served on the collection."
                )
            s.require(caller, "iam.workloadIdentityPools.create", "project", project, f"projects/{project}")
            pool_id = (query.get("workloadIdentityPoolId") or [""])[0]
            _federation_id(pool_id, "workloadIdentityPoolId")
            name = f"{pools}/{pool_id}"
            if name in s.pools:
                raise ApiError(409, f"Requested entity already exists: {name}.")
            with s.lock:
                s.pools[name] = {
                    "name": name,
                    "state": "ACTIVE",
                    "displayName": body.get("displayName", ""),
                    "disabled": False,
                }
            return s.operation(
                f"{name}/operations/{uuid.uuid4().hex}",
                {"@type": "type.googleapis.com/google.iam.v1.WorkloadIdentityPool", **s.pools[name]},
            )
        name = f"{pools}/{match['pool_id']}"
        s.require(caller, "iam.workloadIdentityPools.get", "project", project, name)
        if name not in s.pools:
            raise ApiError(404, f"Requested entity was not found: {name}.")
        return copy.deepcopy(s.pools[name])
    pool = f"{pools}/{match['pool_id']}"
    if pool not in s.pools:
        raise ApiError(404, f"Requested entity was not found: {pool}.")
    if match["provider_id"] is None:
        if method != "POST":
            raise ApiError(501, "IAM stand-in: only providers.create is served on the collection.")
        s.require(caller, "iam.workloadIdentityPoolProviders.create", "project", project, pool)
        provider_id = (query.get("workloadIdentityPoolProviderId") or [""])[0]
        _federation_id(provider_id, "workloadIdentityPoolProviderId")
        name = f"{pool}/providers/{provider_id}"
        if name in s.providers:
            raise ApiError(409, f"Requested entity already exists: {name}.")
        provider = _provider(name, body)
        with s.lock:
            s.providers[name] = provider
        return s.operation(
            f"{name}/operations/{uuid.uuid4().hex}",
            {"@type": "type.googleapis.com/google.iam.v1.WorkloadIdentityPoolProvider", **provider},
        )
    name = f"{pool}/providers/{match['provider_id']}"
    if method == "GET":
        s.require(caller, "iam.workloadIdentityPoolProviders.get", "project", project, name)
        if name not in s.providers:
            raise ApiError(404, f"Requested entity was not found: {name}.")
        return copy.deepcopy(s.providers[name])
    if method == "PATCH":
        s.require(caller, "iam.workloadIdentityPoolProviders.update", "project", project, name)
        if name not in s.providers:
            raise ApiError(404, f"Requested entity was not found: {name}.")
        mask = [f for f in (query.get("updateMask") or [""])[0].split(",") if f]
        if not mask:
            raise ApiError(400, "updateMask is required.")
        allowed = {"displayName", "description", "disabled", "attributeMapping", "attributeCondition", "oidc"}
        if set(mask) - allowed:
            raise ApiError(
                400, f"updateMask names fields that cannot be updated: {sorted(set(mask) - allowed)}."
            )
        merged = {**s.providers[name], **{f: body[f] for f in mask if f in body}}
        provider = _provider(name, merged)
        with s.lock:
            s.providers[name] = provider
        return s.operation(
            f"{name}/operations/{uuid.uuid4().hex}",
            {"@type": "type.googleapis.com/google.iam.v1.WorkloadIdentityPoolProvider", **provider},
        )
    raise ApiError(501, f"IAM stand-in: {method} on {name} is not served.")


def _federation_id(value: str, field: str) -> None:
    if not _FEDERATION_ID.match(value) or value.startswith("gcp-"):
        raise ApiError(400, f"{field} must be 4-32 lowercase letters, digits or '-', not starting with gcp-.")


# Google's rules for a provider's attribute mapping and condition (the IAM v1 reference of
# WorkloadIdentityPoolProvider): keys google.subject, google.groups or attribute.<[a-z0-9_], at most 100>, at
# most 50 custom attributes, each expression at most 2048 characters; a condition of at most 4096 characters.
_MAPPED_KEY = re.compile(r"^(?:google\.subject|google\.groups|attribute\.[a-z0-9_]{1,100})$")


def _provider(name: str, body: dict) -> dict:
    mapping = body.get("attributeMapping") or {}
    if "google.subject" not in mapping:
        raise ApiError(400, "attributeMapping must map google.subject.")
    for key, expression in mapping.items():
        if not _MAPPED_KEY.match(key):
            raise ApiError(
                400,
                f"Invalid attribute mapping key {key!r}: use google.subject, google.groups or "
                "attribute.<name> with a name of at most 100 of [a-z0-9_].",
            )
        if not isinstance(expression, str) or not expression or len(expression) > 2048:
            raise ApiError(400, f"The attribute mapping expression of {key} must be 1-2048 characters.")
    if sum(key.startswith("attribute.") for key in mapping) > 50:
        raise ApiError(400, "At most 50 custom attributes can be mapped.")
    issuer = (body.get("oidc") or {}).get("issuerUri", "")
    if not issuer.startswith("https://"):
        raise ApiError(400, "oidc.issuerUri must be an https URL.")
    condition = body.get("attributeCondition", "")
    # Google requires a condition for providers of well-known shared issuers such as GitHub's: without one,
    # any repository on GitHub could sign in.
    if issuer == GITHUB_ISSUER and not condition:
        raise ApiError(
            400, "The attribute condition must be set for this issuer (it must reference a provider claim)."
        )
    if condition and not re.search(r"\b(assertion|attribute)\.", condition):
        raise ApiError(400, "The attribute condition must reference one of the provider's claims.")
    if len(condition) > 4096:
        raise ApiError(400, "The attribute condition must be at most 4096 characters.")
    return {
        "name": name,
        "state": "ACTIVE",
        "displayName": body.get("displayName", ""),
        "description": body.get("description", ""),
        "disabled": bool(body.get("disabled", False)),
        "attributeMapping": dict(mapping),
        "attributeCondition": condition,
        "oidc": {"issuerUri": issuer},
    }


def artifact_registry(s: AdminStandIn, caller: str, method: str, path: str, query: dict, body: dict) -> dict:
    s.require_service("artifactregistry.googleapis.com")
    match = re.fullmatch(
        r"/v1/projects/(?P<p>[^/]+)/locations/(?P<l>[^/]+)/(?:operations/(?P<op>[^/]+)|repositories"
        r"(?:/(?P<r>[^/:]+))?(?P<verb>:getIamPolicy|:setIamPolicy|:testIamPermissions)?)",
        path,
    )
    if match is None:
        raise ApiError(501, f"Artifact Registry stand-in: {method} {path} is not served.")
    project = s.project_of(match["p"])
    location = match["l"]
    if not _REGION.match(location) and location not in ("us", "europe", "asia"):
        raise ApiError(400, f"Invalid location {location}.")
    if match["op"]:
        return s.poll(path[len("/v1/") :])
    parent = f"projects/{project}/locations/{location}"
    if match["r"] is None:
        if method != "POST":
            raise ApiError(
                501, "Artifact Registry stand-in: only repositories.create is served on the collection."
            )
        s.require(caller, "artifactregistry.repositories.create", "project", project, parent)
        repository_id = (query.get("repositoryId") or [""])[0]
        if not _REPOSITORY_ID.match(repository_id):
            raise ApiError(400, f"Invalid repository id {repository_id!r}.")
        # The REST clients ask for `$alt=json;enum-encoding=int`: an enum arrives as its number or its name.
        formats = {1: "DOCKER", 2: "MAVEN", 3: "NPM", 5: "APT", 6: "YUM", 8: "PYTHON"}
        fmt = formats.get(body.get("format"), body.get("format"))
        if fmt not in formats.values():
            raise ApiError(400, "Repository format is required.")
        body = {**body, "format": fmt}
        name = f"{parent}/repositories/{repository_id}"
        if name in s.repositories:
            raise ApiError(409, f"the repository already exists: {name}")
        with s.lock:
            s.repositories[name] = {
                "name": name,
                "format": body["format"],
                "description": body.get("description", ""),
            }
        s.policies.create("repository", name)
        response = {
            "@type": "type.googleapis.com/google.devtools.artifactregistry.v1.Repository",
            **s.repositories[name],
        }
        return s.operation(f"{parent}/operations/{uuid.uuid4()}", response)
    name = f"{parent}/repositories/{match['r']}"
    verb = match["verb"]
    if verb is None and method == "GET":
        s.require(caller, "artifactregistry.repositories.get", "repository", name, name)
        if name not in s.repositories:
            raise ApiError(404, f"Requested entity was not found: {name}")
        return copy.deepcopy(s.repositories[name])
    if name not in s.repositories:
        raise _denied(f"artifactregistry.repositories.{(verb or ':get')[1:]}", name)
    if verb == ":getIamPolicy":
        s.require(caller, "artifactregistry.repositories.getIamPolicy", "repository", name, name)
        return s.policies.get("repository", name)
    if verb == ":setIamPolicy":
        s.require(caller, "artifactregistry.repositories.setIamPolicy", "repository", name, name)
        return s.policies.set("repository", name, _policy_of(body))
    if verb == ":testIamPermissions":
        return {"permissions": s.held(caller, "repository", name, body.get("permissions", []))}
    raise ApiError(501, f"Artifact Registry stand-in: {method} {path} is not served.")


def storage_buckets(s: AdminStandIn, caller: str, method: str, path: str, query: dict, body: dict) -> dict:
    """Bucket calls (fake-gcs-server keeps no location, uniform access nor IAM): served here."""
    s.require_service("storage.googleapis.com")
    if path in ("/storage/v1/b", "/storage/v1/b/") and method == "POST":
        project = s.project_of((query.get("project") or [""])[0])
        s.require(caller, "storage.buckets.create", "project", project, f"projects/{project}")
        name = body.get("name", "")
        if not _BUCKET.match(name) or "google" in name or name.startswith("goog"):
            raise ApiError(400, f"Invalid bucket name: '{name}'")
        if name in s.buckets:
            raise ApiError(
                409, "Your previous request to create the named bucket succeeded and you already own it."
            )
        location = (body.get("location") or "US").upper()
        uniform = bool(body.get("iamConfiguration", {}).get("uniformBucketLevelAccess", {}).get("enabled"))
        _upstream_bucket(s, name)
        with s.lock:
            s.buckets[name] = {"name": name, "location": location, "uniform": uniform, "project": project}
        s.policies.create(
            "bucket",
            name,
            [
                {
                    "role": "roles/storage.legacyBucketOwner",
                    "members": [f"projectEditor:{s.number}", f"projectOwner:{s.number}"],
                },
                {"role": "roles/storage.legacyBucketReader", "members": [f"projectViewer:{s.number}"]},
            ],
        )
        return _bucket_resource(s, name)
    match = re.fullmatch(r"/storage/v1/b/(?P<b>[^/]+)(?P<rest>/iam|/iam/testPermissions)?", path)
    if match is None:
        raise ApiError(501, f"Cloud Storage stand-in: {method} {path} is not served.")
    name = urllib.parse.unquote(match["b"])
    resource = f"projects/_/buckets/{name}"
    if match["rest"] == "/iam/testPermissions":
        if name not in s.buckets:
            raise ApiError(404, "The specified bucket does not exist.")
        permissions = query.get("permissions", [])
        return {
            "kind": "storage#testIamPermissionsResponse",
            "permissions": s.held(caller, "bucket", name, permissions),
        }
    needed = {
        (None, "GET"): "storage.buckets.get",
        (None, "PATCH"): "storage.buckets.update",
        ("/iam", "GET"): "storage.buckets.getIamPolicy",
        ("/iam", "PUT"): "storage.buckets.setIamPolicy",
    }.get((match["rest"], method))
    if needed is None:
        raise ApiError(501, f"Cloud Storage stand-in: {method} {path} is not served.")
    if name not in s.buckets:
        raise ApiError(404, "The specified bucket does not exist.")
    try:
        s.require(caller, needed, "bucket", name, resource)
    except ApiError:
        raise ApiError(
            403,
            f"{caller.partition(':')[2]} does not have {needed} access to the Google Cloud Storage bucket. "
            f"Permission '{needed}' denied on resource (or it may not exist).",
        ) from None
    if match["rest"] is None and method == "PATCH":
        enabled = body.get("iamConfiguration", {}).get("uniformBucketLevelAccess", {}).get("enabled")
        if enabled is not None:
            with s.lock:
                s.buckets[name]["uniform"] = bool(enabled)
        return _bucket_resource(s, name)
    if match["rest"] is None:
        return _bucket_resource(s, name)
    if method == "GET":
        return {"kind": "storage#policy", "resourceId": resource, **s.policies.get("bucket", name)}
    policy = {k: v for k, v in body.items() if k in ("bindings", "etag", "version")}
    return {
        "kind": "storage#policy",
        "resourceId": resource,
        **s.policies.set("bucket", name, policy, stale_code=412),
    }


def _bucket_resource(s: AdminStandIn, name: str) -> dict:
    bucket = s.buckets[name]
    return {
        "kind": "storage#bucket",
        "id": name,
        "name": name,
        "projectNumber": s.number,
        "location": bucket["location"],
        "locationType": "region" if "-" in bucket["location"] else "multi-region",
        "storageClass": "STANDARD",
        "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": bucket["uniform"]}},
        "metageneration": "1",
        "etag": "CAE=",
    }


def _upstream_bucket(s: AdminStandIn, name: str) -> None:
    """The bucket in fake-gcs-server too, so its objects have somewhere to live."""
    conn = s.storage.connection()
    try:
        conn.request(
            "POST",
            "/storage/v1/b?project=test-project",
            json.dumps({"name": name}),
            {"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        if response.status not in (200, 409):
            raise RuntimeError(f"fake-gcs-server refused bucket {name}: {response.status}")
    finally:
        conn.close()


ROUTES = (
    (re.compile(r"^/v1/(projects/[^/]+/services|operations/)"), service_usage),
    (re.compile(r"^/v3/projects/"), resource_manager),
    (re.compile(r"^/v1/projects/[^/]+/(serviceAccounts|roles|locations/global/workloadIdentityPools)"), iam),
    (re.compile(r"^/v1/projects/[^/]+/locations/[^/]+/(repositories|operations)"), artifact_registry),
    (re.compile(r"^/storage/v1/b(/[^/]+(/iam(/testPermissions)?)?)?/?$"), storage_buckets),
)
_OBJECTS = re.compile(r"^/(storage/v1/b/[^/]+/o|upload/storage/v1/b/[^/]+/o|download/storage/v1/b/[^/]+/o)")


def _make_handler(s: AdminStandIn) -> type[ForwardingHandler]:
    class Handler(ForwardingHandler):
        def _handle(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            body = RequestBody(self.rfile, self.headers)
            caller = "-"
            try:
                if url.path == "/token" and self.command == "POST":
                    form = urllib.parse.parse_qs(body.buffered().decode())
                    grant = form.get("grant_type", [""])[0]
                    if grant == "refresh_token":
                        issued = s.identities.issue_for_refresh(form.get("refresh_token", [""])[0])
                    elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                        issued = s.identities.issue(form.get("assertion", [""])[0])
                    else:
                        raise ApiError(400, "unsupported_grant_type")
                    self._answer(200, issued, "/token", "-")
                    return
                caller = s.identities.caller(self.headers.get("Authorization"))
                s.require_quota_project(caller, url.path, self.headers.get("x-goog-user-project"))
                if _OBJECTS.match(url.path):
                    self._objects(caller, url, body)
                    return
                handler = next((h for pattern, h in ROUTES if pattern.match(url.path)), None)
                if handler is None:
                    raise ApiError(501, f"The admin stand-in does not serve {self.command} {url.path}.")
                data = body.buffered()
                payload = json.loads(data) if data.strip() else {}
                self._answer(
                    200, handler(s, caller, self.command, url.path, query, payload), url.path, caller
                )
            except ApiError as err:
                body.drain()
                self._answer(err.code, err.body(), url.path, caller)

        def _answer(self, status: int, payload: dict, path: str, caller: str) -> None:
            with s.lock:
                s.requests.append((caller, self.command, path, status))
            self.reply_json(status, payload)

        def _objects(self, caller: str, url, body: RequestBody) -> None:
            s.require_service("storage.googleapis.com")
            try:
                decided = route(self.command, url.path, dict(urllib.parse.parse_qsl(url.query)))
            except GcsError as err:
                raise ApiError(err.code, err.message) from None
            for need in decided.needs:
                if need.bucket is not None and need.bucket not in s.buckets:
                    raise ApiError(404, "The specified bucket does not exist.")
                try:
                    s.require(
                        caller,
                        need.permission,
                        "bucket",
                        need.bucket or "",
                        f"projects/_/buckets/{need.bucket}",
                        need,
                    )
                except ApiError:
                    raise ApiError(
                        403,
                        f"{caller.partition(':')[2]} does not have {need.permission} access to the Google Cloud "
                        f"Storage object. Permission '{need.permission}' denied on resource (or it may not exist).",
                    ) from None
            with s.lock:
                s.requests.append((caller, self.command, url.path, 0))
            conn = self.upstream_request(s.storage, drop=self.connection_listed() | {"authorization"})
            try:
                if body.chunked:
                    conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                body.send_to(conn)
                response = conn.getresponse()
                headers = with_location_rewritten(
                    end_to_end(response.getheaders()), s.storage.endpoint, s.endpoint
                )
                no_body = self.command == "HEAD" or response.status in (204, 304)
                if not no_body and "json" in (response.getheader("Content-Type") or "").lower():
                    data = with_json_rewritten(headers, response.read(), s.storage.endpoint, s.endpoint)
                    self.send_whole(response.status, response.reason, headers, data)
                else:
                    self.stream_answer(response, headers, no_body)
            finally:
                conn.close()

    return Handler


@contextlib.contextmanager
def running_admin_standin(project: str, project_number: str, storage_upstream: str) -> Iterator[AdminStandIn]:
    """The stand-in for one project on a free 127.0.0.1 port, for the ``with`` block."""
    standin = AdminStandIn(project, project_number, storage_upstream)
    with running_server(_make_handler(standin), name="gcp-admin-standin") as serving:
        standin.endpoint = serving.endpoint
        yield standin


__all__ = ["ROLES", "AdminStandIn", "running_admin_standin"]
