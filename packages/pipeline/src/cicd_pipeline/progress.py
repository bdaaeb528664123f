"""Live progress of a local run: a line per component (waiting, running with its elapsed time, cached, done,
failed), on the terminal while the run's own output goes to its log.

Progress is read from ML Metadata, where TFX records each execution's state as it goes (RUNNING, then
COMPLETE, CACHED or FAILED): a background thread polls the store read-only, so nothing depends on TFX's log
wording or internals. On a terminal the lines redraw in place (rich); elsewhere (CI, tests, a pipe) each state
change prints one plain line.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from cicd_pipeline.run_record import executions_since, open_store

# MLMD's execution states as a person reads them.
LABELS = {
    "NEW": "running",
    "RUNNING": "running",
    "COMPLETE": "done",
    "CACHED": "cached",
    "FAILED": "failed",
    "CANCELED": "failed",
}
WAITING, NOT_RUN = "waiting", "not run"
_STYLES = {
    WAITING: ("·", "dim"),
    "running": ("", "yellow"),
    "done": ("✓", "green"),
    "cached": ("↺", "cyan"),
    "failed": ("✗", "bold red"),
    NOT_RUN: ("-", "dim"),
}
_log = logging.getLogger(__name__)


@dataclasses.dataclass
class NodeProgress:
    node: str
    label: str = WAITING
    started: float | None = None  # seconds since the epoch
    finished: float | None = None

    def seconds(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.finished if self.label != "running" and self.finished else now) - self.started

    def line(self, width: int, now: float) -> str:
        seconds = self.seconds(now)
        timing = f"{seconds:7.1f} s" if seconds is not None and self.label in ("done", "failed") else ""
        return f"  {self.node:<{width}}  {self.label:<8}{timing}".rstrip()


def graph_of(pipeline) -> dict[str, list[str]]:
    """A TFX pipeline's nodes in run order, each with the nodes it waits for (data and explicit edges)."""
    return {c.id: sorted(u.id for u in c.upstream_nodes) for c in pipeline.components}


def terminal() -> TextIO:
    """A text stream on a duplicate of stdout, made before the run's output is sent to its log file."""
    sys.stdout.flush()
    return os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")


class Progress:
    """Shows a run's progress on `out`; `run_local(..., progress=Progress(...))` calls it with the pipeline.

    `live`: redraw in place with rich (default: when `out` is a terminal); otherwise a plain line per change.
    """

    def __init__(
        self,
        metadata_path,
        pipeline_name: str,
        out: TextIO,
        live: bool | None = None,
        interval: float = 0.5,
    ):
        self.metadata_path = Path(metadata_path)
        self.pipeline_name = pipeline_name
        self.out = out
        self.live = out.isatty() if live is None else live
        self.interval = interval
        self.graph: dict[str, list[str]] = {}
        self.nodes: dict[str, NodeProgress] = {}
        self.since: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store = None
        self._names: dict[int, str] = {}
        self._display = None
        self._error = ""
        self._spinners: dict[str, object] = {}  # one per node, so that it turns between redraws

    def __call__(self, pipeline) -> Progress:
        self.graph = graph_of(pipeline)
        return self

    @property
    def failed_node(self) -> str | None:
        return next((n.node for n in self.nodes.values() if n.label == "failed"), None)

    def __enter__(self) -> Progress:
        # Every execution of this run is made after this moment (TFX compiles the pipeline first).
        self.since = time.time()
        self.nodes = {node: NodeProgress(node) for node in self.graph}
        if self.live:
            self._display = _live_display(self)
            self._display.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll_until_stopped, name="run-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poll()
        if exc_type is not None:
            # TFX records a failed executor as FAILED; a failure outside one (its driver, the launcher) leaves
            # the node RUNNING. Either way the run is over: say so, and what never started.
            with self._lock:  # the live display may be drawing
                for node in self.nodes.values():
                    if node.label == "running":
                        self._change(node, "failed", node.started, time.time())
                    elif node.label == WAITING:
                        self._change(node, NOT_RUN, None, None)
        if self._display is not None:
            self._display.stop()
            self._display = None
        self._store = None
        self.out.flush()

    def _poll_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        """Reads the run's executions and shows each node whose state changed. Never raises: progress is a
        view, and a busy or half-created store (the run's first seconds) is simply read again next time."""
        try:
            if self._store is None:
                if not self.metadata_path.exists():
                    return
                self._store = open_store(self.metadata_path)
            executions = executions_since(self._store, self.pipeline_name, self.since or 0, self._names)
        except Exception as err:  # noqa: BLE001 (see the docstring)
            if str(err) != self._error:  # into the run's log, once per kind of trouble, not twice a second
                self._error = str(err)
                _log.warning("progress: cannot read %s (yet): %s", self.metadata_path, err)
            self._store = None
            return
        with self._lock:
            for execution in executions:
                node = self.nodes.setdefault(execution.node, NodeProgress(execution.node))
                label = LABELS.get(execution.state, execution.state.lower())
                finished = execution.updated if label != "running" else None
                if label != node.label:
                    self._change(node, label, execution.started, finished)

    def _change(self, node: NodeProgress, label: str, started, finished) -> None:
        node.label, node.started, node.finished = label, started, finished
        if not self.live:
            width = max(len(n) for n in self.nodes)
            self.out.write(node.line(width, time.time()) + "\n")
            self.out.flush()

    def render(self, now: float | None = None):
        """The rich renderable of every node's line (what the live display redraws)."""
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        now = time.time() if now is None else now
        table = Table.grid(padding=(0, 1))
        for _ in range(4):
            table.add_column()
        with self._lock:
            for node in self.nodes.values():
                icon, style = _STYLES.get(node.label, ("?", ""))
                seconds = node.seconds(now)
                timing = f"{seconds:6.1f} s" if seconds is not None and node.label != "cached" else ""
                if node.label == "running":
                    mark = self._spinners.setdefault(node.node, Spinner("dots", style=style))
                else:
                    mark = Text(icon, style=style)
                table.add_row(
                    mark,
                    Text(node.node),
                    Text(node.label, style=style),
                    Text(timing, style="dim" if node.label != "running" else style),
                )
        return table


def _live_display(progress: Progress):
    from rich.console import Console
    from rich.live import Live

    try:
        width = os.get_terminal_size(progress.out.fileno()).columns
    except (OSError, ValueError, AttributeError):
        width = None
    console = Console(file=progress.out, force_terminal=True, width=width)
    # Not rich's default stdout capture: the run's own output goes to its log file, not above the lines.
    return Live(
        get_renderable=progress.render,
        console=console,
        refresh_per_second=4,
        redirect_stdout=False,
        redirect_stderr=False,
    )
