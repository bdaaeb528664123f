"""The Google Cloud admin calls `invoke setup` and `invoke doctor` make, through the real client libraries.

Service Usage, Resource Manager and Artifact Registry go through their GAPIC clients over REST; Cloud Storage
through google-cloud-storage. IAM (service accounts, their policies, Workload Identity pools and providers)
goes over its documented REST API (https://cloud.google.com/iam/docs/reference/rest) with google-auth's
AuthorizedSession: the newest google-cloud-iam that installs beside protobuf 3.20 (2.21) serves iam_admin_v1
over gRPC only, and no Python client library covers Workload Identity pools.

`cicd.cloud_api_endpoint` points every one of them at one address (a local stand-in); `anonymous_credentials`
is not used here, since every admin API refuses an anonymous caller. Policies travel as their JSON form
({"bindings": [{"role", "members"}], "etag", "version"}) whatever the API, so setup and doctor handle one shape.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any

from cicd_release.core.errors import CloudUnavailable, Refused
from cicd_release.core.faults import Calls, reporting
from cicd_release.core.settings import Settings

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
IAM_ENDPOINT = "https://iam.googleapis.com"
# Policy version 3 is what a reader must ask for to see conditional bindings (setup makes one, on the bucket,
# and a policy that has them must not be rewritten as version 1, which would drop the conditions).
POLICY_VERSION = 3
OPERATION_POLL_SECONDS = 0.5


def credentials():
    """Application Default Credentials with the cloud-platform scope; CloudUnavailable (exit 1) when none."""
    import google.auth
    import google.auth.exceptions

    try:
        creds, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise CloudUnavailable(
            f"No Google credentials ({str(exc).splitlines()[0]}): run `gcloud auth application-default login` "
            "as a project owner (or set GOOGLE_APPLICATION_CREDENTIALS)."
        ) from None
    return creds


def billed_to(creds, project: str):
    """A person's credentials with no quota project, billed to ``project`` (the one being set up or checked).

    `gcloud auth application-default login` writes no quota project unless gcloud's core/project is set (and
    older gcloud never did), and Service Usage, setup's first call, refuses a person's call without one:
    "... requires a quota project, which is not set by default". A project owner may use the project's quota
    (serviceusage.services.use). Service accounts' calls are billed to their own project and are left as is,
    and so is a quota project the person chose.
    """
    from google.oauth2.credentials import Credentials as UserCredentials

    if isinstance(creds, UserCredentials) and not creds.quota_project_id and project:
        return creds.with_quota_project(project)
    return creds


def _json_policy(message) -> dict[str, Any]:
    from google.protobuf import json_format

    return json_format.MessageToDict(message)


def _pb_policy(policy: dict[str, Any]):
    from google.iam.v1 import policy_pb2
    from google.protobuf import json_format

    return json_format.ParseDict(policy, policy_pb2.Policy())


class Cloud:
    """One caller's view of one project: the clients, made on first use, and the calls setup and doctor need."""

    def __init__(self, settings: Settings, project: str, creds=None) -> None:
        self.settings = settings
        self.project = project
        self.endpoint = settings.cloud_api_endpoint.rstrip("/")
        self.timeout = float(settings.request_deadline_seconds)
        self._creds = creds
        self._billed = False
        self._clients: dict[str, Any] = {}

    # --- clients

    @property
    def creds(self):
        if self._creds is None:
            self._creds = credentials()
        if not self._billed:  # once: a copy is a new credential that would fetch its own token
            self._creds, self._billed = billed_to(self._creds, self.project), True
        return self._creds

    def _gapic(self, name: str, factory):
        if name not in self._clients:
            from google.api_core.client_options import ClientOptions

            options = ClientOptions(api_endpoint=self.endpoint) if self.endpoint else None
            self._clients[name] = factory(credentials=self.creds, transport="rest", client_options=options)
        return self._clients[name]

    @property
    def service_usage(self):
        from google.cloud import service_usage_v1

        return self._gapic("serviceusage", service_usage_v1.ServiceUsageClient)

    @property
    def projects(self):
        from google.cloud import resourcemanager_v3

        return self._gapic("resourcemanager", resourcemanager_v3.ProjectsClient)

    @property
    def registry(self):
        from google.cloud import artifactregistry_v1

        return self._gapic("artifactregistry", artifactregistry_v1.ArtifactRegistryClient)

    @property
    def storage(self):
        if "storage" not in self._clients:
            from google.cloud import storage

            options = {"api_endpoint": self.endpoint} if self.endpoint else None
            self._clients["storage"] = storage.Client(
                project=self.project, credentials=self.creds, client_options=options
            )
        return self._clients["storage"]

    @property
    def iam(self):
        if "iam" not in self._clients:
            from google.auth.transport.requests import AuthorizedSession

            self._clients["iam"] = AuthorizedSession(self.creds)
        return self._clients["iam"]

    def where(self, api: str) -> str:
        return self.endpoint or f"https://{api}"

    def reporting(self, what: str, api: str) -> contextlib.AbstractContextManager[Calls]:
        """The fault boundary (cicd_release.core.faults) for calls to ``what`` at ``api`` (its Google host)."""
        return reporting(what, self.where(api), deadline=self.timeout, setting="cicd.cloud_api_endpoint")

    def caller(self) -> str | None:
        """The service account e-mail these credentials act as (after a first call), or None (a user)."""
        email = getattr(self._creds, "service_account_email", None)
        return email if email and "@" in email else None

    # --- Service Usage

    def enabled_services(self, names: Iterable[str]) -> dict[str, bool]:
        """Whether each API is enabled in the project (services.batchGet, at most 30 names a call)."""
        from google.cloud import service_usage_v1

        names = list(names)
        states: dict[str, bool] = {}
        with self.reporting("Service Usage", "serviceusage.googleapis.com"):
            for start in range(0, len(names), 30):
                response = self.service_usage.batch_get_services(
                    request={
                        "parent": f"projects/{self.project}",
                        "names": [f"projects/{self.project}/services/{n}" for n in names[start : start + 30]],
                    },
                    timeout=self.timeout,
                )
                for service in response.services:
                    # An IntEnum, or a bare int when the client's enum is older than the answer: compare values.
                    states[service.name.rsplit("/", 1)[-1]] = int(service.state) == int(
                        service_usage_v1.State.ENABLED
                    )
        return states

    def enable_services(self, names: list[str]) -> None:
        """services.batchEnable (at most 20 a call), each a long-running operation waited for."""
        with self.reporting("Service Usage", "serviceusage.googleapis.com"):
            for start in range(0, len(names), 20):
                operation = self.service_usage.batch_enable_services(
                    request={"parent": f"projects/{self.project}", "service_ids": names[start : start + 20]},
                    timeout=self.timeout,
                )
                operation.result(timeout=max(self.timeout, 300))

    # --- Resource Manager

    def project_number(self) -> str:
        with self.reporting("Resource Manager", "cloudresourcemanager.googleapis.com"):
            project = self.projects.get_project(name=f"projects/{self.project}", timeout=self.timeout)
        return project.name.rsplit("/", 1)[-1]

    # --- Cloud Storage

    def bucket(self, name: str) -> dict[str, Any] | None:
        """The bucket's location and uniform access, or None when it does not exist."""
        import google.api_core.exceptions as gexc

        with self.reporting("Cloud Storage", "storage.googleapis.com"):
            try:
                bucket = self.storage.get_bucket(name, timeout=self.timeout)
            except gexc.NotFound:
                return None
        return {
            "location": (bucket.location or "").lower(),
            "uniform": bool(bucket.iam_configuration.uniform_bucket_level_access_enabled),
        }

    def create_bucket(self, name: str, location: str) -> None:
        with self.reporting("Cloud Storage", "storage.googleapis.com"):
            bucket = self.storage.bucket(name)
            bucket.iam_configuration.uniform_bucket_level_access_enabled = True
            self.storage.create_bucket(bucket, location=location, timeout=self.timeout)

    # --- Artifact Registry

    def repository(self, name: str) -> dict[str, Any] | None:
        import google.api_core.exceptions as gexc

        with self.reporting("Artifact Registry", "artifactregistry.googleapis.com"):
            try:
                repository = self.registry.get_repository(name=name, timeout=self.timeout)
            except gexc.NotFound:
                return None
        return {"format": repository.format_.name}

    def create_repository(self, name: str, description: str) -> None:
        from google.cloud import artifactregistry_v1

        parent, _, repository_id = name.rpartition("/repositories/")
        with self.reporting("Artifact Registry", "artifactregistry.googleapis.com"):
            operation = self.registry.create_repository(
                parent=parent,
                repository_id=repository_id,
                repository=artifactregistry_v1.Repository(
                    format_=artifactregistry_v1.Repository.Format.DOCKER, description=description
                ),
                timeout=self.timeout,
            )
            operation.result(timeout=max(self.timeout, 300))

    # --- IAM (REST)

    def _iam(self, method: str, path: str, **kwargs) -> dict[str, Any] | None:
        """One IAM REST call; None for a 404 on a read, an api_core exception for any other error."""
        import google.api_core.exceptions as gexc

        with self.reporting("IAM", "iam.googleapis.com") as calls:
            calls.now(method, path)
            response = self.iam.request(
                method, f"{self.endpoint or IAM_ENDPOINT}/v1/{path}", timeout=self.timeout, **kwargs
            )
            if response.status_code == 404 and method == "GET":
                return None
            if response.status_code >= 400:
                raise gexc.from_http_response(response)
        return response.json() if response.content else {}

    def _wait(self, operation: dict[str, Any]) -> dict[str, Any]:
        """Polls an IAM long-running operation (GET v1/{name}) until done; its error as an exception."""
        deadline = time.monotonic() + max(self.timeout, 300)
        while not operation.get("done"):
            if time.monotonic() > deadline:
                raise CloudUnavailable(f"IAM: the operation {operation.get('name')} did not finish in time.")
            time.sleep(OPERATION_POLL_SECONDS)
            operation = self._iam("GET", operation["name"]) or {}
        if "error" in operation:
            error = operation["error"]
            raise Refused(f"IAM: the operation {operation.get('name')} failed: {error.get('message', error)}")
        return operation.get("response", {})

    def service_account(self, email: str) -> dict[str, Any] | None:
        return self._iam("GET", f"projects/{self.project}/serviceAccounts/{email}")

    def create_service_account(self, account_id: str, title: str, description: str) -> None:
        self._iam(
            "POST",
            f"projects/{self.project}/serviceAccounts",
            json={
                "accountId": account_id,
                "serviceAccount": {"displayName": title, "description": description},
            },
        )

    def pool(self, name: str) -> dict[str, Any] | None:
        return self._iam("GET", name)

    def create_pool(self, name: str, title: str, description: str) -> None:
        parent, _, pool_id = name.rpartition("/workloadIdentityPools/")
        operation = self._iam(
            "POST",
            f"{parent}/workloadIdentityPools",
            params={"workloadIdentityPoolId": pool_id},
            json={"displayName": title, "description": description},
        )
        self._wait(operation or {})

    def provider(self, name: str) -> dict[str, Any] | None:
        return self._iam("GET", name)

    def create_provider(self, name: str, body: dict[str, Any]) -> None:
        parent, _, provider_id = name.rpartition("/providers/")
        operation = self._iam(
            "POST", f"{parent}/providers", params={"workloadIdentityPoolProviderId": provider_id}, json=body
        )
        self._wait(operation or {})

    def update_provider(self, name: str, body: dict[str, Any], fields: list[str]) -> None:
        operation = self._iam("PATCH", name, params={"updateMask": ",".join(fields)}, json=body)
        self._wait(operation or {})

    # --- custom roles (IAM REST projects.roles)

    def custom_role(self, name: str) -> dict[str, Any] | None:
        """projects/P/roles/ID as IAM has it ({name, includedPermissions, deleted, etag, ...}), or None.

        A deleted role is still returned, with "deleted": true (view=FULL is the default for a get)."""
        return self._iam("GET", name)

    def create_custom_role(self, role_id: str, title: str, description: str, permissions: list[str]) -> None:
        self._iam(
            "POST",
            f"projects/{self.project}/roles",
            json={
                "roleId": role_id,
                "role": {
                    "title": title,
                    "description": description,
                    "includedPermissions": permissions,
                    "stage": "GA",
                },
            },
        )

    def update_custom_role(self, name: str, permissions: list[str], etag: str = "") -> None:
        """PATCH with updateMask=includedPermissions: only the permission list changes."""
        body: dict[str, Any] = {"includedPermissions": permissions}
        if etag:
            body["etag"] = etag
        self._iam("PATCH", name, params={"updateMask": "includedPermissions"}, json=body)

    def undelete_custom_role(self, name: str, etag: str = "") -> None:
        """A deleted custom role keeps its id for 37 days and cannot be made anew: it is undeleted."""
        self._iam("POST", f"{name}:undelete", json={"etag": etag} if etag else {})

    # --- IAM policies of the four kinds of resource, in one JSON shape

    def policy(self, kind: str, name: str) -> dict[str, Any]:
        """The allow policy of a project, bucket, repository or service account (version 3 requested)."""
        if kind == "project":
            with self.reporting("Resource Manager", "cloudresourcemanager.googleapis.com"):
                return _json_policy(
                    self.projects.get_iam_policy(
                        request={
                            "resource": f"projects/{name}",
                            "options": {"requested_policy_version": POLICY_VERSION},
                        },
                        timeout=self.timeout,
                    )
                )
        if kind == "bucket":
            with self.reporting("Cloud Storage", "storage.googleapis.com"):
                policy = self.storage.bucket(name).get_iam_policy(
                    requested_policy_version=POLICY_VERSION, timeout=self.timeout
                )
            return {k: v for k, v in policy.to_api_repr().items() if k != "resourceId"}
        if kind == "repository":
            with self.reporting("Artifact Registry", "artifactregistry.googleapis.com"):
                return _json_policy(
                    self.registry.get_iam_policy(
                        request={"resource": name, "options": {"requested_policy_version": POLICY_VERSION}},
                        timeout=self.timeout,
                    )
                )
        if kind == "service account":
            # No request body: Google's reference says it "must be empty", and the version is a query parameter
            # (gcloud's generated client sends it the same way: request_field '', options_requestedPolicyVersion).
            return (
                self._iam(
                    "POST",
                    f"projects/{self.project}/serviceAccounts/{name}:getIamPolicy",
                    params={"options.requestedPolicyVersion": POLICY_VERSION},
                )
                or {}
            )
        raise ValueError(f"unknown resource kind {kind!r}")

    def set_policy(self, kind: str, name: str, policy: dict[str, Any]) -> None:
        """Writes a policy read by `policy()`; its etag makes a concurrent change an error setup retries."""
        if kind == "project":
            with self.reporting("Resource Manager", "cloudresourcemanager.googleapis.com"):
                self.projects.set_iam_policy(
                    request={"resource": f"projects/{name}", "policy": _pb_policy(policy)},
                    timeout=self.timeout,
                )
        elif kind == "bucket":
            from google.api_core.iam import Policy

            with self.reporting("Cloud Storage", "storage.googleapis.com"):
                self.storage.bucket(name).set_iam_policy(Policy.from_api_repr(policy), timeout=self.timeout)
        elif kind == "repository":
            with self.reporting("Artifact Registry", "artifactregistry.googleapis.com"):
                self.registry.set_iam_policy(
                    request={"resource": name, "policy": _pb_policy(policy)}, timeout=self.timeout
                )
        elif kind == "service account":
            self._iam(
                "POST",
                f"projects/{self.project}/serviceAccounts/{name}:setIamPolicy",
                json={"policy": policy},
            )
        else:
            raise ValueError(f"unknown resource kind {kind!r}")

    def test_permissions(self, kind: str, name: str, permissions: list[str]) -> set[str]:
        """Which of `permissions` the caller holds on the resource (testIamPermissions: the caller's own)."""
        if kind == "project":
            with self.reporting("Resource Manager", "cloudresourcemanager.googleapis.com"):
                response = self.projects.test_iam_permissions(
                    resource=f"projects/{name}", permissions=permissions, timeout=self.timeout
                )
            return set(response.permissions)
        if kind == "bucket":
            with self.reporting("Cloud Storage", "storage.googleapis.com"):
                return set(self.storage.bucket(name).test_iam_permissions(permissions, timeout=self.timeout))
        if kind == "repository":
            with self.reporting("Artifact Registry", "artifactregistry.googleapis.com"):
                response = self.registry.test_iam_permissions(
                    request={"resource": name, "permissions": permissions}, timeout=self.timeout
                )
            return set(response.permissions)
        if kind == "service account":
            response = self._iam(
                "POST",
                f"projects/{self.project}/serviceAccounts/{name}:testIamPermissions",
                json={"permissions": permissions},
            )
            return set((response or {}).get("permissions", []))
        raise ValueError(f"unknown resource kind {kind!r}")


