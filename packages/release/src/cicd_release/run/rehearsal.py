"""`pipeline.rehearse`: the spec the chain would submit, run end to end here first, with the run's own inputs.

The launcher is ``cicd_pipeline.rehearsal``; this module gives it what ``pipeline.submit`` would give Vertex:

- the runtime parameters exactly as a run gets them: ``run_parameters`` is the one call of the run's own
  builder (``RunRequest.parameters``: module files, schema, holdout folder, data root, hyperparameters, model
  labels), with the values pointing at content-addressed copies of the checkout's trainer files and data: in a
  local folder (``local_stage``) or under ``gs://BUCKET/rehearsals/<pipeline>/`` (``bucket_stage``, what the
  build does, so the bucket's permissions are exercised by the tasks' own reads and writes);
- the places a run writes outside its pipeline root moved aside (``targets``): a ``gs://BUCKET/`` the spec
  names (the serving folder Pusher pushes to) to the rehearsal's own folder, and the Vertex Model Registry to
  a local registry (``local:<folder>``, a ``registry.json``: the uploader's other mode). A rehearsal never
  pushes a serving model, nor registers one in Vertex;
- where the tasks run (``choose_runner``): inside the image the spec names, through the container engine
  when one answers and has (or can pull) the image, else in this environment; the first line says which.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from cicd_release.core.errors import InputError, RehearsalError, ReleaseError
from cicd_release.publish.snapshots import RunData, dataset_name, folder_digest

REHEARSALS = "rehearsals"  # gs://BUCKET/rehearsals/<pipeline>/: a bucket rehearsal's inputs and outputs
RUNNERS = ("auto", "container", "local")
_BUCKET = re.compile(r"gs://([a-z0-9][a-z0-9._-]*)/")
_VERTEX_REGISTRY = re.compile(r"^vertex:projects/[^/]+/locations/[^/]+$")


@dataclasses.dataclass(frozen=True)
class Stage:
    """Where a rehearsal runs and what it is given."""

    pipeline_root: str
    parameters: dict[str, str]
    rewrites: tuple[tuple[str, str], ...]
    data: RunData


def run_parameters(
    modules: dict[str, str], data: RunData, hyperparameters: str, commit: str, versions: dict[str, str]
) -> dict[str, str]:
    """The runtime parameters exactly as ``pipeline.submit`` builds them for a run (the one call of its builder,
    which moves with the release package: keep this the only one)."""
    from cicd_release.run.launch import RunRequest

    request = RunRequest(
        spec="(rehearsal)",
        image="(rehearsal)",
        modules=dict(modules),
        data=data,
        hyperparameters=hyperparameters,
        commit=commit,
        versions=dict(versions),
        trigger="rehearsal",
    )
    return request.parameters()


def targets(job, bucket_folder: Callable[[str], str], registry: str) -> tuple[tuple[str, str], ...]:
    """(old prefix, new prefix) for every bucket the spec's constants name and its Vertex Model Registry."""
    rewrites: dict[str, str] = {}
    for _, _, value in job.string_constants():
        for bucket in _BUCKET.findall(value):
            rewrites[f"gs://{bucket}/"] = bucket_folder(bucket)
        if _VERTEX_REGISTRY.match(value):
            rewrites[value] = registry
    return tuple(sorted(rewrites.items()))


