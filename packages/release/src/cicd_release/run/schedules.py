"""Scheduled retraining with Vertex AI pipeline schedules, bound to the released spec.

Vertex AI Pipelines has its own schedules (``aiplatform.PipelineJobSchedule``, REST
``projects/*/locations/*/schedules``); the Cloud Scheduler + Pub/Sub + Cloud Function set-up around kfp's
``AIPlatformClient`` went with kfp 2. A schedule stores one fixed CreatePipelineJobRequest and starts it on
its cron, so what a scheduled run trains is decided when that request is written:

- at ``schedule.create``: the released spec and modules, the data (the snapshot LATEST points at, a given
  snapshot, or a window of the last N dated snapshots) and the hyperparameters;
- again by ``sync_schedules`` after each release (the chain's ``schedule.move`` step) and each data upload
  (``data.upload``): every schedule of this pipeline whose request differs from what it should run now is
  rewritten (PATCH with ``updateMask=create_pipeline_job_request``): the released spec and modules and, for
  a schedule that follows LATEST or a window, the newest snapshot or window. Scheduled runs therefore train
  the current code on the newest data, and carry the same labels as any run (commit, versions, data digest).

Why the data is bound when the request is written and not read from LATEST inside the run: a parameter of a
fixed request cannot change by itself, and reading the pointer in the pipeline would need a step whose output
feeds CsvExampleGen's ``input_base``. TFX's way for that (a dynamic exec property) compiles, in TFX 1.16's
KubeflowV2 step builder, to a ``taskOutputParameter`` whose producer task is named ``<id>_task`` while the DAG
names the task ``<id>`` (its own golden file shows both), which could not be tried here against Vertex; and
the run's labels and the model's ``data_sha`` could then not name the data, since they are fixed in the same
request. The cost of binding at upload time: a LATEST moved by anything but ``data.upload`` is seen by
schedules at the next upload or release (``schedule.list`` shows what each one trains on).

One run at a time and no storms: ``max_concurrent_active_run_count=1`` with queueing off (a run due while one
is going is skipped, not queued), and resuming never catches up (``catch_up`` false). The active count is the
one that bounds running pipeline jobs: ``max_concurrent_run_count`` (required, also 1) bounds only the
schedule's CreatePipelineJob requests in flight, which end in seconds (aiplatform_v1 ``types/schedule.py``).

This pipeline's schedules are the ones whose request carries the label ``pipeline=<pipeline name>``; the
labels ``data_follow`` (``latest``, ``window-N`` or ``pinned``) and ``hparams`` (``release`` or ``own``)
say what a move keeps and what it renews.
"""

from __future__ import annotations

import dataclasses
import re
import zoneinfo
from collections.abc import Callable
from typing import Any, TypeVar

from cicd_components.untrusted import clip
from cicd_release.core.errors import (
    InputError,
    MissingRelease,
    MissingSchedule,
)
from cicd_release.core.faults import Calls, OnFault, reporting
from cicd_release.core.settings import Settings
from cicd_release.plan.release_state import released
from cicd_release.publish.snapshots import resolve
from cicd_release.run.launch import RunRequest, credentials
from cicd_release.steps import RUN_SETTINGS

T = TypeVar("T")

REQUIRED = RUN_SETTINGS  # the step table's: where a run of the released spec starts, and as whom
FOLLOW_LATEST, PINNED = "latest", "pinned"


# ------------------------------------------------------------------------------------------------- cron

