"""A small stand-in for BigQuery's REST API (v2): tables.get, the one call the chain makes (the data digest of
cicd.source=bigquery, cicd_release.run.bigquery_data), for tests through the real google-cloud-bigquery client.

Why a stand-in: no BigQuery emulator installs and serves this call here (docs/your-data.md says how each one
tried failed: goccy/bigquery-emulator's binary cannot be fetched, bqemulator 1.4.0 downloads DuckDB extensions
at start, crucible-emulator 0.1.0a2 needs Python 3.11 and its tables.get has no lastModifiedTime).

Served (paths as google-cloud-bigquery 3.47 builds them, client_options' api_endpoint pointing here):
    POST /token                                            OAuth JWT-bearer grant of a service account key
    GET  /bigquery/v2/projects/P/datasets/D/tables/T       tables.get
Google's rules kept (REST reference, tables#Table, and what google-cloud-bigquery and Google send):
- every call but /token needs a bearer token this stand-in issued: else 401 UNAUTHENTICATED, reason
  `required` ("Login Required.") without a token, `authError` with an unknown one;
- a dataset id is letters, digits and '_' up to 1024 characters, a table id up to 1024 UTF-8 bytes of letters,
  marks, digits, '_', '-' and spaces: else 400 `invalid` ("Invalid dataset ID ...");
- a missing dataset is 404 `notFound` "Not found: Dataset P:D", a missing table "Not found: Table P:D.T";
- errors in Google's JSON error shape (`google.api_core.exceptions.from_http_response` maps them);
- int64 fields (numRows, numBytes, times in milliseconds since the epoch) travel as strings; lastModifiedTime
  moves with every change to the rows, numRows and numBytes with their count and size; rows streamed and not yet
  flushed show as `streamingBuffer` (estimatedRows, estimatedBytes, oldestEntryTime).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import unicodedata
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/bigquery/v2/projects/"
LOCATION = "US"


def _ms(moment: float) -> str:
    return str(int(moment * 1000))


def _dataset_id_ok(name: str) -> bool:
    return 0 < len(name) <= 1024 and all(c.isascii() and (c.isalnum() or c == "_") for c in name)


def _table_id_ok(name: str) -> bool:
    """Google's rule for table names: up to 1024 UTF-8 bytes of Unicode categories L, M, N, Pc, Pd and Zs."""
    allowed = ("L", "M", "N", "Pc", "Pd", "Zs")
    size = len(name.encode())
    return 0 < size <= 1024 and all(unicodedata.category(c).startswith(allowed) for c in name)


