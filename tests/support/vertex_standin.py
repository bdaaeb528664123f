"""A small, faithful stand-in for Vertex AI's REST API (v1 ``pipelineJobs`` and Model Registry), for tests.

The real ``google-cloud-aiplatform`` client talks to it over REST
(``aiplatform.init(api_endpoint="http://127.0.0.1:PORT", api_transport="rest")``), so the test exercises the
client's own request building, JSON encoding and error mapping; nothing in the client library is mocked.

Subset served (paths as in ``aiplatform_v1/services/pipeline_service/transports/rest_base.py``):
    POST /v1/projects/P/locations/L/pipelineJobs?pipelineJobId=ID   create
    GET  /v1/projects/P/locations/L/pipelineJobs                     list (no filtering, no paging)
    GET  /v1/projects/P/locations/L/pipelineJobs/ID                  get
    POST /v1/projects/P/locations/L/pipelineJobs/ID:cancel           cancel
The Model Registry subset (``models`` list/get/upload and the upload's operation) lives in
``tests/support/vertex_model_registry.py``, the pipeline schedules (``schedules`` create/list/get/update/
pause/resume/delete) in ``tests/support/vertex_schedules.py``; the same server serves both, as
``standin.model_registry`` and ``standin.schedules``; Vertex AI Training's ``customJobs`` (create/get/cancel,
each job's primary replica run as a local process) lives in ``tests/support/vertex_custom_jobs.py``, as
``standin.custom_jobs``.
Errors use Google's JSON error shape, which ``google.api_core.exceptions.from_http_response`` maps to the
matching exception class (400 -> BadRequest, 404 -> NotFound, 409 -> Conflict).

What Vertex refuses, the stand-in refuses, each rule with where it comes from: the job ID, labels, display
name, service account and pipeline root of a create (``validate_pipeline_job`` and ``VertexStandIn.create``),
and the Model Registry's upload rules (``tests/support/vertex_model_registry.py``). The client library checks
some of these itself and lets others through; the stand-in does not rely on either.

Each GET of a job moves it one step along PENDING -> RUNNING -> outcome, so a test that polls sees the same
sequence the service shows; ``next_outcome`` picks the outcome of the next created job.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import re
import threading
import unicodedata
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.vertex_custom_jobs import CustomJobs
    from tests.support.vertex_model_registry import ModelRegistry

PENDING = "PIPELINE_STATE_PENDING"
RUNNING = "PIPELINE_STATE_RUNNING"
SUCCEEDED = "PIPELINE_STATE_SUCCEEDED"
FAILED = "PIPELINE_STATE_FAILED"
CANCELLING = "PIPELINE_STATE_CANCELLING"
CANCELLED = "PIPELINE_STATE_CANCELLED"
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
OUTCOMES = {
    "SUCCEEDED": SUCCEEDED,
    "FAILED": FAILED,
    "CANCELLED": CANCELLED,
    "RUNNING": RUNNING,
}  # RUNNING: never ends

_PARENT = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/pipelineJobs"
_COLLECTION_RE = re.compile(_PARENT + r"$")
_JOB_RE = re.compile(_PARENT + r"/(?P<job_id>[^/:]+)(?P<verb>:cancel)?$")
# Vertex's rule for pipeline job IDs: CreatePipelineJobRequest.pipeline_job_id ("less than 128 characters, valid
# characters are /[a-z][0-9]-/"), as aiplatform's pipeline_constants._VALID_NAME_PATTERN spells it. That
# constant is compiled with re.IGNORECASE, so the client lets an upper-case ID through; the service does not.
_JOB_ID_RE = re.compile(r"^[a-z][-a-z0-9]{0,127}$")
# PipelineJob.display_name and Model.display_name: "up to 128 characters long ... any UTF-8 characters".
DISPLAY_NAME_MAX = 128
# Cloud labels (https://cloud.google.com/resource-manager/docs/labels-overview#requirements, which Vertex's
# PipelineJob.labels and Model.labels point to): at most 64 per resource; keys 1-63 characters starting with a
# lowercase letter or an international character; values 0-63 characters; keys and values only lowercase
# letters, digits, '_' and '-', international characters allowed. As regular expressions (Bigtable's docs of the
# same rules): keys [\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}, values [\p{Ll}\p{Lo}\p{N}_-]{0,63}.
LABELS_MAX, LABEL_KEY_MAX, LABEL_VALUE_MAX = 64, 63, 63
# Service-account e-mails (IAM): a user-managed account is ACCOUNT_ID@PROJECT_ID.iam.gserviceaccount.com, the
# account ID 6-30 characters matching [a-z]([-a-z0-9]*[a-z0-9]) (CreateServiceAccountRequest.account_id), the
# project ID 6-30 characters, a letter first and no trailing hyphen. Vertex runs a pipeline without one as the
# Compute Engine default account, PROJECT_NUMBER-compute@developer.gserviceaccount.com, which may be given too.
_SERVICE_ACCOUNT_RES = (
    re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]@[a-z][-a-z0-9]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com$"),
    re.compile(r"^[0-9]+-compute@developer\.gserviceaccount\.com$"),
)
_GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
}


class ApiError(Exception):
    """An error answered to the client in Google's JSON error shape (``status`` when not the code's usual one,
    e.g. FAILED_PRECONDITION, which Google answers as HTTP 400 too)."""

    def __init__(self, code: int, message: str, status: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _GRPC_STATUS[code]

    def body(self) -> dict[str, Any]:
        """Return the ``{"error": {...}}`` document the Google APIs answer with."""
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def utc_timestamp() -> str:
    """RFC 3339 UTC timestamp, the encoding of google.protobuf.Timestamp in JSON."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _label_letter(char: str) -> bool:
    """A lowercase letter or an "international character": Unicode Ll or Lo (letters without case, e.g. CJK)."""
    return unicodedata.category(char) in ("Ll", "Lo")