def _local_data(source: Path, folder: Path) -> RunData:
    """``source``'s files copied once into ``folder/<name>/<digest>/`` (a content-addressed folder, like a
    snapshot: an unchanged data set keeps its path and its files' times, so ExampleGen's fingerprint holds)."""
    digest = folder_digest(source)
    name = dataset_name(str(source))
    target = folder / name / digest
    files = sorted(p for p in source.iterdir() if p.is_file())
    if not target.is_dir():
        tmp = target.with_name(f".{digest}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for path in files:
            shutil.copyfile(path, tmp / path.name)
        os.replace(tmp, target)
    return RunData(uri=str(target), digest=digest, name=name, kind="folder", files=len(files))


def local_stage(layout, job, *, files, data_source, hyperparameters, commit, versions) -> Stage:
    """Inputs as content-addressed copies under the layout's folder, the pipeline root beside them."""
    from cicd_pipeline.runners.local import content_addressed_copy

    modules = {
        name: str(content_addressed_copy(Path(path), layout.inputs_dir)) for name, path in files.items()
    }
    data = _local_data(Path(data_source), layout.inputs_dir / "data")
    rewrites = targets(job, lambda bucket: f"{layout.bucket(bucket)}/", f"local:{layout.registry_dir}")
    parameters = run_parameters(modules, data, hyperparameters, commit, versions)
    return Stage(str(layout.pipeline_root), parameters, rewrites, data)


def rehearsal_prefix(settings) -> str:
    return f"{settings.bucket_uri}/{REHEARSALS}/{settings.pipeline_name}"


def bucket_stage(
    layout, job, client, settings, *, files, data_source, hyperparameters, commit, versions
) -> Stage:
    """Inputs uploaded content-addressed under ``gs://BUCKET/rehearsals/<pipeline>/``, the pipeline root and
    the spec's bucket folders there too: every task reads and writes the real bucket."""
    from cicd_release.publish import snapshots
    from cicd_release.publish import storage as storage_lib

    prefix = rehearsal_prefix(settings)
    deadline = float(settings.request_deadline_seconds)
    modules = storage_lib.upload_content_addressed(
        client, f"{prefix}/modules", {name: Path(path) for name, path in files.items()}, deadline=deadline
    )
    source = Path(data_source)
    uploaded = snapshots.upload_snapshot(
        client,
        f"{prefix}/data/{dataset_name(str(source))}",
        source,
        Path(files["schema_file"]),
        deadline=deadline,
    )
    shot = uploaded.snapshot
    data = RunData(
        uri=shot.uri,
        digest=shot.sha256,
        name=shot.name,
        kind="snapshot",
        rows=shot.rows,
        files=len(shot.files),
    )
    rewrites = targets(job, lambda bucket: f"{prefix}/gs/{bucket}/", f"local:{layout.registry_dir}")
    parameters = run_parameters(modules, data, hyperparameters, commit, versions)
    return Stage(f"{prefix}/pipeline_root", parameters, rewrites, data)


def choose_runner(
    choice: str,
    images: list[str],
    *,
    mounts: tuple[str, ...],
    network: str | None,
    local_env: dict[str, str],
    auth: Callable[[str], dict | None] | None = None,
):
    """(runner, why): the container engine for ``auto`` when it answers and has the spec's images (or pulls
    them), else this environment, ``why`` saying what was missing; ``container`` insists on the engine."""
    from cicd_pipeline.rehearsal.runners import (
        ContainerRunner,
        EngineUnavailable,
        SubprocessRunner,
        connect,
        engine_host,
    )

    if choice not in RUNNERS:
        raise InputError(f"--runner {choice!r} is not one of {', '.join(RUNNERS)}.")
    if choice == "local":
        return SubprocessRunner(local_env), "(--runner local)"
    host = engine_host()
    try:
        runner = ContainerRunner(connect(host), mounts=mounts, network=network, host=host or "")
        for image in images:
            runner.prepare(image, auth)
        return runner, ""
    except EngineUnavailable as why:
        if choice == "container":
            raise RehearsalError(f"--runner container: {why}.") from None
        return SubprocessRunner(local_env), f"not in the image: {why}"


def spec_images(job) -> list[str]:
    return sorted({t.container.get("image", "") for t in job.tasks.values() if t.kind == "container"} - {""})


@dataclasses.dataclass(frozen=True)
class Request:
    """What to rehearse and how; the task (or the chain's step) fills it from flags and settings."""

    spec: Path
    state: Path  # the local state folder (store, logs, reports, local inputs)
    files: dict[str, Path]  # the trainer's files by pipeline parameter name
    data_source: Path
    hyperparameters: str
    commit: str
    versions: dict[str, str]
    in_bucket: bool = False
    runner: str = "auto"
    network: str | None = None
    cache: bool = True
    parallel: int = 1
    fresh: bool = False
    local_pythonpath: tuple[str, ...] = ()  # first on a local run's path: the checkout's components
    threshold: float | None = None
    tolerance: float | None = None


def parallel_default() -> int:
    """Vertex runs independent tasks side by side; here each is a process whose first seconds import TFX on
    one core: as many at once as there are cores, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def checkout_request(
    root: Path,
    settings,
    config,
    *,
    spec: Path | None = None,
    state: Path | None = None,
    in_bucket: bool = False,
    hyperparameters: str | None = None,
    data_root: Path | None = None,
    **options,
) -> Request:
    """What ``pipeline.rehearse`` rehearses in the checkout at ``root``: the spec ``pipeline.compile`` wrote
    last (``.cicd/spec.json``), the checkout's trainer files and its sample of the data set (``data/<name>``),
    the training config's hyperparameters. ``options``: the other fields of Request (runner, cache, ...)."""
    from cicd_pipeline.run_inputs import TRAINER_FILES
    from cicd_release import steps
    from cicd_release.artifacts import naming
    from cicd_release.artifacts.compile import COMPILE_SOURCES
    from cicd_release.core import git as git_lib
    from cicd_release.core.workspace import Workspace

    ws = Workspace(root)
    if spec is None:
        if not ws.spec_file.exists():
            raise InputError(
                f"No compiled spec to rehearse: {ws.spec_file} does not exist. Run `invoke pipeline.compile` "
                "(or pass --spec PATH)."
            )
        spec = Path(ws.read_json(ws.spec_file, "pipeline.compile")["local"])
    if data_root is None:
        # The checkout's data folder is data/<cicd.dataset>, whatever the bucket's data_root says.
        data_root = root / steps.DATA_DIR / settings.dataset
    if not Path(data_root).is_dir():
        raise InputError(
            f"No data folder {data_root} to rehearse on: pass --data-root DIR (a folder of CSV files)."
        )
    try:
        commit = git_lib.head_commit(root)
    except ReleaseError:  # a copy of the sources without git history rehearses all the same
        commit = "uncommitted"
    options.setdefault("parallel", parallel_default())
    options.setdefault("local_pythonpath", tuple(str(root / p) for p in COMPILE_SOURCES))
    return Request(
        spec=Path(spec).resolve(),
        state=Path(state or ws.out / "rehearsal").resolve() / ("bucket" if in_bucket else "local"),
        files={name: steps.inside_checkout(root, path) for name, path in TRAINER_FILES.items()},
        data_source=Path(data_root).resolve(),
        hyperparameters=hyperparameters or config.hyperparameters,
        commit=commit,
        versions=naming.versions(root),
        in_bucket=in_bucket,
        threshold=config.threshold,
        tolerance=config.regression_tolerance,
        **options,
    )


def rehearse_step(ctx) -> list[str]:
    """The chain's ``pipeline.rehearse`` (``invoke ci``), given a ``steps.StepContext``: the spec just
    compiled, in the bucket, its tasks in the spec's image when the engine has it. ``--skip-tests`` skips it
    too: it is a check, and builds nothing."""
    if ctx.skip_tests:
        return ["pipeline.rehearse: skipped (--skip-tests)"]
    from cicd_release.artifacts.image import registry_auth

    request = checkout_request(
        ctx.root,
        ctx.settings,
        ctx.config,
        in_bucket=True,
        hyperparameters=ctx.hyperparameters,
    )
    return rehearse(request, settings=ctx.settings, client=ctx.storage_client(), auth=registry_auth)


def rehearse(
    request: Request, *, settings=None, client=None, auth=None, out: TextIO = sys.stdout, live=None
) -> list[str]:
    """Runs the rehearsal; returns the verdict's lines. RehearsalError (one line naming the task and the cause,
    and the report's path) when a task fails or the spec cannot run: nothing is submitted."""
    from cicd_pipeline.rehearsal.session import Failed, RehearsalLayout, run_id, run_rehearsal
    from cicd_pipeline.rehearsal.spec import PipelineJob, SpecError

    try:
        job = PipelineJob.from_file(request.spec)
    except SpecError as err:
        raise InputError(str(err)) from None
    if request.fresh and request.state.exists():
        shutil.rmtree(request.state)
    layout = RehearsalLayout(request.state)
    request.state.mkdir(parents=True, exist_ok=True)
    local_env = {**os.environ}
    if request.local_pythonpath:
        local_env["PYTHONPATH"] = os.pathsep.join(
            [*request.local_pythonpath, os.environ.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
    # Where the tasks run is said first, before anything is copied or uploaded.
    runner, why = choose_runner(
        request.runner,
        spec_images(job),
        mounts=() if request.in_bucket else (str(layout.root),),
        network=request.network,
        local_env=local_env,
        auth=auth,
    )
    out.write(
        f"rehearsing {request.spec} ({len(job.tasks)} tasks) {runner.where}"
        + (f"; {why}" if why else "")
        + "\n"
    )
    out.flush()
    inputs = dict(
        files=request.files,
        data_source=request.data_source,
        hyperparameters=request.hyperparameters,
        commit=request.commit,
        versions=request.versions,
    )
    stage = (
        bucket_stage(layout, job, client, settings, **inputs)
        if request.in_bucket
        else local_stage(layout, job, **inputs)
    )
    try:
        job, moved = job.retargeted(list(stage.rewrites))
        if not request.in_bucket:
            _refuse_cloud_constants(job)
    except SpecError as err:
        raise RehearsalError(f"Rehearsal refused the spec (nothing ran): {err}") from None
    out.write(
        f"  pipeline root: {stage.pipeline_root}\n  data: {stage.data.uri}\n"
        + "".join(f"  moved aside: {line}\n" for line in moved)
    )
    out.flush()
    try:
        done = run_rehearsal(
            job,
            parameters=stage.parameters,
            pipeline_root=stage.pipeline_root,
            layout=layout,
            runner=runner,
            run_id=run_id(job.pipeline_name),
            out=out,
            live=live,
            cache=request.cache,
            parallel=request.parallel,
            threshold=request.threshold,
            tolerance=request.tolerance,
        )
    except SpecError as err:
        raise RehearsalError(f"Rehearsal refused the spec (nothing ran): {err}") from None
    except Failed as failed:
        raise RehearsalError(f"{failed}\nNothing was submitted.") from None
    finally:
        runner.close()  # the local runner's warm interpreter ends with the rehearsal
    lines = [done.text]
    if done.report:
        lines.append(f"HTML report: {done.report}")
    states = list(done.outcome.states.values())
    lines.append(
        f"rehearsed {request.spec.name}: every task succeeded {runner.where} ({states.count('COMPLETE')} ran, "
        f"{states.count('CACHED')} from the cache); nothing was submitted."
    )
    return lines


def _refuse_cloud_constants(job) -> None:
    from cicd_pipeline.rehearsal.spec import SpecError

    for task, key, value in job.string_constants():
        found = re.search(r"(gs://[^\s\"']*|vertex:\S*)", value)
        if found:
            raise SpecError(
                f"task {task}: parameter {key} names {found.group(1)}, which a local rehearsal cannot reach: "
                "rehearse in the bucket (--in-bucket)."
            )