_CRON_FIELDS = (  # name, lowest, highest, names
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_TZ = re.compile(r"^(CRON_TZ|TZ)=(\S+)\s+(.*)$")


def check_cron(cron: str) -> str:
    """The cron as Vertex takes it (five fields, optionally after ``TZ=<IANA zone>`` or ``CRON_TZ=``), or an
    InputError (exit 2) naming the field that is wrong. Without a zone, Vertex reads the cron in UTC."""
    text = " ".join(str(cron or "").split())
    body = text
    cron = clip(text)  # as it is shown in a message
    if match := _TZ.match(text):
        zone, body = match[2], match[3]
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InputError(
                f"--cron {cron!r}: {zone!r} is not an IANA time zone (e.g. TZ=Europe/Amsterdam)."
            ) from None
    fields = body.split(" ") if body else []
    if len(fields) != 5:
        raise InputError(
            f"--cron {cron!r} has {len(fields)} field(s); give five: minute hour day-of-month month "
            'day-of-week, e.g. "0 3 * * 1" (Mondays 03:00 UTC), optionally after TZ=<zone>.'
        )
    for value, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in value.split(","):
            if not _cron_item_ok(item, low, high, names):
                raise InputError(
                    f"--cron {cron!r}: the {name} field {value!r} is not a cron field ({low}-{high}, *, a-b, "
                    f"*/n, lists with ','{', or names like ' + names[0] if names else ''})."
                )
    return text


def cron_note(cron: str) -> str | None:
    """A line for a cron that fires more than once an hour (a checked one, `check_cron`): a training run takes
    far longer than a minute, runs go one at a time, and a run due while one is going is skipped."""
    body = _TZ.match(cron)[3] if _TZ.match(cron) else cron
    minutes = set()
    for item in body.split(" ")[0].split(","):
        base, _, step = item.partition("/")
        start, _, end = base.partition("-")
        first = 0 if base == "*" else int(start)
        last = 59 if base == "*" or (step and not end) else int(end or start)
        minutes.update(range(first, last + 1, int(step or 1)))
    if len(minutes) <= 1:
        return None
    return (
        f"note: {cron!r} fires {len(minutes)} times an hour; runs go one at a time and a run due while one is "
        'going is skipped, so most of these will not run (one minute, e.g. "0 * * * *", is hourly).'
    )


def _cron_item_ok(item: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    base, _, step = item.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        return False
    if base == "*":
        return True
    start, _, end = base.partition("-")

    def value(text: str) -> int | None:
        if text.upper() in names:
            return names.index(text.upper()) + (1 if low == 1 else 0)
        return int(text) if text.isdigit() else None

    first, last = value(start), value(end) if end else value(start)
    return first is not None and last is not None and low <= first <= last <= high


# --------------------------------------------------------------------------------------------- schedules


@dataclasses.dataclass(frozen=True)
class ScheduleInfo:
    """One schedule as Vertex holds it, with what its request runs."""

    name: str
    display_name: str
    state: str
    cron: str
    next_run: str
    labels: dict[str, str]
    parameters: dict[str, str]
    max_concurrent_runs: int

    @property
    def id(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def line(self) -> str:
        lab = self.labels
        return (
            f"{self.id}  {self.display_name!r}  {self.state}  cron {self.cron!r}  next {self.next_run or '-'}\n"
            f"    runs: commit {lab.get('commit', '?')}, spec {lab.get('spec_sha', '?')}, data "
            f"{self.parameters.get('data_root', '?')} (follows {lab.get('data_follow', PINNED)}), "
            f"hyperparameters from the {'schedule' if lab.get('hparams') == 'own' else 'release'}"
        )


# A schedule passes every one of its runs the parameters it was made with: a BigQuery run's query and the digest
# of the table's state would be those of the day it was made, and its labels would name data its runs never read.
BIGQUERY_NOT_SCHEDULED = (
    "cicd.source=bigquery has no Vertex schedules: each run's query and data digest are made when it starts, "
    "and a schedule repeats the ones it was made with; start `invoke pipeline.retrain --window N` from a cron "
    "of your own, or set cicd.source=csv"
)


def create_schedule(
    settings: Settings,
    client,
    *,
    cron: str,
    display_name: str | None = None,
    data: str | None = None,
    window: int | None = None,
    hyperparameters: str | None = None,
) -> list[str]:
    """A schedule of the released spec on ``cron``: one run at a time, no catch-up."""
    if settings.on_bigquery:  # first: no other setting would make a schedule right
        raise InputError(BIGQUERY_NOT_SCHEDULED)
    settings.require(REQUIRED)
    cron = check_cron(cron)
    display_name = display_name or f"{settings.pipeline_name} {cron}"
    if any(s.display_name == display_name for s in list_schedules(settings)):
        raise InputError(
            f"A schedule {display_name!r} of {settings.pipeline_name} exists already: give another --name, "
            "or delete that one (`invoke schedule.delete`)."
        )
    code = released(settings, client)
    deadline = float(settings.request_deadline_seconds)
    run_data = resolve(client, settings.resolved_data_root, data, window=window, deadline=deadline)
    follow = _follow(data, window)
    request = code.request(run_data, hyperparameters, "schedule")
    binding = _binding(settings, request, follow, "own" if hyperparameters else "release")
    aiplatform = _aiplatform(settings)
    job = _pipeline_job(settings, request, binding)
    schedule = aiplatform.PipelineJobSchedule(
        pipeline_job=job,
        display_name=display_name,
        credentials=credentials(settings),
        project=settings.project,
        location=settings.region,
    )
    _call(
        settings,
        "create",
        f"schedule {display_name!r}",
        lambda: schedule.create(
            cron=cron,
            max_concurrent_run_count=1,
            max_concurrent_active_run_count=1,
            allow_queueing=False,
            service_account=settings.service_account,
            create_request_timeout=deadline,
        ),
    )
    info = _info(schedule.gca_resource)
    note = cron_note(cron)
    return [f"created {info.name}", info.line(), f"code: {code.source}", *([note] if note else [])]


def list_schedules(settings: Settings) -> list[ScheduleInfo]:
    """This pipeline's schedules (the label ``pipeline=<name>`` on their request), oldest first."""
    settings.require(("project", "region"))
    aiplatform = _aiplatform(settings)
    found = _call(
        settings,
        "list",
        f"schedules in {settings.project}/{settings.region}",
        lambda: aiplatform.PipelineJobSchedule.list(
            project=settings.project, location=settings.region, credentials=credentials(settings)
        ),
    )
    infos = [_info(s.gca_resource) for s in found]
    return [i for i in infos if i.labels.get("pipeline") == _label_value(settings.pipeline_name)]


def pause_schedule(settings: Settings, which: str) -> list[str]:
    info = _find(settings, which)
    api = _api(settings, info.name)
    _call(settings, "pause", info.name, lambda: api.pause_schedule(name=info.name))
    return [f"paused {info.name}: no runs start until `invoke schedule.resume {info.id}`"]


def resume_schedule(settings: Settings, which: str) -> list[str]:
    info = _find(settings, which)
    api = _api(settings, info.name)
    # catch_up false, said out loud: the runs missed while paused are not started in a burst.
    _call(
        settings,
        "resume",
        info.name,
        lambda: api.resume_schedule(request={"name": info.name, "catch_up": False}),
    )
    return [f"resumed {info.name}: the next run is the next one due; missed runs are not caught up"]


def delete_schedule(settings: Settings, which: str) -> list[str]:
    info = _find(settings, which)
    aiplatform = _aiplatform(settings)
    schedule = _call(
        settings,
        "look-up",
        info.name,
        lambda: aiplatform.PipelineJobSchedule.get(info.name, credentials=credentials(settings)),
    )
    _call(settings, "delete", info.name, schedule.delete)
    return [f"deleted {info.name} ({info.display_name!r}); runs it started are kept"]


def sync_schedules(settings: Settings, client) -> list[str]:
    """Rewrites the request of each schedule of this pipeline that does not run the release and data it
    should now (see the module docstring); says what moved. No schedule, nothing to do."""
    if settings.on_bigquery:
        # Their runs read the CSV snapshots they were made with, through the spec they were made with.
        return [f"schedules: left as they are ({BIGQUERY_NOT_SCHEDULED})"]
    settings.require(REQUIRED)
    schedules = list_schedules(settings)
    if not schedules:
        return [f"schedules: none for {settings.pipeline_name}"]
    code = released(settings, client)
    deadline = float(settings.request_deadline_seconds)
    lines = []
    for info in schedules:
        follow = info.labels.get("data_follow", PINNED)
        current = info.parameters.get("data_root", "")
        dataset = current.rsplit("/", 1)[0] if re.search(r"/[0-9a-f]{64}$", current) else current
        if follow == FOLLOW_LATEST:
            run_data = resolve(client, dataset, deadline=deadline)
        elif follow.startswith("window-"):
            run_data = resolve(client, dataset, window=int(follow.removeprefix("window-")), deadline=deadline)
        else:
            run_data = resolve(client, dataset, current, deadline=deadline)
        own = info.labels.get("hparams") == "own"
        request = code.request(run_data, info.parameters.get("hyperparameters") if own else None, "schedule")
        binding = _binding(settings, request, follow, "own" if own else "release")
        wanted_labels = _vertex_labels({**request.labels(), **binding})
        # Ours only: labels the service may add to what it stores do not make a schedule stale.
        same_labels = all(info.labels.get(key) == value for key, value in wanted_labels.items())
        if same_labels and request.parameters() == info.parameters:
            lines.append(
                f"schedule {info.id} ({info.display_name!r}): already runs release {code.commit[:12]}"
            )
            continue
        _move(settings, info, request, binding)
        lines.append(
            f"schedule {info.id} ({info.display_name!r}) moved: commit {info.labels.get('commit', '?')} -> "
            f"{request.commit[:12]}, spec {info.labels.get('spec_sha', '?')} -> {binding['spec_sha']}, data "
            f"{info.labels.get('data_sha', '?')} -> {run_data.digest[:16]}"
        )
    return lines


# ------------------------------------------------------------------------------------------------ helpers


def _follow(data: str | None, window: int | None) -> str:
    if window is not None:
        return f"window-{window}"
    if data in (None, "latest") or (data or "").rstrip("/").endswith("/LATEST"):
        return FOLLOW_LATEST
    return PINNED


def _binding(settings: Settings, request: RunRequest, follow: str, hparams: str) -> dict[str, str]:
    """The labels that tie a schedule to this pipeline and say what a move renews."""
    stem = request.spec.rsplit("/", 1)[-1].removesuffix(".json")
    return {
        "pipeline": settings.pipeline_name,
        "data_follow": follow,
        "hparams": hparams,
        "spec_sha": stem.rsplit("-", 1)[-1][:16],
    }


def _vertex_labels(labels: dict[str, str]) -> dict[str, str]:
    from cicd_components.labels import vertex_labels

    return vertex_labels(labels)


def _label_value(value: str) -> str:
    return _vertex_labels({"x": value})["x"]


def _aiplatform(settings: Settings):
    from google.cloud import aiplatform  # slow to import: only when a schedule is touched

    if settings.api_endpoint:
        aiplatform.init(api_endpoint=settings.api_endpoint, api_transport="rest")
    return aiplatform


def _api(settings: Settings, name: str):
    """The schedule service client (the SDK's own, with the endpoint and credentials of the settings)."""
    aiplatform = _aiplatform(settings)
    schedule = _call(
        settings,
        "look-up",
        name,
        lambda: aiplatform.PipelineJobSchedule.get(name, credentials=credentials(settings)),
    )
    return schedule.api_client


def _pipeline_job(settings: Settings, request: RunRequest, binding: dict[str, str]):
    """The PipelineJob a scheduled run starts: the spec read from the bucket, parameters, labels."""
    aiplatform = _aiplatform(settings)

    def no_spec(calls: Calls | None, exc: BaseException) -> MissingRelease:
        return MissingRelease(
            f"The released spec {request.spec} cannot be read ({getattr(exc, 'message', exc)}): release again "
            "(`invoke ci`)."
        )

    try:
        return _call(
            settings,
            "read",
            request.spec,
            lambda: aiplatform.PipelineJob(
                display_name=settings.pipeline_name,
                template_path=request.spec,
                pipeline_root=settings.pipeline_root,
                parameter_values=request.parameters(),
                labels=_vertex_labels({**request.labels(), **binding}),
                # None keeps each task's compiled cache setting (the baseline resolver stays uncached).
                enable_caching=None,
                project=settings.project,
                location=settings.region,
                credentials=credentials(settings),
            ),
            on_404=no_spec,
        )
    except FileNotFoundError as exc:
        raise no_spec(None, exc) from None


def _move(settings: Settings, info: ScheduleInfo, request: RunRequest, binding: dict[str, str]) -> None:
    """PATCH the schedule's request with updateMask=create_pipeline_job_request (the SDK's update() cannot:
    it sends only display name, cron and limits)."""
    aiplatform = _aiplatform(settings)
    from google.cloud.aiplatform.compat.types import schedule as gca_schedule
    from google.protobuf import field_mask_pb2

    job = _pipeline_job(settings, request, binding)
    draft = aiplatform.PipelineJobSchedule(
        pipeline_job=job,
        display_name=info.display_name,
        credentials=credentials(settings),
        project=settings.project,
        location=settings.region,
    )
    # The request exactly as the SDK's create sends it (its public gca_resource wants a created resource).
    new_request = draft._gca_resource.create_pipeline_job_request
    new_request.pipeline_job.service_account = settings.service_account
    api = _api(settings, info.name)
    _call(
        settings,
        "move",
        f"{info.name} to {request.spec}",
        lambda: api.update_schedule(
            schedule=gca_schedule.Schedule(name=info.name, create_pipeline_job_request=new_request),
            update_mask=field_mask_pb2.FieldMask(paths=["create_pipeline_job_request"]),
            timeout=float(settings.request_deadline_seconds),
        ),
    )


def _find(settings: Settings, which: str) -> ScheduleInfo:
    settings.require(("project", "region"))
    schedules = list_schedules(settings)
    matches = [s for s in schedules if which in (s.name, s.id, s.display_name)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InputError(
            f"{which!r} names {len(matches)} schedules: give the id ({', '.join(s.id for s in matches)})."
        )
    known = "; ".join(f"{s.id} ({s.display_name!r})" for s in schedules) or "none"
    raise MissingSchedule(
        f"No schedule {which!r} of {settings.pipeline_name} in {settings.project}/{settings.region}; there are: "
        f"{known}. `invoke schedule.list` shows them."
    )


def _info(resource: Any) -> ScheduleInfo:
    from google.protobuf import json_format

    data = json_format.MessageToDict(type(resource).pb(resource), preserving_proto_field_name=True)
    job = data.get("create_pipeline_job_request", {}).get("pipeline_job", {})
    config = job.get("runtime_config", {})
    parameters = dict(config.get("parameter_values", {}))
    parameters.update({k: v.get("string_value", v) for k, v in config.get("parameters", {}).items()})
    return ScheduleInfo(
        name=data.get("name", ""),
        display_name=data.get("display_name", ""),
        state=data.get("state", "?"),
        cron=data.get("cron", ""),
        next_run=data.get("next_run_time", ""),
        labels=dict(job.get("labels", {})),
        parameters=parameters,
        max_concurrent_runs=int(data.get("max_concurrent_active_run_count", 0)),
    )


def _call(
    settings: Settings, action: str, target: str, fn: Callable[[], T], on_404: OnFault | None = None
) -> T:
    """One Vertex request through the fault boundary (cicd_release.core.faults); a 404 means no such schedule unless
    ``on_404`` says otherwise. A bug keeps its traceback."""
    endpoint = settings.api_endpoint or f"https://{settings.region}-aiplatform.googleapis.com"
    with reporting(
        "Vertex AI",
        endpoint,
        deadline=float(settings.request_deadline_seconds),
        on_404=on_404 or _no_schedule,
        setting="cicd.api_endpoint",
    ) as calls:
        calls.now(action, target)
        return fn()


def _no_schedule(calls: Calls, exc: BaseException) -> MissingSchedule:
    return MissingSchedule(
        f"Vertex AI at {calls.endpoint} found nothing for the {calls.action} of {calls.target} "
        f"({getattr(exc, 'message', exc)}): `invoke schedule.list` shows the schedules there are."
    )