class BigQueryStandIn:
    """Datasets and tables (their rows and state); `url` once started."""

    def __init__(self) -> None:
        self.datasets: set[tuple[str, str]] = set()
        self.tables: dict[tuple[str, str, str], dict] = {}
        self.tokens: set[str] = set()
        self.keys: dict[str, tuple[str, str]] = {}  # key id: (service account, public key PEM)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- the test's side: what a load, a streaming insert and its flush do to a table

    def create_table(self, name: str, rows: list[dict] = ()) -> None:
        project, dataset, table = name.split(".")
        self.datasets.add((project, dataset))
        now = _ms(time.time())
        self.tables[(project, dataset, table)] = {
            "rows": [],
            "streamed": [],
            "creationTime": now,
            "lastModifiedTime": now,
        }
        if rows:
            self.load_rows(name, list(rows))

    def _table(self, name: str) -> dict:
        return self.tables[tuple(name.split("."))]

    @staticmethod
    def _touch(table: dict) -> None:
        # Strictly later than the last change, even within one millisecond.
        table["lastModifiedTime"] = str(max(int(_ms(time.time())), int(table["lastModifiedTime"]) + 1))

    def load_rows(self, name: str, rows: list[dict]) -> None:
        """A load job's (or DML's) effect: the rows are in the table and lastModifiedTime moves."""
        table = self._table(name)
        table["rows"].extend(rows)
        self._touch(table)

    def stream_rows(self, name: str, rows: list[dict]) -> None:
        """tabledata.insertAll's effect: the rows wait in the streaming buffer, outside numRows and numBytes."""
        table = self._table(name)
        if not table["streamed"]:
            table["oldestEntryTime"] = _ms(time.time())
        table["streamed"].extend(rows)

    # --- the resource

    def table_resource(self, project: str, dataset: str, table: str) -> dict:
        t = self.tables[(project, dataset, table)]
        resource = {
            "kind": "bigquery#table",
            "id": f"{project}:{dataset}.{table}",
            "selfLink": f"{self.url}{API}{project}/datasets/{dataset}/tables/{table}",
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table},
            "numBytes": str(len(json.dumps(t["rows"]).encode()) if t["rows"] else 0),
            "numRows": str(len(t["rows"])),
            "creationTime": t["creationTime"],
            "lastModifiedTime": t["lastModifiedTime"],
            "type": "TABLE",
            "location": LOCATION,
        }
        if t["streamed"]:
            resource["streamingBuffer"] = {
                "estimatedRows": str(len(t["streamed"])),
                "estimatedBytes": str(len(json.dumps(t["streamed"]).encode())),
                "oldestEntryTime": t["oldestEntryTime"],
            }
        # A hash of the resource, as Google's etag is.
        resource["etag"] = hashlib.md5(json.dumps(resource, sort_keys=True).encode()).hexdigest()[:22]
        return resource

    # --- the server

    def start(self) -> BigQueryStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_POST(self) -> None:
                standin._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def service_account_key(
        self, path, email: str = "vertex-pipelines@my-project-123.iam.gserviceaccount.com"
    ) -> str:
        """A service account key file whose token endpoint is this stand-in: what a client built with no
        credentials finds through GOOGLE_APPLICATION_CREDENTIALS. (google-auth 2.63 ignores the token_uri of an
        authorized_user file, "always overrides", so a person's credentials cannot be pointed here.)"""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        self.keys[key_id] = (
            email,
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode(),
        )
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        info = {
            "type": "service_account",
            "project_id": email.split("@")[1].split(".")[0],
            "private_key_id": key_id,
            "private_key": private,
            "client_email": email,
            "client_id": "1",
            "token_uri": f"{self.url}/token",
        }
        path.write_text(json.dumps(info))
        return str(path)

    def _grant(self, assertion: str) -> str | None:
        """The access token for a JWT-bearer grant signed by a key this stand-in made, else None."""
        from google.auth import jwt

        try:
            header = json.loads(base64.urlsafe_b64decode(assertion.split(".")[0] + "==="))
            email, public = self.keys[header["kid"]]
            claims = jwt.decode(assertion, certs={header["kid"]: public}, verify=True, audience=None)
        except Exception:  # any malformed or unverifiable assertion is refused the same way
            return None
        if claims.get("iss") != email:
            return None
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        return token

    # --- requests

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((method, url.path))
            if url.path == "/token" and method == "POST":
                form = dict(urllib.parse.parse_qsl(body.decode()))
                token = None
                if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                    token = self._grant(form.get("assertion", ""))
                if token is None:
                    return _reply(
                        request, 400, {"error": "invalid_grant", "error_description": "Invalid JWT"}
                    )
                return _reply(
                    request, 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
                )
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return _unauthenticated(request, "Login Required.", "required")
            if auth.removeprefix("Bearer ") not in self.tokens:
                return _unauthenticated(request, "Invalid Credentials", "authError")
            parts = [urllib.parse.unquote(p) for p in url.path.removeprefix(API).split("/")]
            if (
                method == "GET"
                and url.path.startswith(API)
                and len(parts) == 5
                and parts[1] == "datasets"
                and parts[3] == "tables"
            ):
                return self._tables_get(request, parts[0], parts[2], parts[4])
            return _error(request, 404, f"Not found: URL {url.path}", "notFound")

    def _tables_get(self, request, project: str, dataset: str, table: str) -> None:
        if not _dataset_id_ok(dataset):
            return _error(
                request,
                400,
                f'Invalid dataset ID "{dataset}". Dataset IDs must be alphanumeric (plus underscores) and must be '
                "at most 1024 characters long.",
                "invalid",
            )
        if not _table_id_ok(table):
            return _error(
                request,
                400,
                f'Invalid table ID "{table}". Table IDs must be alphanumeric (plus underscores, dashes and '
                "spaces) and must be at most 1024 bytes long.",
                "invalid",
            )
        if (project, dataset) not in self.datasets:
            return _error(request, 404, f"Not found: Dataset {project}:{dataset}", "notFound")
        if (project, dataset, table) not in self.tables:
            return _error(request, 404, f"Not found: Table {project}:{dataset}.{table}", "notFound")
        return _reply(request, 200, self.table_resource(project, dataset, table))


def _reply(request: BaseHTTPRequestHandler, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json; charset=UTF-8")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND"}


def _error(request, code: int, message: str, reason: str) -> None:
    """Google's JSON error shape (the REST reference's ErrorProto inside `errors`)."""
    error = {"message": message, "domain": "global", "reason": reason}
    _reply(
        request,
        code,
        {"error": {"code": code, "message": message, "errors": [error], "status": _STATUS[code]}},
    )


def _unauthenticated(request, said: str, reason: str) -> None:
    """A 401 as Google words it: the top message for the request, the error item for the header."""
    message = (
        "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential."
        if reason == "required"
        else "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential."
    )
    error = {
        "message": said,
        "domain": "global",
        "reason": reason,
        "location": "Authorization",
        "locationType": "header",
    }
    _reply(
        request,
        401,
        {"error": {"code": 401, "message": message, "errors": [error], "status": "UNAUTHENTICATED"}},
    )
