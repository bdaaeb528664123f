"""The HTML report of a local run: the pipeline graph coloured by state, each component's time, cache hit and
why it ran, the metrics against the baseline, the data statistics, and where the model was pushed.

One self-contained file (inline CSS and SVG, no script, no external address), so it opens from disk with no
network. `gather` reads a run from ML Metadata; `render` is a pure function of what was gathered.
"""

from __future__ import annotations

import dataclasses
import html
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cicd_components.files import atomic_write
from cicd_pipeline.datastats import SplitStats, read_statistics
from cicd_pipeline.progress import LABELS, NOT_RUN
from cicd_pipeline.rerun import why_it_ran
from cicd_pipeline.run_record import Execution, latest_run, open_store

REPORTS = "reports"  # the folder under a run's state folder that holds one report per run


@dataclasses.dataclass(frozen=True)
class Component:
    node: str
    state: str  # done, cached, failed, not run
    seconds: float | None
    reasons: tuple[str, ...] = ()  # why it ran instead of reusing a cached result
    upstream: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RunView:
    pipeline_name: str
    run_id: str
    components: list[Component]
    metrics: dict[str, float]
    blessed: bool | None
    refusals: list[str]
    pushed_destination: str | None
    registry_version: int | None
    statistics: list[SplitStats]
    wall_seconds: float | None = None
    threshold: float | None = None
    tolerance: float | None = None
    log: str | None = None
    generated: str = ""
    # The judge's checks, passed or refused, one line each (empty for a run before the judge kept them).
    checks: list[str] = dataclasses.field(default_factory=list)


def _lineage(executions: list[Execution]) -> dict[str, list[str]]:
    """Without the pipeline's graph: each node's upstream nodes, from which node's output it read this run."""
    made = {a: e.node for e in executions for ids in e.outputs.values() for a in ids}
    return {
        e.node: sorted({made[a] for ids in e.inputs.values() for a in ids if a in made and made[a] != e.node})
        for e in executions
    }


def _statistics(store, executions: list[Execution]) -> list[SplitStats]:
    for execution in executions:
        ids = execution.outputs.get("statistics", ()) if execution.node == "StatisticsGen" else ()
        for artifact in store.get_artifacts_by_id(list(ids)):
            split_names = (
                artifact.properties["split_names"].string_value
                if "split_names" in artifact.properties
                else ""
            )
            return read_statistics(artifact.uri, split_names)
    return []


def gather(
    metadata_path,
    pipeline_name: str,
    summary,
    graph: Mapping[str, Sequence[str]] | None = None,
    since: float | None = None,
    **view,
) -> RunView:
    """The newest run of `pipeline_name` in the store at `metadata_path`, with its `summary`
    (cicd_pipeline.report.RunSummary: metrics, blessing, refusals, push).

    `graph`: node -> upstream nodes, in run order (progress.graph_of); without it, the edges the run's data
    took. `since` (seconds since the epoch): refuse a newest run older than that (this run recorded nothing).
    `view`: further RunView fields (threshold, tolerance, log, wall_seconds).
    """
    store = open_store(metadata_path)
    run_id, executions = latest_run(store, pipeline_name)
    if since is not None and not any(e.started >= since for e in executions):
        raise ValueError(f"No execution of pipeline {pipeline_name!r} was recorded since the run started.")
    by_node = {e.node: e for e in executions}  # a node runs once per run; the last record wins
    graph = dict(graph) if graph else _lineage(executions)
    for e in executions:
        graph.setdefault(e.node, [])
    components = []
    for node, upstream in graph.items():
        execution = by_node.get(node)
        if execution is None:
            components.append(Component(node, NOT_RUN, None, upstream=tuple(upstream)))
            continue
        label = LABELS.get(execution.state, "failed")
        state = "failed" if label == "running" else label  # still RUNNING in a finished run: cut short
        components.append(
            Component(
                node,
                state,
                execution.seconds,
                tuple(why_it_ran(store, pipeline_name, execution)),
                tuple(upstream),
            )
        )
    wall = max(e.updated for e in executions) - min(e.started for e in executions) if executions else None
    fields = {
        "wall_seconds": wall,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        **view,
    }
    return RunView(
        pipeline_name=pipeline_name,
        run_id=run_id,
        components=components,
        metrics=dict(summary.metrics),
        blessed=summary.blessed,
        refusals=list(summary.refusals),
        checks=list(summary.checks),
        pushed_destination=summary.pushed_destination,
        registry_version=summary.registry_version,
        statistics=_statistics(store, executions),
        **fields,
    )


