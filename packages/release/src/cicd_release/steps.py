"""The release chain's steps over a checkout, and the one table of them that `invoke ci`, the single `invoke`
tasks and cloudbuild.yaml's step ids all follow.

Each step takes a `Release` (the checkout, the validated settings and training config, the options) and
returns what it made, for the task to print. Steps hand results to later steps through `.cicd/` files
(workspace.py): a Cloud Build step is its own container.

Content decides what runs: the spec is named by its compiled bytes, modules and data by theirs, and
`pipeline.submit` starts a run only when something the run consumes differs from what the last release ran
(the release record in the bucket, `releases/<pipeline>/latest.json`, written with a generation precondition).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cicd_release import git as git_lib
from cicd_release import image as image_lib
from cicd_release import naming, snapshots
from cicd_release import plan as plan_lib
from cicd_release import storage as storage_lib
from cicd_release import wheels as wheels_lib
from cicd_release.errors import ReleaseError
from cicd_release.runs import RunFailed, RunRequest, credentials, launch, release_record
from cicd_release.runs import now as _now
from cicd_release.settings import Settings
from cicd_release.workspace import Workspace, atomic_write

__all__ = ["RunFailed", "credentials", "release_record"]  # where tasks and tests have always found them

PACKAGES = tuple(plan_lib.PACKAGES)  # the one package map: plan.py
# The trainer's files that runs use, by pipeline parameter name (repository paths: the release chain uploads
# them; nothing imports the trainer).
TRAINER_FILES = {
    "preprocessing_module": "packages/trainer/src/cicd_trainer/preprocessing.py",
    "model_module": "packages/trainer/src/cicd_trainer/model.py",
    "schema_file": "packages/trainer/src/cicd_trainer/schema/schema.pbtxt",
    # The fixed holdout set the Judge also scores candidate and baseline on; the run reads its folder.
    "holdout_file": "packages/trainer/src/cicd_trainer/holdout/holdout.csv",
}
# Compiled from the checkout's own sources, never from a copy installed earlier.
COMPILE_SOURCES = ("packages/pipeline/src", "packages/components/src")
DOCKERFILE = "docker/Dockerfile"
# What the chain's `test` step (and `invoke test`) runs: lint and every package's unit tests.
TEST_SESSIONS = ("lint", "tests")
# Vertex AI keeps label values to 63 characters; 16 hex digits name a content digest well enough there.
LABEL_DIGEST = snapshots.LABEL_DIGEST
# The training data sets in the checkout: data/<set name>/, the set name being the data root's last folder.
DATA_DIR = "data"


class ChainError(ReleaseError, RuntimeError):
    """A step cannot run: the message names what is missing and which step or setting provides it."""


class MissingReleaseInput(ReleaseError, RuntimeError):
    """Something the run needs is not in the bucket (no data, no spec): the message says how to provide it."""

    exit_code = 3


@dataclasses.dataclass
class Release:
    """What every step works from. `config` is the training config (cicd_pipeline.config.TrainingConfig)."""

    ws: Workspace
    settings: Settings
    config: Any
    storage_client: Callable[[], Any] = lambda: None
    say: Callable[[str], None] = print
    push: bool = True  # build.image pushes in the chain
    extra_tags: tuple[str, ...] = ()
    wait: bool = False
    hyperparameters: str | None = None  # canonical JSON, already checked by the task
    force: bool = False  # submit even when nothing the run consumes changed
    poll_seconds: float = 30  # how often a followed run is asked for its state
    skip_tests: bool = False
    test_sessions: tuple[str, ...] = TEST_SESSIONS
    # data.upload: the folder to snapshot (default data/<set> of the checkout), the data set in the bucket
    # (default cicd.data_root) and the date to file it under (windows), if any.
    data_source: Path | None = None
    dataset: str | None = None
    data_date: str | None = None

    @property
    def root(self) -> Path:
        return self.ws.root


def versions(root: Path) -> dict[str, str]:
    return {p: wheels_lib.package_version(root / "packages" / p) for p in PACKAGES}


def local_version(root: Path, package: str) -> str:
    """`g<sha12>` for a clean package, plus `.dirty<hash>` when its files differ from the commit."""
    local = f"g{git_lib.head_commit(root)[:12]}"
    package_dir = f"packages/{package}"
    if git_lib.is_dirty(root, [package_dir]):
        local += f".dirty{naming.content_digest(root, [package_dir])[:8]}"
    return local


def image_reference(settings: Settings, root: Path) -> str:
    """The components image for this checkout: `<repo>/<name>:<components version>-<content digest>`."""
    settings.require(["image_repo", "image_name"])
    digest = naming.content_digest(root, naming.IMAGE_INPUTS)
    return image_lib.image_uri(settings.image_repo, settings.image_name, versions(root)["components"], digest)


# ---------------------------------------------------------------------------------------------- the steps


def run_tests(release: Release) -> list[str]:
    """Lint and every package's unit tests, each in its own nox session."""
    if release.skip_tests:
        return ["test: skipped (--skip-tests)"]
    command = ["nox", "-s", *release.test_sessions]
    if subprocess.run(command, cwd=release.root, check=False).returncode:
        raise ChainError(f"`{' '.join(command)}` failed: the tests above say what broke.")
    return [f"test: `{' '.join(command)}` passed"]


