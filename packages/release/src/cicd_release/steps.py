"""The release chain's steps over a checkout, and the one table of them that `invoke ci`, the single `invoke`
tasks and cloudbuild.yaml's steps all follow.

Each step takes a `StepContext` (the checkout, the validated settings and training config, the options) and
returns what it made, for the task to print. Steps hand results to later steps through `.cicd/` files
(workspace.py): a Cloud Build step is its own container. The table (`STEPS`, keyed by changes.STEPS, the one
step vocabulary) says for each step the settings it needs, checked once before the first step does anything,
and the steps whose results it uses: steps that use nothing of each other run side by side, here in
`run_chain` as in cloudbuild.yaml (`waitFor`).

Content decides what runs: the spec is named by its compiled bytes, modules and data by theirs, and
`pipeline.submit` starts a run only when something the run consumes differs from what the last release ran
(the release record: release_state.py).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

# The trainer's files that runs use, by name, as repository paths: the run's contract names them.
from cicd_pipeline.run_inputs import TRAINER_FILES
from cicd_release.artifacts import compile as compile_lib
from cicd_release.artifacts import image as image_lib
from cicd_release.artifacts import naming
from cicd_release.artifacts import wheels as wheels_lib
from cicd_release.artifacts.naming import image_reference, versions
from cicd_release.core import git as git_lib
from cicd_release.core import scale, sources
from cicd_release.core import workspace as workspace_lib
from cicd_release.core.errors import InputError, MissingRelease, ReleaseError
from cicd_release.core.settings import Settings
from cicd_release.core.workspace import Workspace, atomic_write
from cicd_release.plan import changes as plan_lib
from cicd_release.plan import release_state
from cicd_release.publish import snapshots
from cicd_release.publish import storage as storage_lib
from cicd_release.run.launch import RunRequest, launch, resolve_data
from cicd_release.run.rehearsal import rehearse_step

PACKAGES = naming.PACKAGES  # the one package map: plan/changes.py
DOCKERFILE = "docker/Dockerfile"
# What the chain's `test` step (and `invoke test`) runs: lint and every package's unit tests.
TEST_SESSIONS = ("lint", "tests")
# Vertex AI keeps label values to 63 characters; 16 hex digits name a content digest well enough there.
# The training data sets in the checkout: data/<set name>/, the set name being the data root's last folder.
DATA_DIR = "data"

__all__ = [
    "image_reference",
    "versions",
]  # found here by tasks and tests


@dataclasses.dataclass
class StepContext:
    """What every step works from. `config` is the training config (cicd_pipeline.config.TrainingConfig).

    `storage_client` is called in the thread of each step that talks to storage: under `run_chain` steps run
    side by side, and the tasks' factory makes one client per thread (a client's HTTP session is not
    thread-safe).
    """

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
    follow_seconds: float | None = None  # a followed run is left, still running, after this long
    skip_tests: bool = False
    test_sessions: tuple[str, ...] = TEST_SESSIONS
    # data.upload: the folder to snapshot (default data/<set> of the checkout), the data set in the bucket
    # (default cicd.data_root) and the date to file it under (windows), if any.
    data_source: Path | None = None
    dataset: str | None = None
    data_date: str | None = None
    # Upload, build and submit from a working tree with uncommitted changes (a local experiment): the run's
    # labels and the release record then say `dirty`.
    allow_dirty: bool = False

    @property
    def root(self) -> Path:
        return self.ws.root

    @property
    def dirty(self) -> bool:
        """Whether the working tree differs from HEAD (asked only when dirty trees are allowed at all)."""
        return self.allow_dirty and bool(git_lib.changed_paths(self.root))

    def check_settings(self, steps: Iterable[str]) -> None:
        """Every setting these steps need is set (SettingsError, exit 2, naming the first that is not)."""
        check_settings(self.settings, steps)

    def check_clean(self, steps: Iterable[str], table: Mapping[str, Step] | None = None) -> None:
        """No step of these that releases what the checkout holds runs on uncommitted changes (InputError,
        exit 2, naming them), unless `allow_dirty`: an edit released under HEAD's commit id and label is
        never traced to code, and once reverted the plan from that commit never trains the committed file."""
        table = STEPS if table is None else table
        if self.allow_dirty or not any(table[step].checkout for step in steps):
            return
        changed = git_lib.changed_paths(self.root)
        if changed:
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            raise InputError(
                f"The working tree has uncommitted changes ({shown}): commit or stash them, so what is "
                "uploaded, built and run is the commit it is labelled with; or pass --allow-dirty for a local "
                "experiment (its labels and the release record then say dirty)."
            )


def local_version(root: Path, package: str) -> str:
    """`g<sha12>` for a clean package, plus `.dirty<hash>` when its files differ from the commit."""
    local = f"g{git_lib.head_commit(root)[:12]}"
    package_dir = f"packages/{package}"
    if git_lib.is_dirty(root, [package_dir]):
        local += f".dirty{naming.content_digest(root, [package_dir])[:8]}"
    return local


# ---------------------------------------------------------------------------------------------- the steps
# Each assumes its settings were checked (run_chain, or the task through run_step): none asks again.


def run_tests(ctx: StepContext) -> list[str]:
    """Lint and every package's unit tests, each in its own nox session."""
    if ctx.skip_tests:
        return ["test: skipped (--skip-tests)"]
    command = ["nox", "-s", *ctx.test_sessions]
    # The test step runs alone (every other step waits for it): nox's own output goes straight to the terminal.
    if subprocess.run(command, cwd=ctx.root, check=False).returncode:
        raise ReleaseError(f"`{' '.join(command)}` failed: the tests above say what broke.")
    return [f"test: `{' '.join(command)}` passed"]


