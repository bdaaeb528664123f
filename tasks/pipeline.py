"""`invoke pipeline.*`: compile the Vertex AI spec, submit a run, retrain the released spec (the local run is
`invoke run`)."""

from invoke import Collection, Exit, task

from cicd_components.untrusted import clip
from tasks._common import (
    ALLOW_DIRTY_HELP,
    PLANNED_HELP,
    guard,
    run_step,
    settings,
    skip_unless_planned,
    step_context,
    storage_client,
)

DATA_HELP = (
    "What to train on: latest (the snapshot LATEST points at, default), a snapshot's sha256 (or its first 8+ "
    "hex digits), or its gs:// URI."
)
WINDOW_HELP = (
    "Train on the last N dated snapshots (`data.upload --date`) instead, copied into one snapshot; with "
    "cicd.source=bigquery, on the table's rows of the last N days by cicd.bigquery_date_column, ending today (UTC)."
)


@task(
    help={
        "upload": "Also upload the spec to gs://BUCKET/specs/ (never overwriting), where submit finds it.",
        "planned": PLANNED_HELP,
        "allow_dirty": ALLOW_DIRTY_HELP + " (A compile without --upload may always run on one.)",
    }
)
def compile_(c, upload=False, planned=False, allow_dirty=False):
    """Compile the Vertex AI (KFP v2 IR) spec to .cicd/specs/<name>-<version>-<digest of its bytes>.json."""
    settings_ = settings(c)
    if skip_unless_planned(planned, "pipeline.compile"):
        return
    from cicd_release import steps

    # Only an uploaded spec is released: a local compile of an edit is what trying a change is for.
    ctx = step_context(c, settings_, "pipeline.compile", allow_dirty=allow_dirty or not upload)
    for line in guard(steps.compile_spec, ctx, upload):
        print(line)


@task(
    help={
        "wait": "Follow the run to its end and print what it did (tasks, metrics, blessing, registered "
        "version); exit non-zero unless it succeeded. A model that was not blessed is a success that says so.",
        "poll_seconds": "How often a followed run is asked for its state (default 30).",
        "wait_seconds": "With --wait: stop following after this many seconds and end with a line saying the run "
        "goes on (its outcome is on its page; the release is recorded as submitted). Default: to the end.",
        "hyperparameters": "JSON object overriding the hyperparameters for this run only.",
        "force": "Submit even when nothing the run consumes changed since the last release.",
        "planned": PLANNED_HELP,
        "allow_dirty": ALLOW_DIRTY_HELP,
    }
)
def submit(
    c,
    wait=False,
    hyperparameters=None,
    force=False,
    planned=False,
    poll_seconds=30.0,
    wait_seconds=None,
    allow_dirty=False,
):
    """Submit a Vertex AI run of the compiled spec with the uploaded modules, labelled; skipped when nothing changed."""
    from cicd_release.core.errors import ReleaseError
    from cicd_release.core.settings import parse_run_hyperparameters

    settings_ = settings(c)
    if hyperparameters is not None:
        try:
            hyperparameters = parse_run_hyperparameters(hyperparameters)
        except ReleaseError as err:
            raise Exit(str(err), code=err.exit_code) from None
    if skip_unless_planned(planned, "pipeline.submit"):
        return
    options = {
        "wait": wait,
        "hyperparameters": hyperparameters,
        "force": force,
        "poll_seconds": float(poll_seconds),
        "follow_seconds": _seconds("--wait-seconds", wait_seconds),
        "allow_dirty": allow_dirty,
    }
    ctx = step_context(c, settings_, "pipeline.submit", **options)
    run_step("pipeline.submit", ctx)


def _seconds(flag: str, value) -> float | None:
    """A positive number of seconds given as text (or None); exit 2 naming the flag otherwise."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds < 10**6:
        raise Exit(f"{flag} {str(value)[:40]!r} is not a number of seconds: give a positive number.", code=2)
    return seconds


def parsed(hyperparameters: str | None, window) -> tuple[str | None, int | None]:
    """--hyperparameters and --window as the packages take them; exit 2 naming the flag when bad."""
    from cicd_release.core.errors import ReleaseError
    from cicd_release.core.settings import parse_run_hyperparameters

    try:
        hyperparameters = parse_run_hyperparameters(hyperparameters) if hyperparameters is not None else None
    except ReleaseError as err:
        raise Exit(str(err), code=err.exit_code) from None
    if window is None:
        return hyperparameters, None
    try:
        days = int(window)
    except ValueError:
        days = 0
    if days < 1:
        raise Exit(
            f"--window {clip(repr(window))} must be a whole number (snapshots or days), 1 or more.", code=2
        )
    return hyperparameters, days


@task(
    help={
        "data": DATA_HELP,
        "window": WINDOW_HELP,
        "hyperparameters": "JSON object overriding the hyperparameters for this run (default: the release's).",
        "wait": "Follow the run to its end and print what it did; exit non-zero unless it succeeded.",
        "poll_seconds": "How often a followed run is asked for its state (default 30).",
    }
)
def retrain(c, data=None, window=None, hyperparameters=None, wait=False, poll_seconds=30.0):
    """Run the released spec again on new data or hyperparameters: no checkout build, no image, no compile.

    The spec and modules are the last release's (the release record; before the first record, the newest in
    the bucket). Exit codes: 0 submitted; 1 the run failed (with --wait); 2 a bad flag; 3 nothing released
    or no such snapshot.
    """
    from cicd_release.steps import RUN_SETTINGS

    settings_ = settings(c)
    hyperparameters, days = parsed(hyperparameters, window)
    # A run of the released spec needs what the step table's submit and schedule.move need to start one.
    guard(settings_.require, RUN_SETTINGS)
    from cicd_release.run.launch import retrain as retrain_run

    lines = guard(
        retrain_run,
        settings_,
        storage_client(settings_),
        data=data,
        window=days,
        hyperparameters=hyperparameters,
        wait=wait,
        poll_seconds=float(poll_seconds),
    )
    for line in lines:
        print(line)


ns = Collection("pipeline")
ns.add_task(compile_, name="compile")
ns.add_task(submit)
ns.add_task(retrain)