def build_wheels(release: Release, packages: tuple[str, ...] = PACKAGES, final: bool = False) -> list[str]:
    """One wheel per package in dist/; a non-release build carries the commit in its local version."""
    root = release.root
    built = {
        p: wheels_lib.build_wheel(
            root / "packages" / p, release.ws.dist, None if final else local_version(root, p)
        )
        for p in packages
    }
    # Later steps take the wheel's path from here instead of rebuilding its file name.
    known = (
        release.ws.read_json(release.ws.wheels_file, "build.wheels")
        if release.ws.wheels_file.exists()
        else {}
    )
    release.ws.write_json(release.ws.wheels_file, {**known, **{p: str(w) for p, w in built.items()}})
    return [str(w) for w in built.values()]


def build_image(release: Release) -> list[str]:
    """Builds (and pushes) the components image from a context of the Dockerfile and the components wheel."""
    ws, settings = release.ws, release.settings
    settings.require(REQUIRED_SETTINGS["build.image"])
    reference = image_reference(settings, ws.root)
    wheels = ws.read_json(ws.wheels_file, "build.wheels")
    if "components" not in wheels or not Path(wheels["components"]).is_file():
        raise ChainError(
            f"No components wheel recorded in {ws.wheels_file}: run `invoke build.wheels` first."
        )
    auth = image_lib.registry_auth(reference) if release.push else None
    if release.push and image_lib.image_exists(reference, auth):
        # The tag names the content: the image is there, and rebuilding would move the tag to new bytes
        # (refused outright where Artifact Registry's immutable tags are on).
        ws.write_json(ws.image_file, {"image": reference, "tags": [reference], "pushed": {}, "existed": True})
        return [f"{reference}: already in the registry (its tag names its content): not rebuilt"]
    extra = [f"{reference.rsplit(':', 1)[0]}:{tag}" for tag in release.extra_tags]
    context = ws.out / "image-context"
    shutil.rmtree(context, ignore_errors=True)
    image_lib.prepare_context(context, inside_checkout(ws.root, DOCKERFILE), [Path(wheels["components"])])
    result = image_lib.build_image(
        context_dir=context,
        tag=reference,
        extra_tags=extra,
        push=release.push,
        auth_config=auth,
        build_args={
            "BASE_IMAGE": settings.base_image,
            "COMPONENTS_VERSION": versions(ws.root)["components"],
            "GIT_COMMIT": git_lib.head_commit(ws.root),
        },
    )
    ws.write_json(
        ws.image_file, {"image": reference, "tags": result["tags"], "pushed": result.get("pushed", {})}
    )
    return [reference]