def _label_char(char: str) -> bool:
    return _label_letter(char) or unicodedata.category(char).startswith("N") or char in "_-"


def label_problem(key: str, value: str) -> str | None:
    """What is wrong with one label under the Cloud label rules (see LABELS_MAX), or None when it is valid."""
    if not 1 <= len(key) <= LABEL_KEY_MAX:
        return f"key {key!r} must be 1-{LABEL_KEY_MAX} characters long"
    if not _label_letter(key[0]):
        return f"key {key!r} must start with a lowercase letter or an international character"
    if not all(_label_char(c) for c in key):
        return f"key {key!r} may contain only lowercase letters, digits, '_' and '-'"
    if not isinstance(value, str) or len(value) > LABEL_VALUE_MAX:
        return f"value {value!r} of key {key!r} must be a string of at most {LABEL_VALUE_MAX} characters"
    if not all(_label_char(c) for c in value):
        return f"value {value!r} of key {key!r} may contain only lowercase letters, digits, '_' and '-'"
    return None


def validate_labels(labels: Any, field: str) -> None:
    """Raise ApiError(400) naming every label of ``field`` (e.g. "PipelineJob.labels") that Vertex refuses."""
    if not labels:
        return
    if len(labels) > LABELS_MAX:
        raise ApiError(400, f"{field} has {len(labels)} entries; at most {LABELS_MAX} are allowed.")
    problems = [p for key, value in labels.items() if (p := label_problem(key, value))]
    if problems:
        raise ApiError(400, f"Invalid {field}: {'; '.join(problems)}.")


def validate_display_name(display_name: Any, field: str) -> None:
    """Raise ApiError(400) if ``display_name`` is longer than Vertex allows (it counts characters, not bytes)."""
    if display_name and len(display_name) > DISPLAY_NAME_MAX:
        raise ApiError(
            400, f"{field} must be at most {DISPLAY_NAME_MAX} characters; got {len(display_name)}."
        )


def is_service_account_email(value: str) -> bool:
    """True for a user-managed service account's e-mail or a Compute Engine default service account's."""
    return any(pattern.match(value) for pattern in _SERVICE_ACCOUNT_RES)


def act_as_denied(service_account: str, why: str = "") -> ApiError:
    """The error Vertex answers a create with when the caller may not act as ``service_account``.

    Vertex answers INVALID_ARGUMENT (not PERMISSION_DENIED) with this text, whether the account does not exist
    or the caller lacks iam.serviceAccounts.actAs on it, as users report it:
    https://github.com/googleapis/python-aiplatform/issues/1073 (2022), https://github.com/dzlab/deeplearning.ai/issues/5
    (2024). ``why`` adds the stand-in's own reason, after Vertex's text.
    """
    message = (
        f"You do not have permission to act as service_account: {service_account}. (or it may not exist)."
    )
    return ApiError(400, f"{message} {why}" if why else message)


