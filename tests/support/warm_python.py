"""`python -m MODULE ARGS` for the tests, started warm: each a fork of one interpreter (one per test process)
that imported TensorFlow, TFX, Beam, KFP and the Google Cloud clients once (tests/support/warm_imports.py),
in place of a fresh interpreter spending its first seconds of CPU on the same imports. The e2e and
integration tests start about a hundred `python -m invoke` processes (docs/performance.md, "The suite, fourth
round").

It is the rehearsal's warm start (cicd_pipeline.rehearsal.warm), which makes a forked process what `python -m`
makes a fresh one: the test's arguments, environment and working directory; the working directory and the
test's PYTHONPATH first on the import path, and none of this repository's packages imported (a clone's run
imports the clone's code); stdout and stderr apart; the exit code, exit handlers and threads joined.

What a fork cannot show is an interpreter's own start-up: the imports' time and what they print (TensorFlow's
C++ start-up lines, at the level the test's environment sets), and an import a module forgot that the warm
interpreter happened to have made. The tests of those start fresh processes (`run_fresh`):
tests/e2e/test_staleness.py (a user's `invoke run`: its output starts with its own lines, TensorFlow's go
to its log) and the first, full `invoke ci` of tests/integration/test_ci_chain.py (every step of the chain, as
Cloud Build starts it); Vertex's task entry points and custom-job workers start fresh in their stand-ins
(tests/support/kfp_executor.py, vertex_custom_jobs.py), as Vertex starts a container.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from cicd_pipeline.rehearsal.runners import WarmServer

ROOT = Path(__file__).resolve().parents[2]
PRELOAD = "tests.support.warm_imports"

_lock = threading.Lock()
_keys = itertools.count()
_server: WarmServer | None = None


def _warm() -> WarmServer:
    """This process's warm interpreter, started on first use, ended when this process exits."""
    global _server
    with _lock:
        if _server is None:
            folder = Path(tempfile.mkdtemp(prefix="warm-python-"))
            # ROOT on the server's own path finds PRELOAD; a task's path is its own request's (warm.py).
            path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
            env = {**os.environ, "PYTHONPATH": path}
            server = _server = WarmServer(sys.executable, env, (PRELOAD,), folder / "warm-start.log")
            atexit.register(lambda: (server.close(), shutil.rmtree(folder, ignore_errors=True)))
        return _server


def run_module(
    module: str, *args: str, cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` in `cwd` with `env`, forked warm; what `subprocess.run(..., capture_output=True,
    text=True, timeout=timeout)` gives for it (a `TimeoutExpired` after killing it when it runs too long)."""
    server = _warm()
    key = next(_keys)
    command = [sys.executable, "-m", module, *args]
    with tempfile.TemporaryDirectory(prefix="warm-run-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        expired = threading.Event()
        timer = threading.Timer(timeout, lambda: (expired.set(), server.kill(key)))
        timer.start()
        try:
            code = server.run(key, module, list(args), env, out, cwd=cwd, stderr=err)
        finally:
            timer.cancel()
        stdout, stderr = (p.read_text(errors="replace") if p.exists() else "" for p in (out, err))
    if expired.is_set():
        raise subprocess.TimeoutExpired(command, timeout, stdout, stderr)
    return subprocess.CompletedProcess(command, code, stdout, stderr)


def run_fresh(
    module: str, *args: str, cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` in a fresh interpreter: for the tests of what an interpreter's start shows."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
