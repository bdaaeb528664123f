"""The HTML run report: what it shows of a run read back from ML Metadata, and that it needs no network.

tests/e2e/test_html_report.py opens a real run's report in a headless browser.
"""

import os
import re
import time
from html.parser import HTMLParser

import pytest
from mlmd_writer import PIPELINE_NAME
from tensorflow_metadata.proto.v0 import statistics_pb2

from cicd_pipeline.html_report import (
    RunView,
    gather,
    newest_report,
    render,
    report_path,
    report_run,
    write_report,
)
from cicd_pipeline.report import RunSummary

GRAPH = {
    "CsvExampleGen": [],
    "StatisticsGen": ["CsvExampleGen"],
    "Trainer": ["CsvExampleGen"],
    "Evaluator": ["Trainer"],
    "Pusher": ["Evaluator", "Trainer"],
}
METRICS = {
    "sparse_categorical_accuracy": 0.9741,
    "sparse_categorical_accuracy (baseline)": 0.9828,
    "sparse_categorical_accuracy (change vs baseline)": -0.0087,
}


class Page(HTMLParser):
    """What the report holds: every element's attributes by tag, and its visible text."""

    def __init__(self, text: str):
        super().__init__()
        self.raw = text
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._skip = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._skip += tag in ("style", "title")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "title") and self._skip > 0

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.text.append(data.strip())

    def nodes(self) -> dict[str, str]:
        return {a["data-node"]: a["data-state"] for t, a in self.elements if t == "g" and "data-node" in a}

    def rows(self, table_id: str) -> list[list[str]]:
        """The cells' text of the table whose id (or split) is `table_id`, row by row."""
        parser = _TableText(table_id)
        parser.feed(self.raw)
        return parser.rows


class _TableText(HTMLParser):
    def __init__(self, table_id):
        super().__init__()
        self.table_id, self.inside, self.rows = table_id, False, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.inside = attrs.get("id") == self.table_id or attrs.get("data-split") == self.table_id
        elif tag == "tr" and self.inside:
            self.rows.append([])
        elif tag in ("td", "th") and self.inside and self.rows:
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False

    def handle_data(self, data):
        if self.inside and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data.strip()


def parse(text: str) -> Page:
    return Page(text)


def stats_file(folder, split, rows_with_value, rows):
    """A StatisticsGen output split: one float feature with `rows_with_value` of `rows` filled in."""
    feature = statistics_pb2.FeatureNameStatistics(type=statistics_pb2.FeatureNameStatistics.FLOAT)
    feature.path.step.append("bill_length_mm")
    common = feature.num_stats.common_stats
    common.num_non_missing, common.max_num_values, common.tot_num_values = rows, 1, rows_with_value
    feature.num_stats.mean, feature.num_stats.min, feature.num_stats.max = 43.15, 33.1, 55.9
    species = statistics_pb2.FeatureNameStatistics(type=statistics_pb2.FeatureNameStatistics.STRING)
    species.path.step.append("species")
    species.string_stats.common_stats.num_non_missing = rows
    species.string_stats.common_stats.max_num_values = 1
    species.string_stats.common_stats.tot_num_values = rows
    species.string_stats.unique = 2
    species.string_stats.top_values.add(value="Adelie", frequency=rows - 1)
    species.string_stats.top_values.add(value="Gentoo", frequency=1)
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(num_examples=rows)
    dataset.features.extend([feature, species])
    path = folder / f"Split-{split}" / "FeatureStats.pb"
    path.parent.mkdir(parents=True)
    path.write_bytes(stats.SerializeToString())


@pytest.fixture
def recorded(mlmd_store, tmp_path):
    """Two runs: the second reuses the data and the model, evaluates against a baseline, and pushes."""
    stats_dir = tmp_path / "statistics"
    stats_file(stats_dir, "train", 226, 228)
    stats_file(stats_dir, "eval", 116, 116)
    examples = mlmd_store.artifact()
    statistics = mlmd_store.artifact("ExampleStatistics", str(stats_dir), split_names='["train", "eval"]')
    model = mlmd_store.artifact("Model")
    first = mlmd_store.run("2026-01-01T00:00:00")
    mlmd_store.execute(first, "CsvExampleGen", outputs={"examples": [examples]})
    mlmd_store.execute(
        first, "StatisticsGen", inputs={"examples": [examples]}, outputs={"statistics": [statistics]}
    )
    mlmd_store.execute(first, "Trainer", inputs={"examples": [examples]}, outputs={"model": [model]})
    second = mlmd_store.run("2026-01-02T00:00:00")
    mlmd_store.execute(second, "CsvExampleGen", "CACHED", outputs={"examples": [examples]})
    mlmd_store.execute(
        second,
        "StatisticsGen",
        "CACHED",
        inputs={"examples": [examples]},
        outputs={"statistics": [statistics]},
    )
    mlmd_store.execute(
        second, "Trainer", "CACHED", inputs={"examples": [examples]}, outputs={"model": [model]}
    )
    mlmd_store.execute(second, "Evaluator", inputs={"model": [model], "baseline_model": [model]})
    return mlmd_store


def summary(**fields):
    values = dict(
        run_id="2026-01-02T00:00:00",
        components=[],
        blessed=True,
        metrics=METRICS,
        pushed_destination="/state/serving_model/1767312000",
        registry_version=3,
    )
    return RunSummary(**{**values, **fields})