def report_path(folder: Path, run_id: str) -> Path:
    return Path(folder) / f"{re.sub(r'[^0-9A-Za-z._-]+', '-', run_id)}.html"


def write_report(folder, view: RunView) -> Path:
    """Writes the report of `view` into `folder` (whole or not at all) and returns its path."""
    return atomic_write(report_path(Path(folder), view.run_id), render(view))


def report_run(metadata_path, pipeline_name: str, folder, summary=None, **gather_args) -> Path | None:
    """Gathers the newest run (see `gather`) and writes its report into `folder`; None when there is no run
    to report (the run stopped before its first component, or the store has none)."""
    from cicd_pipeline.report import summarize_run

    if not Path(metadata_path).is_file():
        return None
    try:
        summary = summary or summarize_run(metadata_path, pipeline_name)
        view = gather(metadata_path, pipeline_name, summary, **gather_args)
    except ValueError:
        return None
    return write_report(folder, view)


def newest_report(folder) -> Path | None:
    reports = [p for p in Path(folder).glob("*.html") if p.is_file()] if Path(folder).is_dir() else []
    return max(reports, key=lambda p: (p.stat().st_mtime, p.name)) if reports else None


# --- rendering -----------------------------------------------------------------------------------------

_e = html.escape
_NODE_W, _NODE_H, _GAP_X, _GAP_Y, _PAD = 240, 46, 26, 40, 16
_STATE_TEXT = {
    "done": "done",
    "cached": "cached",
    "failed": "failed",
    NOT_RUN: "not run",
    "waiting": "waiting",
}
_CSS = """
:root { --done:#2e7d32; --done-bg:#e8f5e9; --cached:#1565c0; --cached-bg:#e3f2fd; --failed:#c62828;
  --failed-bg:#ffebee; --not-run:#9e9e9e; --not-run-bg:#f5f5f5; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "Liberation Sans", sans-serif; color:#212121;
  margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
.sub { color:#616161; margin: 0 0 16px; }
.verdict { display:inline-block; padding: 4px 12px; border-radius: 4px; font-weight: 600; }
.verdict.blessed { background: var(--done-bg); color: var(--done); }
.verdict.refused, .verdict.stopped { background: var(--failed-bg); color: var(--failed); }
.verdict.none { background: var(--not-run-bg); color: #424242; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 12px; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid #e0e0e0; vertical-align: top; }
th { background: #fafafa; font-weight: 600; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { font-weight: 600; } .state, td.num { white-space: nowrap; }
.state.done { color: var(--done); } .state.cached { color: var(--cached); }
.state.failed { color: var(--failed); } .state.not-run { color: var(--not-run); }
svg .node rect { stroke-width: 2; } svg text { font-family: inherit; }
svg .done rect { fill: var(--done-bg); stroke: var(--done); }
svg .cached rect { fill: var(--cached-bg); stroke: var(--cached); }
svg .failed rect { fill: var(--failed-bg); stroke: var(--failed); }
svg .not-run rect { fill: var(--not-run-bg); stroke: var(--not-run); stroke-dasharray: 5 3; }
svg .edge { fill: none; stroke: #9e9e9e; stroke-width: 1.5; }
.legend span { margin-right: 16px; } .swatch { display:inline-block; width:12px; height:12px; border-radius:2px;
  margin-right:4px; vertical-align:-1px; border: 2px solid; }
code { background:#f5f5f5; padding: 1px 4px; border-radius: 3px; word-break: break-all; }
.muted { color:#757575; }
"""


