"""An IAM gate in front of fake-gcs-server: each request passes only if its caller holds the permission GCS asks.

fake-gcs-server answers every request from anyone. Real Cloud Storage first maps the request to the IAM
permission its JSON API method needs and checks it against the roles the caller holds on the bucket (or the
project); a release step that needs more than the documented role works against the emulator and fails on
Google Cloud. This proxy closes that gap. It sits between the real ``google-cloud-storage`` client and the
emulator, and for each request:

1. reads ``Authorization: Bearer <token>`` (missing or unknown token: 401, as GCS answers);
2. maps method + path (+ preconditions) to the permissions in ``required_permissions`` below;
3. checks them against the roles granted to the token's principal with ``grant(token, principal, roles,
   bucket)`` (bucket=None: on the project, so on every bucket); a missing one is a 403 with GCS's message,
   or a 404 when the bucket itself does not exist (a missing bucket is "not found" to every caller);
4. forwards the request byte for byte (bodies streamed, hop-by-hop headers dropped) and relays the answer.

The emulator writes its own address into ``selfLink``/``mediaLink`` and resumable-upload ``Location``s; the
proxy rewrites those to its own address (the way real GCS names storage.googleapis.com), or a client that
follows a ``mediaLink`` would walk around the gate. A resumable upload is checked when it is opened; later
requests carrying its ``upload_id`` pass unchecked, since GCS treats the session URI as the credential.

IAM conditions are modelled as far as the release uses them (``condition_applies``: prefix tests on the
resource name and on a list's prefix). Not modelled: ACLs (buckets are taken to use uniform bucket-level access),
other conditions, deny policies,
managed folders, requester pays, and the XML API. A route the table does not know is refused with 501 so that
a new call shows up here instead of being waved through.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import secrets
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from tests.support.http_forward import HOP_BY_HOP as HOP_BY_HOP  # re-exported: this module's public name
from tests.support.http_forward import (
    ForwardingHandler,
    RequestBody,
    Upstream,
    end_to_end,
    running_server,
    with_json_rewritten,
    with_location_rewritten,
)

# Predefined roles, storage.* permissions only, as listed on
# https://cloud.google.com/storage/docs/access-control/iam-roles ("Predefined roles"; cross-checked with the
# role summaries in the Java client's StorageRoles reference). A trailing ``.*`` is Google's own notation for
# "every permission of that family". Note what roles/storage.objectAdmin lacks: every storage.buckets.*
# permission, so bucket.exists()/reload() (storage.buckets.get) is refused to it.
ROLES: dict[str, frozenset[str]] = {
    "roles/storage.admin": frozenset(
        {
            "storage.anywhereCaches.*",
            "storage.bucketOperations.*",
            "storage.buckets.*",
            "storage.folders.*",
            "storage.managedFolders.*",
            "storage.multipartUploads.*",
            "storage.objects.*",
        }
    ),
    "roles/storage.objectAdmin": frozenset(
        {"storage.managedFolders.*", "storage.multipartUploads.*", "storage.objects.*"}
    ),
    "roles/storage.objectCreator": frozenset(
        {
            "storage.managedFolders.create",
            "storage.multipartUploads.abort",
            "storage.multipartUploads.create",
            "storage.multipartUploads.listParts",
            "storage.objects.create",
        }
    ),
    "roles/storage.objectViewer": frozenset(
        {
            "storage.managedFolders.get",
            "storage.managedFolders.list",
            "storage.objects.get",
            "storage.objects.list",
        }
    ),
    "roles/storage.legacyBucketReader": frozenset({"storage.buckets.get", "storage.objects.list"}),
    "roles/storage.legacyBucketWriter": frozenset(
        {"storage.buckets.get", "storage.objects.create", "storage.objects.delete", "storage.objects.list"}
    ),
    "roles/storage.legacyBucketOwner": frozenset(
        {
            "storage.buckets.get",
            "storage.buckets.getIamPolicy",
            "storage.buckets.setIamPolicy",
            "storage.buckets.update",
            "storage.objects.create",
            "storage.objects.delete",
            "storage.objects.list",
        }
    ),
}

# Principal of the token the proxy makes for itself (roles/storage.admin on the project): fixtures use it for
# setup that the identity under test is not meant to do, like creating buckets.
ADMIN_PRINCIPAL = "gcs-iam-proxy-admin@test-project.iam.gserviceaccount.com"


class Need(NamedTuple):
    """One permission a request needs, and the bucket it is checked on (None: the project).

    ``obj`` is the object's name when the request names one (its IAM resource is then the object:
    ``projects/_/buckets/B/objects/NAME``; otherwise the bucket); ``list_prefix`` is a list request's
    ``prefix`` ("" without one), the value of IAM's API attribute storage.googleapis.com/objectListPrefix.
    """

    permission: str
    bucket: str | None
    obj: str | None = None
    list_prefix: str | None = None

    @property
    def resource(self) -> str:
        bucket = f"projects/_/buckets/{self.bucket}"
        return bucket if self.obj is None else f"{bucket}/objects/{self.obj}"


# IAM Conditions, as far as the release uses them: terms joined by ||, each a prefix test on the resource's
# name or on the list request's prefix (Google's "Resource attributes for IAM Conditions": an object is
# projects/_/buckets/B/objects/NAME, and a list is checked on the bucket, projects/_/buckets/B, so a name
# condition alone refuses every list; API attribute storage.googleapis.com/objectListPrefix is the list's
# prefix, "" (the default given) for any other request). Any other expression is refused where it is set.
_TERM = re.compile(
    r"""^\s*(?:resource\.name|api\.getAttribute\((?P<q1>["'])storage\.googleapis\.com/objectListPrefix(?P=q1),\s*"""
    r"""(?P<q2>["'])(?P=q2)\))\.startsWith\((?P<q3>["'])(?P<prefix>[^"']*)(?P=q3)\)\s*$"""
)


def condition_terms(expression: str) -> list[tuple[str, str]]:
    """(attribute, prefix) of each term: attribute "name" or "list"; ValueError for what is not modelled."""
    terms = []
    for text in expression.split("||"):
        match = _TERM.match(text)
        if match is None:
            raise ValueError(
                f"the stand-in evaluates only resource.name.startsWith(...) and "
                f"api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith(...) joined by ||, "
                f"not {text.strip()!r}"
            )
        terms.append(("list" if match["q1"] else "name", match["prefix"]))
    return terms


def condition_applies(expression: str | None, need: Need) -> bool:
    """Whether a binding's condition holds for the request's resource (no condition: always)."""
    if not expression:
        return True
    for attribute, prefix in condition_terms(expression):
        if attribute == "name" and need.resource.startswith(prefix):
            return True
        if attribute == "list" and (need.list_prefix or "").startswith(prefix):
            return True
    return False


class RequestRecord(NamedTuple):
    """What the proxy decided for one request.

    ``permission`` is the refused permission when ``allowed`` is False, else every permission checked
    (space-separated, None for a resumable-upload chunk, which rides on the session opened by ``principal``).
    ``principal`` is None for a request without valid credentials. ``path`` excludes the query string.
    """

    principal: str | None
    method: str
    path: str
    permission: str | None
    allowed: bool


class GcsError(Exception):
    """An answer in the JSON API's error shape: ``{"error": {"code", "message", "errors": [...]}}``."""

    def __init__(self, code: int, message: str, reason: str, headers: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "domain": "global", "reason": self.reason, **self.extra}
        return {"error": {"code": self.code, "message": self.message, "errors": [error]}}


def _denied_message(principal: str, need: Need) -> str:
    """GCS's 403 text: names the caller, the permission, and the kind of resource it was checked on."""
    if need.permission in ("storage.buckets.create", "storage.buckets.list"):
        resource = "Google Cloud project"
    elif need.permission.startswith("storage.buckets.") or need.permission == "storage.objects.list":
        resource = "Google Cloud Storage bucket"
    else:
        resource = "Google Cloud Storage object"
    return (
        f"{principal} does not have {need.permission} access to the {resource}. "
        f"Permission '{need.permission}' denied on resource (or it may not exist)."
    )


def _role_grants(role: str, permission: str) -> bool:
    return any(
        held == permission or (held.endswith(".*") and permission.startswith(held[:-1]))
        for held in ROLES[role]
    )


# --- request -> permissions ---------------------------------------------------------------------------------

_JSON = "/storage/v1/b"
_UPLOAD = "/upload/storage/v1/b"
_DOWNLOAD = "/download/storage/v1/b"


class Route(NamedTuple):
    """A request reduced to what decides its permissions."""

    needs: list[Need]
    # For writes that may replace an object: (bucket, object name or None if it is in the body).
    destination: tuple[str, str | None] | None = None


def route(method: str, path: str, query: dict[str, str]) -> Route:
    """Map a JSON API request to the permissions Google requires for it (raises GcsError(501) if unknown).

    Each rule cites its row of https://cloud.google.com/storage/docs/access-control/iam-json ("IAM
    permissions for JSON methods"); paths as in https://cloud.google.com/storage/docs/json_api/v1.
    """
    seg = [urllib.parse.unquote(s) for s in path.split("/")]
    # seg[0] is "" (the leading slash); object names arrive percent-encoded, so "/" inside a name is safe here.
    if path == _JSON or path == _JSON + "/":
        # iam-json: Buckets list -> storage.buckets.list; Buckets insert -> storage.buckets.create (project).
        return Route([Need("storage.buckets.list" if method == "GET" else "storage.buckets.create", None)])
    if path.startswith(_JSON + "/"):
        rest = seg[4:]
        bucket = rest[0]
        if len(rest) == 1:
            # iam-json: Buckets get -> storage.buckets.get; patch/update -> .update; delete -> .delete.
            perm = {"GET": "get", "HEAD": "get", "PATCH": "update", "PUT": "update", "DELETE": "delete"}
            if method in perm:
                return Route([Need(f"storage.buckets.{perm[method]}", bucket)])
        elif rest[1:] == ["iam"]:
            # iam-json: Buckets getIamPolicy -> storage.buckets.getIamPolicy; setIamPolicy -> .setIamPolicy.
            return Route([Need(f"storage.buckets.{'get' if method == 'GET' else 'set'}IamPolicy", bucket)])
        elif rest[1:] == ["iam", "testPermissions"]:
            return Route([])  # iam-json: Buckets testIamPermissions -> none
        elif rest[1:] == ["o"] and method == "GET":
            # iam-json: Objects list -> .objects.list, checked on the bucket (with the list's prefix).
            return Route([Need("storage.objects.list", bucket, None, query.get("prefix", ""))])
        elif rest[1:] == ["o"] and method == "POST":
            # iam-json: Objects insert -> storage.objects.create (+ storage.objects.delete to replace one).
            return Route([Need("storage.objects.create", bucket)], (bucket, query.get("name")))
        elif len(rest) == 3 and rest[1] == "o":
            if method in ("GET", "HEAD"):
                # iam-json: Objects get -> storage.objects.get (metadata and ?alt=media alike).
                return Route([Need("storage.objects.get", bucket, rest[2])])
            if method == "DELETE":
                return Route([Need("storage.objects.delete", bucket, rest[2])])  # iam-json: Objects delete
            if method in ("PATCH", "PUT"):
                return Route([Need("storage.objects.update", bucket, rest[2])])  # iam-json: Objects patch
        elif len(rest) == 4 and rest[1] == "o" and rest[3] == "compose" and method == "POST":
            # iam-json: Objects compose -> storage.objects.get (sources) + .create (+ .delete to replace).
            return Route(
                [Need("storage.objects.get", bucket), Need("storage.objects.create", bucket)],
                (bucket, rest[2]),
            )
        elif len(rest) == 8 and rest[1] == "o" and rest[3] in ("copyTo", "rewriteTo") and method == "POST":
            # iam-json: Objects copy/rewrite -> storage.objects.get on the source, .create on the destination
            # (+ .delete to replace an existing destination).
            source_bucket, dest_bucket, dest_name = bucket, rest[5], rest[7]
            return Route(
                [Need("storage.objects.get", source_bucket), Need("storage.objects.create", dest_bucket)],
                (dest_bucket, dest_name),
            )
    elif path.startswith(_UPLOAD + "/"):
        rest = seg[5:]
        if len(rest) == 2 and rest[1] == "o" and method == "POST":
            # iam-json: Objects insert (media, multipart and resumable uploads all are objects.insert) ->
            # storage.objects.create (+ storage.objects.delete to replace an existing object).
            return Route([Need("storage.objects.create", rest[0])], (rest[0], query.get("name")))
    elif path.startswith(_DOWNLOAD + "/"):
        rest = seg[5:]
        if len(rest) == 3 and rest[1] == "o" and method in ("GET", "HEAD"):
            return Route([Need("storage.objects.get", rest[0], rest[2])])  # iam-json: Objects get (media)
    raise GcsError(
        501,
        f"The GCS IAM stand-in does not know which permission {method} {path} needs; add it to "
        "tests/support/gcs_iam_proxy.py:route() with the row of the iam-json table it follows.",
        "notImplemented",
    )


def may_replace(query: dict[str, str]) -> bool | None:
    """Whether an object write can only succeed by replacing an object (None: depends on what exists).

    ``ifGenerationMatch=0`` means "only if absent", so it never replaces; any other generation can only match
    an existing object, which the write then replaces. Google: "to replace existing objects, both
    storage.objects.create and storage.objects.delete permissions are required"
    (https://cloud.google.com/storage/docs/access-control/iam-permissions, note under Object permissions; the
    same as footnote "required if overwriting" on Objects insert/compose/copy/rewrite in iam-json).
    """
    precondition = query.get("ifGenerationMatch")
    if precondition is None:
        return None
    return precondition != "0"


# --- state --------------------------------------------------------------------------------------------------


class GcsIamProxy:
    """Grants, the request log, and the address of the running proxy (``endpoint``) and its upstream."""

    def __init__(self, upstream_endpoint: str) -> None:
        self._upstream = Upstream(upstream_endpoint)
        self.upstream_endpoint = self._upstream.endpoint
        self.endpoint = ""
        self.admin_token = secrets.token_urlsafe(24)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every grant (except the admin token's), the request log and open upload sessions."""
        with self._lock:
            self._principals: dict[str, str] = {}
            self._bindings: dict[str, set[tuple[str | None, str, str | None]]] = {}
            self._upload_sessions: dict[str, str] = {}  # upload_id -> principal who opened it
            self.requests: list[RequestRecord] = []
        self.grant(self.admin_token, ADMIN_PRINCIPAL, ["roles/storage.admin"])

    def grant(
        self,
        token: str,
        principal: str,
        roles: Iterable[str],
        bucket: str | None = None,
        condition: str | None = None,
    ) -> None:
        """Let ``token`` act as ``principal`` and bind ``roles`` to it on ``bucket`` (None: the project), under
        the IAM condition ``condition`` (an expression; None: none)."""
        roles = list(roles)
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; the stand-in knows {sorted(ROLES)}")
        if condition:
            condition_terms(condition)
        with self._lock:
            known = self._principals.setdefault(token, principal)
            if known != principal:
                raise ValueError(
                    f"this token already belongs to {known!r}; use a new token for {principal!r}"
                )
            self._bindings.setdefault(principal, set()).update((bucket, role, condition) for role in roles)

    def principal_of(self, authorization: str | None, needs: list[Need]) -> str:
        """The principal behind an ``Authorization`` header, or GcsError(401) as GCS answers."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _anonymous_error(needs[0] if needs else None)
        with self._lock:
            principal = self._principals.get(token.strip())
        if principal is None:
            raise GcsError(
                401,
                "Invalid Credentials",
                "authError",
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
                },
                locationType="header",
                location="Authorization",
            )
        return principal

    def first_missing(self, principal: str, needs: Iterable[Need]) -> Need | None:
        """The first permission ``principal`` lacks, or None when every one is granted."""
        with self._lock:
            bindings = set(self._bindings.get(principal, ()))
        for need in needs:
            if not any(
                (on is None or on == need.bucket)
                and _role_grants(role, need.permission)
                and condition_applies(condition, need)
                for on, role, condition in bindings
            ):
                return need
        return None

    def record(
        self, principal: str | None, method: str, path: str, permission: str | None, allowed: bool
    ) -> None:
        with self._lock:
            self.requests.append(RequestRecord(principal, method, path, permission, allowed))

    def remember_upload(self, upload_id: str, principal: str) -> None:
        with self._lock:
            self._upload_sessions[upload_id] = principal

    def upload_owner(self, upload_id: str) -> str | None:
        """Who opened the resumable upload ``upload_id`` through this proxy (None: nobody did)."""
        with self._lock:
            return self._upload_sessions.get(upload_id)

    # --- talking to the emulator ---

    def upstream_connection(self) -> http.client.HTTPConnection:
        return self._upstream.connection()

    def upstream_has(self, path: str) -> bool:
        """Whether the emulator has the bucket or object at JSON API ``path`` (asked without any gate)."""
        conn = self.upstream_connection()
        try:
            conn.request("GET", path + "?fields=name")
            response = conn.getresponse()
            response.read()
            return response.status == 200
        finally:
            conn.close()


def _anonymous_error(need: Need | None) -> GcsError:
    # GCS answers a request without credentials with 401, reason "required", naming the "Anonymous caller".
    return GcsError(
        401,
        _denied_message("Anonymous caller", need)
        if need
        else "Anonymous caller does not have access to the Google Cloud Storage resource.",
        "required",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
        locationType="header",
        location="Authorization",
    )


def _bucket_missing() -> GcsError:
    # A bucket that does not exist is a 404 for every caller; only existing resources are IAM-protected.
    return GcsError(404, "The specified bucket does not exist.", "notFound")


# --- request bodies -----------------------------------------------------------------------------------------


def _object_name_in_body(body: bytes, content_type: str) -> str | None:
    """The object name of an upload whose name travels in the body (multipart's first part, resumable's JSON)."""
    metadata = body
    boundary = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if content_type.lower().startswith("multipart/") and boundary:
        marker = b"--" + boundary.group(1).encode()
        parts = body.split(marker)
        if len(parts) < 2:
            return None
        first = parts[1]
        _, _, metadata = first.partition(b"\r\n\r\n")
    try:
        return json.loads(metadata.strip() or b"{}").get("name")
    except (ValueError, AttributeError):
        return None


# --- HTTP layer ---------------------------------------------------------------------------------------------


def _make_handler(proxy: GcsIamProxy) -> type[ForwardingHandler]:
    class Handler(ForwardingHandler):
        """Checks each request against the grants, then forwards it to fake-gcs-server or refuses it."""

        def _handle(self) -> None:
            method = self.command
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            body = RequestBody(self.rfile, self.headers)
            principal: str | None = None
            try:
                upload_id = query.get("upload_id")
                if upload_id and url.path.startswith(_UPLOAD + "/"):
                    # The session was checked when it was opened; its URI is the credential from then on.
                    owner = proxy.upload_owner(upload_id)
                    if owner is None:
                        raise GcsError(404, f"No upload session {upload_id} was opened here.", "notFound")
                    proxy.record(owner, method, url.path, None, True)
                    self._forward(method, body, owner)
                    return
                decided = route(method, url.path, query)
                principal = proxy.principal_of(self.headers.get("Authorization"), decided.needs)
                needs = self._needs(decided, query, body)
                missing = proxy.first_missing(principal, needs)
                if missing is not None:
                    proxy.record(principal, method, url.path, missing.permission, False)
                    if missing.bucket is not None and not proxy.upstream_has(
                        f"{_JSON}/{urllib.parse.quote(missing.bucket, safe='')}"
                    ):
                        raise _bucket_missing()
                    raise GcsError(403, _denied_message(principal, missing), "forbidden")
                proxy.record(principal, method, url.path, " ".join(n.permission for n in needs) or None, True)
                self._forward(method, body, principal)
            except GcsError as exc:
                if exc.code == 401:
                    proxy.record(None, method, url.path, None, False)
                elif exc.code == 501:
                    proxy.record(principal, method, url.path, None, False)
                body.drain()
                self._reply_error(exc)

        def _needs(self, decided: Route, query: dict[str, str], body: RequestBody) -> list[Need]:
            """The permissions of this request, adding storage.objects.delete when a write replaces."""
            needs = list(decided.needs)
            if decided.destination is not None:
                replaces = may_replace(query)
                if replaces is None:
                    bucket, name = decided.destination
                    if name is None:
                        name = _object_name_in_body(body.buffered(), self.headers.get("Content-Type") or "")
                    replaces = name is not None and proxy.upstream_has(
                        f"{_JSON}/{urllib.parse.quote(bucket, safe='')}/o/{urllib.parse.quote(name, safe='')}"
                    )
                if replaces:
                    needs.append(Need("storage.objects.delete", decided.destination[0]))
            return needs

        def _forward(self, method: str, body: RequestBody, principal: str) -> None:
            # Bodies are streamed as they came, framed as they came: Content-Length is relayed, or chunked.
            conn = self.upstream_request(proxy._upstream, drop=self.connection_listed())
            try:
                if body.chunked:
                    conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                body.send_to(conn)
                self._relay(method, conn.getresponse(), principal)
            finally:
                conn.close()

        def _relay(self, method: str, response: http.client.HTTPResponse, principal: str) -> None:
            upstream, ours = proxy.upstream_endpoint, proxy.endpoint
            headers = with_location_rewritten(end_to_end(response.getheaders()), upstream, ours)
            location = next((v for k, v in headers if k.lower() == "location"), None)
            if location:
                upload_id = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query)).get(
                    "upload_id"
                )
                if upload_id:
                    proxy.remember_upload(upload_id, principal)
            no_body = method == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
            content_type = (response.getheader("Content-Type") or "").lower()
            if not no_body and "json" in content_type:
                # Small metadata documents: rewrite the emulator's address (selfLink, mediaLink) to ours.
                data = with_json_rewritten(headers, response.read(), upstream, ours)
                self.send_whole(response.status, response.reason, headers, data)
                return
            self.stream_answer(response, headers, no_body)

        def _reply_error(self, error: GcsError) -> None:
            self.reply_json(error.code, error.body(), error.headers)

    return Handler


@contextlib.contextmanager
def running_gcs_iam_proxy(upstream_endpoint: str) -> Iterator[GcsIamProxy]:
    """Serve the IAM gate for ``upstream_endpoint`` on a free 127.0.0.1 port for the ``with`` block."""
    proxy = GcsIamProxy(upstream_endpoint)
    with running_server(_make_handler(proxy), name="gcs-iam-proxy") as serving:
        proxy.endpoint = serving.endpoint
        yield proxy