def validate_pipeline_job(body: dict[str, Any]) -> None:
    """Raise ApiError(400) unless ``body`` is a PipelineJob Vertex would accept: spec, labels, names, root."""
    spec = body.get("pipelineSpec")
    if not isinstance(spec, dict):
        raise ApiError(400, "PipelineJob.pipelineSpec is required and must be a PipelineSpec object.")
    missing = []
    if not (spec.get("pipelineInfo") or {}).get("name"):
        missing.append("pipelineInfo.name")
    if not (((spec.get("root") or {}).get("dag") or {}).get("tasks")):
        missing.append("root.dag.tasks")
    if not spec.get("deploymentSpec"):
        missing.append("deploymentSpec")
    if not spec.get("schemaVersion"):
        missing.append("schemaVersion")
    if missing:
        raise ApiError(400, f"Invalid PipelineSpec: missing or empty field(s): {', '.join(missing)}.")
    declared = set((spec["root"].get("inputDefinitions") or {}).get("parameters") or {})
    given = set((body.get("runtimeConfig") or {}).get("parameterValues") or {})
    unknown = sorted(given - declared)
    if unknown:
        raise ApiError(
            400,
            f"runtimeConfig.parameterValues names undeclared pipeline parameter(s) {unknown}; "
            f"declared root input parameters: {sorted(declared)}.",
        )
    root = (body.get("runtimeConfig") or {}).get("gcsOutputDirectory")
    if not root:
        raise ApiError(400, "runtimeConfig.gcsOutputDirectory (the pipeline root) is required.")
    # RuntimeConfig.gcs_output_directory: "Required. A path in a Cloud Storage bucket".
    if not root.startswith("gs://") or len(root) <= len("gs://"):
        raise ApiError(
            400, f"runtimeConfig.gcsOutputDirectory must be a Cloud Storage path (gs://...); got {root!r}."
        )
    validate_display_name(body.get("displayName"), "PipelineJob.displayName")
    validate_labels(body.get("labels"), "PipelineJob.labels")
    service_account = body.get("serviceAccount")
    if service_account and not is_service_account_email(service_account):
        raise act_as_denied(
            service_account,
            "(stand-in: not a service-account e-mail; expected NAME@PROJECT_ID.iam.gserviceaccount.com or "
            "PROJECT_NUMBER-compute@developer.gserviceaccount.com)",
        )


