"""`invoke compare`'s reading and table: what each ref's run recorded, base and head side by side, and an older
base's missing fields said in a line instead of a traceback (tests/e2e/test_compare.py runs two real refs)."""

import json
from pathlib import Path

import pytest

from cicd_components.judge.verdict import HOLDOUT_DIR, VERDICT_FILE, Scores, judge
from cicd_pipeline.compare import Comparison, RefOutcome, format_markdown, format_text, read_outcome, rows

ACC = "sparse_categorical_accuracy"
CLASSES = ("Adelie", "Chinstrap", "Gentoo")


def outcome(role="head", ref="HEAD", commit="b" * 40, **fields) -> RefOutcome:
    defaults = {
        "exit_code": 0,
        "seconds": 61.2,
        "blessed": True,
        "metrics": {
            ACC: 0.97,
            "example_count": 104.0,
            f"holdout: {ACC}": 0.955,
            "holdout: example_count": 67.0,
        },
        "slices": {
            set_name: {
                f"species={c}": {ACC: 0.9 + i / 100, "example_count": 20.0 + i} for i, c in enumerate(CLASSES)
            }
            for set_name in ("eval split", "holdout")
        },
        "checks": [
            "eval split (104 examples): accuracy 0.9700 >= threshold 0.60: passed",
            "holdout (67 examples): accuracy 0.9550 >= threshold 0.60: passed",
            "holdout (67 examples): accuracy 0.9550, no baseline yet (the first blessed model): passed",
        ],
        "report": f"/tmp/{role}.html",
    }
    return RefOutcome(role, ref, commit, **{**defaults, **fields})


PLAN = "### Release plan: `modules`\n\nWhy:\n- modules: the trainer changed.\n"


def test_markdown_puts_base_and_head_side_by_side_with_numbers_verdicts_reasons_and_the_plan():
    base = outcome("base", "origin/main", "a" * 40, metrics={ACC: 0.96, "example_count": 104.0})
    head = outcome(blessed=False, exit_code=5, refusals=["holdout: refused"])
    text = format_markdown(Comparison(base, head, ["the holdout differs between base and head"], PLAN))

    assert "| | base `origin/main` | head `HEAD` | head − base |" in text
    assert "| commit | aaaaaaaaaaaa | bbbbbbbbbbbb |  |" in text
    assert "| verdict | **BLESSED** | **NOT BLESSED** |  |" in text
    assert "| eval split accuracy | 0.9600 (104) | 0.9700 (104) | +0.0100 |" in text
    # The base recorded no holdout here: its cell says so, the head's number stands.
    assert "| holdout accuracy | — | 0.9550 (67) |  |" in text
    assert "| · holdout, species=Chinstrap | 0.9100 (21) | 0.9100 (21) | +0.0000 |" in text
    assert (
        "| run | exit 0 (blessed and pushed) in 61 s | exit 5 (not blessed (nothing pushed)) in 61 s |  |"
        in text
    )
    assert "- eval split (104 examples): accuracy 0.9700 >= threshold 0.60: passed" in text
    assert "- the holdout differs between base and head" in text
    assert "no baseline" in text  # why blessed-or-not is each ref's own verdict
    assert "HTML reports: base: `/tmp/base.html`, head: `/tmp/head.html`" in text
    assert text.rstrip().endswith(PLAN.rstrip())
    # Every row of the table has the table's four cells.
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(rows(Comparison(base, head)))
    assert all(line.count(" | ") == 3 for line in table)


def test_an_older_base_without_checks_holdout_or_classes_reads_as_dashes_and_a_missing_line():
    base = outcome(
        "base",
        "origin/main",
        "a" * 40,
        metrics={ACC: 0.96},
        slices={},
        checks=[],
        refusals=[],
        missing=["per-class accuracy: its judge computed the overall slice only"],
    )
    comparison = Comparison(base, outcome(), [], PLAN)
    markdown = format_markdown(comparison)
    assert "| · eval split, species=Adelie | — | 0.9000 (20) |  |" in markdown
    assert "| eval split accuracy | 0.9600 | 0.9700 (104) | +0.0100 |" in markdown
    assert "- missing: per-class accuracy: its judge computed the overall slice only" in markdown
    assert "- (its judge recorded no reasons)" in markdown
    assert "missing: per-class accuracy" in format_text(comparison)


def test_a_ref_stopped_before_a_verdict_says_why_in_its_own_lines():
    base = outcome(
        "base",
        "origin/main",
        "a" * 40,
        exit_code=4,
        blessed=None,
        metrics={},
        slices={},
        checks=[],
        stopped=["Data gate: the run stopped before training.", "eval: 3 examples, fewer than 20"],
    )
    head = outcome(exit_code=None, seconds=None, blessed=None, metrics={}, slices={}, checks=[], report=None)
    text = format_markdown(Comparison(base, head))
    assert "| verdict | **stopped by the data gate** | **did not run** |  |" in text
    assert "| run | exit 4 (stopped by the data gate before training) in 61 s | did not run |  |" in text
    assert "- eval: 3 examples, fewer than 20" in text
    assert "HTML reports: base: `/tmp/base.html`" in text and "head: `" not in text


def test_text_table_aligns_its_columns_and_ends_with_the_plan():
    comparison = Comparison(
        outcome("base", "origin/main", "a" * 40), outcome(), ["a note"], "workflow  modules"
    )
    text = format_text(comparison)
    table = text.split("\n\n")[0].splitlines()
    assert table[0].split() == ["base", "origin/main", "head", "HEAD", "head", "-", "base"]
    starts = {line.index("0.9") for line in table if "accuracy" in line}
    assert len(starts) == 1  # the base's numbers in one column
    assert "a note" in text and text.rstrip().endswith("workflow  modules")


