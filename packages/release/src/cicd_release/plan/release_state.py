"""What was last released, and what the next build must therefore do: the release record's one home.

The record, `releases/<pipeline>/latest.json` in the bucket, names the commit last released and everything its
run consumed (spec, image, modules, data, hyperparameters). This module reads it (`read_record`), interprets
it (`released`: the code a retrain or a schedule runs; before the first record, the newest spec and modules in
the bucket), plans against it (`plan`: diff from the released commit, then complete the plan against the
bucket and the registry) and writes it (`record_run`, the one writer, for a run started and for a submit
skipped because nothing the run consumes changed).

Every write of the record is conditional on the generation it was read at: of two builds that raced, one
moves the record and the other fails in one line, and neither overwrites what the other released.

Nothing read back is trusted: the pipelines' service account can write the bucket, so any training task could
rewrite the record. `read_record` checks it before anything uses it (`record_problems`): its shape, a 40-hex
commit, the spec and module URIs inside this bucket's own prefixes, the objects there, their bytes hashing to
the names they carry, the image in the configured repository (and the spec running that image alone) and the
hyperparameters by the one rule. A record that fails is refused in one line, before anything is submitted or
written; `invoke doctor` lists every problem.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc

from cicd_components.hyperparameters.rule import HyperparametersError, parse_hyperparameters
from cicd_components.untrusted import TooLarge, clip
from cicd_components.untrusted import loads as bounded_loads
from cicd_pipeline import run_inputs
from cicd_pipeline.config import HYPERPARAMETER_TYPES
from cicd_release.artifacts import image as image_lib
from cicd_release.artifacts import naming
from cicd_release.core import faults
from cicd_release.core.errors import (
    InputError,
    MissingRelease,
    MissingResourceError,
    RecordRefused,
    WriteConflict,
)
from cicd_release.core.settings import Settings
from cicd_release.core.workspace import Workspace, atomic_write
from cicd_release.plan import changes as plan_lib
from cicd_release.publish import snapshots
from cicd_release.publish import storage as storage_lib
from cicd_release.publish.snapshots import RunData

if TYPE_CHECKING:
    from cicd_release.run.launch import RunRequest
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
            f"--base {clip(repr(base))} is not a release build's base: give {RELEASE_BASE} (the last release), a full "
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
    `run_commit` the commit of that run when a later commit was released by it (nothing the run consumes changed);
    `dirty` that the run was made from a working tree with uncommitted changes (`--allow-dirty`): its commit is
    then not what ran, and the next plan builds everything instead of diffing from it.
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
    dirty: bool = False

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
        if not body["dirty"]:
            body.pop("dirty")
        return body

    def ran(self, request: RunRequest) -> bool:
        """Whether the release's run consumed exactly what `request` would: then a submit starts nothing."""
        return self.exists and self.inputs == request.inputs()

    def released_by_same_run(self, commit: str, dirty: bool = False) -> ReleaseRecord:
        """The record moved to `commit`, which the same run releases (nothing the run consumes changed), so
        later plans diff from `commit` and not from before it (unless `commit` is itself a dirty tree's)."""
        return dataclasses.replace(
            self, commit=commit, released_at=now(), run_commit=self.run_commit or self.commit, dirty=dirty
        )


def record_uri(settings: Settings) -> str:
    return f"{settings.releases_prefix}/latest.json"


def read_record(settings: Settings, client) -> ReleaseRecord:
    """The last release's record, with the generation it was read at (none yet: generation 0, no commit),
    checked before anything uses it: a record with a problem (`record_problems`) is refused in one line.

    A missing bucket is MissingResourceError (exit 3), not "no release yet": that would plan a full build and
    fail only at its first upload, after the image build."""
    # The record lives in the bucket, whatever task asks for it; its image is checked against the repository.
    settings.require(["bucket", "image_repo"])
    uri = record_uri(settings)
    data, generation = storage_lib.read_json_object(client, uri, deadline=_deadline(settings))
    if data is None:
        _require_bucket(settings, client)
        return ReleaseRecord(uri=uri)
    problems = record_problems(settings, client, data)
    if problems:
        what, why = problems[0]
        moved = (
            f"If cicd.image_repo was moved on purpose, delete the record (`gcloud storage rm {uri}`): the next "
            "build releases everything into the new repository. Otherwise someone"
            if len(problems) == 1 and what.startswith("image ")
            else "If nobody released this, someone"
        )
        raise RecordRefused(
            f"The release record {uri} is refused: {what} {why}. Nothing was submitted or written. {moved} "
            "who can write the bucket changed the record: find out who, then delete it "
            f"(`gcloud storage rm {uri}`: the next build releases everything anew) or put back the last good "
            f"one from {settings.releases_prefix}/runs/."
        )
    return ReleaseRecord.from_json(data, generation, uri)