class VertexStandIn:
    """State of the stand-in: jobs, the bodies clients created them with, and the knobs tests turn."""

    def __init__(self) -> None:
        # Imported here, not at the top: these modules build on this module's ApiError.
        from tests.support.vertex_custom_jobs import CustomJobs
        from tests.support.vertex_model_registry import ModelRegistry
        from tests.support.vertex_schedules import Schedules

        self._lock = threading.Lock()
        self.endpoint = ""
        self.model_registry: ModelRegistry = ModelRegistry()
        self.schedules: Schedules = Schedules(self)
        self.custom_jobs: CustomJobs = CustomJobs(self)
        self.reset()

    def reset(self) -> None:
        """Forget all jobs (custom jobs' processes ended), models, schedules and requests; back to the default outcome (SUCCEEDED) and any
        service account."""
        self.model_registry.reset()
        self.schedules.reset()
        self.custom_jobs.reset()
        with self._lock:
            self.jobs: dict[str, dict[str, Any]] = {}
            self.created_bodies: list[dict[str, Any]] = []
            self.requests: list[tuple[str, str]] = []
            self.next_outcome = "SUCCEEDED"
            self._outcomes: dict[str, str] = {}
            # The service accounts that exist and that the caller may act as; None: any well-formed one.
            self.service_accounts: set[str] | None = None
            # What the tasks' executors "wrote": {task name: {output name: [artifact metadata, ...]}}. A job
            # that ends reports them in jobDetail.taskDetails, as Vertex keeps each output artifact's
            # metadata (TFX's v2 entrypoint turns custom properties into that metadata).
            self.task_outputs: dict[str, dict[str, list[dict[str, Any]]]] = {}
            # The task a FAILED job fails at (the others after it are never triggered).
            self.failing_task = "Trainer"
            self._generated_ids = itertools.count(1_000_000_000_000_000_001)

    def job_body(self, job_id: str) -> dict[str, Any]:
        """Return the request body a job was created with (raises KeyError naming known IDs)."""
        for body in self.created_bodies:
            if body["_jobId"] == job_id:
                return body
        raise KeyError(
            f"no job {job_id!r} was created; created: {[b['_jobId'] for b in self.created_bodies]}"
        )

    # --- handlers, called by the HTTP layer under no lock; each takes the lock itself ---

    def create(self, project: str, location: str, job_id: str | None, body: dict[str, Any]) -> dict:
        """Validate and store a new job in PENDING, as ``CreatePipelineJob`` does."""
        if job_id is not None and not _JOB_ID_RE.match(job_id):
            raise ApiError(400, f"pipelineJobId {job_id!r} must match {_JOB_ID_RE.pattern}.")
        validate_pipeline_job(body)
        self.check_act_as(body.get("serviceAccount"))
        with self._lock:
            # "If not provided, an ID will be automatically generated" (the stand-in's are numbers).
            job_id = job_id or str(next(self._generated_ids))
            name = f"projects/{project}/locations/{location}/pipelineJobs/{job_id}"
            if self.next_outcome not in OUTCOMES:
                raise ApiError(
                    400, f"stand-in next_outcome {self.next_outcome!r} is not one of {list(OUTCOMES)}"
                )
            if name in self.jobs:
                raise ApiError(409, f"PipelineJob {name} already exists.")
            self.created_bodies.append({**copy.deepcopy(body), "_jobId": job_id})
            now = utc_timestamp()
            job = {
                **copy.deepcopy(body),
                "name": name,
                "state": PENDING,
                "createTime": now,
                "updateTime": now,
            }
            self.jobs[name] = job
            self._outcomes[name] = OUTCOMES[self.next_outcome]
            return copy.deepcopy(job)

    def check_act_as(self, service_account: str | None) -> None:
        """The caller may act as the run's service account (when the test lists the ones it may)."""
        with self._lock:
            if service_account and self.service_accounts is not None:
                if service_account not in self.service_accounts:
                    raise act_as_denied(service_account)

    def get(self, name: str) -> dict[str, Any]:
        """Return the job, first moving it one step towards its outcome (each poll is one tick)."""
        with self._lock:
            job = self._job(name)
            state, now = job["state"], utc_timestamp()
            if state == PENDING:
                job.update(state=RUNNING, startTime=now, updateTime=now)
            elif state == RUNNING and self._outcomes[name] != RUNNING:  # a run that never ends stays RUNNING
                self._finish(job, self._outcomes[name], now)
                job["jobDetail"] = self._job_detail(job)
            elif state == CANCELLING:
                self._finish(job, CANCELLED, now)
                job["jobDetail"] = self._job_detail(job)
            return copy.deepcopy(job)

    def cancel(self, name: str) -> dict[str, Any]:
        """Ask a job to stop: it goes to CANCELLING now and CANCELLED on the next poll, as on Vertex."""
        with self._lock:
            job = self._job(name)
            if job["state"] in TERMINAL_STATES:
                raise ApiError(400, f"PipelineJob {name} is already in terminal state {job['state']}.")
            job.update(state=CANCELLING, updateTime=utc_timestamp())
            return {}

    def list(self, project: str, location: str) -> dict[str, Any]:
        """Return every job under the parent (the real API filters and pages; tests do not need it)."""
        prefix = f"projects/{project}/locations/{location}/pipelineJobs/"
        with self._lock:
            return {"pipelineJobs": [copy.deepcopy(j) for n, j in self.jobs.items() if n.startswith(prefix)]}

    def _job(self, name: str) -> dict[str, Any]:
        try:
            return self.jobs[name]
        except KeyError:
            raise ApiError(404, f"PipelineJob {name} not found.") from None

    def _job_detail(self, job: dict[str, Any]) -> dict[str, Any]:
        """PipelineJobDetail: the root DAG task, then one PipelineTaskDetail per task of the spec, in order.

        Task states follow the job's: a SUCCEEDED job's tasks all succeeded; a FAILED one's `failing_task`
        failed and the tasks after it were not triggered; a CANCELLED one's were cancelled.
        """
        tasks = list((job.get("pipelineSpec") or {}).get("root", {}).get("dag", {}).get("tasks", {}))
        start, end = job.get("startTime", job["createTime"]), job["endTime"]
        root_state = {SUCCEEDED: "SUCCEEDED", FAILED: "FAILED", CANCELLED: "CANCELLED"}[job["state"]]
        details = [
            {
                "taskId": "1",
                "taskName": job.get("pipelineSpec", {}).get("pipelineInfo", {}).get("name", "root"),
                "state": root_state,
                "startTime": start,
                "endTime": end,
                "createTime": start,
            }
        ]
        failed_at = tasks.index(self.failing_task) if self.failing_task in tasks else 0
        for number, task in enumerate(tasks, start=2):
            position = number - 2
            if job["state"] == SUCCEEDED:
                state = "SUCCEEDED"
            elif job["state"] == FAILED:
                state = (
                    "SUCCEEDED"
                    if position < failed_at
                    else "FAILED"
                    if position == failed_at
                    else "NOT_TRIGGERED"
                )
            else:
                state = "CANCELLED"
            detail = {
                "taskId": str(number),
                "parentTaskId": "1",
                "taskName": task,
                "state": state,
                "createTime": start,
                "startTime": start,
                "endTime": end,
            }
            if state == "SUCCEEDED" and task in self.task_outputs:
                detail["outputs"] = {
                    output: {
                        "artifacts": [{"uri": f"gs://stand-in/{task}/{output}", "metadata": m} for m in metas]
                    }
                    for output, metas in self.task_outputs[task].items()
                }
            details.append(detail)
        return {"taskDetails": details}

    @staticmethod
    def _finish(job: dict[str, Any], state: str, now: str) -> None:
        job.update(state=state, endTime=now, updateTime=now)
        if state == FAILED:
            # google.rpc.Status, as Vertex fills PipelineJob.error for a failed run.
            job["error"] = {"code": 9, "message": "The DAG failed because some tasks failed (stand-in)."}
        elif state == CANCELLED:
            job["error"] = {"code": 1, "message": "The pipeline was cancelled (stand-in)."}