def _css_class(state: str) -> str:
    return state.replace(" ", "-")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def _positions(components: list[Component]) -> dict[str, tuple[float, float]]:
    """Top-left corner of each node's box: a node one row below the lowest of its upstream nodes."""
    row: dict[str, int] = {}
    for c in components:  # in run order, so upstream nodes come first
        row[c.node] = 1 + max((row[u] for u in c.upstream if u in row), default=-1)
    rows: dict[int, list[str]] = {}
    for c in components:
        rows.setdefault(row[c.node], []).append(c.node)
    # Each row in the order of its nodes' upstream places above: fewer crossing arrows.
    upstream = {c.node: c.upstream for c in components}
    place: dict[str, float] = {}
    for r in sorted(rows):
        if r:
            rows[r].sort(
                key=lambda n: (
                    sum(place[u] for u in upstream[n] if u in place)
                    / max(1, sum(u in place for u in upstream[n]))
                )
            )
        for i, node in enumerate(rows[r]):
            place[node] = i - (len(rows[r]) - 1) / 2
    widest = max((len(nodes) for nodes in rows.values()), default=1)
    width = widest * (_NODE_W + _GAP_X) - _GAP_X
    positions = {}
    for r, nodes in rows.items():
        span = len(nodes) * (_NODE_W + _GAP_X) - _GAP_X
        for i, node in enumerate(nodes):
            x = _PAD + (width - span) / 2 + i * (_NODE_W + _GAP_X)
            positions[node] = (x, _PAD + r * (_NODE_H + _GAP_Y))
    return positions


def _lanes(c: Component, at) -> list[tuple[str, float | None]]:
    """Each upstream node of `c` with the x of the lane its arrow runs down: None for the next row's arrows,
    beside `c`'s column for longer ones (so they pass the nodes between instead of crossing them)."""
    x, y = at[c.node]
    lanes = []
    longer = sorted(
        (u for u in c.upstream if u in at and at[u][1] < y - _NODE_H - _GAP_Y), key=lambda u: at[u][0]
    )
    left = [u for u in longer if at[u][0] <= x]
    right = [u for u in longer if at[u][0] > x]
    lanes += [(u, x - 10 - 7 * (len(left) - 1 - i)) for i, u in enumerate(left)]
    lanes += [(u, x + _NODE_W + 10 + 7 * i) for i, u in enumerate(right)]
    lanes += [(u, None) for u in c.upstream if u in at and u not in longer]
    return lanes


def _edge_path(source: tuple[float, float], target: tuple[float, float], lane: float | None) -> str:
    x1, y1 = source[0] + _NODE_W / 2, source[1] + _NODE_H
    x2, y2 = target[0] + _NODE_W / 2, target[1]
    if lane is None:
        bend = (y2 - y1) / 2
        return f"M{x1:.0f},{y1:.0f} C{x1:.0f},{y1 + bend:.0f} {x2:.0f},{y2 - bend:.0f} {x2:.0f},{y2:.0f}"
    # Out of the source, down the lane beside the target's column, and into the target from above.
    g = _GAP_Y / 2
    return (
        f"M{x1:.0f},{y1:.0f} C{x1:.0f},{y1 + g:.0f} {lane:.0f},{y1 + g:.0f} {lane:.0f},{y1 + 2 * g:.0f} "
        f"L{lane:.0f},{y2 - 2 * g:.0f} C{lane:.0f},{y2 - g:.0f} {x2:.0f},{y2 - g:.0f} {x2:.0f},{y2:.0f}"
    )


