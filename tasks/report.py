"""`invoke report`: opens the newest local run's HTML report (written by `invoke run`)."""

import webbrowser
from pathlib import Path

from invoke import Exit, task

from tasks._common import LOCAL_ROOT, ROOT


@task(
    help={
        "root": f"The runs' state folder (default {LOCAL_ROOT.relative_to(ROOT)}).",
        "print": "Print the report's path instead of opening it in a browser.",
    }
)
def report(c, root=None, print_=False):
    """Open the newest run's HTML report: the pipeline graph by state, times, cache hits and why each component
    ran, the metrics against the baseline, the data statistics, where the model went.

    Exit code 2 when no run has written a report yet.
    """
    from cicd_pipeline.html_report import REPORTS, newest_report

    folder = Path(root or LOCAL_ROOT).resolve() / REPORTS
    path = newest_report(folder)
    if path is None:
        raise Exit(f"No run report in {folder}: `invoke run` writes one per run.", code=2)
    # With no browser to open (a server, CI) the path is what a person needs.
    if print_ or not webbrowser.open(path.as_uri()):
        print(path)
    else:
        print(f"opened {path}")