def _make_handler(standin: VertexStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """Routes the pipelineJobs and Model Registry calls; everything else is a 404 in Google's shape."""

        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # keep pytest output clean; tests read standin.requests instead

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PATCH(self) -> None:
            self._dispatch("PATCH")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            standin.requests.append((method, url.path))
            try:
                body = json.loads(raw) if raw else {}
                self._reply(200, self._route(method, url.path, query, body))
            except json.JSONDecodeError as exc:
                self._reply(400, ApiError(400, f"Invalid JSON payload received: {exc}").body())
            except ApiError as exc:
                self._reply(exc.code, exc.body())

        def _route(self, method: str, path: str, query: dict, body: dict) -> dict:
            # Model versions are addressed as models/ID@VERSION; clients may percent-encode the '@'.
            answer = standin.model_registry.route(method, urllib.parse.unquote(path), query, body)
            if answer is None:
                answer = standin.schedules.route(method, path, query, body)
            if answer is None:
                answer = standin.custom_jobs.route(method, path, query, body)
            if answer is not None:
                return answer
            if match := _COLLECTION_RE.match(path):
                project, location = match["project"], match["location"]
                if method == "POST":
                    return standin.create(project, location, (query.get("pipelineJobId") or [None])[0], body)
                return standin.list(project, location)
            if match := _JOB_RE.match(path):
                name = path[len("/v1/") :].removesuffix(":cancel")
                if method == "POST" and match["verb"]:
                    return standin.cancel(name)
                if method == "GET" and not match["verb"]:
                    return standin.get(name)
                raise ApiError(405, f"{method} {path} is not supported by the stand-in.")
            raise ApiError(
                404,
                f"The stand-in serves only v1 pipelineJobs, customJobs, models and schedules; got {method} {path}.",
            )

        def _reply(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def running_vertex_standin() -> Iterator[VertexStandIn]:
    """Serve a fresh stand-in on a free 127.0.0.1 port for the ``with`` block; ``.endpoint`` is its URL."""
    standin = VertexStandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(standin))
    server.daemon_threads = True
    standin.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="vertex-standin", daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
