"""IAM for the admin stand-in (tests/support/gcp_admin_standin.py): who the caller is, which roles exist and what
they grant, and allow policies with Google's rules for reading and writing them.

Callers authenticate as Google's do: a service account key file (``key_file``) whose ``token_uri`` is the
stand-in. google-auth then either trades a signed JWT for an access token at ``/token`` (the storage client,
AuthorizedSession) or sends a self-signed JWT as the bearer token (GAPIC clients, ``always_use_jwt_access``);
both are verified with the key's public half. No token, or an unknown one: 401.

Role contents are the permissions of Google's "IAM basic and predefined roles reference", limited to the
services the stand-in serves (storage roles come from tests/support/gcs_iam_proxy.py). roles/owner holds every
permission. A binding's role must be one Google lets you grant on that kind of resource.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from pathlib import Path

from tests.support.gcs_iam_proxy import ROLES as STORAGE_ROLES
from tests.support.gcs_iam_proxy import Need, condition_applies, condition_terms

_READER = frozenset(
    {
        "artifactregistry.repositories.get",
        "artifactregistry.repositories.list",
        "artifactregistry.repositories.downloadArtifacts",
        "artifactregistry.repositories.listEffectiveTags",
        "artifactregistry.dockerimages.get",
        "artifactregistry.dockerimages.list",
        "artifactregistry.tags.get",
        "artifactregistry.tags.list",
    }
)

ROLES: dict[str, frozenset[str]] = {
    "roles/owner": frozenset({"*"}),
    **STORAGE_ROLES,
    "roles/aiplatform.user": frozenset(
        {
            "aiplatform.customJobs.cancel",
            "aiplatform.customJobs.create",
            "aiplatform.customJobs.get",
            "aiplatform.customJobs.list",
            "aiplatform.metadataStores.get",
            "aiplatform.models.get",
            "aiplatform.models.list",
            "aiplatform.models.upload",
            "aiplatform.pipelineJobs.cancel",
            "aiplatform.pipelineJobs.create",
            "aiplatform.pipelineJobs.get",
            "aiplatform.pipelineJobs.list",
            "resourcemanager.projects.get",
        }
    ),
    "roles/artifactregistry.reader": _READER,
    "roles/artifactregistry.writer": _READER
    | {
        "artifactregistry.repositories.uploadArtifacts",
        "artifactregistry.tags.create",
        "artifactregistry.tags.update",
    },
    "roles/cloudbuild.builds.editor": frozenset(
        {
            "cloudbuild.builds.create",
            "cloudbuild.builds.get",
            "cloudbuild.builds.list",
            "cloudbuild.builds.update",
            "resourcemanager.projects.get",
        }
    ),
    # BigQuery's roles, as far as cicd.source=bigquery uses them (Google's predefined roles hold more; the
    # stand-in serves no BigQuery API: these are only granted and read back, tests/support/bigquery_standin.py
    # serves the chain's own tables.get).
    "roles/bigquery.user": frozenset(
        {
            "bigquery.datasets.create",
            "bigquery.datasets.get",
            "bigquery.jobs.create",
            "bigquery.jobs.list",
            "bigquery.tables.list",
            "resourcemanager.projects.get",
        }
    ),
    "roles/bigquery.metadataViewer": frozenset(
        {
            "bigquery.datasets.get",
            "bigquery.tables.get",
            "bigquery.tables.list",
            "resourcemanager.projects.get",
        }
    ),
    "roles/bigquery.dataViewer": frozenset(
        {
            "bigquery.datasets.get",
            "bigquery.tables.get",
            "bigquery.tables.getData",
            "bigquery.tables.list",
            "resourcemanager.projects.get",
        }
    ),
    # Dataflow's roles, as far as the chain's switch uses them (the stand-in serves no Dataflow API: these are
    # only granted and read back, never exercised).
    "roles/dataflow.developer": frozenset(
        {
            "dataflow.jobs.cancel",
            "dataflow.jobs.create",
            "dataflow.jobs.get",
            "dataflow.jobs.list",
            "dataflow.jobs.updateContents",
            "dataflow.messages.list",
            "dataflow.metrics.get",
            "resourcemanager.projects.get",
        }
    ),
    "roles/dataflow.worker": frozenset(
        {
            "dataflow.jobs.get",
            "dataflow.shuffle.read",
            "dataflow.shuffle.write",
            "dataflow.workItems.lease",
            "dataflow.workItems.sendMessage",
            "dataflow.workItems.update",
            "logging.logEntries.create",
            "storage.buckets.get",
            "storage.objects.create",
            "storage.objects.get",
        }
    ),
    "roles/iam.securityReviewer": frozenset(
        {
            "artifactregistry.repositories.getIamPolicy",
            "iam.roles.get",
            "iam.roles.list",
            "iam.serviceAccounts.get",
            "iam.serviceAccounts.getIamPolicy",
            "iam.serviceAccounts.list",
            "resourcemanager.projects.get",
            "resourcemanager.projects.getIamPolicy",
            "storage.buckets.getIamPolicy",
        }
    ),
    "roles/iam.serviceAccountUser": frozenset(
        {
            "iam.serviceAccounts.actAs",
            "iam.serviceAccounts.get",
            "iam.serviceAccounts.list",
            "resourcemanager.projects.get",
        }
    ),
    "roles/iam.workloadIdentityUser": frozenset(
        {
            "iam.serviceAccounts.get",
            "iam.serviceAccounts.getAccessToken",
            "iam.serviceAccounts.getOpenIdToken",
            "iam.serviceAccounts.list",
        }
    ),
    "roles/logging.logWriter": frozenset({"logging.logEntries.create", "logging.logEntries.route"}),
    "roles/serviceusage.serviceUsageConsumer": frozenset(
        {"serviceusage.services.get", "serviceusage.services.list", "serviceusage.services.use"}
    ),
    "roles/serviceusage.serviceUsageViewer": frozenset(
        {"serviceusage.services.get", "serviceusage.services.list", "serviceusage.quotas.get"}
    ),
}

# Where Google lets a role be granted besides the project (allow policies of buckets, repositories and service
# accounts accept only their own service's roles).
GRANTABLE_ON = {
    "bucket": lambda role: role.startswith("roles/storage."),
    "repository": lambda role: role.startswith("roles/artifactregistry."),
    "service account": lambda role: (
        role
        in {
            "roles/iam.serviceAccountUser",
            "roles/iam.workloadIdentityUser",
            "roles/iam.serviceAccountTokenCreator",
        }
    ),
    "project": lambda role: True,
}

# Custom roles (IAM REST projects.roles): the id rule of Google's reference, and which permissions a custom role
# may hold: any permission of the predefined roles above, by name (Google's "Custom roles support levels" table
# marks a few NOT_SUPPORTED; none the stand-in serves is, so every one of these is allowed).
CUSTOM_ROLE_ID = re.compile(r"^[a-zA-Z0-9_.]{3,64}$")
CUSTOM_ROLE_NAME = re.compile(r"^projects/(?P<project>[^/]+)/roles/(?P<id>[^/]+)$")


def known_permission(permission: str) -> bool:
    return any(
        held == permission or (held.endswith(".*") and permission.startswith(held[:-1]))
        for role, held_set in ROLES.items()
        if role != "roles/owner"
        for held in held_set
    )


_PERMISSION = re.compile(r"^[a-z0-9]+\.[a-zA-Z0-9]+\.[a-zA-Z0-9]+$")
_SA_MEMBER = re.compile(
    r"^serviceAccount:(?P<email>[a-z][a-z0-9-]{4,28}[a-z0-9]@(?P<project>[a-z0-9-]+)\.iam\.gserviceaccount\.com)$"
)
_PRINCIPAL_SET = re.compile(
    r"^principalSet://iam\.googleapis\.com/projects/(?P<number>[^/]+)/locations/global/workloadIdentityPools/"
    r"(?P<pool>[a-z0-9-]{4,32})/(?:attribute\.[a-z_]+/[^/].*|\*|group/.+)$"
)


class ApiError(Exception):
    """An answer in the shape of Google's JSON errors: ``{"error": {"code", "message", "status"}}``."""

    STATUS = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        409: "ALREADY_EXISTS",
        412: "FAILED_PRECONDITION",
        501: "UNIMPLEMENTED",
    }

    def __init__(self, code: int, message: str, status: str | None = None, details: list | None = None):
        super().__init__(message)
        self.code, self.message = code, message
        self.status = status or self.STATUS.get(code, "UNKNOWN")
        self.details = details or []

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        # Cloud Storage's JSON API adds its own "errors" list; the other APIs' clients ignore it.
        error["errors"] = [{"message": self.message, "domain": "global", "reason": self.status.lower()}]
        return {"error": error}