def compile_spec(release: Release, upload: bool = True) -> list[str]:
    """Compiles the Vertex spec from the checkout's sources and names it by its bytes; uploads it (never over
    another object) unless `upload` is False. Records name, URI and image in .cicd/spec.json for submit."""
    ws, settings = release.ws, release.settings
    settings.require(REQUIRED_SETTINGS["pipeline.compile"])
    reference = image_reference(settings, ws.root)
    job = _compile_in_checkout(
        ws.root,
        {
            "config": dataclasses.asdict(release.config),
            "pipeline_root": settings.pipeline_root,
            "serving_model_dir": settings.serving_model_dir,
            "registry": settings.registry,
            "image": reference,
            "serving_image": settings.serving_image or None,
        },
    )
    name = naming.spec_name(release.config.pipeline_name, versions(ws.root)["pipeline"], job)
    local = _write_once(ws.specs_dir / name, json.dumps(job, indent=2, sort_keys=True) + "\n")
    uri = None
    if upload:
        uri = storage_lib.upload_immutable(
            release.storage_client(), local, f"{settings.specs_prefix}/{name}", deadline=_deadline(release)
        )
    ws.write_json(
        ws.spec_file,
        {
            "name": name,
            "uri": uri,
            "image": reference,
            "local": str(local),
            # What it was made from: submit refuses it once the checkout or the settings differ.
            "made_from": _compile_inputs(release),
        },
    )
    return [str(local), *([uri] if uri else [])]


def upload_modules(release: Release) -> list[str]:
    """Uploads the trainer files content-addressed (never overwriting); records the URIs for submit."""
    release.settings.require(REQUIRED_SETTINGS["modules.upload"])
    files = {name: inside_checkout(release.root, path) for name, path in TRAINER_FILES.items()}
    uris = storage_lib.upload_content_addressed(
        release.storage_client(), release.settings.modules_prefix, files, deadline=_deadline(release)
    )
    release.ws.write_json(release.ws.modules_file, uris)
    return [f"{name}: {uri}" for name, uri in uris.items()]


def upload_data(release: Release) -> list[str]:
    """Checks the data folder (exit 4 with file:line when it is bad: nothing is uploaded), uploads it as a
    content-addressed snapshot and moves LATEST to it; then schedules that follow LATEST move to it too."""
    settings = release.settings
    settings.require(REQUIRED_SETTINGS["data.upload"])
    dataset = release.dataset or settings.resolved_data_root
    source = release.data_source or inside_checkout(
        release.root, f"{DATA_DIR}/{snapshots.dataset_name(dataset)}"
    )
    if not source.is_dir():
        raise ChainError(
            f"No data folder {source} to upload for the data set {dataset}: put its CSV files there, or pass "
            "--source DIR."
        )
    schema = inside_checkout(release.root, TRAINER_FILES["schema_file"])
    uploaded = snapshots.upload_snapshot(
        release.storage_client(), dataset, source, schema, date=release.data_date, deadline=_deadline(release)
    )
    return uploaded.lines() + follow_data(release)


def follow_data(release: Release) -> list[str]:
    """Schedules that follow LATEST (or a window) are moved to the data just uploaded. Needs cicd.project and
    cicd.region (Vertex AI); without them the upload says so instead of guessing."""
    settings = release.settings
    if not (settings.project and settings.region and settings.service_account):
        return [
            "schedules: not checked (set cicd.project, cicd.region and cicd.service_account to move "
            "schedules that follow LATEST to this snapshot)"
        ]
    from cicd_release.schedules import sync_schedules

    return sync_schedules(settings, release.storage_client())


