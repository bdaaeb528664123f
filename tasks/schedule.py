"""`invoke schedule.*`: Vertex AI pipeline schedules of the released spec (one run at a time, no catch-up),
moved by the chain to each new release (`schedule.move`) and by `data.upload` to each new snapshot."""

from invoke import Collection, Exit, task

from tasks._common import (
    PLANNED_HELP,
    guard,
    run_step,
    settings,
    skip_unless_planned,
    step_context,
    storage_client,
)
from tasks.pipeline import DATA_HELP, WINDOW_HELP, parsed


@task(
    help={
        "cron": 'Five cron fields, UTC unless prefixed with TZ=<IANA zone>, e.g. "0 3 * * 1" (Mondays 03:00).',
        "name": "The schedule's display name (default: the pipeline name and the cron).",
        "data": DATA_HELP + " With latest the schedule follows each new snapshot.",
        "window": WINDOW_HELP + " The window moves with each dated upload.",
        "hyperparameters": "JSON object of hyperparameters the scheduled runs keep (default: each release's).",
    }
)
def create(c, cron, name=None, data=None, window=None, hyperparameters=None):
    """Schedule runs of the released spec on Vertex AI: one at a time, missed runs never caught up."""
    from cicd_release.core.errors import ReleaseError
    from cicd_release.run.schedules import check_cron, create_schedule

    settings_ = settings(c)
    hyperparameters, days = parsed(hyperparameters, window)
    try:
        cron = check_cron(cron)
    except ReleaseError as err:
        raise Exit(str(err), code=err.exit_code) from None
    lines = guard(
        create_schedule,
        settings_,
        storage_client(settings_),
        cron=cron,
        display_name=name,
        data=data,
        window=days,
        hyperparameters=hyperparameters,
    )
    print("\n".join(lines))


@task(name="list")
def list_(c):
    """This pipeline's schedules: state, cron, next run, and the release and data each one runs."""
    from cicd_release.run.schedules import list_schedules

    found = guard(list_schedules, settings(c))
    print("\n".join(s.line() for s in found) if found else "no schedules for this pipeline")


@task(help={"schedule": "The schedule's id, full resource name or display name (see schedule.list)."})
def pause(c, schedule):
    """Pause a schedule: no runs start until it is resumed; runs already going finish."""
    from cicd_release.run.schedules import pause_schedule

    print("\n".join(guard(pause_schedule, settings(c), schedule)))


@task(help={"schedule": "The schedule's id, full resource name or display name (see schedule.list)."})
def resume(c, schedule):
    """Resume a paused schedule without catching up the runs it missed (no burst of runs)."""
    from cicd_release.run.schedules import resume_schedule

    print("\n".join(guard(resume_schedule, settings(c), schedule)))


@task(help={"schedule": "The schedule's id, full resource name or display name (see schedule.list)."})
def delete(c, schedule):
    """Delete a schedule (the runs it started stay)."""
    from cicd_release.run.schedules import delete_schedule

    print("\n".join(guard(delete_schedule, settings(c), schedule)))


@task(help={"planned": PLANNED_HELP})
def move(c, planned=False):
    """Move this pipeline's schedules to the last release and the newest data they follow (after each submit)."""
    settings_ = settings(c)
    if skip_unless_planned(planned, "schedule.move"):
        return
    run_step("schedule.move", step_context(c, settings_, "schedule.move"))


ns = Collection("schedule")
for t in (create, list_, pause, resume, delete, move):
    ns.add_task(t)
