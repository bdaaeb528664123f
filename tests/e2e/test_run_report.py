"""What a person sees of a real run: its progress lines, and its HTML report opened in a headless browser.

The runs are the session's two (conftest.py): the first executes everything, the second reuses the cache
and evaluates against the first model as its baseline.
"""

import os
import subprocess
from pathlib import Path

from cicd_pipeline.html_report import REPORTS
from cicd_pipeline.progress import LABELS
from cicd_pipeline.runners.local import LocalLayout
from tests.support.warm_python import run_module

ROOT = Path(__file__).resolve().parents[2]
ACCURACY = "sparse_categorical_accuracy"
# The colour a person sees on each state's box (the report's CSS variables), as the browser computes it.
FILLS = {"done": "rgb(232, 245, 233)", "cached": "rgb(227, 242, 253)", "failed": "rgb(255, 235, 238)"}


def last_state(progress) -> dict[str, str]:
    """Each component's last progress line: its final state as the run printed it."""
    last = {}
    for line in progress.out.getvalue().splitlines():
        node, label = line.split()[:2]
        last[node] = label
    return last


def test_the_progress_lines_follow_each_component_to_its_end(runs, shown):
    _, first, second = runs
    (first_progress, _), (second_progress, _) = shown
    components = {c.node for c in first.components}
    assert set(first_progress.graph) == components  # every component was on show from the start
    assert last_state(first_progress) == dict.fromkeys(components, "done")
    lines = [line.split()[:2] for line in first_progress.out.getvalue().splitlines()]
    # Transform takes tens of seconds: the half-second poll sees it running before it is done.
    assert lines.index(["Transform", "running"]) < lines.index(["Transform", "done"])
    assert last_state(second_progress) == {c.node: LABELS[c.state] for c in second.components}
    assert {n for n, s in last_state(second_progress).items() if s == "cached"} == set(second.cached)


def open_report(visit, path: Path):
    """The report's page in the browser, once it has loaded with no error and no request but itself."""
    seen = visit(path)
    assert seen.errors == [], seen.errors
    assert seen.requests == [path.as_uri()], "the report asked for something besides itself"
    return seen.page


def test_the_report_shows_every_component_its_state_the_metrics_and_where_the_model_went(runs, shown, visit):
    _, _, second = runs
    _, report = shown[1]
    page = open_report(visit, report)
    assert page.title().startswith(f"Run {second.run_id}")
    for component in second.components:
        state = LABELS[component.state]
        box = page.locator(f'svg g.node[data-node="{component.node}"]')
        assert box.is_visible(), component.node
        name, status = box.locator("text").all_text_contents()  # the two lines of text in the box
        assert name == component.node and status.startswith(state), (name, status)
        fill = box.locator("rect").evaluate("rect => getComputedStyle(rect).fill")
        assert fill == FILLS[state], (component.node, fill)
        row = page.locator(f'#components tr[data-node="{component.node}"] td')
        assert row.nth(1).inner_text() == state
    # Why the Evaluator ran although its model was cached: the baseline it now has.
    assert "input baseline_model is new" in page.locator('#components tr[data-node="Evaluator"]').inner_text()
    metrics = page.locator(f'#metrics tr[data-metric="{ACCURACY}"] td').all_inner_texts()
    assert metrics == [
        ACCURACY,
        f"{second.metrics[ACCURACY]:.4f}",
        f"{second.metrics[f'{ACCURACY} (baseline)']:.4f}",
        f"{second.metrics[f'{ACCURACY} (change vs baseline)']:+.4f}",
    ]
    assert "BLESSED" in page.locator(".verdict").inner_text()
    assert second.pushed_destination in page.locator("#pushed").inner_text()
    for split in ("train", "eval"):
        features = page.locator(f'table[data-split="{split}"] tr[data-feature]').all_inner_texts()
        assert len(features) == 5 and any(f.startswith("species") for f in features), features


def test_the_first_runs_report_says_every_component_ran_for_the_first_time(runs, shown, visit):
    _, first, _ = runs
    page = open_report(visit, shown[0][1])
    states = page.locator("svg g.node").evaluate_all("nodes => nodes.map(n => n.dataset.state)")
    assert states == ["done"] * len(first.components)
    reasons = page.locator("#components tbody tr td:nth-child(4)").all_inner_texts()
    assert (
        reasons.count("its first run in this state folder") == len(first.components) - 1
    )  # not the resolver
    assert "No baseline yet" in page.locator("body").inner_text()


def invoke_report(layout, *flags: str, **env: str) -> subprocess.CompletedProcess:
    return run_module(
        "invoke",
        "report",
        "--root",
        str(layout.root),
        *flags,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=300,
    )


def test_invoke_report_opens_the_newest_report_or_prints_its_path(runs, tmp_path):
    layout, _, _ = runs
    newest = max((layout.root / REPORTS).glob("*.html"), key=lambda p: p.stat().st_mtime)
    printed = invoke_report(layout, "--print")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == str(newest)
    # The browser Python's webbrowser finds first is the one $BROWSER names: here, one that notes what it opens.
    browser, opened = tmp_path / "browser", tmp_path / "opened"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    result = invoke_report(layout, BROWSER=str(browser))
    assert result.returncode == 0, result.stderr
    assert opened.read_text().strip() == newest.as_uri()
    assert result.stdout.strip() == f"opened {newest}"
    empty = invoke_report(LocalLayout(tmp_path / "no-runs"))
    assert empty.returncode == 2 and "`invoke run` writes one per run" in empty.stderr