def submit_run(release: Release) -> list[str]:
    """Submits a Vertex AI run, unless everything it consumes is what the last release ran (then says so).

    The spec is the one `pipeline.compile` made in this build or, when the plan did not compile (a trainer
    or data change), the spec of the last release; the data is the data set's LATEST snapshot. After the
    submit, the release record moves to this run.
    """
    ws, settings, config = release.ws, release.settings, release.config
    settings.require(REQUIRED_SETTINGS["pipeline.submit"])
    client = release.storage_client()
    last, generation, record_uri = release_record(settings, client)
    spec = _spec_for_run(release, last, record_uri)
    if not storage_lib.blob_exists(client, spec["uri"], deadline=_deadline(release)):
        raise MissingReleaseInput(
            f"The spec {spec['uri']} is not in the bucket: run `invoke pipeline.compile --upload`."
        )
    data = snapshots.resolve(client, settings.resolved_data_root, deadline=_deadline(release))
    commit = git_lib.head_commit(ws.root)
    request = RunRequest(
        spec=spec["uri"],
        image=spec["image"],
        modules=current_modules(ws) if ws.modules_file.exists() else released_modules(ws, last),
        data=data,
        hyperparameters=release.hyperparameters or config.hyperparameters,
        commit=commit,
        versions=versions(ws.root),
        trigger="release",
    )
    if last and last.get("inputs") == request.inputs() and not release.force:
        reason = (
            f"pipeline.submit: skipped, nothing the run consumes changed since release "
            f"{last['commit'][:12]} (run {last['run']['resource_name']}): same spec, image, modules, data "
            "and hyperparameters. `invoke pipeline.submit --force` starts one anyway."
        )
        if commit != last["commit"]:
            # This commit is released by that run: later plans diff from here, not from before this change.
            moved = {
                **last,
                "commit": commit,
                "released_at": _now(),
                "run_commit": last.get("run_commit", last["commit"]),
            }
            storage_lib.write_json_object(
                client, record_uri, moved, if_generation_match=generation, deadline=_deadline(release)
            )
        ws.write_json(ws.job_file, {"skipped": reason, "release": last})
        summary = atomic_write(ws.outcome_file, f"### No training run for {commit[:12]}\n\n{reason}\n")
        storage_lib.upload_immutable(
            client,
            summary,
            f"{settings.releases_prefix}/summaries/{commit}/skipped-{_now()}.md",
            deadline=_deadline(release),
        )
        return [reason]
    return launch(
        settings,
        client,
        request,
        last=last,
        generation=generation,
        record_uri=record_uri,
        wait=release.wait,
        poll_seconds=release.poll_seconds,
        ws=ws,
    )


