"""The launcher: the compiled spec's DAG walked as Vertex AI Pipelines walks it.

For each task, once every task it waits for has succeeded:

- a resolver task answers its artifact queries from the store (the latest LIVE match in this pipeline, or
  nothing) and hands the answer on;
- a container task gets its ExecutorInput (parameters; input artifacts as the upstream tasks left them,
  by the DAG's wiring; output URIs under ``<pipeline root>/rehearsal/<run id>/<task>_<execution id>/``);
  its ``lifecycle.preCacheCheck`` command runs first where the spec has one (TFX's ExampleGen driver, which
  adds the data's fingerprint to the parameters); the cache is asked (Vertex's key: the container, the input
  artifacts' names, the parameters, the outputs' types) unless the task or the run disables it; then its
  command runs, and the launcher reads what Vertex reads: the exit code, then the ExecutorOutput in
  ``outputFile``, whose artifacts (with the metadata the task set) go downstream and into the store.

The first task that fails stops the rehearsal, as it fails a Vertex run: tasks still running are cancelled,
later ones never start, and ``RehearsalFailed`` says in one line which task and why (the last line of the
error its log ends with), with the log's path. Up to ``parallel`` tasks run at once, as Vertex runs
independent tasks side by side.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import posixpath
import re
import threading
import time
from pathlib import Path
from typing import Any

from cicd_pipeline.rehearsal.executor_input import (
    EXECUTOR_OUTPUT,
    build_executor_input,
    command_line,
    plain,
    read_executor_output,
    resolve_parameters,
)
from cicd_pipeline.rehearsal.query import QueryError, check_filter, compile_filter, fill_placeholders
from cicd_pipeline.rehearsal.spec import PipelineJob, SpecError, Task, type_title
from cicd_pipeline.rehearsal.store import Store
from cicd_pipeline.run_record import RESOLVER_TYPE

# Where Vertex puts the project number, under the pipeline root.
RUNS_FOLDER = "rehearsal"


class RehearsalFailed(RuntimeError):
    """A task failed (or the spec cannot run): ``task`` and a one-line ``cause``; ``log``: the task's log."""

    def __init__(self, task: str, cause: str, log: Path | None = None):
        self.task, self.cause, self.log = task, cause, log
        super().__init__(f"task {task}: {cause}" + (f"  (its log: {log})" if log else ""))


