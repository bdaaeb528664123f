"""The edit loop behind `invoke run --watch`: one resident process, TFX imported once.

On every save of a watched file it runs the trainer's unit tests, then (if they pass) the pipeline, whose cache
starts it at the first component whose inputs changed, and prints a verdict: tests, what ran, the metrics
against the baseline, blessed or not. Files are polled (modification time and size): no dependency, and it
works on every filesystem, including mounts where inotify stays silent.

The unit tests run in a child forked from a process that has already imported TensorFlow, TF Transform and
Beam (multiprocessing's forkserver with those modules preloaded): a fresh interpreter per cycle, so the tests
see the files as saved, without paying the imports again. The pipeline runs in this process.
"""

import dataclasses
import logging
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

WATCHED_SUFFIXES = (".py", ".pbtxt")
# What the trainer's tests import: loaded once in the forkserver, inherited by every test child.
TEST_PRELOAD = ["tensorflow", "tf_keras", "tensorflow_transform", "tensorflow_transform.beam", "pytest"]

Snapshot = dict[Path, tuple[int, int]]


def snapshot(folders: Iterable[Path]) -> Snapshot:
    """Each watched file under `folders`, with its modification time and size."""
    files: Snapshot = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.suffix in WATCHED_SUFFIXES and "__pycache__" not in path.parts and path.is_file():
                stat = path.stat()
                files[path] = (stat.st_mtime_ns, stat.st_size)
    return files


def changed(before: Snapshot, after: Snapshot) -> list[Path]:
    """Files added, removed or modified between two snapshots."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def wait_for_change(
    folders: list[Path], last: Snapshot, interval: float = 0.5, sleep: Callable[[float], None] = time.sleep
) -> tuple[list[Path], Snapshot]:
    """Blocks until a watched file changes and the folders stay still for one `interval` (an editor saves in
    steps: write, rename, touch); returns what changed and the new snapshot."""
    while True:
        sleep(interval)
        now = snapshot(folders)
        if not changed(last, now):
            continue
        while True:
            sleep(interval)
            settled = snapshot(folders)
            if settled == now:
                return changed(last, now), now
            now = settled


def watch(
    folders: list[Path],
    handle: Callable[[list[Path]], None],
    interval: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    cycles: int | None = None,
) -> None:
    """Calls `handle(changed_files)` after each settled change under `folders`, until interrupted (or after
    `cycles` changes). A change made while `handle` runs is seen on the next poll, not lost."""
    last = snapshot(folders)
    done = 0
    while cycles is None or done < cycles:
        changes, last = wait_for_change(folders, last, interval, sleep)
        handle(changes)
        done += 1


@dataclasses.dataclass(frozen=True)
class TestOutcome:
    passed: int
    failed: list[str]  # test ids, or a line saying why the tests could not run
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failed and self.passed > 0


class Stopped(RuntimeError):
    """The run stopped for a reason its message says in full (e.g. the data gate)."""


@dataclasses.dataclass(frozen=True)
class Cycle:
    """One save, handled: what changed, the tests' outcome, and the run (None when the tests failed)."""

    changed: list[Path]
    tests: TestOutcome
    summary: object | None  # cicd_pipeline.report.RunSummary
    stopped: str | None = (
        None  # the run stopped before a verdict (the data gate, an error in a module), and why
    )
    seconds: float = 0.0


def edit_cycle(
    changed_files: list[Path],
    run_tests: Callable[[], TestOutcome],
    run_pipeline: Callable[[], object],
    stops: tuple[type[BaseException], ...] = (),
) -> Cycle:
    """Tests first; the pipeline only on green tests (a red test is the verdict, faster than training)."""
    started = time.monotonic()
    tests = run_tests()
    if not tests.ok:
        return Cycle(changed_files, tests, None, seconds=time.monotonic() - started)
    try:
        summary = run_pipeline()
    except stops as stop:
        logging.getLogger(__name__).error("The run stopped", exc_info=True)  # the whole story, in the log
        said = str(stop) if isinstance(stop, Stopped) else f"{type(stop).__name__}: {stop}"
        return Cycle(changed_files, tests, None, stopped=said, seconds=time.monotonic() - started)
    return Cycle(changed_files, tests, summary, seconds=time.monotonic() - started)


