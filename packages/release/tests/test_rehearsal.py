"""The rehearsal's place in the chain and what it hands the launcher: the run's own parameters, the spec's
outside targets moved aside, the runner it says it uses. The rehearsal itself: tests/e2e/test_rehearsal.py."""

from __future__ import annotations

import json

import pytest

from cicd_pipeline.rehearsal.spec import PipelineJob
from cicd_release import steps
from cicd_release.plan import changes as plan_lib
from cicd_release.publish.snapshots import RunData
from cicd_release.run import rehearsal
from cicd_release.run.launch import RunRequest

DATA = RunData(uri="/state/inputs/data/penguins/" + "d" * 64, digest="d" * 64, name="penguins", kind="folder")
MODULES = {
    "preprocessing_module": f"/state/inputs/{'a' * 64}/preprocessing.py",
    "model_module": f"/state/inputs/{'b' * 64}/model.py",
    "schema_file": f"/state/inputs/{'c' * 64}/schema.pbtxt",
    "holdout_file": f"/state/inputs/{'e' * 64}/penguins_holdout.csv",
}


def test_the_rehearsal_follows_every_compile_and_comes_before_anything_is_submitted():
    order = plan_lib.STEPS
    assert order.index("pipeline.compile") < order.index("pipeline.rehearse") < order.index("modules.upload")
    assert order.index("pipeline.rehearse") < order.index("pipeline.submit")
    for workflow, planned in plan_lib.WORKFLOW_STEPS.items():
        assert ("pipeline.rehearse" in planned) == ("pipeline.compile" in planned), workflow


def test_a_failed_rehearsal_stops_the_chain_before_the_submit(monkeypatch):
    ran = []

    def failing(ctx):
        ran.append("pipeline.rehearse")
        raise rehearsal.RehearsalError("Rehearsal failed: task Trainer: exit 1: ValueError: boom")

    # The chain's own table, its work replaced: each step waits for what it waits for in the chain.
    table = {
        s.name: steps.Step(
            s.name,
            failing if s.name == "pipeline.rehearse" else (lambda ctx, n=s.name: ran.append(n) or []),
            after=s.after,
        )
        for s in steps.STEPS.values()
    }
    monkeypatch.setattr(steps, "check_settings", lambda settings, planned, table=None: None)
    plan = plan_lib.Plan(None, "h" * 40, (), (), "pipeline", plan_lib.WORKFLOW_STEPS["pipeline"], ())
    ctx = steps.StepContext(ws=None, settings=None, config=None, say=lambda line: None)
    with pytest.raises(rehearsal.RehearsalError) as failed:
        steps.run_chain(ctx, plan, table)
    assert failed.value.exit_code == 1
    assert {"test", "pipeline.compile", "pipeline.rehearse"} <= set(ran)
    assert "pipeline.submit" not in ran and "schedule.move" not in ran, "nothing after the rehearsal ran"


def test_the_parameters_are_those_a_run_gets_from_pipeline_submit():
    versions = {"components": "0.1.0", "pipeline": "0.3.0", "release": "0.1.0", "trainer": "0.1.0"}
    parameters = rehearsal.run_parameters(MODULES, DATA, '{"seed": 3}', "c" * 40, versions)
    request = RunRequest("spec", "image", MODULES, DATA, '{"seed": 3}', "c" * 40, versions, "rehearsal")
    assert parameters == request.parameters()
    assert parameters["holdout_root"] == MODULES["holdout_file"].rsplit("/", 1)[0]
    assert parameters["data_root"] == DATA.uri
    labels = json.loads(parameters["model_labels"])
    assert labels["trigger"] == "rehearsal" and labels["model_module_sha"] == "b" * 16


def _job(constants: dict[str, str]) -> PipelineJob:
    return PipelineJob(
        {
            "pipelineSpec": {
                "pipelineInfo": {"name": "p"},
                "root": {
                    "dag": {
                        "tasks": {
                            "T": {
                                "componentRef": {"name": "T"},
                                "inputs": {
                                    "parameters": {
                                        k: {"runtimeValue": {"constantValue": {"stringValue": v}}}
                                        for k, v in constants.items()
                                    }
                                },
                            }
                        }
                    }
                },
                "components": {"T": {"executorLabel": "T_executor"}},
                "deploymentSpec": {"executors": {"T_executor": {"container": {"image": "i:1"}}}},
            }
        }
    )


def test_what_the_spec_sends_outside_its_run_is_moved_aside():
    job = _job(
        {
            "push_destination": json.dumps(
                {"filesystem": {"base_directory": "gs://team-ml/serving_model/p"}}
            ),
            "registry": "vertex:projects/proj/locations/europe-west4",
            "model_name": "penguin",
        }
    )
    rewrites = rehearsal.targets(job, lambda bucket: f"/state/gs/{bucket}/", "local:/state/registry")
    assert rewrites == (
        ("gs://team-ml/", "/state/gs/team-ml/"),
        ("vertex:projects/proj/locations/europe-west4", "local:/state/registry"),
    )


def test_a_local_rehearsal_refuses_a_cloud_address_it_cannot_move():
    from cicd_pipeline.rehearsal.spec import SpecError

    with pytest.raises(SpecError, match=r"task T: parameter base names gs://elsewhere/x, .*\(--in-bucket\)"):
        rehearsal._refuse_cloud_constants(_job({"base": "gs://elsewhere/x"}))


def test_the_runner_says_why_it_is_not_the_container_engine(monkeypatch):
    from cicd_pipeline.rehearsal import runners

    monkeypatch.setattr(runners, "engine_host", lambda environ=None: None)
    runner, why = rehearsal.choose_runner("auto", ["i:1"], mounts=(), network=None, local_env={})
    assert runner.kind == "local" and why.startswith("not in the image: no container engine answers here")
    with pytest.raises(
        rehearsal.RehearsalError, match="^--runner container: no container engine answers here"
    ):
        rehearsal.choose_runner("container", ["i:1"], mounts=(), network=None, local_env={})
    with pytest.raises(rehearsal.InputError, match="--runner 'docker' is not one of auto, container, local"):
        rehearsal.choose_runner("docker", ["i:1"], mounts=(), network=None, local_env={})


def test_the_chain_skips_the_rehearsal_with_the_tests():
    ctx = steps.StepContext(ws=None, settings=None, config=None, skip_tests=True)
    assert rehearsal.rehearse_step(ctx) == ["pipeline.rehearse: skipped (--skip-tests)"]
