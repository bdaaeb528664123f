"""`invoke pipeline.*`: compile the Vertex AI spec, submit a run (and `pipeline.run`, the local run)."""

from invoke import Collection, Exit, task

from tasks import local
from tasks._common import PLANNED_HELP, guard, release, run_step, settings, skip_unless_planned


@task(
    help={
        "upload": "Also upload the spec to gs://BUCKET/specs/ (never overwriting), where submit finds it.",
        "planned": PLANNED_HELP,
    }
)
def compile_(c, upload=False, planned=False):
    """Compile the Vertex AI (KFP v2 IR) spec to .cicd/specs/<name>-<version>-<digest of its bytes>.json."""
    settings_ = settings(c)
    if skip_unless_planned(planned, "pipeline.compile"):
        return
    from cicd_release import steps

    for line in guard(steps.compile_spec, release(c, settings_), upload):
        print(line)


@task(
    help={
        "wait": "Follow the run to its end and print what it did (tasks, metrics, blessing, registered "
        "version); exit non-zero unless it succeeded. A model that was not blessed is a success that says so.",
        "poll_seconds": "How often a followed run is asked for its state (default 30).",
        "hyperparameters": "JSON object overriding the hyperparameters for this run only.",
        "force": "Submit even when nothing the run consumes changed since the last release.",
        "planned": PLANNED_HELP,
    }
)
def submit(c, wait=False, hyperparameters=None, force=False, planned=False, poll_seconds=30.0):
    """Submit a Vertex AI run of the compiled spec with the uploaded modules, labelled; skipped when nothing changed."""
    from cicd_release.errors import ReleaseError
    from cicd_release.settings import parse_run_hyperparameters

    settings_ = settings(c)
    if hyperparameters is not None:
        try:
            hyperparameters = parse_run_hyperparameters(hyperparameters)
        except ReleaseError as err:
            raise Exit(str(err), code=err.exit_code) from None
    if skip_unless_planned(planned, "pipeline.submit"):
        return
    run_step(
        "pipeline.submit", release(c, settings_, wait=wait, hyperparameters=hyperparameters, force=force)
    )


ns = Collection("pipeline")
ns.add_task(local.run)
ns.add_task(compile_, name="compile")
ns.add_task(submit)
