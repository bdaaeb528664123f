"""The Vertex AI Training part of the Vertex stand-in: the REST v1 ``customJobs`` subset a Trainer job uses.

Served through the stand-in's HTTP server (``tests/support/vertex_standin.py``), so the real gapic
``JobServiceClient`` drives it over REST. Paths as in ``aiplatform_v1/services/job_service/transports/rest_base.py``:
    POST /v1/projects/P/locations/L/customJobs             create
    GET  /v1/projects/P/locations/L/customJobs/ID          get
    POST /v1/projects/P/locations/L/customJobs/ID:cancel   cancel

The body is parsed into ``aiplatform_v1.CustomJob`` strictly (an unknown field is refused, as Google refuses
"Invalid JSON payload received. Unknown name"); then what Vertex refuses, this refuses, each rule from the field
documentation of ``CustomJob``, ``CustomJobSpec``, ``WorkerPoolSpec``, ``MachineSpec`` and ``ContainerSpec``:
``display_name`` "Required" (at most 128 characters); ``job_spec`` "Required"; ``worker_pool_specs`` "Required",
"all worker pools except the first one are optional and can be skipped by providing an empty value"; each pool
given needs ``machine_spec.machine_type`` and one task, here ``container_spec`` with its ``image_uri``
("Required"); an accelerator count needs an accelerator type and a type a count of at least one; the first pool
is the primary replica, exactly one (Vertex's distributed-training guide; aiplatform's
``utils/worker_spec_utils.py`` puts further replicas in the second pool); ``replica_count`` is at least one;
labels follow the Cloud label rules; ``job_spec.service_account`` is one the caller may act as (the same
answer as a pipeline job's: INVALID_ARGUMENT "You do not have permission to act as service_account").

A created job runs: the first pool's container ``command`` + ``args`` start as a local process in this
environment (no container; ``python`` is this interpreter), with the container's ``env`` added. The job is
JOB_STATE_QUEUED when created, JOB_STATE_RUNNING while the process runs, and JOB_STATE_SUCCEEDED or
JOB_STATE_FAILED (with ``error``) by its exit code; cancel ends the process and the job is JOB_STATE_CANCELLED.
Only the primary replica runs: further replicas would need Vertex's CLUSTER_SPEC and a strategy that reads it.
"""

from __future__ import annotations

import copy
import itertools
import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from google.cloud.aiplatform_v1.types import custom_job as custom_job_types
from google.protobuf import json_format

from tests.support.vertex_standin import (
    ApiError,
    act_as_denied,
    is_service_account_email,
    utc_timestamp,
    validate_display_name,
    validate_labels,
)

_PARENT = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_COLLECTION_RE = re.compile(_PARENT + r"/customJobs$")
_JOB_RE = re.compile(_PARENT + r"/customJobs/(?P<id>[^/:]+)(?::(?P<verb>cancel))?$")

QUEUED, RUNNING, SUCCEEDED = "JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"
FAILED, CANCELLING, CANCELLED = "JOB_STATE_FAILED", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})


def parse_custom_job(body: dict[str, Any]) -> Any:
    """The body as an ``aiplatform_v1.CustomJob`` protobuf; ApiError(400) for a field the API does not know."""
    message = custom_job_types.CustomJob.pb(custom_job_types.CustomJob())
    try:
        json_format.ParseDict(body, message)
    except json_format.ParseError as exc:
        raise ApiError(400, f"Invalid JSON payload received. {exc}") from None
    return message


def validate_custom_job(job: Any) -> None:
    """Raise ApiError(400) unless the CustomJob protobuf ``job`` is one Vertex would accept."""
    if not job.display_name:
        raise ApiError(400, "CustomJob.display_name is required.")
    validate_display_name(job.display_name, "CustomJob.display_name")
    validate_labels(dict(job.labels), "CustomJob.labels")
    if not job.HasField("job_spec"):
        raise ApiError(400, "CustomJob.job_spec is required.")
    service_account = job.job_spec.service_account
    if service_account and not is_service_account_email(service_account):
        raise act_as_denied(service_account, "(stand-in: not a service-account e-mail)")
    pools = job.job_spec.worker_pool_specs
    if not pools:
        raise ApiError(400, "CustomJob.job_spec.worker_pool_specs is required.")
    empty = type(pools[0])()
    if pools[0] == empty:
        raise ApiError(
            400, "CustomJob.job_spec.worker_pool_specs[0] (the primary replica) must not be empty."
        )
    for index, pool in enumerate(pools):
        if pool == empty:  # "can be skipped by providing an empty value" (any pool but the first)
            continue
        where = f"CustomJob.job_spec.worker_pool_specs[{index}]"
        machine = pool.machine_spec
        if not machine.machine_type:
            raise ApiError(400, f"{where}.machine_spec.machine_type is required.")
        if machine.accelerator_count and not machine.accelerator_type:
            raise ApiError(
                400, f"{where}.machine_spec.accelerator_type is required when accelerator_count is set."
            )
        if machine.accelerator_type and machine.accelerator_count < 1:
            raise ApiError(
                400, f"{where}.machine_spec.accelerator_count must be at least 1 with an accelerator_type."
            )
        if pool.replica_count < 1:
            raise ApiError(400, f"{where}.replica_count must be at least 1; got {pool.replica_count}.")
        if index == 0 and pool.replica_count != 1:
            raise ApiError(
                400,
                f"{where}.replica_count must be 1: the first worker pool is the primary replica; put further "
                "replicas in worker_pool_specs[1].",
            )
        task = pool.WhichOneof("task")
        if task is None:
            raise ApiError(400, f"{where} needs a task: container_spec or python_package_spec.")
        if task == "container_spec" and not pool.container_spec.image_uri:
            raise ApiError(400, f"{where}.container_spec.image_uri is required.")
        if task != "container_spec":
            raise ApiError(400, f"{where}.{task}: the stand-in runs container_spec tasks only.")