# --- policies as data ------------------------------------------------------------------------------------


def _same_condition(binding: dict[str, Any], condition: dict[str, str] | None) -> bool:
    found = binding.get("condition")
    if not condition:
        return not found
    return bool(found) and found.get("expression") == condition["expression"]


def holds(policy: dict[str, Any], role: str, member: str, condition: dict[str, str] | None = None) -> bool:
    """Whether `member` holds `role` under exactly `condition` (None: without one). A conditional binding does
    not count as an unconditional one (it may not apply), nor one with another expression."""
    return any(
        b.get("role") == role and member in b.get("members", ()) and _same_condition(b, condition)
        for b in policy.get("bindings", ())
    )


def with_bindings(policy: dict[str, Any], wanted: Iterable[tuple]) -> dict[str, Any]:
    """A copy of `policy` in which each (role, member) or (role, member, condition) of `wanted` is bound: added
    to the role's binding with the same condition (or a new one), every other binding, the etag and the
    version kept as read."""
    bindings = [{**b, "members": list(b.get("members", ()))} for b in policy.get("bindings", ())]
    for role, member, *rest in wanted:
        condition = rest[0] if rest else None
        if holds({"bindings": bindings}, role, member, condition):
            continue
        same = next(
            (b for b in bindings if b.get("role") == role and _same_condition(b, condition)),
            None,
        )
        if same is None:
            bindings.append(
                {"role": role, "members": [member], **({"condition": dict(condition)} if condition else {})}
            )
        else:
            same["members"] = sorted({*same["members"], member})
    updated = {**policy, "bindings": bindings}
    # A policy with a conditional binding must be written as version 3; any other may stay what it was.
    if any(b.get("condition") for b in bindings):
        updated["version"] = POLICY_VERSION
    return updated
