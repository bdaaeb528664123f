"""The chain runner: independent steps run side by side, a step waits for the planned steps it uses, each
step's output comes out together under its name, and the first failure stops the chain."""

import threading
import time

import pytest

from cicd_release.core.errors import ReleaseError
from cicd_release.core.settings import Settings, SettingsError
from cicd_release.core.workspace import Workspace
from cicd_release.plan import changes as plan_lib
from cicd_release.steps import STEPS, Step, StepContext, required_settings, run_chain, waits_for


def a_plan(*steps: str) -> plan_lib.Plan:
    return plan_lib.Plan(None, "0" * 40, (), (), "full", tuple(steps), ())


class Recorder:
    """Fake steps that note when they start and end, and hold on until every step meant to overlap began."""

    def __init__(self, overlapping: set[str] = frozenset()):
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.overlapping = overlapping
        self.all_started = threading.Event()

    def step(self, name: str, fail: bool = False):
        def run(ctx):
            with self.lock:
                self.events.append(("start", name))
                if {n for kind, n in self.events if kind == "start"} >= self.overlapping:
                    self.all_started.set()
            if name in self.overlapping:
                # Only returns if the others started meanwhile: they ran side by side, not one after another.
                assert self.all_started.wait(10), f"{name} ran alone"
            time.sleep(0.01)
            with self.lock:
                self.events.append(("end", name))
            if fail:
                raise ReleaseError(f"{name} broke")
            return [f"{name} made something", "on two\nlines"]

        return run

    def order(self, kind: str) -> list[str]:
        return [name for k, name in self.events if k == kind]


def table(recorder: Recorder, fail: str = "") -> dict[str, Step]:
    """The real table's names, settings and waits, with fake work."""
    return {
        name: Step(name, recorder.step(name, fail=name == fail), step.requires, step.after)
        for name, step in STEPS.items()
    }


@pytest.fixture
def ctx(tmp_path):
    said: list[str] = []
    settings = Settings(
        project="my-project",
        region="europe-west4",
        bucket="my-project-ml",
        image_repo="europe-west4-docker.pkg.dev/my-project/training",
        base_image="europe-west4-docker.pkg.dev/my-project/mirror/tfx@sha256:" + "0" * 64,
        serving_image="europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15@sha256:" + "0" * 64,
        service_account="vertex-pipelines@my-project.iam.gserviceaccount.com",
    )
    context = StepContext(Workspace(tmp_path), settings, config=None, say=said.append)
    context.said = said
    return context


def test_after_the_tests_the_builds_and_uploads_run_side_by_side_and_submit_waits_for_all(ctx):
    builds = {"build.wheels", "pipeline.compile", "modules.upload", "data.upload"}
    recorder = Recorder(overlapping=builds)
    run_chain(ctx, a_plan(*plan_lib.STEPS), table(recorder))
    starts, ends = recorder.order("start"), recorder.order("end")
    assert starts[0] == "test" and ends[0] == "test", "everything waits for the tests"
    assert set(starts[1:5]) == builds
    assert ends.index("build.wheels") < starts.index("build.image")
    for before in ("build.image", "pipeline.compile", "modules.upload", "data.upload"):
        assert ends.index(before) < starts.index("pipeline.submit"), before
    assert starts[-1] == "schedule.move" and ends.index("pipeline.submit") < starts.index("schedule.move")


def test_each_steps_output_comes_out_together_under_its_name(ctx):
    recorder = Recorder(overlapping={"pipeline.compile", "modules.upload"})
    run_chain(ctx, a_plan("test", "pipeline.compile", "modules.upload", "pipeline.submit"), table(recorder))
    for name in ("test", "pipeline.compile", "modules.upload", "pipeline.submit"):
        start = ctx.said.index(f"{name} | {name} made something")
        assert ctx.said[start : start + 4] == [
            f"{name} | {name} made something",
            f"{name} | on two",
            f"{name} | lines",
            ctx.said[start + 3],
        ]
        assert ctx.said[start + 3].startswith(f"== {name}: done in ")
        assert f"\n== {name}" in ctx.said[:start]


def test_the_first_failure_stops_the_chain_and_is_raised(ctx):
    recorder = Recorder()
    with pytest.raises(ReleaseError, match="modules.upload broke"):
        run_chain(
            ctx,
            a_plan("test", "modules.upload", "pipeline.submit", "schedule.move"),
            table(recorder, "modules.upload"),
        )
    assert recorder.order("start") == ["test", "modules.upload"], "nothing starts after a failure"
    assert any(line.startswith("== modules.upload: failed in ") for line in ctx.said)


def test_a_step_waits_through_steps_the_plan_left_out():
    # A data change: no image, no compile, no modules upload; the submit still waits for the data and the tests.
    planned = ("test", "data.upload", "pipeline.submit", "schedule.move")
    assert waits_for("pipeline.submit", planned) == {"data.upload", "test"}
    assert waits_for("pipeline.submit", ("pipeline.submit",)) == set()


def test_the_settings_of_every_planned_step_are_checked_before_any_runs(ctx):
    recorder = Recorder()
    ctx.settings = Settings(bucket="my-project-ml")
    with pytest.raises(SettingsError, match="cicd.image_repo is missing"):  # sorted: the first missing
        run_chain(ctx, a_plan("test", "modules.upload", "pipeline.submit"), table(recorder))
    assert recorder.events == [], "nothing ran"


def test_each_step_declares_the_settings_it_needs():
    assert required_settings(["test", "build.wheels"]) == ()
    assert required_settings(["modules.upload", "data.upload"]) == ("bucket",)
    assert required_settings(["build.image"]) == ("base_image", "image_name", "image_repo")
    assert "serving_image" in required_settings(["pipeline.compile"])
    # image_repo: the release record's image is checked against it before a schedule moves to it.
    assert required_settings(["schedule.move"]) == (
        "bucket",
        "image_repo",
        "project",
        "region",
        "service_account",
    )