def describe(cycle: Cycle, threshold: float, tolerance: float, base: Path | None = None) -> list[str]:
    """The lines a watcher reads after a save: tests, what ran, the verdict and how long it all took."""
    from cicd_pipeline.report import verdict_line

    names = ", ".join(
        str(p.relative_to(base)) if base and p.is_relative_to(base) else p.name for p in cycle.changed
    )
    lines = [f"changed: {names or '(nothing: the first run)'}"]
    tests = cycle.tests
    if not tests.ok:
        lines.append(f"  tests: {tests.passed} passed, {len(tests.failed)} FAILED ({tests.seconds:.1f} s)")
        lines += [f"    {name}" for name in tests.failed[:10]]
        lines.append("  verdict: TESTS FAILED, the pipeline was not run")
    else:
        lines.append(f"  tests: {tests.passed} passed ({tests.seconds:.1f} s)")
        if cycle.stopped is not None:
            first, *rest = cycle.stopped.strip().splitlines() or [""]
            lines.append(f"  verdict: STOPPED: {first}")
            lines += [f"    {line}" for line in rest]
        else:
            summary = cycle.summary
            # Resolver nodes run every time (they only look up artifacts): not what an edit re-ran.
            ran = [c for c in summary.components if c.state == "COMPLETE" and not c.node.endswith("resolver")]
            first = ran[0].node if ran else "(nothing: every component cached)"
            lines.append(f"  pipeline: from {first}; executed {', '.join(c.node for c in ran) or 'none'}")
            lines.append(f"  verdict: {verdict_line(summary, threshold, tolerance)}")
            # The judge's checks, passed or refused: the metrics against the baseline, with their margins.
            lines += [f"    {check}" for check in summary.checks]
    lines.append(f"  edit to verdict: {cycle.seconds:.1f} s")
    return lines


class _Collect:
    """A pytest plugin that counts outcomes (the child reports them to the parent)."""

    def __init__(self):
        self.passed, self.failed = 0, []

    def pytest_runtest_logreport(self, report):
        if report.passed and report.when == "call":
            self.passed += 1
        elif report.failed:
            self.failed.append(f"{report.nodeid} ({report.when})")

    def pytest_collectreport(self, report):
        if report.failed:
            self.failed.append(f"{report.nodeid or 'collection'} (does not import)")


def _pytest_child(tests: str, source: str, log: str, result) -> None:
    """In the forked child: the trainer's sources first on the path (never an installed copy), then pytest."""
    import os

    import pytest

    sys.path.insert(0, source)
    collect = _Collect()
    with open(log, "ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        # The test folder is the root: test ids read the same wherever the folder and its ancestors are.
        code = pytest.main(["-q", "-p", "no:cacheprovider", f"--rootdir={tests}", tests], plugins=[collect])
    if code not in (0, 1) and not collect.failed:
        collect.failed.append(f"pytest exited {int(code)} (see the log)")
    result.send((collect.passed, collect.failed))


class TestRunner:
    """Runs a test folder in a fresh child forked from a preloaded server, its output appended to `log`."""

    def __init__(self, tests: Path, source: Path, log: Path, preload: list[str] = TEST_PRELOAD):
        self.tests, self.source, self.log = tests, source, log
        self._context = multiprocessing.get_context("forkserver")
        # One forkserver per process: the preload list counts only before its first child.
        self._context.set_forkserver_preload(preload)

    def __call__(self) -> TestOutcome:
        started = time.monotonic()
        reader, writer = self._context.Pipe(duplex=False)
        child = self._context.Process(
            target=_pytest_child, args=(str(self.tests), str(self.source), str(self.log), writer)
        )
        child.start()
        writer.close()  # the child holds the other end: a child that dies unheard reads as end of file
        try:
            passed, failed = reader.recv()
        except EOFError:
            passed, failed = 0, [f"the test process died (exit code {child.join() or child.exitcode})"]
        child.join()
        return TestOutcome(passed, failed, time.monotonic() - started)
