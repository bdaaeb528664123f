"""A warm start for the local rehearsal: one interpreter imports what TFX's task entry points import, once, then
forks a process per task, which runs ``python -m MODULE ARGS`` as a fresh interpreter would.

A TFX task process spends its first ~5 s of CPU importing TensorFlow, Beam and ``tfx.components`` before it
reads its arguments (``python -X importtime -m tfx.orchestration.kubeflow.v2.container.
kubeflow_v2_run_executor``); a rehearsal starts a dozen of them. Here those imports happen once per rehearsal:
``python -m cicd_pipeline.rehearsal.warm MODULE...`` imports the modules each MODULE imports at its top level
(never MODULE itself, which a task runs as ``__main__``, and never this repository's components, which the
task imports from the checkout as a fresh process would), then serves requests on stdin, one JSON line each:

    {"key": 7, "module": "...", "args": [...], "env": {...}, "cwd": "...", "log": "..."}

and answers on stdout ``{"key": 7, "pid": 1234}`` when the task's process started and ``{"key": 7, "code": 0}``
when it ended (the code as ``subprocess`` gives it: negative for a signal). The forked process takes the
request's environment, working directory and arguments, writes stdout and stderr to the log (stderr to its own
file when the request names one, ``"stderr": "..."``), runs the module with ``runpy`` as ``python -m`` does,
then what an interpreter does at exit (non-daemon threads joined, ``atexit`` handlers, streams flushed). On end
of input the server waits for its tasks and exits.

What a fresh interpreter would find on its import path, the task finds: the working directory, then the
request's PYTHONPATH, then the installation's own folders; and none of this module's package (which the
server imported to run): the task imports it from its own path, if at all.
"""

from __future__ import annotations

import ast
import atexit
import importlib
import importlib.util
import json
import os
import runpy
import selectors
import signal
import sys
import threading
import traceback


def top_level_imports(module: str) -> list[str]:
    """The names ``module``'s source imports at its top level, in order (``from a import b`` gives ``a`` and
    ``a.b``: ``preload`` skips ``a.b`` when b is not a module); [] when its source cannot be found."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return []
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read(), spec.origin)
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return [n for n in dict.fromkeys(names) if n not in (module, "__future__")]


def preload(modules: list[str]) -> None:
    """Imports what each of ``modules`` imports. A name that is not a module (``from a import b`` where b is a
    function) or fails to import is left to the task, which then fails as a fresh interpreter would."""
    for module in modules:
        for name in top_level_imports(module):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the task meets the same error itself, in its own log
                pass


def exit_code(err: SystemExit) -> int:
    """The process exit code ``sys.exit(x)`` gives an interpreter."""
    if err.code is None:
        return 0
    if isinstance(err.code, int):
        return err.code & 0xFF
    print(err.code, file=sys.stderr)
    return 1


def python_path(entries: str | None) -> list[str]:
    """The folders a PYTHONPATH value puts on an interpreter's path, as it resolves them (an empty entry is the
    working directory, a relative one is taken from it)."""
    return [os.path.abspath(entry) for entry in entries.split(os.pathsep)] if entries else []


def installation_path() -> list[str]:
    """This interpreter's path without what its start gave it (its first entry, its PYTHONPATH): the folders
    any interpreter of this installation starts with."""
    own = set(python_path(os.environ.get("PYTHONPATH")))
    return [entry for entry in sys.path[1:] if entry not in own]


def forget_own_package() -> None:
    """Drops this module's package from the imported modules: a fresh interpreter has not imported it."""
    package = (__spec__.name if __spec__ else __name__).partition(".")[0]
    for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
        del sys.modules[name]


def run_task(request: dict, python: str, base_path: list[str]) -> int:
    """The request's module as ``python -m`` runs it, in this (forked) process; its exit code. ``base_path``:
    the installation's own folders (``installation_path``)."""
    os.chdir(request["cwd"])
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    err = os.open(request.get("stderr") or request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(err, 2)
    for fd in (log, err, null):
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    # `python -m`'s path: the working directory, the PYTHONPATH, the installation.
    sys.path[:] = [os.getcwd(), *python_path(request["env"].get("PYTHONPATH")), *base_path]
    forget_own_package()
    importlib.invalidate_caches()  # what the server's finders listed of a folder may have changed since
    sys.argv = [python, *request["args"]]  # runpy puts the module's file in sys.argv[0]
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as err:
        code = exit_code(err)
    except ImportError as err:
        if getattr(err, "name", None) == request["module"] and "No module named" in str(err):
            print(f"{python}: {err}", file=sys.stderr)  # as `python -m` says it
        else:
            traceback.print_exc()
        code = 1
    except BaseException:  # noqa: BLE001 - an uncaught exception ends an interpreter with its traceback
        traceback.print_exc()
        code = 1
    # What an interpreter does at exit: wait for non-daemon threads, run atexit handlers, flush.
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # as multiprocessing's forked children do
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = code or 1
    return code


def serve(python: str) -> None:
    base_path = installation_path()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "request")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    running: dict[int, int] = {}  # pid -> key
    pending = b""
    open_input = True

    def answer(**fields) -> None:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()

    def reap() -> None:
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            key = running.pop(pid, None)
            if key is not None:
                answer(key=key, code=os.waitstatus_to_exitcode(status))

    while open_input or running:
        for item, _ in selector.select():
            if item.data == "child":
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
                reap()
                continue
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                open_input = False
                selector.unregister(sys.stdin.fileno())
                continue
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:  # the task's process: it never returns to this loop
                    code = 1
                    try:
                        signal.set_wakeup_fd(-1)
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        selector.close()
                        for fd in (wake_r, wake_w):
                            os.close(fd)
                        code = run_task(request, python, base_path)
                    except BaseException:  # noqa: BLE001 - e.g. its working directory or log cannot be opened
                        traceback.print_exc()
                    finally:
                        os._exit(code)
                running[pid] = request["key"]
                answer(key=request["key"], pid=pid)
        reap()


def main(argv: list[str]) -> None:
    preload(argv)
    serve(sys.executable)


if __name__ == "__main__":
    main(sys.argv[1:])
