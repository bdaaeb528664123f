"""`invoke data.check`: the data root read in seconds, without TFX, each problem named as file:line."""

from pathlib import Path

from invoke import Collection, Exit, task

from tasks._common import DATA_ROOT, ROOT, trainer_files


def check(data_root: Path) -> str:
    """The check's report; an Exit (code 4, the data's) when the data cannot be read as the schema says."""
    from cicd_pipeline.datacheck import check_data_root

    report = check_data_root(data_root, trainer_files()["schema_file"])
    if not report.ok:
        raise Exit(report.format() + "\nNothing was run. Fix the files above and run again.", code=4)
    return report.format()


@task(help={"data_root": f"Folder of training CSV files (default {DATA_ROOT.relative_to(ROOT)})."})
def check_(c, data_root=None):
    """Check the CSV files of a data root: every file a CSV, UTF-8, the schema's header, whole rows."""
    print(check(Path(data_root or DATA_ROOT)))


ns = Collection("data")
ns.add_task(check_, name="check")