def role_grants(role: str, permission: str, custom: dict[str, frozenset[str]] | None = None) -> bool:
    """Whether `role` (predefined, or a custom one of `custom`: name -> permissions) holds `permission`."""
    permissions = ROLES.get(role) or (custom or {}).get(role, ())
    return any(
        held == "*" or held == permission or (held.endswith(".*") and permission.startswith(held[:-1]))
        for held in permissions
    )


def check_permissions_list(permissions: list[str]) -> None:
    """testIamPermissions refuses wildcards and malformed names (400), as Google does."""
    for permission in permissions:
        if not _PERMISSION.match(permission):
            raise ApiError(400, f"Permission {permission} is not valid.")


class Policies:
    """Allow policies by (kind, name), each with its etag; a write with a stale etag is refused."""

    def __init__(self, accounts, project_number: str, custom_roles=lambda: {}) -> None:
        self._policies: dict[tuple[str, str], dict] = {}
        self._accounts = accounts  # callable: email -> bool (does the service account exist)
        self._custom_roles = custom_roles  # callable: -> {name: permissions} of the custom roles not deleted
        self.project_number = project_number
        self._counter = 0
        self._lock = threading.Lock()

    def _etag(self) -> str:
        self._counter += 1
        return base64.b64encode(f"etag-{self._counter}".encode()).decode()

    def create(self, kind: str, name: str, bindings: list[dict] | None = None) -> None:
        with self._lock:
            self._policies[(kind, name)] = {"version": 1, "etag": self._etag(), "bindings": bindings or []}

    def drop(self, kind: str, name: str) -> None:
        with self._lock:
            self._policies.pop((kind, name), None)

    def get(self, kind: str, name: str) -> dict:
        with self._lock:
            policy = self._policies[(kind, name)]
            return json.loads(json.dumps(policy))

    def set(self, kind: str, name: str, policy: dict, *, stale_code: int = 409) -> dict:
        """Google's setIamPolicy: etag must match when given; members and roles valid for the resource."""
        bindings = []
        custom = self._custom_roles()
        for binding in policy.get("bindings", []):
            role = binding.get("role", "")
            if CUSTOM_ROLE_NAME.match(role):
                if role not in custom:
                    raise ApiError(400, f"Role ({role}) does not exist in the resource's hierarchy.")
            elif role not in ROLES or not GRANTABLE_ON[kind](role):
                raise ApiError(400, f"Role {role} is not supported for this resource.")
            condition = binding.get("condition")
            if condition:
                # Conditions need policy version 3 in the request (Google: "... must be set to 3").
                if int(policy.get("version") or 1) < 3:
                    raise ApiError(
                        400,
                        "Conditions are only supported in policy version 3: set the policy's version to 3.",
                    )
                try:
                    condition_terms(condition.get("expression", ""))
                except ValueError as err:
                    raise ApiError(400, f"Invalid condition expression: {err}") from None
            members = [m for m in binding.get("members", [])]
            for member in members:
                self._check_member(member, kind)
            if members:
                bindings.append({k: v for k, v in {**binding, "members": members}.items()})
        with self._lock:
            current = self._policies[(kind, name)]
            etag = policy.get("etag")
            if etag and etag != current["etag"]:
                if stale_code == 412:
                    raise ApiError(412, "Precondition Failed", "FAILED_PRECONDITION")
                raise ApiError(
                    409,
                    "There were concurrent policy changes. Please retry the whole read-modify-write with "
                    "exponential backoff.",
                    "ABORTED",
                )
            version = 3 if any(b.get("condition") for b in bindings) else 1
            self._policies[(kind, name)] = {"version": version, "etag": self._etag(), "bindings": bindings}
            return json.loads(json.dumps(self._policies[(kind, name)]))

    def _check_member(self, member: str, kind: str) -> None:
        if member.startswith("serviceAccount:"):
            match = _SA_MEMBER.match(member)
            if match is None:
                raise ApiError(400, f"Invalid service account ({member.partition(':')[2]}).")
            if not self._accounts(match["email"]):
                raise ApiError(400, f"Service account {match['email']} does not exist.")
        elif member.startswith("principalSet://"):
            match = _PRINCIPAL_SET.match(member)
            if match is None or not match["number"].isdigit():
                raise ApiError(
                    400,
                    f"Invalid principalSet member {member}: projects/ must name the project NUMBER and the pool "
                    "a Workload Identity pool id.",
                )
        elif member.startswith(("projectOwner:", "projectEditor:", "projectViewer:")):
            if kind != "bucket":
                raise ApiError(400, f"Invalid member {member} for this resource.")
        elif not member.startswith(("user:", "group:", "domain:", "principal://")):
            raise ApiError(400, f"Invalid member {member}.")

    def roles_of(self, member: str, kind: str, name: str, project: str, need: Need | None = None) -> set[str]:
        """The roles `member` holds on the resource or on the project: unconditional bindings, and conditional
        ones whose condition holds for `need` (a Cloud Storage request; without one, none applies)."""
        with self._lock:
            roles = set()
            for key in {(kind, name), ("project", project)}:
                for binding in self._policies.get(key, {}).get("bindings", []):
                    if member not in binding.get("members", []):
                        continue
                    condition = (binding.get("condition") or {}).get("expression")
                    if not condition or (need is not None and condition_applies(condition, need)):
                        roles.add(binding["role"])
            return roles

    def permissions_of(self, role: str, permission: str) -> bool:
        return role_grants(role, permission, self._custom_roles())

    def remove(self, kind: str, name: str, role: str, member: str) -> None:
        """For tests: take one binding away, as `gcloud ... remove-iam-policy-binding` would."""
        with self._lock:
            policy = self._policies[(kind, name)]
            for binding in policy["bindings"]:
                if binding["role"] == role and member in binding["members"]:
                    binding["members"].remove(member)
                    break
            else:
                raise KeyError(f"{member} does not hold {role} on {kind} {name}")
            policy["bindings"] = [b for b in policy["bindings"] if b["members"]]
            policy["etag"] = self._etag()


