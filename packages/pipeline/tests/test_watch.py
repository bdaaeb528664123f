"""The edit loop of `invoke run --watch`, without a human: a save is seen once it settles, the tests run for
real (pytest in a forked child), the pipeline runs only on green tests, and the verdict names what ran."""

import dataclasses
import threading
from pathlib import Path

from cicd_pipeline import watch
from cicd_pipeline.report import ComponentRun, RunSummary

PASSING = "def test_ok():\n    assert True\n"
FAILING = "def test_broken():\n    assert 1 == 2\n"


def summary(blessed=True) -> RunSummary:
    """What the run report reads back after a trainer-only edit: Transform cached, Trainer onward executed."""
    components = [
        ComponentRun("Transform", "CACHED", 0.1),
        ComponentRun("latest_blessed_model_resolver", "COMPLETE", 0.0),
        ComponentRun("Trainer", "COMPLETE", 6.0),
        ComponentRun("Evaluator", "COMPLETE", 5.0),
        ComponentRun("Pusher", "COMPLETE", 0.1),
    ]
    metrics = {
        "sparse_categorical_accuracy": 0.97,
        "sparse_categorical_accuracy (baseline)": 0.98,
        "sparse_categorical_accuracy (change vs baseline)": -0.01,
    }
    return RunSummary("run-2", components, blessed, metrics, "/serving/2", 2)


def trainer(tmp_path: Path, test: str = PASSING) -> Path:
    """A trainer folder as the watch sees one: src/ with a module file, tests/ with a test."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.py").write_text("X = 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_model.py").write_text(test)
    return tmp_path


def test_snapshots_see_edits_additions_and_removals_of_watched_files_only(tmp_path):
    folder = trainer(tmp_path)
    before = watch.snapshot([folder])
    model = folder / "src" / "model.py"
    model.write_text("X = 22\n")  # a different size: seen even within the clock's resolution
    (folder / "src" / "new.py").write_text("")
    (folder / "src" / "notes.txt").write_text("not watched")
    (folder / "tests" / "test_model.py").unlink()
    after = watch.snapshot([folder])
    assert watch.changed(before, after) == sorted(
        [model, folder / "src" / "new.py", folder / "tests" / "test_model.py"]
    )
    assert watch.changed(after, watch.snapshot([folder])) == []


def test_a_change_is_reported_once_it_has_settled(tmp_path):
    folder = trainer(tmp_path)
    model = folder / "src" / "model.py"
    last = watch.snapshot([folder])
    steps = iter(["X = 10\n", "X = 100\n", None, None])  # an editor saving in two writes, then quiet

    def sleep(_):
        text = next(steps)
        if text is not None:
            model.write_text(text)

    changed, now = watch.wait_for_change([folder], last, sleep=sleep)
    assert changed == [model] and model.read_text() == "X = 100\n"
    assert now == watch.snapshot([folder]), "the snapshot returned is the settled one"


def test_red_tests_are_the_verdict_and_the_pipeline_does_not_run(tmp_path):
    folder = trainer(tmp_path, FAILING)
    runs = []
    tests = watch.TestRunner(folder / "tests", folder / "src", tmp_path / "log", preload=["pytest"])
    cycle = watch.edit_cycle([folder / "tests" / "test_model.py"], tests, lambda: runs.append(1))
    assert runs == [] and cycle.summary is None
    assert cycle.tests.passed == 0 and cycle.tests.failed == ["test_model.py::test_broken (call)"]
    lines = watch.describe(cycle, 0.6, 0.02, folder)
    assert "  verdict: TESTS FAILED, the pipeline was not run" in lines
    assert "changed: tests/test_model.py" == lines[0]


def test_the_tests_read_the_trainer_sources_given_not_an_installed_copy(tmp_path):
    folder = trainer(tmp_path, "import model\n\ndef test_sees_the_edit():\n    assert model.X == 7\n")
    (folder / "src" / "model.py").write_text("X = 7\n")
    tests = watch.TestRunner(folder / "tests", folder / "src", tmp_path / "log", preload=["pytest"])
    outcome = tests()
    assert (outcome.passed, outcome.failed) == (1, [])
    assert "1 passed" in (tmp_path / "log").read_text(), "pytest's own output goes to the run's log"


def test_one_save_runs_the_tests_then_the_pipeline_then_prints_the_verdict(tmp_path):
    folder = trainer(tmp_path)
    model = folder / "src" / "model.py"
    tests = watch.TestRunner(folder / "tests", folder / "src", tmp_path / "log", preload=["pytest"])
    order, printed = [], []

    def run_tests():
        order.append("tests")
        return tests()

    def run_pipeline():
        order.append("pipeline")
        return summary()

    def handle(changed):
        cycle = watch.edit_cycle(changed, run_tests, run_pipeline)
        printed.extend(watch.describe(cycle, 0.6, 0.02, folder))

    save = threading.Timer(0.3, lambda: model.write_text("X = 2  # edited\n"))
    save.start()
    watch.watch([folder], handle, interval=0.1, cycles=1)
    save.join()
    assert order == ["tests", "pipeline"]
    assert printed[0] == "changed: src/model.py"
    assert printed[1].startswith("  tests: 1 passed")
    assert printed[2] == "  pipeline: from Trainer; executed Trainer, Evaluator, Pusher"
    assert printed[3] == (
        "  verdict: accuracy 0.9700 vs baseline 0.9800 (change -0.0100, within tolerance -0.0200), "
        "threshold >= 0.60: BLESSED"
    )


def test_a_stopped_run_is_a_verdict_not_a_crash(tmp_path):
    ok = watch.TestOutcome(passed=4, failed=[], seconds=1.0)

    def gate():
        raise watch.Stopped(
            "Data gate: the run stopped before training.\neval: 3 examples (at least 20 needed)"
        )

    def broken_module():
        raise NameError("name 'kears' is not defined")

    lines = watch.describe(watch.edit_cycle([], lambda: ok, gate, stops=(Exception,)), 0.6, 0.02)
    assert lines[2:4] == [
        "  verdict: STOPPED: Data gate: the run stopped before training.",
        "    eval: 3 examples (at least 20 needed)",
    ]
    lines = watch.describe(watch.edit_cycle([], lambda: ok, broken_module, stops=(Exception,)), 0.6, 0.02)
    assert lines[2] == "  verdict: STOPPED: NameError: name 'kears' is not defined"


def test_the_judges_checks_are_the_verdicts_detail():
    judged = dataclasses.replace(
        summary(blessed=False),
        checks=[
            "holdout accuracy 0.91 >= 0.60: passed",
            "no regression on the holdout: -0.05 < -0.02 refused",
        ],
    )
    ok = watch.TestOutcome(passed=4, failed=[], seconds=1.0)
    lines = watch.describe(watch.edit_cycle([], lambda: ok, lambda: judged), 0.6, None)
    assert lines[3:6] == [
        "  verdict: model: NOT BLESSED",
        "    holdout accuracy 0.91 >= 0.60: passed",
        "    no regression on the holdout: -0.05 < -0.02 refused",
    ]