def render_graph(components: list[Component]) -> str:
    """The pipeline as an SVG: a box per component coloured by its state, an arrow per dependency."""
    if not components:
        return "<p class='muted'>No component ran.</p>"
    at = _positions(components)
    width = max(x for x, _ in at.values()) + _NODE_W + _PAD
    height = max(y for _, y in at.values()) + _NODE_H + _PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Pipeline graph" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" style="max-width:100%;height:auto">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#9e9e9e"/></marker></defs>',
    ]
    for c in components:
        edges = [(up, _edge_path(at[up], at[c.node], lane)) for up, lane in _lanes(c, at)]
        parts += [
            f'<path class="edge" data-from="{_e(up)}" data-to="{_e(c.node)}" marker-end="url(#arrow)" d="{d}"/>'
            for up, d in edges
        ]
    for c in components:
        x, y = at[c.node]
        status = _STATE_TEXT.get(c.state, c.state)
        if c.seconds is not None and c.state in ("done", "failed"):
            status += f" · {c.seconds:.1f} s"
        tip = f"{c.node}: {status}" + "".join(f"\n{r}" for r in c.reasons)
        parts.append(
            f'<g class="node {_css_class(c.state)}" data-node="{_e(c.node)}" data-state="{_e(c.state)}">'
            f"<title>{_e(tip)}</title>"
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{_NODE_W}" height="{_NODE_H}" rx="6"/>'
            f'<text x="{x + _NODE_W / 2:.0f}" y="{y + 19:.0f}" text-anchor="middle" font-size="13" '
            f'font-weight="600">{_e(c.node)}</text>'
            f'<text x="{x + _NODE_W / 2:.0f}" y="{y + 36:.0f}" text-anchor="middle" font-size="12">'
            f"{_e(status)}</text></g>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i class="swatch" style="background:var(--{s.replace(" ", "-")}-bg);'
        f'border-color:var(--{s.replace(" ", "-")})"></i>{s}</span>'
        for s in ("done", "cached", "failed", NOT_RUN)
    )
    return "\n".join(parts) + f'\n<p class="legend">{legend}</p>'


