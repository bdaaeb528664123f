"""The expensive part of the e2e tests, made once: two runs of the shipped data in one state folder.

The first executes every component and pushes a blessed model; the second, with nothing changed, reuses the
cache. The bad-data tests then run against that blessed state, as a team's next run would. Each run leaves
what `invoke run` leaves: its progress lines (plain, as off a terminal) and its HTML report. The runs read a
session copy of the shipped data (`shipped_copy`), so a test can change the data where the runs read it.
"""

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cicd_pipeline import local_session
from cicd_pipeline.run_inputs import TRAINER_FILES
from cicd_pipeline.runners.local import LocalInputs, LocalLayout
from tests.support.checkout import clone  # noqa: F401 (a fixture: test_compare runs a clone)
from tests.support.training import shipped_config
from tests.support.xdist_groups import scheduler

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "penguins"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's, installed by .ci/install-chromium.sh
# This machine's network is closed: a browser's own background connections (updates, sync, safe browsing)
# would only fail, and the report must need none.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # as root (CI) Chromium refuses to start sandboxed
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# The modules that share a fixture, each group on one pytest-xdist process (tests/support/xdist_groups.py).
XDIST_GROUPS = {
    # the session's two runs (`runs`, below), which these read
    "tests/e2e/test_bad_data.py": "shipped_runs",
    "tests/e2e/test_local_run.py": "shipped_runs",
    "tests/e2e/test_run_report.py": "shipped_runs",
    # the module's compiled spec and its two rehearsals
    "tests/e2e/test_rehearsal.py": "rehearsal",
    # the module's settled state
    "tests/e2e/test_staleness.py": "staleness",
}


def pytest_xdist_make_scheduler(config, log):
    return scheduler(config, log, XDIST_GROUPS)


def trainer_files(root: Path = ROOT) -> dict[str, Path]:
    """The trainer's files in a checkout at `root` (as `invoke run` finds them), by pipeline parameter name."""
    return {name: root / path for name, path in TRAINER_FILES.items()}


def inputs(data_root: Path = DATA, root: Path = ROOT) -> LocalInputs:
    return LocalInputs.in_checkout(root, data_root)


@pytest.fixture(scope="session")
def shipped_copy(tmp_path_factory) -> Path:
    """The shipped data in a folder of the session's own: the runs below read it there."""
    folder = tmp_path_factory.mktemp("data") / "penguins"
    shutil.copytree(DATA, folder)
    return folder


@pytest.fixture(scope="session")
def shown():
    """What each run of `runs` showed, in order: its Progress (progress lines in `.out`) and its HTML report."""
    return []


@pytest.fixture(scope="session")
def runs(tmp_path_factory, shown, shipped_copy):
    """The two runs, each as `invoke run` makes it (local_session.run_once: its labels, its output in a log
    file, its report), its progress lines kept in a string. pytest keeps its own logging set-up."""
    layout = LocalLayout(tmp_path_factory.mktemp("local-run"))
    (layout.root / "logs").mkdir()
    config = shipped_config()
    summaries = []
    for n in range(2):
        run_inputs = inputs(shipped_copy)
        log = layout.root / "logs" / f"run-{n}.log"
        ran = local_session.run_once(
            layout,
            run_inputs,
            config,
            log,
            labels=local_session.model_labels(run_inputs, ROOT),
            out=io.StringIO(),
        )
        shown.append((ran.progress, ran.report))
        summaries.append(ran.summary)
    first, second = summaries
    return layout, first, second


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's), driven by playwright; installed first where it is missing, as CI does."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0:
            pytest.skip(
                "chromium is not installed: run `sudo .ci/install-chromium.sh` (CI does) to run these."
            )
        script = ROOT / ".ci" / "install-chromium.sh"
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Visit:
    """A page opened from a file, with what the browser saw: console errors, uncaught errors, requests."""

    def __init__(self, browser, path: Path):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        # Anything but a file is refused before it leaves (and is still recorded above).
        self.page.route(lambda url: not url.startswith("file:"), lambda route: route.abort())
        self.page.goto(path.as_uri(), wait_until="load")

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser):
    """Opens a file in the browser: `visit(path)`; closed after the test."""
    opened = []

    def open_(path: Path) -> Visit:
        opened.append(Visit(browser, Path(path)))
        return opened[-1]

    yield open_
    for v in opened:
        v.close()
