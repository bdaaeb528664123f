"""`invoke modules.upload`: the trainer's module files and schema, content-addressed in the bucket."""

from invoke import Collection, task

from tasks._common import (
    ALLOW_DIRTY_HELP,
    PLANNED_HELP,
    run_step,
    settings,
    skip_unless_planned,
    step_context,
)


@task(help={"planned": PLANNED_HELP, "allow_dirty": ALLOW_DIRTY_HELP})
def upload(c, planned=False, allow_dirty=False):
    """Upload the trainer's module files and schema to gs://BUCKET/modules/<sha256>/ (never overwriting)."""
    settings_ = settings(c)
    if skip_unless_planned(planned, "modules.upload"):
        return
    from cicd_release import steps

    ctx = step_context(c, settings_, "modules.upload", allow_dirty=allow_dirty)
    if c.config.run.dry:
        print(
            f"would upload {', '.join(steps.TRAINER_FILES.values())} under {settings_.modules_prefix}/<sha256>/"
        )
        return
    run_step("modules.upload", ctx)


ns = Collection("modules")
ns.add_task(upload)