def build_wheels(ctx: StepContext, packages: tuple[str, ...] = PACKAGES, final: bool = False) -> list[str]:
    """One wheel per package in dist/; a non-release build carries the commit in its local version."""
    root = ctx.root
    # Later steps take the wheel's path from here instead of rebuilding its file name (read first: a corrupt
    # one stops the step before it builds anything).
    known = ctx.ws.read_json(ctx.ws.wheels_file, "build.wheels") if ctx.ws.wheels_file.exists() else {}
    built = {
        p: wheels_lib.build_wheel(
            root / "packages" / p, ctx.ws.dist, None if final else local_version(root, p)
        )
        for p in packages
    }
    ctx.ws.write_json(ctx.ws.wheels_file, {**known, **{p: str(w) for p, w in built.items()}})
    return [str(w) for w in built.values()]


def build_image(ctx: StepContext) -> list[str]:
    """Builds (and pushes) the components image from a context of the Dockerfile and the components wheel."""
    ws, settings = ctx.ws, ctx.settings
    wheels = ws.read_json(ws.wheels_file, "build.wheels")
    reference = image_reference(settings, ws.root)
    if "components" not in wheels or not Path(wheels["components"]).is_file():
        raise ReleaseError(
            f"No components wheel recorded in {ws.wheels_file}: run `invoke build.wheels` first."
        )
    if ctx.push and image_lib.image_exists(reference, image_lib.registry_auth(reference)):
        # The tag names the content: the image is there, and rebuilding would move the tag to new bytes
        # (refused outright where Artifact Registry's immutable tags are on).
        ws.write_json(ws.image_file, {"image": reference, "tags": [reference], "pushed": {}, "existed": True})
        return [f"{reference}: already in the registry (its tag names its content): not rebuilt"]
    extra = [f"{reference.rsplit(':', 1)[0]}:{tag}" for tag in ctx.extra_tags]
    context = ws.out / "image-context"
    shutil.rmtree(context, ignore_errors=True)
    image_lib.prepare_context(context, inside_checkout(ws.root, DOCKERFILE), [Path(wheels["components"])])
    result = image_lib.build_image(
        context_dir=context,
        tag=reference,
        extra_tags=extra,
        push=ctx.push,
        # Asked right before the base pull and each push: a token fetched before a long build can expire.
        auth_config=image_lib.registry_auth if ctx.push else None,
        build_args={
            "BASE_IMAGE": settings.base_image,
            "COMPONENTS_VERSION": versions(ws.root)["components"],
            "GIT_COMMIT": git_lib.head_commit(ws.root) + ("-dirty" if ctx.dirty else ""),
        },
    )
    ws.write_json(
        ws.image_file, {"image": reference, "tags": result["tags"], "pushed": result.get("pushed", {})}
    )
    return [reference]


