"""What was last released, and what the next build must therefore do: the release record's one home.

The record, `releases/<pipeline>/latest.json` in the bucket, names the commit last released and everything its
run consumed (spec, image, modules, data, hyperparameters). This module reads it (`read_record`), interprets
it (`released`: the code a retrain or a schedule runs; before the first record, the newest spec and modules in
the bucket), plans against it (`plan`: diff from the released commit, then complete the plan against the
bucket and the registry) and writes it (`record_run`, the one writer, for a run started and for a submit
skipped because nothing the run consumes changed).

Every write of the record is conditional on the generation it was read at: of two builds that raced, one
moves the record and the other fails in one line, and neither overwrites what the other released.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cicd_pipeline import run_inputs
from cicd_release import faults, naming, snapshots
from cicd_release import image as image_lib
from cicd_release import plan as plan_lib
from cicd_release import storage as storage_lib
from cicd_release.errors import InputError, MissingRelease
from cicd_release.settings import Settings
from cicd_release.snapshots import RunData
from cicd_release.workspace import Workspace, atomic_write

if TYPE_CHECKING:
    from cicd_release.launch import RunRequest
    from cicd_release.steps import StepContext

# `invoke plan --base :release`: diff against the commit of the last release (no git ref has a ':').
RELEASE_BASE = ":release"
# What a release build may diff against (release.yml's input): the last release, a full commit sha, or
# nothing (build everything). A branch name would move under the build; a ',' would add a substitution.
_BUILD_BASE = re.compile(rf"^(?:|{re.escape(RELEASE_BASE)}|[0-9a-f]{{40}})$")

# The trainer's files a run reads, by name, and their file names in the bucket.
MODULE_FILES = run_inputs.BUCKET_NAMES


def check_build_base(base: str) -> str:
    """A release build's base, as `invoke plan --base` takes it; InputError (exit 2) naming it when it is not."""
    if not _BUILD_BASE.match(base):
        raise InputError(
            f"--base {base!r} is not a release build's base: give {RELEASE_BASE} (the last release), a full "
            "40-hex commit sha, or nothing (build everything)."
        )
    return base


def now() -> str:
    """The UTC time a record or a summary is stamped with."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ------------------------------------------------------------------------------------------------ read


@dataclasses.dataclass(frozen=True)
class ReleaseRecord:
    """The release record as read from the bucket: where it is (`uri`), the generation it was read at (0: there
    is none yet, and the first write creates it), and what it says.

    `inputs` is what the release's run consumed (RunRequest.inputs); `run` the Vertex job it started;
    `run_commit` the commit of that run when a later commit was released by it (nothing the run consumes changed).
    """

    uri: str
    generation: int = 0
    commit: str | None = None
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    run: dict[str, Any] = dataclasses.field(default_factory=dict)
    released_at: str = ""
    parameters: dict[str, str] = dataclasses.field(default_factory=dict)
    trigger: str = ""
    outcome: dict[str, Any] | None = None
    run_commit: str | None = None

    @property
    def exists(self) -> bool:
        return self.commit is not None

    @classmethod
    def from_json(cls, data: dict | None, generation: int, uri: str) -> ReleaseRecord:
        if data is None:
            return cls(uri=uri)
        known = {f.name for f in dataclasses.fields(cls)} - {"uri", "generation"}
        return cls(uri=uri, generation=generation, **{k: v for k, v in data.items() if k in known})

    def to_json(self) -> dict[str, Any]:
        """What is stored: every field but where it is, without the optional ones that are unset."""
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("uri", "generation"):
            body.pop(name)
        for name in ("outcome", "run_commit"):
            if body[name] is None:
                body.pop(name)
        return body

    def ran(self, request: RunRequest) -> bool:
        """Whether the release's run consumed exactly what `request` would: then a submit starts nothing."""
        return self.exists and self.inputs == request.inputs()

    def released_by_same_run(self, commit: str) -> ReleaseRecord:
        """The record moved to `commit`, which the same run releases (nothing the run consumes changed), so
        later plans diff from `commit` and not from before it."""
        return dataclasses.replace(
            self, commit=commit, released_at=now(), run_commit=self.run_commit or self.commit
        )


def record_uri(settings: Settings) -> str:
    return f"{settings.releases_prefix}/latest.json"


def read_record(settings: Settings, client) -> ReleaseRecord:
    """The last release's record, with the generation it was read at (none yet: generation 0, no commit)."""
    settings.require(["bucket"])  # the record lives in the bucket, whatever task asks for it
    uri = record_uri(settings)
    data, generation = storage_lib.read_json_object(client, uri, deadline=_deadline(settings))
    return ReleaseRecord.from_json(data, generation, uri)


# ------------------------------------------------------------------------------------------- interpret


