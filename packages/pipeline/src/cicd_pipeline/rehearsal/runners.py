"""Where a task's command runs: inside the components image through a container engine, or in this environment.

``ContainerRunner`` starts the image the spec names with the executor's ``command`` as entrypoint and its
``args`` as arguments (what Vertex's Kubernetes pod does), through the docker SDK: a Docker engine, or podman's
Docker-compatible API (``.ci/install-podman.sh``). A local pipeline root is bind-mounted at the same path, so
the URIs in the ExecutorInput mean the same inside and out; a gs:// root needs no mount (the task reaches the
bucket with the identity its engine gives it). ``SubprocessRunner`` runs the same command line with this
interpreter standing for the image's ``python``: the environment the rehearsal runs in must then hold what
the image holds (TFX, the components). Its ``python -m`` commands of TFX's task entry points start warm: each
a fork of one interpreter that imported what those entry points import, once (``warm``), in place of a fresh
interpreter spending its first ~5 s of CPU on the same imports.

Either way a task's output (stdout and stderr) goes to its own log file, and what the launcher reads is its
exit code, as Vertex reads a container's.
"""

from __future__ import annotations

import json
import os
import signal
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


# The container entry points of TFX's tasks in a compiled spec: the executor's and ExampleGen's preCacheCheck.
WARM_MODULES = (
    "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
    "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver",
)


class SubprocessRunner:
    """The task's command in a subprocess of this environment (``python`` is this interpreter); ``python -m`` of
    one of ``warm`` (TFX's task entry points), with the runner's PYTHONPATH, in a fork of a warm interpreter."""

    kind = "local"

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        warm: tuple[str, ...] = WARM_MODULES,
    ):
        self.env = dict(os.environ if env is None else env)
        self.python = python
        self.warm = tuple(warm)
        self._running: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._server: WarmServer | None = None

    @property
    def where(self) -> str:
        started = (
            ", TFX's tasks forked from one interpreter that imported their entry points once"
            if self.warm
            else ""
        )
        return f"in this environment ({self.python}){started}"

    def run(self, key: int, command: list[str], env: Mapping[str, str], log: Path, image: str) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**self.env, **env}
        if self._warms(command, full_env):
            with self._lock:
                if self._server is None:
                    self._server = WarmServer(self.python, self.env, self.warm, log.parent / "warm-start.log")
                server = self._server
            return server.run(key, command[2], command[3:], full_env, log)
        with open(log, "ab") as out:
            process = subprocess.Popen(command, env=full_env, stdout=out, stderr=subprocess.STDOUT)
            with self._lock:
                self._running[key] = process
            try:
                return process.wait()
            finally:
                with self._lock:
                    self._running.pop(key, None)

    def _warms(self, command: list[str], env: Mapping[str, str]) -> bool:
        """``python -m <a warm module> ...`` whose path is the warm interpreter's (it imported with it)."""
        return (
            len(command) >= 3
            and command[0] == self.python
            and command[1] == "-m"
            and command[2] in self.warm
            and env.get("PYTHONPATH") == self.env.get("PYTHONPATH")
        )

    def cancel(self) -> None:
        with self._lock:
            for process in self._running.values():
                process.kill()
            if self._server is not None:
                self._server.kill_all()

    def close(self) -> None:
        """Ends the warm interpreter (after its running tasks)."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close()


class WarmServer:
    """``python -m cicd_pipeline.rehearsal.warm MODULE...`` and its answers: a task's pid when it starts, its code
    when it ends; ``run`` blocks until then, as ``Popen.wait`` does. (The tests start their ``python -m invoke``
    processes through one too: tests/support/warm_python.py.)"""

    def __init__(self, python: str, env: Mapping[str, str], modules: tuple[str, ...], log: Path):
        self.log = log
        with open(log, "ab") as err:
            self.process = subprocess.Popen(
                [python, "-m", "cicd_pipeline.rehearsal.warm", *modules],
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        self._lock = threading.Lock()
        self._pids: dict[int, int] = {}
        self._codes: dict[int, int] = {}
        self._done: dict[int, threading.Event] = {}
        self._ended = False
        self._reader = threading.Thread(target=self._read, name="warm-start", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            answer = json.loads(line)
            with self._lock:
                if "pid" in answer:
                    self._pids[answer["key"]] = answer["pid"]
                elif "code" in answer:
                    self._pids.pop(answer["key"], None)
                    self._codes[answer["key"]] = answer["code"]
                    self._done[answer["key"]].set()
        with self._lock:
            self._ended = True
            for event in self._done.values():
                event.set()

    def run(
        self,
        key: int,
        module: str,
        args: list[str],
        env: Mapping[str, str],
        log: Path,
        cwd: Path | None = None,
        stderr: Path | None = None,
    ) -> int:
        """``python -m MODULE ARGS`` in ``cwd`` (this process's by default), its stdout in ``log``, its stderr
        there too or in ``stderr``; its exit code."""
        request = {"key": key, "module": module, "args": list(args), "env": dict(env)}
        request.update(cwd=str(cwd or os.getcwd()), log=str(log), stderr=str(stderr) if stderr else None)
        with self._lock:
            if self._ended:
                raise RuntimeError(f"the rehearsal's warm interpreter has ended: see {self.log}")
            done = self._done[key] = threading.Event()
            try:
                self.process.stdin.write((json.dumps(request) + "\n").encode())
                self.process.stdin.flush()
            except OSError:
                raise RuntimeError(f"the rehearsal's warm interpreter has ended: see {self.log}") from None
        done.wait()
        with self._lock:
            del self._done[key]
            if key not in self._codes:
                raise RuntimeError(f"the rehearsal's warm interpreter ended during a task: see {self.log}")
            return self._codes.pop(key)

    def kill(self, key: int) -> None:
        """Kills the task ``key`` if it is running."""
        self.kill_all(keys={key})

    def kill_all(self, keys: set[int] | None = None) -> None:
        with self._lock:
            pids = [pid for key, pid in self._pids.items() if keys is None or key in keys]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        self.process.wait()
        self._reader.join()


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

    def close(self) -> None:
        """Nothing to end: each task's container is removed when it ends."""

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
