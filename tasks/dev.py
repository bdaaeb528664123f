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
    """Re-resolve requirements/lock.txt from requirements/lock.in (Python 3.10), with uv, and lock.hashes.txt,
    the same pins with every file's sha256, from it (the build installs that one with --require-hashes)."""
    folder = ROOT / "requirements"
    c.run(f"uv pip compile --python-version 3.10 {folder}/lock.in -o {folder}/lock.txt")
    c.run(
        f"uv pip compile --python-version 3.10 --generate-hashes {folder}/lock.txt -o {folder}/lock.hashes.txt"
    )