def test_markdown_escapes_a_pipe_in_a_ref_name():
    text = format_markdown(Comparison(outcome("base", "a|b"), outcome()))
    assert "base `a\\|b`" in text


# --- read_outcome: the state a ref's `invoke run` leaves ----------------------------------------------------


def write_metrics(uri: Path, overall: dict[str, float], classes: dict[str, dict[str, float]]) -> None:
    """TFMA's metrics file (MetricsForSlice records), as the Judge's Evaluator passes write it."""
    import tensorflow as tf
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2 as m

    uri.mkdir(parents=True, exist_ok=True)
    records = []
    for value, metrics in [(None, overall), *classes.items()]:
        record = m.MetricsForSlice()
        if value is not None:
            record.slice_key.single_slice_keys.add(column="species", bytes_value=value.encode())
        for name, number in metrics.items():
            entry = record.metric_keys_and_values.add()
            entry.key.name = name
            entry.value.double_value.value = number
        records.append(record)
    with tf.io.TFRecordWriter(str(uri / "metrics.tfrecord")) as writer:
        for record in records:
            writer.write(record.SerializeToString())


def record_judged_run(mlmd_store, evaluation: Path, blessed: bool) -> None:
    blessing = mlmd_store.artifact("ModelBlessing")
    stored = mlmd_store.store.get_artifacts_by_id([blessing])[0]
    stored.custom_properties["blessed"].int_value = int(blessed)
    mlmd_store.store.put_artifacts([stored])
    result = mlmd_store.artifact("ModelEvaluation", str(evaluation))
    run = mlmd_store.run("2026-01-01T00:00:00")
    mlmd_store.execute(run, "Evaluator", outputs={"evaluation": [result], "blessing": [blessing]})


def test_read_outcome_reads_the_judges_numbers_classes_and_checks(mlmd_store, tmp_path):
    evaluation = tmp_path / "pipeline_root" / "Evaluator" / "evaluation" / "7"
    per_class = {c: {ACC: 0.9, "example_count": 10.0} for c in CLASSES}
    write_metrics(evaluation, {ACC: 0.97, "example_count": 104.0}, per_class)
    write_metrics(evaluation / HOLDOUT_DIR, {ACC: 0.95, "example_count": 67.0}, per_class)
    verdict = judge(Scores(0.97, 104), Scores(0.95, 67), 0.6, None)
    (evaluation / VERDICT_FILE).write_text(verdict.to_json())
    record_judged_run(mlmd_store, evaluation, blessed=True)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "run.html").write_text("<html></html>")

    read = read_outcome(tmp_path, "head", "HEAD", "b" * 40, exit_code=0, seconds=3.0)

    assert read.blessed is True and read.verdict == "BLESSED"
    assert read.accuracy("eval split") == (pytest.approx(0.97), 104)
    assert read.accuracy("holdout") == (pytest.approx(0.95), 67)
    assert read.accuracy("holdout", "species=Gentoo") == (pytest.approx(0.9), 10)
    assert read.checks == [c.line for c in verdict.checks]
    assert read.report == str(tmp_path / "reports" / "run.html")
    assert read.missing == []


def test_read_outcome_of_a_run_before_the_verdict_holdout_and_classes_names_what_is_missing(
    mlmd_store, tmp_path, monkeypatch
):
    evaluation = tmp_path / "pipeline_root" / "Evaluator" / "evaluation" / "7"
    write_metrics(evaluation, {ACC: 0.97, "example_count": 104.0}, {})
    record_judged_run(mlmd_store, evaluation, blessed=False)
    # TFX's own Evaluator wrote validations, not a verdict: its reasons are TFMA's.
    monkeypatch.setattr(
        "cicd_pipeline.report.validation_failures", lambda uri: ["accuracy: below its threshold"]
    )

    read = read_outcome(tmp_path, "base", "origin/main", "a" * 40, exit_code=5)

    assert read.blessed is False and read.refusals == ["accuracy: below its threshold"]
    assert read.accuracy("holdout") == (None, None)
    assert [line.split(":")[0] for line in read.missing] == [
        "the judge's checks (verdict.json)",
        "a holdout evaluation",
        "per-class accuracy",
    ]
    assert "missing: a holdout evaluation" in format_markdown(Comparison(read, outcome()))


def test_read_outcome_without_a_store_gives_the_runs_own_facts(tmp_path):
    stopped = ["No idea what '--root' is!"]
    read = read_outcome(tmp_path / "state", "base", "v0", "a" * 40, exit_code=1, stopped=stopped)
    assert read.verdict == "no verdict (run exit 1)"
    assert read.stopped == stopped
    assert "no ML Metadata store" in read.missing[0]
    # A bad setting stops the run before it records anything: nothing is missing, its lines say why.
    assert read_outcome(tmp_path / "state", "base", "v0", "a" * 40, exit_code=2).missing == []


def test_read_outcome_of_a_run_stopped_before_the_judge(mlmd_store, tmp_path):
    run = mlmd_store.run("2026-01-01T00:00:00")
    mlmd_store.execute(run, "CsvExampleGen", outputs={"examples": [mlmd_store.artifact()]})
    read = read_outcome(tmp_path, "head", "HEAD", "b" * 40, exit_code=4, stopped=["Data gate: ..."])
    assert read.blessed is None and read.metrics == {} and read.missing == []
    assert json.dumps(rows(Comparison(read, read)))  # the table is made of text alone