def compile_spec(ctx: StepContext, upload: bool = True) -> list[str]:
    """Compiles the Vertex spec from the checkout's sources and names it by its bytes; uploads it (never over
    another object) unless `upload` is False. Records name, URI and image in .cicd/spec.json for submit.

    It names the image by content (naming.image_reference) and needs no image built: it runs beside
    build.image, and pipeline.submit waits for both."""
    ws, settings = ctx.ws, ctx.settings
    reference = image_reference(settings, ws.root)
    job = compile_lib.compile_in_checkout(
        ws.root,
        {
            "config": dataclasses.asdict(ctx.config),
            "pipeline_root": settings.pipeline_root,
            "serving_model_dir": settings.serving_model_dir,
            "registry": settings.registry,
            "image": reference,
            "serving_image": settings.serving_image or None,
            # None unless cicd.beam_runner=dataflow: then every Beam component runs as a Dataflow job.
            "dataflow": scale.dataflow_options(settings),
            # None unless cicd.trainer_backend=vertex: then the Trainer runs as a Vertex AI custom job.
            "trainer_backend": scale.trainer_backend_options(settings),
            # None unless cicd.source=bigquery: then BigQueryExampleGen reads each run's query.
            "bigquery": sources.bigquery_options(settings),
        },
    )
    name = naming.spec_name(ctx.config.pipeline_name, versions(ws.root)["pipeline"], job)
    local = _write_once(ws.specs_dir / name, json.dumps(job, indent=2, sort_keys=True) + "\n")
    uri = None
    if upload:
        uri = storage_lib.upload_immutable(
            ctx.storage_client(), local, f"{settings.specs_prefix}/{name}", deadline=_deadline(ctx)
        )
    ws.write_json(
        ws.spec_file,
        {
            "name": name,
            "uri": uri,
            "image": reference,
            "local": str(local),
            # What it was made from: submit refuses it once the checkout or the settings differ.
            "made_from": compile_lib.compile_inputs(ws.root, ctx.config, settings),
        },
    )
    return [str(local), *([uri] if uri else [])]


def upload_modules(ctx: StepContext) -> list[str]:
    """Uploads the trainer files content-addressed (never overwriting); records the URIs for submit."""
    files = {name: inside_checkout(ctx.root, path) for name, path in TRAINER_FILES.items()}
    uris = storage_lib.upload_content_addressed(
        ctx.storage_client(), ctx.settings.modules_prefix, files, deadline=_deadline(ctx)
    )
    ctx.ws.write_json(ctx.ws.modules_file, uris)
    return [f"{name}: {uri}" for name, uri in uris.items()]


def upload_data(ctx: StepContext) -> list[str]:
    """Checks the data folder (exit 4 with file:line when it is bad: nothing is uploaded), uploads it as a
    content-addressed snapshot and moves LATEST to it; then schedules that follow LATEST move to it too."""
    settings = ctx.settings
    dataset = ctx.dataset or settings.resolved_data_root
    source = ctx.data_source or inside_checkout(ctx.root, f"{DATA_DIR}/{snapshots.dataset_name(dataset)}")
    if not source.is_dir():
        raise ReleaseError(
            f"No data folder {source} to upload for the data set {dataset}: put its CSV files there, or pass "
            "--source DIR."
        )
    schema = inside_checkout(ctx.root, TRAINER_FILES["schema_file"])
    uploaded = snapshots.upload_snapshot(
        ctx.storage_client(), dataset, source, schema, date=ctx.data_date, deadline=_deadline(ctx)
    )
    try:
        followed = follow_data(ctx)
    except ReleaseError as err:
        # The upload stands: say so, or a re-run looks needed for data that is in the bucket already.
        moved = "LATEST moved to it" if uploaded.latest_moved else "LATEST already pointed at it"
        said = copy.copy(err)  # the same class, so the same exit code and name
        said.args = (
            f"The snapshot {uploaded.snapshot.uri} was uploaded and {moved}; then moving the schedules that "
            f"follow LATEST failed: {err} Once that is fixed, `invoke schedule.move` moves them (uploading "
            "again is not needed).",
        )
        raise said from err
    return uploaded.lines() + followed


def follow_data(ctx: StepContext) -> list[str]:
    """Schedules that follow LATEST (or a window) are moved to the data just uploaded. Needs what moving
    schedules needs (schedule.move's settings); without them the upload says so instead of guessing."""
    settings = ctx.settings
    if not all(getattr(settings, name) for name in STEPS["schedule.move"].requires):
        return [
            "schedules: not checked (set cicd.project, cicd.region and cicd.service_account to move "
            "schedules that follow LATEST to this snapshot)"
        ]
    from cicd_release.run.schedules import sync_schedules

    return sync_schedules(settings, ctx.storage_client())


