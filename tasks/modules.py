"""`invoke modules.upload`: the trainer's module files and schema, content-addressed in the bucket."""

from invoke import Collection, task

from tasks._common import PLANNED_HELP, release, require, run_step, settings, skip_unless_planned


@task(help={"planned": PLANNED_HELP})
def upload(c, planned=False):
    """Upload the trainer's module files and schema to gs://BUCKET/modules/<sha256>/ (never overwriting)."""
    settings_ = require(settings(c), "bucket")
    if skip_unless_planned(planned, "modules.upload"):
        return
    from cicd_release import steps

    if c.config.run.dry:
        print(
            f"would upload {', '.join(steps.TRAINER_FILES.values())} under {settings_.modules_prefix}/<sha256>/"
        )
        return
    run_step("modules.upload", release(c, settings_))


ns = Collection("modules")
ns.add_task(upload)
