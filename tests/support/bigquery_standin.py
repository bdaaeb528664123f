"""A small stand-in for BigQuery's REST API (v2), serving exactly what the chain and TFX's BigQueryExampleGen call
before Beam's read, for tests through the real google-cloud-bigquery client.

Why a stand-in: no BigQuery emulator installs and serves these calls here. goccy/bigquery-emulator ships no
Python wheel (PyPI's `bqemulatormanager` only starts its `bigquery-emulator` binary, which cannot be fetched);
`bqemulator` 1.4.0 downloads DuckDB extensions at start (no network) and calls a DuckDB API its pinned DuckDB
lacks; `crucible-emulator` 0.1.0a2 (Python 3.11+, so not in the 3.10 test venvs) serves tables.get and query
jobs, but its tables.get has no lastModifiedTime and a new random etag on every read, and it refuses dry-run
jobs, which Beam's EXPORT read starts with (docs/your-data.md has the details).

Served (paths as google-cloud-bigquery 3.47 builds them, `BIGQUERY_EMULATOR_HOST` or client_options'
api_endpoint pointing here; the REST reference's request and response shapes):
    POST /token                                                   OAuth refresh (google.oauth2.credentials)
    GET  /bigquery/v2/projects/P/datasets/D/tables/T              tables.get
    POST /bigquery/v2/projects/P/jobs                             jobs.insert (query jobs)
    GET  /bigquery/v2/projects/P/jobs/J                           jobs.get
    GET  /bigquery/v2/projects/P/queries/J                        jobs.getQueryResults
Google's rules kept: every call but /token needs a bearer token it issued (401 UNAUTHENTICATED); errors in
Google's JSON error shape (`google.api_core.exceptions.from_http_response` maps them); a job id is letters,
digits, '_' and '-', at most 1024 characters, and unique in its project (409 duplicate); the job's
jobReference.projectId is the path's; a query that fails is a DONE job with `status.errorResult`, and its
getQueryResults answers that error; a missing table is `notFound` ("Not found: Table P:D.T"). Int64 fields
(numRows, numBytes, totalRows, times in milliseconds) travel as strings, as Google sends them.

The SQL understood is the chain's own (cicd_pipeline.bigquery_source.windowed_query), optionally inside the
executor's type query `SELECT * FROM (<query>) LIMIT 0`; anything else is an invalidQuery error, as a query this
stand-in cannot judge must not pass. Not served: dry runs, datasets.insert, extract jobs, the Storage Read API
(Beam's EXPORT or DIRECT_READ read).
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/bigquery/v2/projects"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,1024}$")
_TABLE_NAME = r"`(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])\.(?P<dataset>\w+)\.(?P<table>\w+)`"
_QUERY = re.compile(
    r"^SELECT \*(?: EXCEPT \(`(?P<except>\w+)`\))? FROM " + _TABLE_NAME + r"(?: WHERE `(?P<column>\w+)` "
    r"BETWEEN DATE '(?P<start>\d{4}-\d{2}-\d{2})' AND DATE '(?P<end>\d{4}-\d{2}-\d{2})')?$"
)
_TYPE_QUERY = re.compile(r"^SELECT \* FROM \((?P<inner>.*)\) LIMIT 0$", re.S)
LOCATION = "US"


class QueryError(Exception):
    def __init__(self, reason: str, message: str, code: int = 400):
        super().__init__(message)
        self.reason, self.message, self.code = reason, message, code


def _ms(moment: float) -> str:
    return str(int(moment * 1000))


class BigQueryStandIn:
    """The tables (schema and rows) and jobs of the stand-in; `url` once started."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str, str], dict] = {}
        self.jobs: dict[tuple[str, str], dict] = {}
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self._clock = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- the test's side: tables and their rows

    def create_table(self, name: str, schema: list[tuple[str, str]], rows: list[dict] = ()) -> None:
        project, dataset, table = name.split(".")
        now = time.time()
        self.tables[(project, dataset, table)] = {
            "schema": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in schema],
            "rows": [],
            "creationTime": _ms(now),
            "lastModifiedTime": _ms(now),
        }
        self.insert_rows(name, list(rows))

    def insert_rows(self, name: str, rows: list[dict]) -> None:
        """Appends rows (a load or DML job's effect): the table's lastModifiedTime moves, as BigQuery's does."""
        table = self.tables[tuple(name.split("."))]
        table["rows"].extend(rows)
        # Strictly later than the last change, even within one millisecond.
        table["lastModifiedTime"] = str(max(int(_ms(time.time())), int(table["lastModifiedTime"]) + 1))

    # --- resources

    def table_resource(self, project: str, dataset: str, table: str) -> dict:
        t = self.tables[(project, dataset, table)]
        size = len(json.dumps(t["rows"]).encode())
        resource = {
            "kind": "bigquery#table",
            "id": f"{project}:{dataset}.{table}",
            "selfLink": f"{self.url}{API}/{project}/datasets/{dataset}/tables/{table}",
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table},
            "schema": {"fields": t["schema"]},
            "numBytes": str(size),
            "numLongTermBytes": "0",
            "numRows": str(len(t["rows"])),
            "creationTime": t["creationTime"],
            "lastModifiedTime": t["lastModifiedTime"],
            "type": "TABLE",
            "location": LOCATION,
        }
        # A hash of the resource, as Google's etag is: the same state reads the same etag.
        resource["etag"] = hashlib.md5(json.dumps(resource, sort_keys=True).encode()).hexdigest()[:22]
        return resource

    def run_query(self, project: str, sql: str) -> tuple[list[dict], list[list]]:
        """(schema fields, rows as value lists) of `sql`, or QueryError as BigQuery words it."""
        limit_zero = _TYPE_QUERY.match(sql)
        match = _QUERY.match(limit_zero["inner"] if limit_zero else sql)
        if not match:
            raise QueryError("invalidQuery", f"Syntax error: the stand-in does not understand: {sql[:200]}")
        key = (match["project"], match["dataset"], match["table"])
        if key not in self.tables:
            raise QueryError(
                "notFound",
                f"Not found: Table {key[0]}:{key[1]}.{key[2]} was not found in location {LOCATION}",
                404,
            )
        table = self.tables[key]
        names = [f["name"] for f in table["schema"]]
        types = {f["name"]: f["type"] for f in table["schema"]}
        for column in (match["except"], match["column"]):
            if column and column not in names:
                where = "SELECT * EXCEPT list" if column == match["except"] else "query"
                raise QueryError("invalidQuery", f"Unrecognized name: {column}; it is not in the {where}")
        rows = table["rows"]
        if match["column"]:
            if types[match["column"]] != "DATE":
                raise QueryError(
                    "invalidQuery",
                    f"No matching signature for operator BETWEEN for argument types: "
                    f"{types[match['column']]}, DATE, DATE",
                )
            start, end = (datetime.date.fromisoformat(match[k]) for k in ("start", "end"))
            rows = [r for r in rows if start <= datetime.date.fromisoformat(r[match["column"]]) <= end]
        fields = [f for f in table["schema"] if f["name"] != match["except"]]
        if limit_zero:
            rows = []
        return fields, [[row.get(f["name"]) for f in fields] for row in rows]

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

    def authorized_user_file(self, path) -> str:
        """An Application Default Credentials file (authorized_user) whose token endpoint is this stand-in:
        what `bigquery.Client(project=...)` with no credentials (TFX's executor) finds through
        GOOGLE_APPLICATION_CREDENTIALS."""
        info = {
            "type": "authorized_user",
            "client_id": "standin.apps.googleusercontent.com",
            "client_secret": "not-a-secret",
            "refresh_token": "standin-refresh",
            "token_uri": f"{self.url}/token",
        }
        path.write_text(json.dumps(info))
        return str(path)

    # --- requests

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((method, url.path))
            if url.path == "/token" and method == "POST":
                form = dict(urllib.parse.parse_qsl(body.decode()))
                if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
                    return _reply(request, 400, {"error": "invalid_grant"})
                token = secrets.token_urlsafe(16)
                self.tokens.add(token)
                return _reply(
                    request, 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
                )
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
                return _error(
                    request,
                    401,
                    "Request is missing required authentication credential. Expected OAuth 2 access token.",
                    "unauthorized",
                    "UNAUTHENTICATED",
                )
            parts = url.path.removeprefix(API + "/").split("/") if url.path.startswith(API + "/") else []
            try:
                if method == "GET" and len(parts) == 5 and parts[1] == "datasets" and parts[3] == "tables":
                    return self._tables_get(request, parts[0], parts[2], parts[4])
                if method == "POST" and len(parts) == 2 and parts[1] == "jobs":
                    return self._jobs_insert(request, parts[0], json.loads(body or b"{}"))
                if method == "GET" and len(parts) == 3 and parts[1] == "jobs":
                    return _reply(request, 200, self._job(parts[0], parts[2]))
                if method == "GET" and len(parts) == 3 and parts[1] == "queries":
                    return self._get_query_results(request, parts[0], parts[2], query)
            except QueryError as err:
                return _error(request, err.code, err.message, err.reason)
            return _error(request, 404, f"Not found: URL {url.path}", "notFound")

    def _tables_get(self, request, project: str, dataset: str, table: str) -> None:
        if (project, dataset, table) not in self.tables:
            return _error(request, 404, f"Not found: Table {project}:{dataset}.{table}", "notFound")
        return _reply(request, 200, self.table_resource(project, dataset, table))

    def _jobs_insert(self, request, project: str, job: dict) -> None:
        reference = job.get("jobReference") or {}
        job_id = reference.get("jobId") or f"job_{secrets.token_hex(12)}"
        if reference.get("projectId", project) != project:
            raise QueryError("invalid", "Project id in jobReference does not match the request's project")
        if not _JOB_ID.match(job_id):
            raise QueryError(
                "invalid",
                f'Invalid job ID "{job_id}". Job IDs must be alphanumeric (plus underscores and dashes) and '
                "must be at most 1024 characters long.",
            )
        if (project, job_id) in self.jobs:
            raise QueryError("duplicate", f"Already Exists: Job {project}:{LOCATION}.{job_id}", 409)
        configuration = job.get("configuration") or {}
        if "query" not in configuration:
            raise QueryError("invalid", "The stand-in serves query jobs only (no load, copy or extract).")
        if configuration.get("dryRun"):
            raise QueryError("invalid", "The stand-in does not serve dry runs.")
        sql = configuration["query"].get("query", "")
        if configuration["query"].get("useLegacySql", True):
            # jobs.insert's default dialect is legacy SQL; the chain's backquoted names are standard SQL.
            raise QueryError(
                "invalidQuery", "Invalid table name: backquotes need standard SQL (useLegacySql)"
            )
        now = _ms(time.time())
        resource = {
            "kind": "bigquery#job",
            "id": f"{project}:{LOCATION}.{job_id}",
            "selfLink": f"{self.url}{API}/{project}/jobs/{job_id}?location={LOCATION}",
            "jobReference": {"projectId": project, "jobId": job_id, "location": LOCATION},
            "configuration": {**configuration, "jobType": "QUERY"},
            "statistics": {"creationTime": now, "startTime": now, "endTime": now},
            "status": {"state": "DONE"},
        }
        try:
            fields, rows = self.run_query(project, sql)
            resource["statistics"]["query"] = {"totalBytesProcessed": "0", "statementType": "SELECT"}
            resource["_result"] = (fields, rows)
        except QueryError as err:
            error = {"reason": err.reason, "message": err.message, "location": "query"}
            resource["status"] = {"state": "DONE", "errorResult": error, "errors": [error]}
            resource["_error"] = err
        self.jobs[(project, job_id)] = resource
        return _reply(request, 200, self._public(resource))

    def _job(self, project: str, job_id: str) -> dict:
        if (project, job_id) not in self.jobs:
            raise QueryError("notFound", f"Not found: Job {project}:{LOCATION}.{job_id}", 404)
        return self._public(self.jobs[(project, job_id)])

    @staticmethod
    def _public(job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _get_query_results(self, request, project: str, job_id: str, query: dict) -> None:
        self._job(project, job_id)
        job = self.jobs[(project, job_id)]
        if "_error" in job:
            err = job["_error"]
            raise QueryError(err.reason, err.message, err.code)
        fields, rows = job["_result"]
        start = int(query.get("startIndex") or query.get("pageToken") or 0)
        size = int(query["maxResults"]) if "maxResults" in query else len(rows)
        page = rows[start : start + size]
        body = {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": job["jobReference"],
            "schema": {"fields": fields},
            "totalRows": str(len(rows)),
            "jobComplete": True,
            "cacheHit": False,
            "totalBytesProcessed": "0",
        }
        if page:
            body["rows"] = [{"f": [{"v": _cell(v)} for v in row]} for row in page]
        if start + size < len(rows):
            body["pageToken"] = str(start + size)
        return _reply(request, 200, body)


def _cell(value):
    """A cell as the REST API sends it: every scalar as a string, NULL as null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _reply(request: BaseHTTPRequestHandler, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json; charset=UTF-8")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}


def _error(request, code: int, message: str, reason: str, status: str = "") -> None:
    """Google's JSON error shape (the REST reference's ErrorProto inside `errors`)."""
    error = {"message": message, "domain": "global", "reason": reason}
    _reply(
        request,
        code,
        {"error": {"code": code, "message": message, "errors": [error], "status": status or _STATUS[code]}},
    )
