"""The Vertex AI pipeline schedules part of the Vertex stand-in: the REST v1 subset ``PipelineJobSchedule`` uses.

Served through the stand-in's HTTP server (``tests/support/vertex_standin.py``), so the real
``google-cloud-aiplatform`` client drives it over REST. Paths as in
``aiplatform_v1/services/schedule_service/transports/rest_base.py``:
    POST   /v1/projects/P/locations/L/schedules                    create
    GET    /v1/projects/P/locations/L/schedules[?filter=...]       list
    GET    /v1/projects/P/locations/L/schedules/ID                 get
    PATCH  /v1/projects/P/locations/L/schedules/ID?updateMask=...  update
    DELETE /v1/projects/P/locations/L/schedules/ID                 delete: a long-running operation
    POST   /v1/projects/P/locations/L/schedules/ID:pause           pause
    POST   /v1/projects/P/locations/L/schedules/ID:resume          resume (body: catchUp)
    GET    /ui/projects/P/locations/L/operations/OID               the delete's operation (or /v1/...)

What Vertex refuses, this refuses, each rule from the field documentation of ``aiplatform_v1.types.Schedule``
and ``UpdateScheduleRequest``: a display name (required, at most 128 characters); a cron (the
``time_specification``, five fields, optionally after ``TZ=`` or ``CRON_TZ=`` and a valid IANA zone);
``max_concurrent_run_count`` ("Required"); a CreatePipelineJobRequest whose ``parent`` (required,
``projects/{project}/locations/{location}``) is the schedule's own, and whose PipelineJob Vertex would create
(the stand-in's pipeline-job rules); an update needs an ``updateMask`` naming updatable fields, cannot change
the request type nor unset a non-empty field, and applies to an ACTIVE or PAUSED schedule only; pause needs
ACTIVE, resume needs PAUSED (FAILED_PRECONDITION otherwise). Output-only fields in a request are ignored.

``fire(name)`` is the test's clock: it starts the schedule's run now, as the service does when the cron is
due, unless the schedule is not ACTIVE or ``max_concurrent_active_run_count`` runs of it are still going (a
run due then is skipped unless ``allow_queueing``). ``max_concurrent_run_count`` bounds only the requests the
schedule has in flight ("not the execution of the operations/jobs created by the requests"); a
CreatePipelineJob request ends in a moment, so it never holds a run back here.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import re
import threading
import zoneinfo
from typing import TYPE_CHECKING, Any

from tests.support.vertex_standin import ApiError, utc_timestamp, validate_display_name, validate_pipeline_job

if TYPE_CHECKING:
    from tests.support.vertex_standin import VertexStandIn

_PARENT = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_COLLECTION_RE = re.compile(_PARENT + r"/schedules$")
_SCHEDULE_RE = re.compile(_PARENT + r"/schedules/(?P<id>[^/:]+)(?::(?P<verb>pause|resume))?$")
_OPERATION_RE = re.compile(r"^/(?:v1|ui)/(?P<name>projects/[^/]+/locations/[^/]+/operations/[^/:]+)$")
_DISPLAY_NAME_FILTER_RE = re.compile(r'^\s*display_name\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*$')
_TYPE = "type.googleapis.com/google.cloud.aiplatform.v1."

ACTIVE, PAUSED, COMPLETED = "ACTIVE", "PAUSED", "COMPLETED"
# Fields an update may name (snake_case as in the proto, camelCase as JSON clients send them).
_UPDATABLE = {
    "display_name": "displayName",
    "cron": "cron",
    "start_time": "startTime",
    "end_time": "endTime",
    "max_run_count": "maxRunCount",
    "max_concurrent_run_count": "maxConcurrentRunCount",
    "max_concurrent_active_run_count": "maxConcurrentActiveRunCount",
    "allow_queueing": "allowQueueing",
    "create_pipeline_job_request": "createPipelineJobRequest",
}
# "The output_only fields will be ignored if specified."
_OUTPUT_ONLY = {
    "name": "name",
    "state": "state",
    "create_time": "createTime",
    "update_time": "updateTime",
    "next_run_time": "nextRunTime",
    "last_pause_time": "lastPauseTime",
    "last_resume_time": "lastResumeTime",
    "started_run_count": "startedRunCount",
    "catch_up": "catchUp",
    "last_scheduled_run_response": "lastScheduledRunResponse",
}
_TERMINAL = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}

# ------------------------------------------------------------------------------------------------- cron

_FIELDS = (
    (0, 59, ()),
    (0, 23, ()),
    (1, 31, ()),
    (1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    (0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)


def parse_cron(cron: Any) -> tuple[zoneinfo.ZoneInfo, list[set[int]], bool, bool]:
    """(zone, allowed values per field, day-of-month restricted, day-of-week restricted); ApiError(400) if bad."""
    if not isinstance(cron, str) or not cron.strip():
        raise ApiError(400, "Schedule.cron is required (the schedule's time_specification).")
    zone, body = zoneinfo.ZoneInfo("UTC"), cron.strip()
    if match := re.match(r"^(?:CRON_TZ|TZ)=(\S+)\s+(.*)$", body):
        try:
            zone = zoneinfo.ZoneInfo(match[1])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ApiError(400, f"Invalid time zone {match[1]!r} in Schedule.cron {cron!r}.") from None
        body = match[2]
    fields = body.split()
    if len(fields) != 5:
        raise ApiError(400, f"Invalid Schedule.cron {cron!r}: expected 5 fields, got {len(fields)}.")
    sets = []
    for text, (low, high, names) in zip(fields, _FIELDS, strict=True):
        values: set[int] = set()
        for item in text.split(","):
            base, _, step_text = item.partition("/")
            step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
            if step_text and step is None:
                raise ApiError(400, f"Invalid Schedule.cron {cron!r}: bad step in {item!r}.")
            if base == "*":
                first, last = low, high
            else:
                start, _, end = base.partition("-")
                first, last = _cron_value(start, names, low), _cron_value(end or start, names, low)
                if first is None or last is None or not low <= first <= last <= high:
                    raise ApiError(400, f"Invalid Schedule.cron {cron!r}: {item!r} is out of {low}-{high}.")
            values.update(range(first, last + 1, step or 1))
        sets.append(values)
    if 7 in sets[4]:
        sets[4].add(0)  # 7 and 0 are both Sunday
    return zone, sets, fields[2] != "*", fields[4] != "*"


def _cron_value(text: str, names: tuple[str, ...], low: int) -> int | None:
    if text.upper() in names:
        return names.index(text.upper()) + low if low == 1 else names.index(text.upper())
    return int(text) if text.isdigit() else None


def next_run(cron: str, after: datetime.datetime) -> datetime.datetime:
    """The first minute after ``after`` the cron matches (in its zone), as UTC."""
    zone, (minutes, hours, days, months, weekdays), dom_restricted, dow_restricted = parse_cron(cron)
    local = after.astimezone(zone).replace(second=0, microsecond=0)
    for offset in range(0, 5 * 366):
        day = (local + datetime.timedelta(days=offset)).date()
        in_dom, in_dow = day.day in days, (day.isoweekday() % 7) in weekdays
        # Cron's rule: with both day fields restricted, a day matching either one counts.
        if day.month not in months or not (
            (in_dom or in_dow) if dom_restricted and dow_restricted else (in_dom and in_dow)
        ):
            continue
        for hour in sorted(hours):
            for minute in sorted(minutes):
                moment = datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                if moment > local:
                    return moment.astimezone(datetime.timezone.utc)
    raise ApiError(400, f"Schedule.cron {cron!r} never matches.")


def _timestamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------- schedules


class Schedules:
    """Schedules, each a Schedule resource as the REST API shows it; the runs they started live in the owner."""

    def __init__(self, owner: VertexStandIn) -> None:
        self._owner = owner
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.schedules: dict[str, dict[str, Any]] = {}
            self.operations: dict[str, dict[str, Any]] = {}
            self.runs: dict[str, list[str]] = {}  # schedule name -> pipeline job names it started
            self.skipped: dict[str, int] = {}
            self.update_masks: list[list[str]] = []
            self._ids = itertools.count(7_000_000_000_000_000_001)

    def route(self, method: str, path: str, query: dict[str, list[str]], body: dict) -> dict | None:
        """Answer a schedules request, or return None when ``path`` is not one of its paths."""
        if match := _COLLECTION_RE.match(path):
            parent = f"projects/{match['project']}/locations/{match['location']}"
            if method == "POST":
                return self.create(parent, body)
            if method == "GET":
                return self.list(parent, (query.get("filter") or [""])[0])
            raise ApiError(405, f"{method} {path} is not supported by the stand-in.")
        if match := _SCHEDULE_RE.match(path):
            name = f"projects/{match['project']}/locations/{match['location']}/schedules/{match['id']}"
            verb = match["verb"]
            if method == "POST" and verb == "pause":
                return self.pause(name)
            if method == "POST" and verb == "resume":
                return self.resume(name, body)
            if verb is None and method == "GET":
                return self.get(name)
            if verb is None and method == "PATCH":
                return self.update(name, (query.get("updateMask") or [""])[0], body)
            if verb is None and method == "DELETE":
                return self.delete(name)
            raise ApiError(405, f"{method} {path} is not supported by the stand-in.")
        if (match := _OPERATION_RE.match(path)) and match["name"] in self.operations:
            if method != "GET":
                raise ApiError(405, f"{method} {path} is not supported by the stand-in.")
            return self.get_operation(match["name"])
        return None

    # --- handlers; each takes the lock itself ---

    def create(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        schedule = self._validated(parent, {k: v for k, v in body.items() if k not in _OUTPUT_ONLY.values()})
        with self._lock:
            name = f"{parent}/schedules/{next(self._ids)}"
            now = utc_timestamp()
            schedule.update(
                name=name,
                state=ACTIVE,
                createTime=now,
                updateTime=now,
                startedRunCount="0",
                catchUp=False,
                nextRunTime=_timestamp(
                    next_run(schedule["cron"], datetime.datetime.now(datetime.timezone.utc))
                ),
            )
            self.schedules[name] = schedule
            self.runs[name] = []
            return copy.deepcopy(schedule)

    def get(self, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._schedule(name))

    def list(self, parent: str, filter_: str) -> dict[str, Any]:
        display_name = None
        if filter_:
            match = _DISPLAY_NAME_FILTER_RE.match(filter_)
            if not match:
                raise ApiError(
                    400, f'The stand-in understands only filter=display_name="..."; got {filter_!r}.'
                )
            display_name = re.sub(r"\\(.)", r"\1", match["value"])
        with self._lock:
            found = [
                copy.deepcopy(s)
                for n, s in self.schedules.items()
                if n.startswith(f"{parent}/schedules/") and display_name in (None, s["displayName"])
            ]
        return {"schedules": found}

    def update(self, name: str, update_mask: str, body: dict[str, Any]) -> dict[str, Any]:
        """UpdateSchedule: only the fields the mask names; output-only ones are ignored."""
        if not update_mask:
            raise ApiError(400, "UpdateScheduleRequest.update_mask is required.")
        paths = [p.strip() for p in update_mask.split(",") if p.strip()]
        json_names = []
        for path in paths:
            if path in _OUTPUT_ONLY or path in _OUTPUT_ONLY.values():
                continue
            if path in _UPDATABLE:
                json_names.append(_UPDATABLE[path])
            elif path in _UPDATABLE.values():
                json_names.append(path)
            else:
                raise ApiError(400, f"Invalid update mask path {path!r} for Schedule.")
        if "createNotebookExecutionJobRequest" in body:
            raise ApiError(400, "The scheduled request type cannot be changed.")
        with self._lock:
            current = self._schedule(name)
            if current["state"] not in (ACTIVE, PAUSED):
                raise ApiError(
                    400,
                    f"Schedule {name} is {current['state']}: only ACTIVE or PAUSED ones can be updated.",
                    status="FAILED_PRECONDITION",
                )
            candidate = copy.deepcopy(current)
            for field in json_names:
                value = body.get(field)
                if value in (None, "", {}, []) and current.get(field) not in (None, "", {}, []):
                    raise ApiError(400, f"Schedule.{field} is set and cannot be unset by an update.")
                if value is not None:
                    candidate[field] = copy.deepcopy(value)
            parent = name.rsplit("/schedules/", 1)[0]
            output = {k: candidate[k] for k in _OUTPUT_ONLY.values() if k in candidate}
            updated = {
                **self._validated(parent, {k: v for k, v in candidate.items() if k not in output}),
                **output,
            }
            updated["updateTime"] = utc_timestamp()
            if "cron" in json_names:
                updated["nextRunTime"] = _timestamp(
                    next_run(updated["cron"], datetime.datetime.now(datetime.timezone.utc))
                )
            self.schedules[name] = updated
            self.update_masks.append(paths)
            return copy.deepcopy(updated)

    def pause(self, name: str) -> dict[str, Any]:
        with self._lock:
            schedule = self._schedule(name)
            if schedule["state"] != ACTIVE:
                raise ApiError(
                    400, f"Schedule {name} is {schedule['state']}, not ACTIVE.", status="FAILED_PRECONDITION"
                )
            schedule.update(state=PAUSED, lastPauseTime=utc_timestamp(), updateTime=utc_timestamp())
            return {}

    def resume(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        catch_up = body.get("catchUp", False)
        if not isinstance(catch_up, bool):
            raise ApiError(400, f"ResumeScheduleRequest.catch_up must be a boolean; got {catch_up!r}.")
        with self._lock:
            schedule = self._schedule(name)
            if schedule["state"] != PAUSED:
                raise ApiError(
                    400, f"Schedule {name} is {schedule['state']}, not PAUSED.", status="FAILED_PRECONDITION"
                )
            now = datetime.datetime.now(datetime.timezone.utc)
            schedule.update(
                state=ACTIVE,
                catchUp=catch_up,
                lastResumeTime=_timestamp(now),
                updateTime=_timestamp(now),
                nextRunTime=_timestamp(next_run(schedule["cron"], now)),
            )
            return {}

    def delete(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._schedule(name)
            del self.schedules[name]
            operation_name = f"{name.rsplit('/schedules/', 1)[0]}/operations/{next(self._ids)}"
            stamp = utc_timestamp()
            self.operations[operation_name] = {
                "name": operation_name,
                "metadata": {
                    "@type": _TYPE + "DeleteOperationMetadata",
                    "genericMetadata": {"createTime": stamp, "updateTime": stamp},
                },
                "done": False,
            }
            return copy.deepcopy(self.operations[operation_name])

    def get_operation(self, name: str) -> dict[str, Any]:
        """The first poll completes the operation (the service takes a moment)."""
        with self._lock:
            operation = self.operations[name]
            if not operation["done"]:
                operation.update(done=True, response={"@type": "type.googleapis.com/google.protobuf.Empty"})
            return copy.deepcopy(operation)

    # --- the test's clock ---

    def fire(self, name: str) -> dict[str, Any] | None:
        """Start the run the schedule has due now; None when it is not ACTIVE or one of its runs is going."""
        with self._lock:
            schedule = self._schedule(name)
            if schedule["state"] != ACTIVE:
                return None
            going = [j for j in self.runs[name] if self._owner.jobs[j]["state"] not in _TERMINAL]
            active_limit = int(schedule.get("maxConcurrentActiveRunCount") or 0)  # 0: unset, no limit
            if active_limit and len(going) >= active_limit and not schedule.get("allowQueueing"):
                self.skipped[name] = self.skipped.get(name, 0) + 1
                schedule["lastScheduledRunResponse"] = {
                    "scheduledRunTime": utc_timestamp(),
                    "runResponse": "Skipped: max_concurrent_active_run_count runs are still going.",
                }
                return None
            request = copy.deepcopy(schedule["createPipelineJobRequest"])
            count = int(schedule["startedRunCount"]) + 1
        project, location = request["parent"].split("/")[1], request["parent"].split("/")[3]
        job = self._owner.create(
            project,
            location,
            f"sched-{name.rsplit('/', 1)[-1]}-{count}",
            {**request["pipelineJob"], "scheduleName": name},
        )
        with self._lock:
            self.runs[name].append(job["name"])
            schedule["startedRunCount"] = str(count)
            schedule["lastScheduledRunResponse"] = {
                "scheduledRunTime": utc_timestamp(),
                "runResponse": job["name"],
            }
        return job

    # --- rules ---

    def _validated(self, parent: str, schedule: dict[str, Any]) -> dict[str, Any]:
        if not schedule.get("displayName"):
            raise ApiError(400, "Schedule.display_name is required.")
        validate_display_name(schedule["displayName"], "Schedule.displayName")
        parse_cron(schedule.get("cron"))
        if "createNotebookExecutionJobRequest" in schedule:
            raise ApiError(400, "The stand-in serves pipeline schedules only (createPipelineJobRequest).")
        request = schedule.get("createPipelineJobRequest")
        if not isinstance(request, dict):
            raise ApiError(400, "Schedule.create_pipeline_job_request is required (the schedule's request).")
        if request.get("parent") != parent:
            raise ApiError(
                400,
                f"CreatePipelineJobRequest.parent must be the schedule's {parent!r} "
                f"(projects/{{project}}/locations/{{location}}); got {request.get('parent')!r}.",
            )
        job = request.get("pipelineJob")
        if not isinstance(job, dict):
            raise ApiError(400, "CreatePipelineJobRequest.pipeline_job is required.")
        validate_pipeline_job(job)
        self._owner.check_act_as(job.get("serviceAccount"))
        count = schedule.get("maxConcurrentRunCount")
        if count is None or int(count) < 1:
            raise ApiError(400, "Schedule.max_concurrent_run_count is required and must be at least 1.")
        if "maxRunCount" in schedule and int(schedule["maxRunCount"]) < 1:
            raise ApiError(400, "Schedule.max_run_count must be positive.")
        if (
            schedule.get("startTime")
            and schedule.get("endTime")
            and schedule["startTime"] >= schedule["endTime"]
        ):
            raise ApiError(400, "Schedule.end_time must be after start_time.")
        return copy.deepcopy(schedule)

    def _schedule(self, name: str) -> dict[str, Any]:
        try:
            return self.schedules[name]
        except KeyError:
            raise ApiError(404, f"Schedule {name} not found.") from None