def submit_run(ctx: StepContext) -> list[str]:
    """Submits a Vertex AI run, unless everything it consumes is what the last release ran (then says so).

    The spec is the one `pipeline.compile` made in this build or, when the plan did not compile (a trainer
    or data change), the spec of the last release; the data is the data set's LATEST snapshot (or, with
    cicd.source=bigquery, the whole table, named by the query and the table's state). After the
    submit, the release record moves to this run.
    """
    ws, settings, config = ctx.ws, ctx.settings, ctx.config
    # The hand-off files first: a corrupt one stops the step before any request.
    for path, made_by in ((ws.spec_file, "pipeline.compile --upload"), (ws.modules_file, "modules.upload")):
        if path.exists():
            ws.read_json(path, made_by)
    client = ctx.storage_client()
    last = release_state.read_record(settings, client)
    released = last.inputs if last.exists else None
    made_from = compile_lib.compile_inputs(ws.root, config, settings)
    spec = workspace_lib.spec_for_run(ws, made_from, released, last.uri)
    if not storage_lib.blob_exists(client, spec["uri"], deadline=_deadline(ctx)):
        raise MissingRelease(
            f"The spec {spec['uri']} is not in the bucket: run `invoke pipeline.compile --upload`."
        )
    data = resolve_data(settings, client)
    commit = git_lib.head_commit(ws.root)
    modules = (
        workspace_lib.current_modules(ws, TRAINER_FILES)
        if ws.modules_file.exists()
        else workspace_lib.released_modules(ws, TRAINER_FILES, released and released.get("modules"))
    )
    dirty = ctx.dirty
    request = RunRequest(
        spec=spec["uri"],
        image=spec["image"],
        modules=modules,
        data=data,
        hyperparameters=ctx.hyperparameters or config.hyperparameters,
        commit=commit,
        versions=versions(ws.root),
        trigger="release",
        dirty=dirty,
    )
    if last.ran(request) and not ctx.force:
        return release_state.skip_unchanged(settings, client, last, commit, ws, dirty)
    return launch(
        settings,
        client,
        request,
        last=last,
        wait=ctx.wait,
        poll_seconds=ctx.poll_seconds,
        follow_seconds=ctx.follow_seconds,
        ws=ws,
    )


def move_schedules(ctx: StepContext) -> list[str]:
    """After a release, the pipeline's schedules run what was released: its spec and modules, and (for those
    that follow LATEST or a window) the newest data. A schedule already there is left alone."""
    from cicd_release.run.schedules import sync_schedules

    return sync_schedules(ctx.settings, ctx.storage_client())


# ---------------------------------------------------------------------------------------------- the table

# Where a run of the released spec starts, and as whom: what submit, a moved schedule and a retrain all need;
# and the repository the released image must come from (release_state checks the record against it).
RUN_SETTINGS = ("project", "region", "bucket", "service_account", "image_repo")


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of the chain: its id (cloudbuild.yaml's step id and the plan's vocabulary), its work, the
    settings it needs (`requires`) and the steps whose results it uses (`after`): it starts once those of
    them that are planned are done, and cloudbuild.yaml's `waitFor` says the same."""

    name: str
    run: Callable[[StepContext], list[str]]
    requires: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    checkout: bool = False  # releases what the working tree holds: refused on uncommitted changes


# The chain, keyed by changes.STEPS (the plan is pure and imports nothing of this). Every step after the tests
# waits for them: nothing is uploaded for a commit whose tests fail.
STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step("test", run_tests),
        Step("build.wheels", build_wheels, after=("test",), checkout=True),
        # The image is built from the components wheel.
        Step(
            "build.image",
            build_image,
            ("image_repo", "image_name", "base_image"),
            after=("build.wheels",),
            checkout=True,
        ),
        # The spec names the image by content and the serving container Model Registry records: without
        # that every blessed run would end FAILED in ModelRegistryUploader, an hour in.
        Step(
            "pipeline.compile",
            compile_spec,
            ("project", "region", "bucket", "image_repo", "image_name", "serving_image"),
            after=("test",),
            checkout=True,
        ),
        # The compiled spec run end to end here, in the image it names, before Vertex pays for it; under
        # gs://BUCKET/rehearsals/ its tasks' reads and writes exercise the bucket's permissions.
        Step(
            "pipeline.rehearse",
            rehearse_step,
            ("bucket",),
            after=("build.image", "pipeline.compile"),
            checkout=True,
        ),
        Step("modules.upload", upload_modules, ("bucket",), after=("test",), checkout=True),
        Step("data.upload", upload_data, ("bucket",), after=("test",), checkout=True),
        # A run needs its image pushed, its spec rehearsed and uploaded, its modules uploaded, and its data in
        # the bucket.
        Step(
            "pipeline.submit",
            submit_run,
            RUN_SETTINGS,
            after=("build.image", "pipeline.compile", "pipeline.rehearse", "modules.upload", "data.upload"),
            checkout=True,
        ),
        Step("schedule.move", move_schedules, RUN_SETTINGS, after=("pipeline.submit",)),
    )
}


