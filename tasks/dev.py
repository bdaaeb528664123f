"""Developer tasks: the tests (nox) and the lock."""

from invoke import task

from tasks._common import ROOT


@task(
    help={"sessions": "nox sessions to run (default: lint and the package unit tests)."},
    iterable=["sessions"],
)
def test(c, sessions=None):
    """The unit tests and lint, each in its own nox session."""
    from cicd_release.steps import TEST_SESSIONS

    c.run(f"nox -s {' '.join(sessions or TEST_SESSIONS)}", pty=False)


@task
def lock(c):
    """Re-resolve requirements/lock.txt from requirements/lock.in (Python 3.10), with uv."""
    c.run(f"uv pip compile --python-version 3.10 {ROOT}/requirements/lock.in -o {ROOT}/requirements/lock.txt")