def _require_bucket(settings: Settings, client) -> None:
    deadline = _deadline(settings)
    with faults.storage_reporting(client, deadline, "Run it again once storage answers.") as progress:
        progress.now("existence check", settings.bucket_uri)
        found = client.bucket(settings.bucket).exists(**faults.request_options(deadline))
    if not found:
        raise MissingResourceError(
            f"Bucket {settings.bucket_uri} does not exist, so there is no release record to read: create it "
            "(`invoke setup --apply`), or fix cicd.bucket."
        )


# ----------------------------------------------------------------------------------------------- check

_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,62}$")
# Objects read back to check their bytes: a spec is a few hundred KB, the module files and holdout less.
SPEC_MAX_BYTES = MODULE_MAX_BYTES = 16 << 20


def record_problems(settings: Settings, client, data: Any) -> list[tuple[str, str]]:
    """What is wrong with a release record's content, as (what, why) pairs; empty when it can be trusted.

    A spec that is not in the bucket is no problem here: the plan then compiles one, and a retrain or a submit
    that needs it says so. Everything else named is checked where it is: shape first, then the objects."""
    wrong = _record_shape(data)
    if wrong:
        return [("content", wrong)]
    inputs = data["inputs"]
    return code_problems(
        settings,
        client,
        spec=inputs["spec"],
        image=inputs["image"],
        modules=inputs["modules"],
        hyperparameters=inputs["hyperparameters"],
    )


def _record_shape(data: Any) -> str | None:
    """The record's fields and their types: what the code indexes into before it reads a single object."""
    if not isinstance(data, dict):
        return f"is a JSON {type(data).__name__}, not an object"
    if not isinstance(data.get("commit"), str) or not _SHA1.match(data["commit"]):
        return f"commit {clip(repr(data.get('commit')))} is not a 40-hex commit"
    if data.get("run_commit") is not None and not (
        isinstance(data["run_commit"], str) and _SHA1.match(data["run_commit"])
    ):
        return f"run_commit {clip(repr(data['run_commit']))} is not a 40-hex commit"
    inputs = data.get("inputs")
    if not isinstance(inputs, dict):
        return "has no inputs object"
    for key in ("spec", "image", "hyperparameters"):
        if not isinstance(inputs.get(key), str):
            return f"inputs.{key} is not text"
    for key in ("data_root", "data_digest"):
        if key in inputs and not isinstance(inputs[key], str):
            return f"inputs.{key} is not text"
    modules = inputs.get("modules")
    if not isinstance(modules, dict) or not all(isinstance(v, str) for v in modules.values()):
        return "inputs.modules is not an object of gs:// URIs"
    versions = data.get("versions", {})
    if not isinstance(versions, dict):
        return "versions is not an object"
    for package, version in versions.items():
        if package not in naming.PACKAGES or not isinstance(version, str) or not _VERSION.match(version):
            return f"versions names {clip(repr(package))}={clip(repr(version))}, not a package's version"
    run = data.get("run", {})
    if not isinstance(run, dict) or not isinstance(run.get("resource_name", ""), str):
        return "run is not an object with a resource_name"
    for key in ("parameters", "outcome"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key} is not an object"
    for key in ("released_at", "trigger"):
        if not isinstance(data.get(key, ""), str):
            return f"{key} is not text"
    if not isinstance(data.get("dirty", False), bool):
        return "dirty is not true or false"
    return None


