"""`invoke pipeline.rehearse`: the compiled Vertex spec run end to end on this machine before Vertex pays for it."""

from __future__ import annotations

from pathlib import Path

from invoke import Exit, task

from tasks._common import (
    DATA_ROOT_HELP,
    PLANNED_HELP,
    ROOT,
    dataset_folder,
    guard,
    settings,
    skip_unless_planned,
    storage_client,
    training_config,
)

REHEARSAL_ROOT = ROOT / ".cicd" / "rehearsal"


@task(
    help={
        "spec": "The compiled spec to rehearse (default: the one `pipeline.compile` wrote, named in .cicd/spec.json).",
        "root": f"Folder for the rehearsals' state: store, logs, reports, local inputs (default {REHEARSAL_ROOT.relative_to(ROOT)}).",
        "fresh": "Delete that state first: no cache, no baseline from earlier rehearsals.",
        "in_bucket": "Rehearse under gs://BUCKET/rehearsals/<pipeline>/ (what the build does): inputs, pipeline root "
        "and pushed model in the real bucket, with this machine's identity.",
        "runner": "Where the tasks run: auto (inside the spec's image through the container engine when it answers "
        "and has the image, else here), container (insist on the engine), local (this environment).",
        "network": "The container network the tasks join (Cloud Build: cloudbuild, where the build's identity is).",
        "no_cache": "Run every task, as a Vertex run submitted with caching off would.",
        "parallel": "How many tasks may run at once (default: the number of cores, at most 4).",
        "hyperparameters": "JSON object overriding the hyperparameters for this rehearsal (as pipeline.submit takes it).",
        "data_root": f"Folder of training CSV files (default {DATA_ROOT_HELP}).",
        "planned": PLANNED_HELP,
    }
)
def rehearse(
    c,
    spec=None,
    root=None,
    fresh=False,
    in_bucket=False,
    runner="auto",
    network=None,
    no_cache=False,
    parallel=None,
    hyperparameters=None,
    data_root=None,
    planned=False,
):
    """Run the compiled spec end to end here, as Vertex runs it: each task's container command with the
    ExecutorInput Vertex's launcher builds, the run's own parameters, the resolver's queries answered from the
    earlier rehearsals. Live progress, the verdict and an HTML report, as `invoke run`.

    Exit codes: 0 every task ran (the verdict says whether the model was blessed); 1 a task failed or the spec
    cannot run (one line names the task and the cause; nothing is submitted); 2 a bad flag or no spec.
    """
    settings_ = settings(c)
    if skip_unless_planned(planned, "pipeline.rehearse"):
        return
    from cicd_release.run import rehearsal
    from tasks.pipeline import parsed

    hyperparameters, _ = parsed(hyperparameters, None)
    options = {"runner": runner, "network": network, "cache": not no_cache, "fresh": fresh}
    if parallel is not None:
        try:
            options["parallel"] = int(parallel)
        except ValueError:
            options["parallel"] = 0
        if options["parallel"] < 1:
            raise Exit(f"--parallel {parallel!r} must be a whole number of tasks, 1 or more.", code=2)
    if in_bucket:
        guard(settings_.require, ("bucket",))
    request = guard(
        rehearsal.checkout_request,
        ROOT,
        settings_,
        training_config(c),
        spec=Path(spec) if spec else None,
        state=Path(root) if root else REHEARSAL_ROOT,
        in_bucket=in_bucket,
        hyperparameters=hyperparameters,
        data_root=Path(data_root) if data_root else dataset_folder(c),
        **options,
    )
    if c.config.run.dry:
        where = f"{rehearsal.rehearsal_prefix(settings_)}/" if in_bucket else f"{request.state}/"
        print(f"would rehearse {request.spec} under {where} (runner {runner}), its state in {request.state}")
        return
    client = storage_client(settings_) if in_bucket else None
    for line in guard(rehearsal.rehearse, request, settings=settings_, client=client, auth=_registry_auth):
        print(line)


def _registry_auth(image: str):
    from cicd_release.artifacts.image import registry_auth

    return registry_auth(image)
