"""`invoke data.*`: check the training CSV files in seconds (data.check), and upload them as a snapshot
(data.upload): content-addressed, checked first, LATEST moved to it, schedules that follow LATEST moved too."""

from pathlib import Path

from invoke import Collection, Exit, task

from tasks._common import (
    ALLOW_DIRTY_HELP,
    DATA_ROOT_HELP,
    PLANNED_HELP,
    dataset_folder,
    run_step,
    settings,
    skip_unless_planned,
    step_context,
    trainer_files,
)


def check(data_root: Path) -> str:
    """The check's report; an Exit (code 4, the data's) when the data cannot be read as the schema says."""
    from cicd_pipeline.datacheck import check_data_root

    report = check_data_root(data_root, trainer_files()["schema_file"])
    if not report.ok:
        raise Exit(report.format() + "\nNothing was run. Fix the files above and run again.", code=4)
    return report.format()


@task(help={"data_root": f"Folder of training CSV files (default {DATA_ROOT_HELP})."})
def check_(c, data_root=None):
    """Check the CSV files of a data root: every file a CSV, UTF-8, the schema's header, whole rows."""
    print(check(Path(data_root) if data_root else dataset_folder(c)))


@task(
    help={
        "source": f"Folder of CSV files to upload (default {DATA_ROOT_HELP}).",
        "name": "Data set name: upload to gs://BUCKET/data/NAME/ (default: cicd.data_root, gs://BUCKET/data/<cicd.dataset>).",
        "date": "File the snapshot under this day, YYYY-MM-DD or today (UTC): what `--window N` trains on.",
        "planned": PLANNED_HELP,
        "allow_dirty": ALLOW_DIRTY_HELP,
    }
)
def upload(c, source=None, name=None, date=None, planned=False, allow_dirty=False):
    """Check a folder of CSV files, upload it as a snapshot gs://BUCKET/data/NAME/<sha256>/ and move LATEST to it.

    Exit codes: 0 uploaded (or already there: the same files are one snapshot); 2 a bad flag or setting;
    4 the data check found bad files (each named as file:line): nothing was uploaded.
    """
    from cicd_release.core.errors import ReleaseError
    from cicd_release.publish import snapshots

    settings_ = settings(c)
    try:
        dataset = snapshots.dataset_uri(settings_.bucket_uri, name) if name else settings_.resolved_data_root
        day = snapshots.parse_date(date) if date else None
    except ReleaseError as err:
        raise Exit(str(err), code=err.exit_code) from None
    if skip_unless_planned(planned, "data.upload"):
        return
    folder = Path(source) if source else None
    ctx = step_context(
        c,
        settings_,
        "data.upload",
        data_source=folder,
        dataset=dataset,
        data_date=day,
        allow_dirty=allow_dirty,
    )
    if c.config.run.dry:
        shown = folder or f"data/{snapshots.dataset_name(dataset)}"
        print(f"would check {shown} and upload it under {dataset}/<sha256>/, then move {dataset}/LATEST")
        return
    run_step("data.upload", ctx)


ns = Collection("data")
ns.add_task(check_, name="check")
ns.add_task(upload)
