"""The live progress: a line per component as ML Metadata records its state, plain lines off a terminal."""

import io

import pytest
from mlmd_writer import PIPELINE_NAME
from rich.console import Console

from cicd_pipeline.progress import Progress, graph_of

GRAPH = {"CsvExampleGen": [], "StatisticsGen": ["CsvExampleGen"], "Trainer": ["StatisticsGen"]}


def progress_on(store, graph=GRAPH) -> tuple[Progress, io.StringIO]:
    out = io.StringIO()
    progress = Progress(
        store.path, PIPELINE_NAME, out, live=False, interval=3600
    )  # polled by hand, not by time
    progress.graph = dict(graph)
    return progress, out


def lines(out: io.StringIO) -> list[list[str]]:
    return [line.split() for line in out.getvalue().splitlines()]


def test_each_state_change_is_one_plain_line(mlmd_store):
    progress, out = progress_on(mlmd_store)
    with progress:
        assert out.getvalue() == ""  # waiting is where every component starts, not a change
        run = mlmd_store.run("r1")
        examples = mlmd_store.artifact()
        first = mlmd_store.execute(run, "CsvExampleGen", "RUNNING")
        progress.poll()
        progress.poll()  # nothing changed: nothing printed
        mlmd_store.set_state(first, "COMPLETE")
        mlmd_store.execute(run, "StatisticsGen", "CACHED", inputs={"examples": [examples]})
        progress.poll()
        mlmd_store.execute(run, "Trainer", "FAILED")
    shown = lines(out)
    assert [words[:2] for words in shown] == [
        ["CsvExampleGen", "running"],
        ["CsvExampleGen", "done"],
        ["StatisticsGen", "cached"],
        ["Trainer", "failed"],  # the last poll, when the run ends
    ]
    assert shown[1][-1] == "s" and float(shown[1][2]) >= 0  # done carries its time
    assert len(shown[2]) == 2  # a cache hit took no time worth showing


def test_a_failed_run_marks_the_running_component_failed_and_the_rest_not_run(mlmd_store):
    progress, out = progress_on(mlmd_store)
    with pytest.raises(RuntimeError), progress:
        run = mlmd_store.run("r1")
        mlmd_store.execute(run, "CsvExampleGen", "COMPLETE")
        mlmd_store.execute(run, "StatisticsGen", "RUNNING")  # its driver failed: TFX never marked it FAILED
        raise RuntimeError("boom")
    assert {n.node: n.label for n in progress.nodes.values()} == {
        "CsvExampleGen": "done",
        "StatisticsGen": "failed",
        "Trainer": "not run",
    }
    assert progress.failed_node == "StatisticsGen"
    assert lines(out)[-1] == ["Trainer", "not", "run"]


def test_earlier_runs_are_not_this_run(mlmd_store):
    old = mlmd_store.run("r0")
    mlmd_store.execute(old, "CsvExampleGen", "FAILED")
    progress, out = progress_on(mlmd_store)
    with progress:
        pass
    assert {n.label for n in progress.nodes.values()} == {"waiting"}
    assert progress.failed_node is None
    assert out.getvalue() == ""


def test_a_store_that_does_not_exist_yet_is_read_again_later(tmp_path):
    out = io.StringIO()
    progress = Progress(tmp_path / "not-yet.sqlite", PIPELINE_NAME, out, live=False, interval=3600)
    progress.graph = dict(GRAPH)
    with progress:
        progress.poll()
    assert not (tmp_path / "not-yet.sqlite").exists()  # read-only: the reader never creates the store
    assert {n.label for n in progress.nodes.values()} == {"waiting"}


def test_components_outside_the_graph_are_shown_when_they_run(mlmd_store):
    progress, out = progress_on(mlmd_store, graph={})
    with progress:
        mlmd_store.execute(mlmd_store.run("r1"), "Pusher", "COMPLETE")
    assert lines(out)[0][:2] == ["Pusher", "done"]


def test_the_live_display_shows_every_component_with_its_state_and_elapsed_time(mlmd_store):
    progress, _ = progress_on(mlmd_store)
    with progress:
        run = mlmd_store.run("r1")
        mlmd_store.execute(run, "CsvExampleGen", "CACHED")
        mlmd_store.execute(run, "StatisticsGen", "RUNNING")
        progress.poll()
        started = progress.nodes["StatisticsGen"].started
        console = Console(file=io.StringIO(), width=100, color_system=None)
        console.print(progress.render(now=started + 12.34))
        screen = console.file.getvalue()
    rows = {line.split()[1]: line.split()[2:] for line in screen.splitlines() if line.strip()}
    assert rows["CsvExampleGen"] == ["cached"]
    assert rows["StatisticsGen"] == ["running", "12.3", "s"]
    assert rows["Trainer"] == ["waiting"]


def test_a_terminal_gets_the_live_display_a_pipe_gets_lines(tmp_path):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert Progress(tmp_path / "m", PIPELINE_NAME, Tty()).live is True
    assert Progress(tmp_path / "m", PIPELINE_NAME, io.StringIO()).live is False


def test_the_graph_is_the_pipelines_nodes_in_run_order_with_what_each_waits_for():
    from test_pipeline import make

    pipeline = make()
    graph = graph_of(pipeline)
    assert list(graph) == [c.id for c in pipeline.components]
    order = list(graph)
    for node, upstream in graph.items():
        assert all(order.index(u) < order.index(node) for u in upstream), node
    assert "AnomaliesGate" in graph["Transform"]  # an explicit edge, not a data one
    assert "latest_blessed_model_resolver" in graph["Evaluator"]