@dataclasses.dataclass(frozen=True)
class Released:
    """The code of the last release: what a retrain or a schedule runs, with the data and parameters it picks."""

    spec: str
    image: str
    modules: dict[str, str]
    hyperparameters: str
    commit: str
    versions: dict[str, str]
    source: str  # how it was found, said to the user

    def request(self, data: RunData, hyperparameters: str | None, trigger: str) -> RunRequest:
        # launch.py builds on this module (it records runs here): its request type is imported when used.
        from cicd_release.launch import RunRequest

        return RunRequest(
            spec=self.spec,
            image=self.image,
            modules=dict(self.modules),
            data=data,
            hyperparameters=hyperparameters or self.hyperparameters,
            commit=self.commit,
            versions=dict(self.versions),
            trigger=trigger,
        )


def released(settings: Settings, client, record: ReleaseRecord | None = None) -> Released:
    """The released spec and modules: from the release record, or, before the first record, the newest spec
    and the newest upload of each module file in the bucket. MissingRelease when there is no spec at all."""
    if record is None:
        record = read_record(settings, client)
    if record.exists:
        inputs = record.inputs
        return Released(
            spec=inputs["spec"],
            image=inputs["image"],
            modules=dict(inputs["modules"]),
            hyperparameters=inputs["hyperparameters"],
            commit=record.commit,
            versions=dict(record.versions),
            source=f"release {record.commit[:12]} (the release record)",
        )
    return _newest_in_bucket(settings, client)


def _newest_in_bucket(settings: Settings, client) -> Released:
    deadline = _deadline(settings)
    bucket, _ = storage_lib.parse_gs_uri(settings.bucket_uri)
    specs = _newest(client, bucket, "specs/", deadline, lambda n: n.startswith(f"{settings.pipeline_name}-"))
    if not specs:
        raise MissingRelease(
            f"Nothing released to run: no release record at {record_uri(settings)} and no spec "
            f"{settings.pipeline_name}-*.json under {settings.specs_prefix}/. Release once first: "
            "`invoke ci --base ''` (or push to the release branch)."
        )
    spec_name = max(specs, key=lambda n: specs[n][0])
    spec_uri = f"{settings.specs_prefix}/{spec_name}"
    modules = _newest(client, bucket, "modules/", deadline, lambda n: n in MODULE_FILES.values())
    missing = [f for f in MODULE_FILES.values() if f not in modules]
    if missing:
        raise MissingRelease(
            f"No uploaded {', '.join(missing)} under {settings.modules_prefix}/ to run the spec {spec_uri} with: "
            "run `invoke modules.upload` (or release once)."
        )
    job, _ = storage_lib.read_json_object(client, spec_uri, deadline=deadline)
    job = job or {}
    executors = job.get("pipelineSpec", {}).get("deploymentSpec", {}).get("executors", {})
    images = sorted({e.get("container", {}).get("image", "") for e in executors.values()} - {""})
    return Released(
        spec=spec_uri,
        image=images[0] if images else "",
        modules={p: f"gs://{bucket}/{modules[f][1]}" for p, f in MODULE_FILES.items()},
        hyperparameters="{}",
        commit="unreleased",
        versions={},
        source=f"the newest spec {spec_name} and modules in the bucket (no release record yet)",
    )


def _newest(client, bucket: str, prefix: str, deadline: float, keep: Callable[[str], bool]) -> dict:
    """{file name: (time created, object name)} of the newest object of each file name under ``prefix``."""
    found: dict[str, tuple[Any, str]] = {}
    with faults.storage_reporting(client, deadline, "Run it again once storage answers.") as calls:
        calls.now("listing", f"gs://{bucket}/{prefix}", on_404=faults.missing_bucket)
        for blob in client.list_blobs(bucket, prefix=prefix, **faults.request_options(deadline)):
            name = PurePosixPath(blob.name).name
            if keep(name) and (name not in found or blob.time_created > found[name][0]):
                found[name] = (blob.time_created, blob.name)
    return found


# ------------------------------------------------------------------------------------------------ plan


def plan(
    root: str | Path, base: str | None, head: str = "HEAD", *, cloud: StepContext | None = None
) -> plan_lib.Plan:
    """The plan for `head` in the checkout at `root`: which steps the change needs (plan.make_plan, from git
    alone). With `cloud`, the context of a release build, also every setting those steps need, and the steps
    that make what a later step needs and the registry or bucket lacks (the image a compile names, the spec a
    submit reuses): built in this run, not discovered missing on Vertex.

    With `base` ":release" (which needs `cloud`) the diff starts at the last released commit (the release
    record), not at the previous push: a push whose build was cancelled or failed is then part of the next
    build. No record means everything is built.
    """
    if cloud is None:
        if base == RELEASE_BASE:
            raise plan_lib.PlanError(
                f"--base {RELEASE_BASE} reads the release record in the bucket: plan with --cloud."
            )
        return plan_lib.make_plan(str(root), base, head)
    last = None
    why_missing = None
    if base == RELEASE_BASE:
        last = read_record(cloud.settings, cloud.storage_client())
        base = last.commit
        why_missing = None if last.exists else f"there is no release record at {last.uri} (the first release)"
    planned = plan_lib.make_plan(str(root), base, head, why_missing=why_missing)
    cloud.check_settings(planned.steps)  # before the bucket and the registry are asked anything
    completed = complete_plan(cloud, planned, last)
    cloud.check_settings(completed.steps)
    return completed