class CustomJobs:
    """The custom jobs of the stand-in, each with the local process of its primary replica."""

    def __init__(self, standin: Any) -> None:
        self._standin = standin  # its service_accounts: those the caller may act as (None: any well-formed)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """End any process still running and forget every job."""
        with self._lock:
            for process in getattr(self, "processes", {}).values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
            self.jobs: dict[str, dict[str, Any]] = {}
            self.processes: dict[str, subprocess.Popen] = {}
            # Where each job's process writes its stdout and stderr (tests read them when a job fails).
            self.logs: dict[str, Path] = {}
            self.log_dir: Path | None = None
            self._ids = itertools.count(4_000_000_000_000_000_001)

    def route(self, method: str, path: str, query: dict[str, list[str]], body: dict) -> dict | None:
        """Answer a customJobs request, or return None when ``path`` is not one of its paths."""
        if match := _COLLECTION_RE.match(path):
            if method != "POST":
                raise ApiError(405, f"{method} {path} is not supported by the stand-in.")
            return self.create(f"projects/{match['project']}/locations/{match['location']}", body)
        if match := _JOB_RE.match(path):
            name = f"projects/{match['project']}/locations/{match['location']}/customJobs/{match['id']}"
            if method == "GET" and not match["verb"]:
                return self.get(name)
            if method == "POST" and match["verb"]:
                return self.cancel(name)
            raise ApiError(405, f"{method} {path} is not supported by the stand-in.")
        return None

    def create(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        """Validate the CustomJob, start its primary replica's command, answer the job in JOB_STATE_QUEUED."""
        validate_custom_job(parse_custom_job(body))
        self._standin.check_act_as((body.get("jobSpec") or {}).get("serviceAccount"))
        container = body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
        command = [*container.get("command", []), *container.get("args", [])]
        if not command:
            raise ApiError(
                400, "The stand-in needs containerSpec.command: it has no image entrypoint to run."
            )
        if command[0] == "python":
            command[0] = sys.executable  # the image's python; here, the interpreter running the tests
        env = {**os.environ, **{item["name"]: item.get("value", "") for item in container.get("env", [])}}
        with self._lock:
            name = f"{parent}/customJobs/{next(self._ids)}"
            now = utc_timestamp()
            # Output-only fields a client sends are ignored, as the service ignores them.
            job = {k: v for k, v in copy.deepcopy(body).items() if k not in ("state", "error", "name")}
            job.update(name=name, state=QUEUED, createTime=now, updateTime=now)
            log_dir = self.log_dir or Path(tempfile.gettempdir())
            log = log_dir / f"custom-job-{name.rsplit('/', 1)[-1]}.log"
            with log.open("w") as out:
                self.processes[name] = subprocess.Popen(
                    command, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            self.logs[name] = log
            self.jobs[name] = job
            return copy.deepcopy(job)

    def get(self, name: str) -> dict[str, Any]:
        """The job, its state following its process: running, or ended with an exit code."""
        with self._lock:
            job = self._job(name)
            if job["state"] in TERMINAL_STATES:
                return copy.deepcopy(job)
            code, now = self.processes[name].poll(), utc_timestamp()
            if job["state"] == CANCELLING:
                if code is not None:
                    job.update(state=CANCELLED, endTime=now, updateTime=now)
                    job["error"] = {"code": 1, "message": "CANCELED"}
            elif code is None:
                if job["state"] == QUEUED:
                    job.update(state=RUNNING, startTime=now, updateTime=now)
            elif code == 0:
                job.update(state=SUCCEEDED, endTime=now, updateTime=now)
                job.setdefault("startTime", now)
            else:
                job.update(state=FAILED, endTime=now, updateTime=now)
                job.setdefault("startTime", now)
                # google.rpc.Status, as Vertex fills CustomJob.error when the replica's process fails.
                job["error"] = {
                    "code": 13,
                    "message": f"The replica workerpool0-0 exited with a non-zero status of {code}.",
                }
            return copy.deepcopy(job)

    def cancel(self, name: str) -> dict[str, Any]:
        """Ask the job to stop: JOB_STATE_CANCELLING now, its process terminated, CANCELLED once it has ended."""
        with self._lock:
            job = self._job(name)
            if job["state"] in TERMINAL_STATES:
                raise ApiError(
                    400,
                    f"CustomJob {name} is already in terminal state {job['state']}.",
                    "FAILED_PRECONDITION",
                )
            job.update(state=CANCELLING, updateTime=utc_timestamp())
            self.processes[name].terminate()
            return {}

    def _job(self, name: str) -> dict[str, Any]:
        try:
            return self.jobs[name]
        except KeyError:
            raise ApiError(404, f"CustomJob {name} not found.") from None
