"""Where a task's command runs: inside the components image through a container engine, or in this environment.

``ContainerRunner`` starts the image the spec names with the executor's ``command`` as entrypoint and its
``args`` as arguments (what Vertex's Kubernetes pod does), through the docker SDK: a Docker engine, or podman's
Docker-compatible API (``.ci/install-podman.sh``). A local pipeline root is bind-mounted at the same path, so
the URIs in the ExecutorInput mean the same inside and out; a gs:// root needs no mount (the task reaches the
bucket with the identity its engine gives it). ``SubprocessRunner`` runs the same command line with this
interpreter standing for the image's ``python``: the environment the rehearsal runs in must then hold what
the image holds (TFX, the components).

Either way a task's output (stdout and stderr) goes to its own log file, and what the launcher reads is its
exit code, as Vertex reads a container's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# podman's API socket as .ci/install-podman.sh serves it, tried when DOCKER_HOST is not set.
PODMAN_SOCKET = "/run/cicd-podman/podman.sock"
DOCKER_SOCKET = "/var/run/docker.sock"


class EngineUnavailable(RuntimeError):
    """No container engine answers, or it cannot provide the image; the message says which and why."""


class SubprocessRunner:
    """The task's command in a subprocess of this environment (``python`` is this interpreter)."""

    kind = "local"

    def __init__(self, env: Mapping[str, str] | None = None, python: str = sys.executable):
        self.env = dict(os.environ if env is None else env)
        self.python = python
        self._running: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"in this environment ({self.python})"

    def run(self, key: int, command: list[str], env: Mapping[str, str], log: Path, image: str) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            process = subprocess.Popen(command, env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT)
            with self._lock:
                self._running[key] = process
            try:
                return process.wait()
            finally:
                with self._lock:
                    self._running.pop(key, None)

    def cancel(self) -> None:
        with self._lock:
            for process in self._running.values():
                process.kill()


class ContainerRunner:
    """The task's command inside ``image`` through the docker SDK ``client`` (Docker or podman's API)."""

    kind = "container"

    def __init__(
        self,
        client,
        *,
        mounts: tuple[str, ...] = (),
        network: str | None = None,
        env: Mapping[str, str] | None = None,
        host: str = "",
    ):
        self.client = client
        self.mounts = tuple(str(Path(m)) for m in mounts)
        self.network = network
        self.env = dict(env or {})
        self.host = host
        self.images: set[str] = set()
        self._running: dict[int, Any] = {}
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        images = ", ".join(sorted(self.images)) or "the spec's image"
        return f"inside {images} through the container engine at {self.host or 'the default socket'}"

    def run(self, key: int, command: list[str], env: Mapping[str, str], log: Path, image: str) -> int:
        volumes = {m: {"bind": m, "mode": "rw"} for m in self.mounts}
        options: dict[str, Any] = {"volumes": volumes, "environment": {**self.env, **env}, "detach": True}
        if self.network:
            options["network"] = self.network
        if hasattr(os, "getuid") and os.getuid() != 0:
            # Files in a mounted root stay the user's own; HOME must then be somewhere writable.
            options["user"] = f"{os.getuid()}:{os.getgid()}"
            options["environment"].setdefault("HOME", "/tmp")
        container = self.client.containers.create(
            image, entrypoint=command[:1], command=command[1:], **options
        )
        with self._lock:
            self._running[key] = container
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            container.start()
            with open(log, "ab") as out:
                for chunk in container.logs(stream=True, follow=True):
                    out.write(chunk)
            return int(container.wait().get("StatusCode", 1))
        finally:
            with self._lock:
                self._running.pop(key, None)
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - a container already gone must not hide the task's result
                pass

    def cancel(self) -> None:
        with self._lock:
            for container in self._running.values():
                try:
                    container.kill()
                except Exception:  # noqa: BLE001 - it may have ended on its own meanwhile
                    pass

    def prepare(self, image: str, auth: Callable[[str], Mapping[str, str] | None] | None = None) -> None:
        """The image in the engine: there already, else pulled (with ``auth(image)``, asked only then, as the
        registry's ``auth_config``); EngineUnavailable if neither."""
        from docker import errors

        try:
            self.client.images.get(image)
        except errors.ImageNotFound:
            try:
                auth_config = auth(image) if auth else None
                self.client.images.pull(image, auth_config=dict(auth_config) if auth_config else None)
            except errors.APIError as err:
                raise EngineUnavailable(
                    f"the container engine has no {image} and cannot pull it ({_short(err)[:120]})"
                ) from None
        self.images.add(image)


def _short(err: BaseException) -> str:
    text = str(getattr(err, "explanation", None) or err)
    return text.splitlines()[0][:200] if text else type(err).__name__


def engine_host(environ: Mapping[str, str] | None = None) -> str | None:
    """Where a container engine may answer: DOCKER_HOST, else podman's socket, else Docker's; None if none."""
    environ = os.environ if environ is None else environ
    if environ.get("DOCKER_HOST"):
        return environ["DOCKER_HOST"]
    for socket in (PODMAN_SOCKET, DOCKER_SOCKET):
        if Path(socket).exists():
            return f"unix://{socket}"
    return None


def connect(host: str | None):
    """A docker SDK client on ``host`` that answered a ping; EngineUnavailable saying why not."""
    if host is None:
        raise EngineUnavailable(
            "no container engine answers here (DOCKER_HOST is not set, and no engine socket)"
        )
    try:
        import docker
    except ImportError:
        raise EngineUnavailable("the docker SDK is not installed (pip install docker)") from None
    try:
        client = docker.DockerClient(base_url=host, timeout=600)
        client.ping()
    except Exception as err:  # noqa: BLE001 - any failure to reach the engine means: none here
        raise EngineUnavailable(f"the container engine at {host} does not answer ({_short(err)})") from None
    return client