def move_schedules(release: Release) -> list[str]:
    """After a release, the pipeline's schedules run what was released: its spec and modules, and (for those
    that follow LATEST or a window) the newest data. A schedule already there is left alone."""
    release.settings.require(REQUIRED_SETTINGS["schedule.move"])
    from cicd_release.schedules import sync_schedules

    return sync_schedules(release.settings, release.storage_client())


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of the chain: its id (cloudbuild.yaml's step id and the plan's vocabulary) and its work."""

    name: str
    run: Callable[[Release], list[str]]


# The chain, in order. plan.STEPS names the same steps (the plan is pure and imports nothing of this).
STEPS = (
    Step("test", run_tests),
    Step("build.wheels", build_wheels),
    Step("build.image", build_image),
    Step("pipeline.compile", compile_spec),
    Step("modules.upload", upload_modules),
    Step("data.upload", upload_data),
    Step("pipeline.submit", submit_run),
    Step("schedule.move", move_schedules),
)
if tuple(s.name for s in STEPS) != plan_lib.STEPS:  # pragma: no cover - a bug caught at import
    raise RuntimeError("steps.STEPS and plan.STEPS name different chains: keep them the same.")


# `invoke plan --base :release`: diff against the commit of the last release (no git ref has a ':').
RELEASE_BASE = ":release"


def plan_release(release: Release, base: str | None, head: str = "HEAD") -> plan_lib.Plan:
    """The plan for `head`, then completed against what exists: what a later step needs and is missing
    (the image a compile names, the spec a submit reuses) is built in this run, not discovered on Vertex.

    With `base` ":release" the diff starts at the last released commit (the release record), not at the
    previous push: a push whose build was cancelled or failed is then part of the next build. No record
    means everything is built.
    """
    why_missing = None
    last = None
    if base == RELEASE_BASE:
        last, _, uri = release_record(release.settings, release.storage_client())
        base = last["commit"] if last else None
        why_missing = None if last else f"there is no release record at {uri} (the first release)"
    plan = plan_lib.make_plan(str(release.root), base, head, why_missing=why_missing)
    return complete_plan(release, plan, last)


def complete_plan(release: Release, plan: plan_lib.Plan, last: dict | None = None) -> plan_lib.Plan:
    """Adds the steps that make what the planned steps need and the registry or bucket does not hold."""
    steps, reasons = set(plan.steps), list(plan.reasons)
    if "pipeline.submit" in steps and "data.upload" not in steps:
        settings = release.settings
        try:
            snapshots.resolve(
                release.storage_client(), settings.resolved_data_root, deadline=_deadline(release)
            )
        except snapshots.MissingData as missing:
            steps.add("data.upload")
            reasons.append(f"data.upload added: nothing to train on yet ({missing}).")
    if "pipeline.submit" in steps and "pipeline.compile" not in steps:
        if last is None:
            last, _, _ = release_record(release.settings, release.storage_client())
        spec = last["inputs"]["spec"] if last else None
        if not spec or not storage_lib.blob_exists(
            release.storage_client(), spec, deadline=_deadline(release)
        ):
            steps.add("pipeline.compile")
            reasons.append(
                "pipeline.compile added: no released spec to reuse "
                f"({spec or 'no release record'}), so this build compiles one."
            )
    if "pipeline.compile" in steps and "build.image" not in steps:
        reference = image_reference(release.settings, release.root)
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


# The settings each step needs. Checked for every planned step before the first one runs, so a build never
# finds a missing setting after an earlier step has built or uploaded something.
REQUIRED_SETTINGS = {
    "test": (),
    "build.wheels": (),
    "build.image": ("image_repo", "image_name", "base_image"),
    # The spec names the serving container Model Registry records: without it every blessed run would end
    # FAILED in ModelRegistryUploader, an hour in.
    "pipeline.compile": ("project", "region", "bucket", "image_repo", "serving_image"),
    "modules.upload": ("bucket",),
    "data.upload": ("bucket",),
    "pipeline.submit": ("project", "region", "bucket", "image_repo", "service_account"),
    "schedule.move": ("project", "region", "bucket", "service_account"),
}


def check_settings(settings: Settings, plan: plan_lib.Plan) -> None:
    """Every setting any planned step needs is present (their format was checked when they were read)."""
    needed = sorted({name for step in plan.steps for name in REQUIRED_SETTINGS[step]})
    settings.require(needed)


def run_chain(release: Release, plan: plan_lib.Plan) -> None:
    """Runs the steps the plan needs, in order, saying each one's output and time."""
    check_settings(release.settings, plan)
    for step in STEPS:
        if not plan_lib.needs(plan, step.name):
            continue
        release.say(f"\n== {step.name}")
        started = time.monotonic()
        for line in step.run(release):
            release.say(line)
        release.say(f"== {step.name}: done in {time.monotonic() - started:.1f} s")


# ---------------------------------------------------------------------------------------------- helpers


def _compile_inputs(release: Release) -> dict:
    """What a compiled spec depends on: the compile's sources, the lock, the training config, the settings."""
    return {
        "sources": naming.content_digest(release.root, [*COMPILE_SOURCES, "requirements/lock.txt"]),
        "config": dataclasses.asdict(release.config),
        "settings": release.settings.model_dump(mode="json"),
    }