def code_problems(
    settings: Settings,
    client,
    *,
    spec: str,
    image: str | None,
    modules: Mapping[str, str],
    hyperparameters: str,
    specs: dict[str, dict] | None = None,
) -> list[tuple[str, str]]:
    """What is wrong with released code before a run uses it: the spec and modules where this bucket keeps
    them and holding the bytes their names hash, the image in the configured repository (`image` None: the
    spec's own images, each in the repository), the hyperparameters by the one rule. The spec read, when it
    was fine, goes into `specs` by its URI."""
    problems = []
    spec_digest = _spec_name_digest(settings, spec)
    if spec_digest is None:
        problems.append(
            (
                f"spec {clip(spec)}",
                f"is not a spec of this pipeline in {settings.specs_prefix}/ "
                f"({settings.pipeline_name}-VERSION-DIGEST.json)",
            )
        )
    if image is not None and not _in_repository(settings, image):
        problems.append((f"image {clip(image)}", f"is not an image of the repository {settings.image_repo}"))
    if set(modules) != set(MODULE_FILES):
        problems.append(("modules", f"name {sorted(modules)}, not {sorted(MODULE_FILES)}"))
    else:
        for parameter, uri in sorted(modules.items()):
            if _module_digest(settings, parameter, uri) is None:
                problems.append(
                    (
                        f"module {clip(uri)}",
                        f"is not {settings.modules_prefix}/<sha256>/{MODULE_FILES[parameter]}",
                    )
                )
    try:
        parse_hyperparameters(hyperparameters, HYPERPARAMETER_TYPES)
    except HyperparametersError as err:
        problems.append(("hyperparameters", f"break the rule ({err})"))
    if problems:
        return problems  # nothing is read from a place the record should not name
    deadline = _deadline(settings)
    body = _read_object(client, spec, SPEC_MAX_BYTES, deadline)
    if isinstance(body, str):
        problems.append((f"spec {spec}", body))
    elif body is not None:
        problems += _spec_content_problems(settings, spec, spec_digest, body, image, specs)
    for parameter, uri in sorted(modules.items()):
        data = _read_object(client, uri, MODULE_MAX_BYTES, deadline)
        if data is None:
            problems.append(
                (
                    f"module {uri}",
                    "is not in the bucket (upload it again from the released commit: `invoke modules.upload`)",
                )
            )
        elif isinstance(data, str):
            problems.append((f"module {uri}", data))
        elif hashlib.sha256(data).hexdigest() != _module_digest(settings, parameter, uri):
            problems.append((f"module {uri}", "holds bytes whose sha256 is not the one its name carries"))
    return problems


def _spec_name_digest(settings: Settings, uri: str) -> str | None:
    """The 16-hex digest a spec URI carries, when it names a spec of this pipeline in this bucket's specs/."""
    name = uri.removeprefix(f"{settings.specs_prefix}/")
    pattern = rf"{re.escape(settings.pipeline_name)}-[0-9A-Za-z.+_-]+-(?P<d>[0-9a-f]{{16}})\.json"
    match = re.fullmatch(pattern, name) if name != uri else None
    return match["d"] if match else None


def _module_digest(settings: Settings, parameter: str, uri: str) -> str | None:
    """The sha256 a module URI carries, when it is `<modules prefix>/<sha256>/<the parameter's file name>`."""
    rest = uri.removeprefix(f"{settings.modules_prefix}/")
    digest, _, name = rest.partition("/")
    if rest == uri or name != MODULE_FILES.get(parameter) or not _SHA256.match(digest):
        return None
    return digest


def _in_repository(settings: Settings, image: str) -> bool:
    """`<cicd.image_repo>/<name>:<tag>`: an image of the configured repository, and nothing after the tag."""
    pattern = rf"{re.escape(settings.image_repo)}/[a-z0-9](?:[a-z0-9-]*[a-z0-9])?:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
    return re.fullmatch(pattern, image) is not None


