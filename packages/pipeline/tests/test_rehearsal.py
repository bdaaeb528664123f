"""The rehearsal's launcher on a small spec shaped as TFX compiles one, its tasks run by a stand-in entrypoint.

The spec (tests/support/rehearsal_spec.py) has what the real one has, in miniature; tests/support/
rehearsal_executor.py plays TFX's entrypoint (same arguments, same ExecutorInput and ExecutorOutput), so every
run takes a fraction of a second. The real spec is rehearsed in tests/e2e/test_rehearsal.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cicd_pipeline.rehearsal import PipelineJob, RehearsalFailed, SpecError, rehearse
from cicd_pipeline.rehearsal.query import (
    Candidate,
    QueryError,
    check_filter,
    compile_filter,
    fill_placeholders,
)
from cicd_pipeline.rehearsal.runners import SubprocessRunner
from cicd_pipeline.rehearsal.session import Failed, RehearsalLayout, run_rehearsal
from cicd_pipeline.rehearsal.store import Store
from tests.support.rehearsal_spec import (
    BLESSING_RESOLVER,
    EXAMPLES,
    MODEL_RESOLVER,
    PIPELINE,
    container,
    string,
    tiny_job,
)


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n1,2\n3,4\n")
    return folder


class Bench:
    """A state folder and the means to rehearse a job in it, as the session does."""

    def __init__(self, root: Path, data: Path):
        self.layout = RehearsalLayout(root)
        self.data = data
        self.count = 0

    def parameters(self, **overrides) -> dict[str, str]:
        return {"data_root": str(self.data), "hyperparameters": "{}", **overrides}

    def rehearse(self, job: dict | None = None, parallel: int = 1, cache: bool = True, **overrides):
        self.count += 1
        return rehearse(
            PipelineJob(job or tiny_job()),
            parameters=self.parameters(**overrides),
            pipeline_root=str(self.layout.pipeline_root),
            store=Store(self.layout.metadata_path, PIPELINE),
            runner=SubprocessRunner(),
            log_dir=self.layout.logs(f"run{self.count}"),
            run_id=f"{PIPELINE}-run{self.count}",
            parallel=parallel,
            cache=cache,
        )

    def executor_input(self, outcome, task: str, key: str) -> dict:
        [folder] = Path(outcome.root).glob(f"{task}_*")
        return json.loads((folder / key / "executor_input.json").read_text())


@pytest.fixture
def bench(tmp_path, data) -> Bench:
    return Bench(tmp_path / "state", data)


def test_a_first_rehearsal_runs_every_task_after_those_it_waits_for(bench):
    assert PipelineJob(tiny_job()).order() == [
        "ExampleGen",
        "Trainer",
        BLESSING_RESOLVER,
        MODEL_RESOLVER,
        "Evaluator",
    ]
    outcome = bench.rehearse()
    assert set(outcome.states.values()) == {"COMPLETE"}
    # Nothing blessed yet: both queries find nothing, and the Judge gets an empty baseline.
    evaluator_input = bench.executor_input(outcome, "Evaluator", "blessing")
    assert evaluator_input["inputs"]["artifacts"]["baseline_model"] == {"artifacts": []}
    [blessing] = Path(outcome.root).glob("Evaluator_*/blessing")
    assert (blessing / "BLESSED").exists()


def test_the_executor_input_is_what_the_vertex_launcher_hands_thecontainer(bench):
    outcome = bench.rehearse()
    trainer = bench.executor_input(outcome, "Trainer", "model")
    generator = bench.executor_input(outcome, "ExampleGen", "examples")
    [examples] = generator["outputs"]["artifacts"]["examples"]["artifacts"]
    # Parameters in both forms TFX's entrypoint reads (schema 2.0.0 and 2.1.0).
    assert trainer["inputs"]["parameters"] == {"hyperparameters": {"stringValue": "{}"}}
    assert trainer["inputs"]["parameterValues"] == {"hyperparameters": "{}"}
    # The input is the upstream output as its ExecutorOutput left it: name, URI, metadata; with the type the
    # consumer declares.
    [given] = trainer["inputs"]["artifacts"]["examples"]["artifacts"]
    assert (given["name"], given["uri"]) == (examples["name"], examples["uri"])
    assert given["metadata"] == {"span": 0.0, "split_names": '["train", "eval"]'}
    assert given["type"] == EXAMPLES["artifactType"]
    assert given["name"].startswith("projects/") and "/artifacts/" in given["name"]
    # Outputs under <pipeline root>/rehearsal/<run>/<task>_<execution>/<key>, the ExecutorOutput beside them.
    [model] = trainer["outputs"]["artifacts"]["model"]["artifacts"]
    task_root = Path(model["uri"]).parent
    assert task_root.parent == Path(outcome.root) == bench.layout.pipeline_root / "rehearsal" / "tiny-run1"
    assert task_root.name.startswith("Trainer_") and model["uri"].endswith("/model")
    assert trainer["outputs"]["outputFile"] == str(task_root / "executor_output.json")


def test_the_second_rehearsal_finds_the_first_blessed_model_as_its_baseline_and_reuses_the_cache(bench):
    first = bench.rehearse()
    first_model = bench.executor_input(first, "Trainer", "model")["outputs"]["artifacts"]["model"][
        "artifacts"
    ][0]
    second = bench.rehearse(hyperparameters='{"seed": 7}')
    # The data did not change (the preCacheCheck's fingerprint): ExampleGen is a cache hit; the new
    # hyperparameters make a new model, judged against the first.
    assert second.states["ExampleGen"] == "CACHED"
    assert second.states["Trainer"] == second.states["Evaluator"] == "COMPLETE"
    [baseline] = bench.executor_input(second, "Evaluator", "blessing")["inputs"]["artifacts"][
        "baseline_model"
    ]["artifacts"]
    assert (baseline["name"], baseline["uri"]) == (first_model["name"], first_model["uri"])
    # Changed data: the hook's fingerprint changes the cache key, and ExampleGen runs again.
    (bench.data / "data.csv").write_text("a,b\n5,6\n")
    assert bench.rehearse(hyperparameters='{"seed": 7}').states["ExampleGen"] == "COMPLETE"


def test_a_rehearsal_of_the_same_inputs_judges_the_cached_model_against_itself(bench):
    bench.rehearse()
    again = bench.rehearse()
    assert again.states["Trainer"] == "CACHED" and again.states["Evaluator"] == "COMPLETE"
    artifacts = bench.executor_input(again, "Evaluator", "blessing")["inputs"]["artifacts"]
    [model], [baseline] = artifacts["model"]["artifacts"], artifacts["baseline_model"]["artifacts"]
    assert model["name"] == baseline["name"]  # one artifact under two inputs: one event, two paths
    # ...and the cache knows that execution's outputs by their keys next time.
    assert bench.rehearse().states["Evaluator"] == "CACHED"


def test_without_the_cache_every_task_runs(bench):
    bench.rehearse()
    assert set(bench.rehearse(cache=False).states.values()) == {"COMPLETE"}


def test_a_task_that_exits_non_zero_stops_the_rehearsal_naming_the_task_and_the_error(bench):
    job = tiny_job()
    job["pipelineSpec"]["deploymentSpec"]["executors"]["Trainer_executor"] = container("fake.Diverge")
    with pytest.raises(RehearsalFailed) as failed:
        bench.rehearse(job)
    message = str(failed.value)
    assert message.splitlines()[0] == message
    assert message.startswith(
        "task Trainer: exit 1: ValueError: the model diverged: loss is nan after 3 steps"
    )
    assert "its log: " in message and Path(failed.value.log).is_file()
    # Nothing after it ran, and its outputs never became LIVE: no later query can pick them.
    assert not list(bench.layout.pipeline_root.glob("rehearsal/*/Evaluator_*"))


def test_an_executor_class_that_does_not_import_names_the_module(bench):
    job = tiny_job()
    job["pipelineSpec"]["deploymentSpec"]["executors"]["Evaluator_executor"] = container("cicd_nothing.Judge")
    with pytest.raises(RehearsalFailed) as failed:
        bench.rehearse(job)
    # TFX wraps the import's error; the line gives both.
    assert failed.value.cause == (
        "exit 1: ImportError: Could not import cicd_nothing.Judge (ModuleNotFoundError: No module named "
        "'cicd_nothing')"
    )


def test_a_parameter_the_run_does_not_set_is_refused_before_anything_runs(bench):
    job = tiny_job()
    job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]["learning_rate"] = {"type": "STRING"}
    job["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]["hyperparameters"] = {
        "componentInputParameter": "learning_rate"
    }
    with pytest.raises(
        SpecError,
        match="^task Trainer: input hyperparameters takes pipeline parameter learning_rate, which the run does not set",
    ):
        bench.rehearse(job)
    assert not bench.layout.metadata_path.exists() or not list(bench.layout.pipeline_root.glob("rehearsal/*"))


def test_a_parameter_the_spec_does_not_declare_is_refused(bench):
    with pytest.raises(
        SpecError, match="the run sets parameter.s. schema_file, which the spec does not declare"
    ):
        bench.rehearse(schema_file="/x/schema.pbtxt")


def test_an_input_wired_to_a_missing_output_is_refused():
    job = tiny_job()
    job["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["artifacts"]["examples"][
        "taskOutputArtifact"
    ]["outputArtifactKey"] = "statistics"
    with pytest.raises(
        SpecError, match="^task Trainer: input examples takes output 'statistics' of task ExampleGen"
    ):
        PipelineJob(job)


def test_independent_tasks_run_side_by_side(bench, tmp_path):
    job = tiny_job()
    spec = job["pipelineSpec"]
    for me, other in (("MeetA", "MeetB"), ("MeetB", "MeetA")):
        parameters = {"rendezvous": str(tmp_path), "me": me, "other": other}
        spec["root"]["dag"]["tasks"][me] = {
            "componentRef": {"name": me},
            "inputs": {"parameters": {k: string(v) for k, v in parameters.items()}},
            "taskInfo": {"name": me},
        }
        spec["components"][me] = {
            "executorLabel": f"{me}_executor",
            "inputDefinitions": {"parameters": {k: {"type": "STRING"} for k in parameters}},
            "outputDefinitions": {"artifacts": {"examples": EXAMPLES}},
        }
        spec["deploymentSpec"]["executors"][f"{me}_executor"] = container("fake.Meet")
    # Each waits for the other to be running: one at a time, the first would wait in vain.
    outcome = bench.rehearse(job, parallel=3)
    assert outcome.states["MeetA"] == outcome.states["MeetB"] == "COMPLETE"


def test_retargeting_moves_constants_inside_json_text_and_says_so():
    job = tiny_job()
    job["pipelineSpec"]["root"]["dag"]["tasks"]["Evaluator"]["inputs"]["parameters"]["threshold"] = string(
        json.dumps({"filesystem": {"base_directory": "gs://bucket/serving"}})
    )
    moved, said = PipelineJob(job).retargeted(
        [("gs://bucket/", "/tmp/x/gs/bucket/"), ("vertex:projects/p/locations/r", "local:/tmp/reg")]
    )
    constants = {(task, key): value for task, key, value in moved.string_constants()}
    assert json.loads(constants[("Evaluator", "threshold")]) == {
        "filesystem": {"base_directory": "/tmp/x/gs/bucket/serving"}
    }
    assert constants[("Evaluator", "registry")] == "local:/tmp/reg"
    assert said == [
        "Evaluator.threshold: gs://bucket/ -> /tmp/x/gs/bucket/",
        "Evaluator.registry: vertex:projects/p/locations/r -> local:/tmp/reg",
    ]


def test_the_session_shows_a_line_per_task_the_verdict_and_writes_the_report(tmp_path, data):
    layout = RehearsalLayout(tmp_path / "state")
    out = io.StringIO()
    done = run_rehearsal(
        PipelineJob(tiny_job()),
        parameters={"data_root": str(data), "hyperparameters": "{}"},
        pipeline_root=str(layout.pipeline_root),
        layout=layout,
        runner=SubprocessRunner(),
        run_id="tiny-session",
        out=out,
        live=False,
    )
    shown = out.getvalue().splitlines()
    assert [line.split()[:2] for line in shown if line.split()[1:2] == ["done"]] == [
        [name, "done"] for name in PipelineJob(tiny_job()).order()
    ]
    assert "model: BLESSED" in done.text and "Run tiny-session" in done.text
    assert done.report is not None and done.report.is_file() and "Evaluator" in done.report.read_text()


def test_a_failed_session_says_the_task_and_where_the_report_is(tmp_path, data):
    job = tiny_job()
    job["pipelineSpec"]["deploymentSpec"]["executors"]["Trainer_executor"] = container("fake.Diverge")
    layout = RehearsalLayout(tmp_path / "state")
    with pytest.raises(Failed) as failed:
        run_rehearsal(
            PipelineJob(job),
            parameters={"data_root": str(data), "hyperparameters": "{}"},
            pipeline_root=str(layout.pipeline_root),
            layout=layout,
            runner=SubprocessRunner(),
            run_id="tiny-failed",
            out=io.StringIO(),
            live=False,
        )
    first, *rest = str(failed.value).splitlines()
    assert first.startswith("Rehearsal failed: task Trainer: exit 1: ValueError: the model diverged")
    assert rest and rest[0].startswith("HTML report: ") and Path(rest[0].split(": ", 1)[1]).is_file()


# ------------------------------------------------------------------------------------------- the queries


BLESSED = Candidate(
    "tfx.ModelBlessing", "LIVE", "projects/x/artifacts/1", {"blessed": 1.0, "current_model_id": "m1"}
)


def test_the_blessing_query_takes_live_blessed_blessings_only():
    query = compile_filter(
        'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
    )
    assert query(BLESSED)
    assert not query(Candidate("tfx.ModelBlessing", "LIVE", "n", {"blessed": 0.0}))
    assert not query(Candidate("tfx.ModelBlessing", "PENDING", "n", {"blessed": 1.0}))
    assert not query(Candidate("tfx.Model", "LIVE", "n", {"blessed": 1.0}))


def test_the_model_query_names_the_model_of_the_resolved_blessing():
    text = "schema_title=\"tfx.Model\" AND state=LIVE AND name=\"{{$.inputs.artifacts['input'].metadata['current_model_id']}}\""
    filled = fill_placeholders(text, {"input": [{"name": "b", "uri": "u", "metadata": BLESSED.metadata}]})
    assert filled.endswith('name="m1"')
    assert compile_filter(filled)(Candidate("tfx.Model", "LIVE", "m1", {}))
    assert fill_placeholders(text, {"input": []}) is None  # no blessing yet: the query finds nothing


def test_a_clause_tfx_does_not_compile_is_refused_naming_it():
    with pytest.raises(QueryError, match="create_time"):
        check_filter('schema_title="tfx.Model" AND create_time>1')