def complete_plan(ctx: StepContext, plan: plan_lib.Plan, last: ReleaseRecord | None = None) -> plan_lib.Plan:
    """Adds the steps that make what the planned steps need and the registry or bucket does not hold."""
    settings, deadline = ctx.settings, _deadline(ctx.settings)
    steps, reasons = set(plan.steps), list(plan.reasons)
    if "pipeline.submit" in steps and "data.upload" not in steps:
        try:
            snapshots.resolve(ctx.storage_client(), settings.resolved_data_root, deadline=deadline)
        except snapshots.MissingData as missing:
            steps.add("data.upload")
            reasons.append(f"data.upload added: nothing to train on yet ({missing}).")
    if "pipeline.submit" in steps and "pipeline.compile" not in steps:
        if last is None:
            last = read_record(settings, ctx.storage_client())
        spec = last.inputs.get("spec") if last.exists else None
        if not spec or not storage_lib.blob_exists(ctx.storage_client(), spec, deadline=deadline):
            steps.add("pipeline.compile")
            reasons.append(
                "pipeline.compile added: no released spec to reuse "
                f"({spec or 'no release record'}), so this build compiles one."
            )
    if "pipeline.compile" in steps and "build.image" not in steps:
        ctx.check_settings(["pipeline.compile"])  # the compile names the image: its settings say which
        reference = naming.image_reference(settings, ctx.root)
        if not image_lib.image_exists(reference, image_lib.registry_auth(reference)):
            steps.update({"build.wheels", "build.image"})
            reasons.append(
                f"build.image added: the spec would run {reference}, which is not in the registry (its build "
                "never ran or failed), so this build makes it."
            )
    if steps == set(plan.steps):
        return plan
    ordered = tuple(s for s in plan_lib.STEPS if s in steps)
    return dataclasses.replace(plan, steps=ordered, reasons=tuple(reasons))


# ----------------------------------------------------------------------------------------------- write


def skip_unchanged(settings: Settings, client, last: ReleaseRecord, commit: str, ws: Workspace) -> list[str]:
    """`pipeline.submit` when the last release's run consumed exactly what this one would: no run; the record
    moves to `commit` (released by that same run) and the build's summary says why nothing ran."""
    reason = (
        f"pipeline.submit: skipped, nothing the run consumes changed since release "
        f"{last.commit[:12]} (run {last.run['resource_name']}): same spec, image, modules, data "
        "and hyperparameters. `invoke pipeline.submit --force` starts one anyway."
    )
    ws.write_json(ws.job_file, {"skipped": reason, "release": last.to_json()})
    record_run(
        settings,
        client,
        last,
        last.released_by_same_run(commit),
        summary=f"### No training run for {commit[:12]}\n\n{reason}\n",
        summary_name=f"skipped-{now()}",
        ws=ws,
        move=commit != last.commit,
    )
    return [reason]


def record_run(
    settings: Settings,
    client,
    last: ReleaseRecord,
    record: ReleaseRecord,
    *,
    summary: str | None,
    summary_name: str,
    ws: Workspace | None = None,
    run_name: str | None = None,
    move: bool = True,
) -> None:
    """The one writer of what a submit did, a run started or skipped, in the order that keeps the bucket true:

    1. the summary (Markdown, when there is one) as `.cicd/outcome.md` and, never replaced, as
       `releases/<pipeline>/summaries/<commit>/<summary_name>.md`, where the GitHub job finds it;
    2. for a run started, its own immutable record `releases/<pipeline>/runs/<run_name>.json`;
    3. with `move`, the release record, moved to `record` from the generation `last` was read at (of two
       builds, one wins; the other fails in one line).
    """
    deadline = _deadline(settings)
    body = record.to_json()
    if summary is not None:
        local = atomic_write(ws.outcome_file, summary) if ws is not None else _temporary(summary)
        storage_lib.upload_immutable(
            client,
            local,
            f"{settings.releases_prefix}/summaries/{record.commit}/{summary_name}.md",
            deadline=deadline,
        )
    if run_name is not None:
        storage_lib.write_json_object(
            client,
            f"{settings.releases_prefix}/runs/{run_name}.json",
            body,
            if_generation_match=0,
            deadline=deadline,
        )
    if move:
        storage_lib.write_json_object(
            client, last.uri, body, if_generation_match=last.generation, deadline=deadline
        )


def _temporary(text: str) -> Path:
    """A run started off a checkout (a retrain) still leaves its summary in the bucket, through a temp file."""
    folder = Path(tempfile.mkdtemp(prefix="cicd-outcome-"))
    return atomic_write(folder / "outcome.md", text)


def _deadline(settings: Settings) -> float:
    """How long a storage call may retry before it fails in one line (cicd.request_deadline_seconds)."""
    return float(settings.request_deadline_seconds)