def required_settings(steps: Iterable[str], table: Mapping[str, Step] = STEPS) -> tuple[str, ...]:
    """The settings these steps need, sorted (an unknown step is a bug: KeyError)."""
    return tuple(sorted({name for step in steps for name in table[step].requires}))


def check_settings(settings: Settings, steps: Iterable[str], table: Mapping[str, Step] = STEPS) -> None:
    """Every setting these steps need is present (their format was checked when they were read)."""
    steps = list(steps)
    settings.require(required_settings(steps, table))
    # A switch that is on (Dataflow, Vertex AI Training) makes the compile name where and as whom it runs.
    if "pipeline.compile" in steps:
        settings.require(scale.compile_needs(settings))


def waits_for(step: str, planned: Iterable[str], table: Mapping[str, Step] = STEPS) -> set[str]:
    """The planned steps `step` must wait for: those it uses, and through a step that is not planned, the ones
    that step would have waited for (a data-only plan's submit waits for data.upload, and so for the tests)."""
    planned = set(planned)
    found: set[str] = set()
    for before in table[step].after:
        found |= {before} if before in planned else waits_for(before, planned, table)
    return found


def run_chain(ctx: StepContext, plan: plan_lib.Plan, table: Mapping[str, Step] = STEPS) -> None:
    """Runs the steps the plan needs, each as soon as the planned steps it waits for are done: independent
    steps side by side, in threads (they wait on subprocesses, the registry and the network, not on Python).

    Each step's output is said together when it ends, every line prefixed with the step's name, then its
    time. The first failure stops the chain: no other step starts, those running finish, and it is raised.
    """
    check_settings(ctx.settings, plan.steps, table)
    ctx.check_clean(plan.steps, table)
    pending = [name for name in plan_lib.STEPS if plan_lib.needs(plan, name)]
    waits = {name: waits_for(name, pending, table) for name in pending}
    lock = threading.Lock()
    done: set[str] = set()
    running: dict[Future, str] = {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max(len(pending), 1), thread_name_prefix="step") as pool:
        while pending or running:
            ready = [name for name in pending if waits[name] <= done] if failure is None else []
            for name in ready:
                pending.remove(name)
                running[pool.submit(_run_one, ctx, table[name], lock)] = name
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done.add(running.pop(future))
                if future.exception() is not None and failure is None:
                    failure = future.exception()
    if failure is not None:
        raise failure


def _run_one(ctx: StepContext, step: Step, lock: threading.Lock) -> None:
    """One step of run_chain: its name when it starts, then its lines, prefixed, and its time, together."""
    with lock:
        ctx.say(f"\n== {step.name}")
    started = time.monotonic()
    lines: list[str] = []
    status = "failed"
    try:
        lines = step.run(ctx)
        status = "done"
    finally:
        with lock:
            for line in lines:
                for part in str(line).splitlines() or [""]:
                    ctx.say(f"{step.name} | {part}")
            ctx.say(f"== {step.name}: {status} in {time.monotonic() - started:.1f} s")


# ---------------------------------------------------------------------------------------------- helpers


def _write_once(path: Path, text: str) -> Path:
    """Writes `path` unless it holds `text` already; different content there is an error, never replaced."""
    if path.exists():
        if path.read_text() != text:
            raise ReleaseError(f"{path} exists with other content; specs are never overwritten: remove it.")
        return path
    return atomic_write(path, text)


def inside_checkout(root: Path, relative: str) -> Path:
    """`root/relative`, refused when it is a link or resolves outside the checkout (nothing else is released)."""
    path = root / relative
    if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
        raise ReleaseError(
            f"{relative} is a symlink or resolves outside the checkout ({path.resolve()}): only the "
            "repository's own files are released. Replace it with the file itself."
        )
    return path


def _deadline(ctx: StepContext) -> float:
    """How long a storage or Vertex call may retry before it fails in one line (cicd.request_deadline_seconds)."""
    return float(ctx.settings.request_deadline_seconds)