def current_modules(ws: Workspace) -> dict[str, str]:
    """The uploaded module URIs of .cicd/modules.json, checked against the files in the checkout now: each
    URI is named by its file's sha256, so a file edited (or a checkout moved) since the upload is refused."""
    import hashlib

    modules = ws.read_json(ws.modules_file, "modules.upload")
    for name, path in TRAINER_FILES.items():
        uri = modules.get(name, "")
        digest = hashlib.sha256((ws.root / path).read_bytes()).hexdigest()
        if f"/{digest}/" not in uri:
            raise ChainError(
                f"{ws.modules_file} names {uri or 'no upload'} for {path}, which does not hold the file in "
                "this checkout now: run `invoke modules.upload` again."
            )
    return modules


def released_modules(ws: Workspace, last: dict | None) -> dict[str, str]:
    """With no modules.upload in this build (a data change), the modules of the last release, checked
    against the checkout's files the same way: a file that differs needs `modules.upload`, never a guess."""
    import hashlib

    modules = (last or {}).get("inputs", {}).get("modules", {})
    for name, path in TRAINER_FILES.items():
        digest = hashlib.sha256((ws.root / path).read_bytes()).hexdigest()
        if f"/{digest}/" not in modules.get(name, ""):
            raise ChainError(
                f"{path} in this checkout is not the file the last release uploaded "
                f"({modules.get(name) or 'no release record'}): run `invoke modules.upload` first."
            )
    return dict(modules)


def _spec_for_run(release: Release, last: dict | None, record_uri: str) -> dict:
    ws = release.ws
    if ws.spec_file.exists():
        spec = ws.read_json(ws.spec_file, "pipeline.compile --upload")
        if spec.get("made_from") != _compile_inputs(release):
            raise ChainError(
                f"{ws.spec_file} was compiled from other sources, config or settings than this checkout's: "
                "run `invoke pipeline.compile --upload` again."
            )
        if spec.get("uri"):
            return spec
        raise ChainError(
            f"The spec in {ws.spec_file} was not uploaded: run `invoke pipeline.compile --upload`."
        )
    if last:
        return {"uri": last["inputs"]["spec"], "image": last["inputs"]["image"]}
    raise MissingReleaseInput(
        f"No spec compiled in this checkout and no release record at {record_uri}: the first release "
        "builds everything; run `invoke ci --base ''` (or `invoke pipeline.compile --upload` first)."
    )


def _compile_in_checkout(root: Path, arguments: dict) -> dict:
    """Runs the Vertex compile in a fresh interpreter with the checkout's pipeline and components first on the
    path, so the spec always comes from the sources being released (not a copy installed earlier)."""
    path = [str(root / p) for p in COMPILE_SOURCES]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="cicd-compile-") as tmp:
        args_file, out_file = Path(tmp, "args.json"), Path(tmp, "job.json")
        args_file.write_text(json.dumps(arguments))
        result = subprocess.run(
            [sys.executable, "-m", "cicd_pipeline.runners.vertex", str(args_file), str(out_file)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            tail = "\n".join(result.stderr.splitlines()[-30:])
            raise ChainError(f"Compiling the pipeline of {root} failed (exit {result.returncode}):\n{tail}")
        return json.loads(out_file.read_text())


def _write_once(path: Path, text: str) -> Path:
    """Writes `path` unless it holds `text` already; different content there is an error, never replaced."""
    if path.exists():
        if path.read_text() != text:
            raise ChainError(f"{path} exists with other content; specs are never overwritten: remove it.")
        return path
    return atomic_write(path, text)


def inside_checkout(root: Path, relative: str) -> Path:
    """`root/relative`, refused when it is a link or resolves outside the checkout (nothing else is released)."""
    path = root / relative
    if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
        raise ChainError(
            f"{relative} is a symlink or resolves outside the checkout ({path.resolve()}): only the "
            "repository's own files are released. Replace it with the file itself."
        )
    return path


def _deadline(release: Release) -> float:
    """How long a storage or Vertex call may retry before it fails in one line (cicd.request_deadline_seconds)."""
    return float(release.settings.request_deadline_seconds)