class _Cancelled(Exception):
    """A task stopped because another one failed."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    run_id: str
    states: dict[str, str]  # task -> COMPLETE (ran) or CACHED
    seconds: float
    root: str  # where this rehearsal's artifacts are: <pipeline root>/rehearsal/<run id>


def _join(root: str, *parts: str) -> str:
    return posixpath.join(root, *parts) if root.startswith("gs://") else os.path.join(root, *parts)


def _read(uri: str) -> str | None:
    """A (small) file's text, local or gs:// (through TensorFlow's file system, as TFX writes it); None if absent."""
    if uri.startswith("gs://"):
        import tensorflow as tf

        return tf.io.gfile.GFile(uri).read() if tf.io.gfile.exists(uri) else None
    path = Path(uri)
    return path.read_text() if path.is_file() else None


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failure)\b.*")
_DIRECT_CAUSE = "The above exception was the direct cause of the following exception:"
_TAIL_BYTES = 1_000_000  # a failure is at the end of its log


def failure_cause(log: Path, code: int) -> str:
    """``exit 1: ImportError: Could not import x.Y (ModuleNotFoundError: No module named 'x')``: how the task
    ended, the error its log ends with, and the error that caused it when one was chained."""
    if code < 0:
        how = f"killed by signal {-code}"
    else:
        how = f"exit {code}" + (" (killed: out of memory?)" if code == 137 else "")
    try:
        with open(log, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - _TAIL_BYTES))
            lines = [line.rstrip() for line in f.read().decode("utf-8", errors="replace").splitlines()]
    except OSError:
        lines = []
    errors = [i for i, line in enumerate(lines) if _ERROR_LINE.match(line)]
    if not errors:
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        return f"{how}: {last[:300]}" if last else f"{how}, and its log is empty"
    last = lines[errors[-1]]
    markers = [i for i, line in enumerate(lines) if line.strip() == _DIRECT_CAUSE and i < errors[-1]]
    causes = [i for i in errors if markers and i < markers[-1]]
    cause = f" ({lines[causes[-1]][:200]})" if causes and lines[causes[-1]] != last else ""
    return f"{how}: {last[:300]}{cause}"


def cache_key(task: Task, inputs: dict[str, list[dict]], parameters: dict[str, Any]) -> str:
    """Vertex's cache key, in spirit: the container, the input artifacts by name, the parameters, the outputs."""
    key = {
        "container": {k: task.container.get(k) for k in ("image", "command", "args")},
        "inputArtifactNames": {k: [a["name"] for a in v] for k, v in sorted(inputs.items())},
        "inputParameterValues": parameters,
        "outputArtifacts": {k: type_title(t) for k, t in sorted(task.output_types.items())},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class _Walk:
    def __init__(self, job, parameters, pipeline_root, store, runner, log_dir, run_id, cache, env):
        self.job, self.store, self.runner = job, store, runner
        self.log_dir, self.run_id, self.cache = Path(log_dir), run_id, cache
        self.env = dict(env or {})
        self.run_root = _join(pipeline_root, RUNS_FOLDER, run_id)
        self.lock = threading.Lock()  # ML Metadata's connection is not shared across threads unguarded
        self.cancelled = threading.Event()
        self.produced: dict[str, dict[str, list[dict[str, Any]]]] = {}
        # Every container task's parameters, resolved now: a spec that cannot run fails before any task does.
        self.parameters = {
            name: resolve_parameters(job, task, parameters)
            for name, task in job.tasks.items()
            if task.kind == "container"
        }
        for name, task in job.tasks.items():
            if task.kind == "container":
                command_line(task, {})
                hook = task.container.get("lifecycle", {}).get("preCacheCheck")
                if hook:
                    command_line(task, {}, container=hook)
            else:
                for key, text in task.queries.items():
                    try:
                        check_filter(text)
                    except QueryError as err:
                        raise SpecError(f"task {name}: its query for {key}: {err}") from None

    def inputs_of(self, task: Task) -> dict[str, list[dict[str, Any]]]:
        return {
            key: self.produced[producer].get(output, [])
            for key, (producer, output) in task.input_artifacts.items()
        }

    def run(self, name: str) -> tuple[str, dict[str, list[dict[str, Any]]]]:
        task = self.job.tasks[name]
        if task.kind == "resolver":
            return "COMPLETE", self.resolve(task)
        return self.execute(task)

    def resolve(self, task: Task) -> dict[str, list[dict[str, Any]]]:
        inputs = self.inputs_of(task)
        with self.lock:
            execution = self.store.start(task.name, RESOLVER_TYPE, task.queries, inputs)
            found = {}
            for key, text in task.queries.items():
                filled = fill_placeholders(text, inputs)
                found[key] = [] if filled is None else self.store.query(compile_filter(filled))
            self.store.finish(execution, "COMPLETE", found, resolver=True)
        return found

    def execute(self, task: Task) -> tuple[str, dict[str, list[dict[str, Any]]]]:
        inputs = self.inputs_of(task)
        parameters = self.parameters[task.name]
        with self.lock:
            execution = self.store.start(
                task.name, task.executor_class, {k: plain(v) for k, v in parameters.items()}, inputs
            )
            task_root = _join(self.run_root, f"{task.name}_{execution}")
            outputs = {
                key: self.store.new_output(t, _join(task_root, key)) for key, t in task.output_types.items()
            }
        output_file = _join(task_root, EXECUTOR_OUTPUT)
        log = self.log_dir / f"{task.name}.log"
        try:
            if not task_root.startswith("gs://"):
                # Vertex's launcher makes the local folders of the outputs (its /gcs mount); GCS needs none.
                for output in outputs.values():
                    os.makedirs(output["uri"], exist_ok=True)
            executor_input = build_executor_input(task, parameters, inputs, outputs, output_file)
            hook = task.container.get("lifecycle", {}).get("preCacheCheck")
            if hook:
                code = self._command(execution, task, executor_input, log, hook)
                if code:
                    raise RehearsalFailed(task.name, f"its preCacheCheck {failure_cause(log, code)}", log)
                parameters = self._after_hook(task, parameters, output_file)
            key = cache_key(task, inputs, {k: plain(v) for k, v in parameters.items()})
            if self.cache and task.caching:
                with self.lock:
                    cached = self.store.cached(key)
                if cached is not None:
                    self._settle(task, outputs, "ABANDONED")
                    with self.lock:
                        self.store.finish(execution, "CACHED", cached)
                    return "CACHED", cached
            code = self._command(execution, task, executor_input, log)
            if code:
                raise RehearsalFailed(task.name, failure_cause(log, code), log)
            settled = self._outputs(task, outputs, output_file)
        except (RehearsalFailed, SpecError, _Cancelled) as stop:
            self._settle(task, outputs, "ABANDONED")
            with self.lock:
                self.store.finish(execution, "CANCELED" if self.cancelled.is_set() else "FAILED")
            if isinstance(stop, SpecError):
                raise RehearsalFailed(task.name, str(stop).removeprefix(f"task {task.name}: "), log) from None
            raise
        with self.lock:
            self.store.finish(execution, "COMPLETE", settled, cache_key=key)
        return "COMPLETE", settled

    def _command(
        self, execution: int, task: Task, executor_input: dict, log: Path, hook: dict | None = None
    ) -> int:
        if self.cancelled.is_set():
            raise _Cancelled()
        python = getattr(self.runner, "python", None)
        line = command_line(task, executor_input, container=hook, python=python)
        env = {**self.env, **{e["name"]: e["value"] for e in task.container.get("env", [])}}
        code = self.runner.run(execution, line, env, log, task.container.get("image", ""))
        if self.cancelled.is_set():
            raise _Cancelled()
        return code

    @staticmethod
    def _after_hook(task: Task, parameters: dict, output_file: str) -> dict:
        """The parameters with what the preCacheCheck wrote (span, fingerprint): they enter the cache key."""
        text = _read(output_file)
        if text is None:
            return parameters
        written = read_executor_output(text, task)
        updated = dict(parameters)
        for name, value in written.get("parameters", {}).items():
            updated[name] = value
        for name, value in written.get("parameterValues", {}).items():
            if name not in written.get("parameters", {}):
                updated[name] = {"stringValue": value} if isinstance(value, str) else {"doubleValue": value}
        return updated

    def _outputs(self, task: Task, outputs: dict, output_file: str) -> dict[str, list[dict[str, Any]]]:
        """Each output as the ExecutorOutput left it (its URI and metadata), made LIVE; none written: as given."""
        text = _read(output_file)
        written = read_executor_output(text, task).get("artifacts", {}) if text is not None else {}
        settled = {}
        for key, record in outputs.items():
            given = written.get(key, {}).get("artifacts", [])
            mine = next((a for a in given if a.get("name") == record["name"]), given[0] if given else {})
            record = {**record, "uri": mine.get("uri") or record["uri"], "metadata": mine.get("metadata", {})}
            with self.lock:
                self.store.settle(record, task.output_types[key], "LIVE")
            settled[key] = [record]
        return settled

    def _settle(self, task: Task, outputs: dict, state: str) -> None:
        with self.lock:
            for key, record in outputs.items():
                self.store.settle(record, task.output_types[key], state)


def rehearse(
    job: PipelineJob,
    *,
    parameters: dict[str, Any],
    pipeline_root: str,
    store: Store,
    runner,
    log_dir: Path,
    run_id: str,
    cache: bool = True,
    parallel: int = 1,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Runs every task of ``job`` with the run's ``parameters``; RehearsalFailed at the first task that fails.

    The spec is checked first (SpecError: nothing has run). ``store`` records the run (``store.start_run`` is
    called here); ``env`` is added to each task's environment, under the container's own ``env``.
    """
    job.check_run_parameters(parameters)
    walk = _Walk(job, parameters, pipeline_root, store, runner, log_dir, run_id, cache, env)
    started = time.monotonic()
    with walk.lock:
        store.start_run(run_id)
    order = job.order()
    pending, done, states = list(order), set(), {}
    failure: BaseException | None = None
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, parallel), thread_name_prefix="task"
    ) as pool:
        running: dict[concurrent.futures.Future, str] = {}
        while True:
            if failure is None:
                for name in list(pending):
                    if len(running) >= max(1, parallel):
                        break
                    if set(job.tasks[name].upstream) <= done:
                        pending.remove(name)
                        running[pool.submit(walk.run, name)] = name
            if not running:
                break
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                try:
                    states[name], walk.produced[name] = future.result()
                    done.add(name)
                except _Cancelled:
                    pass
                except BaseException as err:  # noqa: BLE001 - the first failure ends the run; later ones are its echo
                    if failure is None:
                        failure = err
                        walk.cancelled.set()
                        runner.cancel()
    if failure is not None:
        raise failure
    return Outcome(run_id, states, time.monotonic() - started, walk.run_root)
