"""The local rehearsal's warm start: a task forked from an interpreter that imported its entry point's modules
behaves as ``python -m`` in a fresh interpreter does (arguments, environment, working directory, output, exit
code, exit handlers), and those imports happen once, in the warm interpreter, not in each task."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cicd_pipeline.rehearsal.runners import SubprocessRunner, WarmServer
from cicd_pipeline.rehearsal.warm import exit_code, top_level_imports

# The entry point: its top-level imports are preloaded. `heavy` stands for TensorFlow: it records the pid of
# the process that imported it.
ENTRY = """
import json
import os
import sys
import threading
import atexit

import heavy

def main():
    out = {
        "argv": sys.argv[1:],
        "name": __name__,
        "cwd": os.getcwd(),
        "path0": sys.path[0],
        "env": os.environ.get("PROBE"),
        "pid": os.getpid(),
        "heavy_pid": heavy.PID,
        "path": sys.path[:3],
        "server_package": sorted(m for m in sys.modules if m.partition(".")[0] == "cicd_pipeline"),
    }
    print(json.dumps(out))
    print("to stderr", file=sys.stderr)
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "exit":
        sys.exit(int(sys.argv[2]))
    if mode == "raise":
        raise ValueError("the task broke")
    if mode == "kill":
        os.kill(os.getpid(), 9)
    if mode == "sleep":
        import time
        time.sleep(60)
    if mode == "at-exit":
        atexit.register(lambda: print("atexit ran", flush=True))
        threading.Thread(target=lambda: (__import__("time").sleep(0.3), print("thread done", flush=True))).start()

if __name__ == "__main__":
    main()
"""
HEAVY = """
import os
PID = os.getpid()
"""


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / "entry.py").write_text(textwrap.dedent(ENTRY))
    (folder / "heavy.py").write_text(textwrap.dedent(HEAVY))
    return folder


@pytest.fixture
def runner(modules: Path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(modules), *sys.path[1:]])}
    runner = SubprocessRunner(env, warm=("entry",))
    yield runner
    runner.close()


def run(runner: SubprocessRunner, tmp_path: Path, *args: str, key: int = 1, env=None) -> tuple[int, str]:
    log = tmp_path / "logs" / f"task-{key}.log"
    code = runner.run(key, [runner.python, "-m", "entry", *args], env or {"PROBE": "x"}, log, "")
    return code, log.read_text()


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def reported(text: str) -> dict:
    import json

    return json.loads(next(line for line in text.splitlines() if line.startswith("{")))


def test_the_entry_points_imports_happen_once_in_the_warm_interpreter_not_in_each_task(runner, tmp_path):
    first_code, first = run(runner, tmp_path, "a", key=1)
    second_code, second = run(runner, tmp_path, "b", key=2)
    assert first_code == second_code == 0
    one, two = reported(first), reported(second)
    # Each task is a process of its own; `heavy` was imported by neither: by the interpreter they forked from.
    assert one["pid"] != two["pid"]
    assert one["heavy_pid"] == two["heavy_pid"] not in (one["pid"], two["pid"], os.getpid())
    assert "in this environment" in runner.where and "forked" in runner.where


def test_a_warm_task_sees_what_python_dash_m_gives_a_fresh_one(runner, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, text = run(runner, tmp_path, "--flag", "value", env={"PROBE": "from the task's env"})
    seen = reported(text)
    assert code == 0
    assert seen["argv"] == ["--flag", "value"]
    assert seen["name"] == "__main__"
    assert seen["cwd"] == seen["path0"] == str(work)
    assert seen["env"] == "from the task's env"
    assert "to stderr" in text  # stdout and stderr both in the task's log


def test_a_warm_task_has_its_own_import_path_and_output_files_and_not_the_servers_modules(modules, tmp_path):
    """What `python -m` gives a fresh interpreter with the task's PYTHONPATH: its working directory, then its
    PYTHONPATH, first on the path; none of the server's own package imported; stderr where the task says."""
    own, work = tmp_path / "own", tmp_path / "work"
    own.mkdir()
    work.mkdir()
    base = [str(modules), *sys.path[1:]]
    server = WarmServer(
        sys.executable, {**os.environ, "PYTHONPATH": os.pathsep.join(base)}, ("entry",), tmp_path / "w.log"
    )
    out, err = tmp_path / "out", tmp_path / "err"
    try:
        env = {"PYTHONPATH": os.pathsep.join([str(own), *base]), "PROBE": "p"}
        code = server.run(1, "entry", ["x"], env, out, cwd=work, stderr=err)
    finally:
        server.close()
    seen = reported(out.read_text())
    assert code == 0 and seen["cwd"] == str(work) and seen["argv"] == ["x"]
    assert seen["path"] == [str(work), str(own), str(modules)]
    assert seen["server_package"] == [], (
        "the server ran as cicd_pipeline.rehearsal.warm; the task imports it afresh"
    )
    assert "to stderr" in err.read_text() and "to stderr" not in out.read_text()