class Identities:
    """Service account keys the stand-in knows, and the access tokens it issued."""

    def __init__(self) -> None:
        self._public: dict[str, tuple[str, bytes]] = {}  # key id -> (email, public key PEM)
        self._tokens: dict[str, str] = {}  # access token -> email (a service account's) or "user:EMAIL"
        self._refresh: dict[str, str] = {}  # refresh token -> a person's email
        self._lock = threading.Lock()

    def key_file(self, path: Path, email: str, token_uri: str) -> Path:
        """A service account key file for `email` whose tokens come from this stand-in."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        with self._lock:
            self._public[key_id] = (email, public)
        project = email.split("@")[1].split(".")[0]
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": project,
                    "private_key_id": key_id,
                    "private_key": private,
                    "client_email": email,
                    "client_id": str(int(time.time())),
                    "token_uri": token_uri,
                }
            )
        )
        return path

    def person(self, email: str) -> str:
        """A refresh token for the person `email`, as `gcloud auth application-default login` stores one.

        google-auth sends an `authorized_user` file's refresh to Google's own token endpoint whatever the file
        says (`Credentials.from_authorized_user_info`: "always overrides"), so tests build the credentials
        with this token and the stand-in's token URI instead of writing such a file.
        """
        refresh = "1//standin-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[refresh] = email
        return refresh

    def issue_for_refresh(self, refresh_token: str) -> dict:
        """The OAuth 2.0 refresh-token grant of the token endpoint (a person's credentials)."""
        with self._lock:
            email = self._refresh.get(refresh_token)
        if email is None:
            raise ApiError(400, "invalid_grant", "INVALID_ARGUMENT")
        token = "ya29.standin-user-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = f"user:{email}"
        return {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def _verified(self, assertion: str) -> dict:
        from google.auth import jwt

        try:
            header = json.loads(base64.urlsafe_b64decode(assertion.split(".")[0] + "==="))
            email, public = self._public[header["kid"]]
            claims = jwt.decode(assertion, certs={header["kid"]: public.decode()}, verify=True, audience=None)
        except Exception as exc:  # any malformed or unverifiable token is refused the same way
            raise ApiError(401, f"Invalid JWT: {type(exc).__name__}", "UNAUTHENTICATED") from None
        if claims.get("iss") != email:
            raise ApiError(401, "Invalid JWT: iss is not the key's service account.", "UNAUTHENTICATED")
        return claims

    def issue(self, assertion: str) -> dict:
        """The OAuth 2.0 JWT-bearer grant of the token endpoint."""
        claims = self._verified(assertion)
        token = "ya29.standin-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = claims["iss"]
        return {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def caller(self, authorization: str | None) -> str:
        """The member of the bearer token (an issued access token, or a self-signed JWT); 401 otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 access token, login "
                "cookie or other valid authentication credential.",
                "UNAUTHENTICATED",
            )
        token = token.strip()
        with self._lock:
            email = self._tokens.get(token)
        if email is None:
            if token.count(".") != 2:
                raise ApiError(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")
            email = self._verified(token)["iss"]
        return email if email.startswith("user:") else f"serviceAccount:{email}"