def _spec_content_problems(
    settings: Settings, uri: str, digest: str | None, body: bytes, image: str | None, specs: dict | None
) -> list[tuple[str, str]]:
    what = f"spec {uri}"
    try:
        job = bounded_loads(body, max_bytes=SPEC_MAX_BYTES)
    except (TooLarge, UnicodeDecodeError, json.JSONDecodeError) as err:
        return [(what, f"is not a compiled spec ({clip(str(err))})")]
    if not isinstance(job, dict) or not isinstance(job.get("pipelineSpec"), dict):
        return [(what, "is not a compiled spec (no pipelineSpec)")]
    if naming.spec_digest(job)[:16] != digest:
        return [(what, "holds a spec whose digest is not the one its name carries")]
    images = spec_images(job)
    if not images:
        return [(what, "runs no container image")]
    foreign = sorted(
        i for i in images if (i != image if image is not None else not _in_repository(settings, i))
    )
    if foreign:
        expected = (
            f"the release's image {image}" if image is not None else f"the repository {settings.image_repo}"
        )
        return [(what, f"runs {clip(foreign[0])}, not {expected}")]
    if specs is not None:
        specs[uri] = job
    return []


def spec_images(job: dict) -> set[str]:
    """Every container image a compiled spec runs (its executors')."""
    executors = job.get("pipelineSpec", {}).get("deploymentSpec", {}).get("executors", {})
    if not isinstance(executors, dict):
        return {""}
    found = set()
    for executor in executors.values():
        container = executor.get("container") if isinstance(executor, dict) else None
        if isinstance(container, dict):
            found.add(str(container.get("image", "")))
    return found