def test_a_warm_task_is_killed_by_its_key_alone(runner, tmp_path):
    codes = {}
    workers = [
        threading.Thread(
            target=lambda k=k: codes.update({k: run(runner, tmp_path, "sleep" if k == 1 else "b", key=k)[0]})
        )
        for k in (1, 2)
    ]
    for worker in workers:
        worker.start()
    log = tmp_path / "logs" / "task-1.log"
    for _ in range(400):
        if runner._server is not None and 1 in runner._server._pids and "to stderr" in _text(log):
            break
        time.sleep(0.05)
    runner._server.kill(1)
    for worker in workers:
        worker.join(timeout=30)
    assert codes == {1: -9, 2: 0}


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (("exit", "3"), 3, None),
        (("raise",), 1, "ValueError: the task broke"),
        (("kill",), -9, None),
    ],
)
def test_a_warm_tasks_exit_code_is_a_fresh_ones(runner, tmp_path, args, code, said):
    got, text = run(runner, tmp_path, *args)
    assert got == code
    if said:
        assert said in text and "Traceback" in text


def test_a_module_that_does_not_exist_fails_as_python_dash_m_does(modules, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(modules), *sys.path[1:]])}
    runner = SubprocessRunner(env, warm=("no_such_entry",))
    try:
        log = tmp_path / "missing.log"
        code = runner.run(1, [runner.python, "-m", "no_such_entry"], {}, log, "")
    finally:
        runner.close()
    assert code == 1
    assert "No module named no_such_entry" in log.read_text()


def test_at_exit_the_task_joins_its_threads_and_runs_its_atexit_handlers(runner, tmp_path):
    code, text = run(runner, tmp_path, "at-exit")
    assert code == 0
    assert text.index("thread done") < text.index("atexit ran")


def test_a_command_the_warm_interpreter_cannot_stand_for_runs_fresh(runner, modules, tmp_path):
    # Another PYTHONPATH: the warm interpreter imported with its own, so the task starts from nothing.
    other = {"PYTHONPATH": os.pathsep.join([str(modules), *sys.path[1:], str(tmp_path)])}
    code, text = run(runner, tmp_path, env=other)
    seen = reported(text)
    assert code == 0 and seen["heavy_pid"] == seen["pid"]
    # A module the runner does not warm: a fresh process as well.
    log = tmp_path / "other.log"
    assert runner.run(2, [runner.python, "-m", "heavy"], {}, log, "") == 0
    assert runner._server is None  # neither started the warm interpreter


def test_cancel_kills_a_running_warm_task(runner, tmp_path):
    codes = []
    worker = threading.Thread(target=lambda: codes.append(run(runner, tmp_path, "sleep")[0]))
    worker.start()
    # The task is running once the server answered with its pid and the task wrote its first lines (a fork
    # can be killed before it opens its log: slower under coverage, which restarts in each fork).
    log = tmp_path / "logs" / "task-1.log"
    for _ in range(400):
        if runner._server is not None and runner._server._pids and "to stderr" in _text(log):
            break
        time.sleep(0.05)
    runner.cancel()
    worker.join(timeout=30)
    assert codes == [-9]


def test_close_ends_the_warm_interpreter(runner, tmp_path):
    assert run(runner, tmp_path)[0] == 0
    server = runner._server
    runner.close()
    assert server.process.poll() == 0 and runner._server is None


def test_the_preloaded_names_are_the_modules_top_level_imports(modules, monkeypatch):
    monkeypatch.syspath_prepend(str(modules))
    assert top_level_imports("entry") == ["json", "os", "sys", "threading", "atexit", "heavy"]
    assert top_level_imports("no_such_module_here") == []


def test_sys_exit_codes_map_as_an_interpreters_do(capsys):
    assert exit_code(SystemExit()) == 0
    assert exit_code(SystemExit(2)) == 2
    assert exit_code(SystemExit("a message")) == 1
    assert "a message" in capsys.readouterr().err


def test_a_task_that_cannot_start_fails_alone_and_the_next_one_runs(runner, tmp_path):
    # Its log cannot be opened (the path is a folder): the forked process ends with 1, never serving requests.
    folder = tmp_path / "a-folder.log"
    folder.mkdir()
    assert runner.run(1, [runner.python, "-m", "entry"], {}, folder, "") == 1
    assert run(runner, tmp_path, key=2)[0] == 0