def _components_table(components: list[Component]) -> str:
    rows = []
    for c in components:
        reasons = c.reasons or ()
        why = _e(reasons[0]) if reasons else ""
        if len(reasons) > 1:
            why += f' <span class="muted">(and {len(reasons) - 1} more: {_e("; ".join(reasons[1:]))})</span>'
        rows.append(
            f'<tr data-node="{_e(c.node)}"><td>{_e(c.node)}</td>'
            f'<td class="state {_css_class(c.state)}">{_e(_STATE_TEXT.get(c.state, c.state))}</td>'
            f'<td class="num">{_seconds(c.seconds) if c.state != "cached" else ""}</td><td>{why}</td></tr>'
        )
    return (
        '<table id="components"><thead><tr><th>Component</th><th>State</th><th class="num">Time</th>'
        "<th>Why it ran (what changed since its last execution)</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _verdict(view: RunView) -> str:
    if view.blessed is True:
        return '<span class="verdict blessed">BLESSED</span>'
    if view.blessed is False:
        return '<span class="verdict refused">NOT BLESSED</span>'
    if any(c.state == "failed" for c in view.components):
        return '<span class="verdict stopped">STOPPED before evaluation</span>'
    return '<span class="verdict none">not evaluated</span>'


def _metrics(view: RunView) -> str:
    base = sorted(k for k in view.metrics if not k.endswith(")"))
    if not base:
        return "<p class='muted'>No evaluation in this run.</p>"
    rows = []
    for name in base:
        baseline = view.metrics.get(f"{name} (baseline)")
        change = view.metrics.get(f"{name} (change vs baseline)")
        if change is None and baseline is not None:
            change = view.metrics[name] - baseline
        rows.append(
            f'<tr data-metric="{_e(name)}"><td>{_e(name)}</td><td class="num">{view.metrics[name]:.4f}</td>'
            f'<td class="num">{"" if baseline is None else f"{baseline:.4f}"}</td>'
            f'<td class="num">{"" if change is None else f"{change:+.4f}"}</td></tr>'
        )
    rules = []
    if view.threshold is not None:
        rules.append(f"accuracy at least {view.threshold:.2f}")
    if view.tolerance is not None:
        rules.append(f"no drop from the baseline beyond {view.tolerance:.4f}")
    no_baseline = (
        ""
        if any(k.endswith("(baseline)") for k in view.metrics)
        else "<p class='muted'>No baseline yet: no earlier blessed model to compare with.</p>"
    )
    note = (f"<p>Blessing rule: {_e(' and '.join(rules))}.</p>" if rules else "") + no_baseline
    refusals = "".join(f"<li>{_e(r)}</li>" for r in view.refusals)
    if view.checks:  # the judge says each rule with its numbers: they replace the rule and the refusals
        items = "".join(
            f'<li class="{"refused" if c.endswith(": refused") else "passed"}">{_e(c)}</li>'
            for c in view.checks
        )
        note = f'<p>The judge\'s checks:</p><ul id="checks">{items}</ul>' + no_baseline
        refusals = ""
    return (
        '<table id="metrics"><thead><tr><th>Metric</th><th class="num">This model</th>'
        '<th class="num">Baseline</th><th class="num">Change</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
        + note
        + (f"<p>Refused by:</p><ul>{refusals}</ul>" if refusals else "")
    )


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _statistics_html(statistics: list[SplitStats]) -> str:
    if not statistics:
        return "<p class='muted'>No statistics in this run.</p>"
    parts = []
    for split in statistics:
        rows = []
        for f in split.features:
            values = ", ".join(f"{_e(v)} ({n})" for v, n in f.top_values) if f.top_values else ""
            rows.append(
                f'<tr data-feature="{_e(f.name)}"><td>{_e(f.name)}</td><td>{_e(f.type.lower())}</td>'
                f'<td class="num">{f.present}</td><td class="num">{f.missing}</td>'
                f'<td class="num">{_number(f.mean)}</td><td class="num">{_number(f.std_dev)}</td>'
                f'<td class="num">{_number(f.minimum)}</td><td class="num">{_number(f.maximum)}</td>'
                f"<td>{'' if f.distinct is None else f'{f.distinct} distinct: '}{values}</td></tr>"
            )
        parts.append(
            f'<h3>{_e(split.split)}: {split.examples} examples</h3><table class="statistics" '
            f'data-split="{_e(split.split)}"><thead><tr><th>Feature</th><th>Type</th><th class="num">Present</th>'
            '<th class="num">Missing</th><th class="num">Mean</th><th class="num">Std dev</th>'
            '<th class="num">Min</th><th class="num">Max</th><th>Values</th></tr></thead><tbody>'
            + "".join(rows)
            + "</tbody></table>"
        )
    return "\n".join(parts)


def _pushed(view: RunView) -> str:
    if view.pushed_destination:
        version = f", registry version {view.registry_version}" if view.registry_version is not None else ""
        return f'<p id="pushed">Pushed to <code>{_e(view.pushed_destination)}</code>{_e(version)}.</p>'
    return '<p id="pushed">Nothing was pushed in this run; the last blessed model stays where it was.</p>'


def render(view: RunView) -> str:
    """The whole report as one HTML document."""
    executed = sum(c.state == "done" for c in view.components)
    cached = sum(c.state == "cached" for c in view.components)
    wall = (
        f", {view.wall_seconds:.1f} s from first to last component" if view.wall_seconds is not None else ""
    )
    log = f"<p class='muted'>Full log: <code>{_e(view.log)}</code></p>" if view.log else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Run {_e(view.run_id)} · {_e(view.pipeline_name)}</title>
<style>{_CSS}</style></head>
<body>
<h1>{_e(view.pipeline_name)}: run {_e(view.run_id)}</h1>
<p class="sub">{_verdict(view)} &nbsp; {executed} executed, {cached} cached{_e(wall)}. Report made {_e(view.generated)}.</p>
<h2>Pipeline</h2>
{render_graph(view.components)}
<h2>Components</h2>
{_components_table(view.components)}
<h2>Metrics against the baseline</h2>
{_metrics(view)}
<h2>Where the model went</h2>
{_pushed(view)}
<h2>Data statistics</h2>
{_statistics_html(view.statistics)}
{log}
</body></html>
"""