def _read_object(client, uri: str, limit: int, deadline: float) -> bytes | str | None:
    """The bytes of `uri`; None when it is not there; a few words (str) when it is larger than `limit`."""
    bucket, name = storage_lib.parse_gs_uri(uri)
    with faults.storage_reporting(client, deadline, "Run it again once storage answers.") as progress:
        progress.now("read", uri)
        blob = client.bucket(bucket).get_blob(name, **faults.request_options(deadline))
        if blob is None:
            return None
        if blob.size is not None and blob.size > limit:
            return f"is {blob.size} bytes, more than the {limit} allowed"
        try:
            return blob.download_as_bytes(
                if_generation_match=blob.generation, **faults.request_options(deadline)
            )
        except (gexc.PreconditionFailed, gexc.NotFound):  # replaced or deleted since its metadata was read
            return "changed while it was read: run again"


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
    dirty: bool = False  # released from uncommitted changes: its runs are labelled so too

    def request(self, data: RunData, hyperparameters: str | None, trigger: str) -> RunRequest:
        # launch.py builds on this module (it records runs here): its request type is imported when used.
        from cicd_release.run.launch import RunRequest

        return RunRequest(
            spec=self.spec,
            image=self.image,
            modules=dict(self.modules),
            data=data,
            hyperparameters=hyperparameters or self.hyperparameters,
            commit=self.commit,
            versions=dict(self.versions),
            trigger=trigger,
            dirty=self.dirty,
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
            dirty=record.dirty,
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
    uris = {p: f"gs://{bucket}/{modules[f][1]}" for p, f in MODULE_FILES.items()}
    # Read back like the record: the newest objects are whatever last landed in the bucket.
    read: dict[str, dict] = {}
    problems = code_problems(
        settings, client, spec=spec_uri, image=None, modules=uris, hyperparameters="{}", specs=read
    )
    if problems or spec_uri not in read:
        what, why = problems[0] if problems else (f"spec {spec_uri}", "is gone")
        raise RecordRefused(
            f"The newest release in the bucket (no release record yet) is refused: {what} {why}. Nothing was "
            "submitted or written. Release from a clean checkout (`invoke ci --base ''`) to write a record."
        )
    images = sorted(spec_images(read[spec_uri]))
    return Released(
        spec=spec_uri,
        image=images[0],
        modules=uris,
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
    """The plan for `head` in the checkout at `root`: which steps the change needs (changes.make_plan, from git
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
        base = None if last.dirty else last.commit
        if not last.exists:
            why_missing = f"there is no release record at {last.uri} (the first release)"
        elif last.dirty:
            # What ran was not the commit: a diff from it could miss the very edits that ran (or never ran).
            why_missing = (
                f"the last release ({last.commit[:12]}) was made from uncommitted changes (--allow-dirty), so "
                "its commit is not what ran"
            )
    planned = plan_lib.make_plan(str(root), base, head, why_missing=why_missing)
    cloud.check_settings(planned.steps)  # before the bucket and the registry are asked anything
    completed = complete_plan(cloud, planned, last)
    cloud.check_settings(completed.steps)
    return completed


def complete_plan(ctx: StepContext, plan: plan_lib.Plan, last: ReleaseRecord | None = None) -> plan_lib.Plan:
    """Adds the steps that make what the planned steps need and the registry or bucket does not hold."""
    settings, deadline = ctx.settings, _deadline(ctx.settings)
    steps, reasons = set(plan.steps), list(plan.reasons)
    # A BigQuery source has no snapshots to upload: the table is the data (cicd_release.run.bigquery_data).
    if "pipeline.submit" in steps and "data.upload" not in steps and not settings.on_bigquery:
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
            steps.update({"pipeline.compile", "pipeline.rehearse"})
            reasons.append(
                "pipeline.compile and pipeline.rehearse added: no released spec to reuse "
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


def skip_unchanged(
    settings: Settings, client, last: ReleaseRecord, commit: str, ws: Workspace, dirty: bool = False
) -> list[str]:
    """`pipeline.submit` when the last release's run consumed exactly what this one would: no run; the record
    moves to `commit` (released by that same run) and the build's summary says why nothing ran."""
    reason = (
        f"pipeline.submit: skipped, nothing the run consumes changed since release "
        f"{last.commit[:12]} (run {last.run.get('resource_name', 'unknown')}): same spec, image, modules, data "
        "and hyperparameters. `invoke pipeline.submit --force` starts one anyway."
    )
    ws.write_json(ws.job_file, {"skipped": reason, "release": last.to_json()})
    record_run(
        settings,
        client,
        last,
        last.released_by_same_run(commit, dirty),
        summary=f"### No training run for {commit[:12]}\n\n{reason}\n",
        summary_name=f"skipped-{now()}",
        ws=ws,
        move=commit != last.commit or dirty != last.dirty,
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
    2. with `move`, the release record, moved to `record` from the generation `last` was read at (of two
       builds, one wins);
    3. for a run started, its own immutable record `releases/<pipeline>/runs/<run_name>.json`, saying what
       became of the release record (`release_record`: moved, not moved, or lost to another release). Written
       after the move so it can say so; a build stopped between the two leaves the run named in the release
       record it moved.

    A submit that lost the race (another release moved the record since it was read) still records its run,
    as not released, and then fails in one line saying what was written.
    """
    deadline = _deadline(settings)
    body = record.to_json()
    written = []
    if summary is not None:
        local = atomic_write(ws.outcome_file, summary) if ws is not None else _temporary(summary)
        written.append(
            storage_lib.upload_immutable(
                client,
                local,
                f"{settings.releases_prefix}/summaries/{record.commit}/{summary_name}.md",
                deadline=deadline,
            )
        )
    lost = False
    if move:
        try:
            storage_lib.write_json_object(
                client, last.uri, body, if_generation_match=last.generation, deadline=deadline
            )
        except WriteConflict:
            lost = True
    if run_name is not None:
        became = (
            "lost: another release moved it first"
            if lost
            else "moved to this run"
            if move
            else "not moved (the run did not succeed)"
        )
        runs_uri = f"{settings.releases_prefix}/runs/{run_name}.json"
        storage_lib.write_json_object(
            client, runs_uri, {**body, "release_record": became}, if_generation_match=0, deadline=deadline
        )
        written.append(runs_uri)
    if lost:
        started = f"The run {run_name} started, but " if run_name else "Nothing ran, and "
        raise WriteConflict(
            f"{started}{last.uri} changed since it was read (generation {last.generation}): another release "
            f"moved it meanwhile, and it stays theirs. Written: {', '.join(written) or 'nothing'}"
            f"{' (the run recorded as not released)' if run_name else ''}. Run the release again to build on "
            "theirs."
        )


def _temporary(text: str) -> Path:
    """A run started off a checkout (a retrain) still leaves its summary in the bucket, through a temp file."""
    folder = Path(tempfile.mkdtemp(prefix="cicd-outcome-"))
    return atomic_write(folder / "outcome.md", text)


def _deadline(settings: Settings) -> float:
    """How long a storage call may retry before it fails in one line (cicd.request_deadline_seconds)."""
    return float(settings.request_deadline_seconds)