def test_every_component_of_the_graph_with_its_state_time_and_why_it_ran(recorded):
    view = gather(recorded.path, PIPELINE_NAME, summary(), graph=GRAPH, threshold=0.6, tolerance=0.02)
    page = parse(render(view))
    assert page.nodes() == {
        "CsvExampleGen": "cached",
        "StatisticsGen": "cached",
        "Trainer": "cached",
        "Evaluator": "done",
        "Pusher": "not run",
    }
    rows = {r[0]: r[1:] for r in page.rows("components")[1:]}
    assert rows["Evaluator"][0] == "done" and rows["Evaluator"][1].endswith(" s")
    assert rows["Evaluator"][2] == "its first run in this state folder"
    assert rows["Trainer"] == ["cached", "", ""]
    assert rows["Pusher"][0] == "not run"
    edges = {(a["data-from"], a["data-to"]) for t, a in page.elements if t == "path" and "data-from" in a}
    assert edges == {(u, n) for n, ups in GRAPH.items() for u in ups}


def test_the_metrics_against_the_baseline_and_where_the_model_went(recorded):
    page = parse(
        render(gather(recorded.path, PIPELINE_NAME, summary(), graph=GRAPH, threshold=0.6, tolerance=0.02))
    )
    assert page.rows("metrics")[1] == ["sparse_categorical_accuracy", "0.9741", "0.9828", "-0.0087"]
    text = " ".join(page.text)
    assert "BLESSED" in text and "accuracy at least 0.60" in text and "beyond 0.0200" in text
    assert "Pushed to /state/serving_model/1767312000 , registry version 3." in text.replace("  ", " ")


def test_a_refused_model_says_why_and_that_nothing_was_pushed(recorded):
    refused = summary(
        blessed=False, pushed_destination=None, registry_version=None, refusals=["accuracy: too low"]
    )
    text = " ".join(parse(render(gather(recorded.path, PIPELINE_NAME, refused, graph=GRAPH))).text)
    assert "NOT BLESSED" in text and "accuracy: too low" in text and "Nothing was pushed" in text


def test_the_data_statistics_count_an_empty_cell_as_missing(recorded):
    page = parse(render(gather(recorded.path, PIPELINE_NAME, summary(), graph=GRAPH)))
    train = {r[0]: r[1:] for r in page.rows("train")[1:]}
    # CsvExampleGen writes an empty CSV cell as the feature with no value: TFDV calls it present.
    assert train["bill_length_mm"][:3] == ["float", "226", "2"]
    assert train["bill_length_mm"][3] == "43.15"
    assert train["species"][-1] == "2 distinct: Adelie (227), Gentoo (1)"
    assert "train: 228 examples" in page.text and "eval: 116 examples" in page.text


def test_without_the_graph_the_edges_are_the_ones_the_data_took(recorded):
    view = gather(recorded.path, PIPELINE_NAME, summary())
    upstream = {c.node: c.upstream for c in view.components}
    assert upstream == {
        "CsvExampleGen": (),
        "StatisticsGen": ("CsvExampleGen",),
        "Trainer": ("CsvExampleGen",),
        "Evaluator": ("Trainer",),
    }


def test_the_report_needs_nothing_from_the_network_and_escapes_what_it_shows(recorded):
    view = gather(
        recorded.path, PIPELINE_NAME, summary(), graph={**GRAPH, "<b>odd</b>": []}, log="/logs/run.log"
    )
    text = render(view)
    assert "<b>odd</b>" not in text and "&lt;b&gt;odd&lt;/b&gt;" in text
    assert "<script" not in text.lower()
    # The one http:// in the file is the SVG namespace, a name that is never fetched.
    assert re.findall(r"https?://[^\s\"'<>)]+", text) == ["http://www.w3.org/2000/svg"]
    linked = [a.get("href") or a.get("src") for _, a in parse(text).elements if a.get("href") or a.get("src")]
    assert linked == ["data:,"]  # the favicon: a data URL, so the browser asks for none


def test_a_run_that_recorded_nothing_since_it_started_gets_no_report(recorded, tmp_path):
    later = time.time() + 3600
    with pytest.raises(ValueError, match="since the run started"):
        gather(recorded.path, PIPELINE_NAME, summary(), since=later)
    assert report_run(recorded.path, PIPELINE_NAME, tmp_path / "reports", summary(), since=later) is None
    assert report_run(tmp_path / "empty.sqlite", PIPELINE_NAME, tmp_path / "reports", summary()) is None
    assert not (tmp_path / "reports").exists()


def test_one_report_per_run_and_the_newest_is_found(tmp_path):
    folder = tmp_path / "reports"
    assert newest_report(folder) is None
    views = [
        RunView(PIPELINE_NAME, run_id, [], {}, None, [], None, None, [])
        for run_id in ("2026-01-02T10:00:00.5", "2026-01-01T10:00:00.5")
    ]
    paths = [write_report(folder, v) for v in views]
    assert paths[0] == report_path(folder, "2026-01-02T10:00:00.5") == folder / "2026-01-02T10-00-00.5.html"
    os.utime(paths[0], (1, 1))  # the older file on disk is the older run, whatever the names say
    assert newest_report(folder) == paths[1]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths)  # no temporary left
    assert "No component ran." in paths[1].read_text()


def test_the_judges_checks_are_shown_each_passed_or_refused(recorded):
    lines = [
        "eval split (96 examples): accuracy 0.9688 >= threshold 0.60: passed",
        "holdout (67 examples): accuracy 0.6269 vs baseline 1.0000, change -0.3731, outside tolerance ±0.0196: "
        "refused",
    ]
    judged = summary(blessed=False, pushed_destination=None, checks=lines, refusals=lines[1:])
    page = parse(render(gather(recorded.path, PIPELINE_NAME, judged, graph=GRAPH, threshold=0.6)))
    items = [
        (a.get("class"), t) for t, a in page.elements if t == "li" and a.get("class") in ("passed", "refused")
    ]
    assert [c for c, _ in items] == ["passed", "refused"]
    text = " ".join(page.text)
    assert lines[0] in text and "outside tolerance ±0.0196" in text and "Refused by" not in text
