"""cicd.source=bigquery in the compiled Vertex spec: BigQueryExampleGen in place of CsvExampleGen, each run's query
as the `bigquery_input` runtime parameter (so a retrain's window needs no recompile), and the Beam arguments the
EXPORT read needs; what the executor makes of the parameter's value is TFX's own parsing."""

import json

import pytest
from test_dataflow_compile import ARGS, DATAFLOW, EXPECTED, _container_args

from cicd_pipeline import run_inputs
from cicd_pipeline.bigquery_source import input_config, windowed_query
from cicd_pipeline.engines import beam_pipeline_args
from cicd_pipeline.runners import IN_MEMORY_BEAM_ARGS
from cicd_pipeline.runners.vertex import compile_vertex_spec

# What cicd_release.core.sources.bigquery_options makes of the settings (packages/release/tests/test_bigquery_source.py).
BIGQUERY = {"project": "my-project", "temp_location": "gs://my-bucket/bigquery/penguin-cicd/temp"}
BQ_ARGS = ["--project=my-project", "--temp_location=gs://my-bucket/bigquery/penguin-cicd/temp"]


@pytest.fixture(scope="module")
def from_bigquery() -> dict:
    return compile_vertex_spec(**ARGS, bigquery=BIGQUERY)


def test_the_spec_reads_bigquery_through_the_run_s_query_parameter(from_bigquery):
    spec = from_bigquery["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert "BigQueryExampleGen" in tasks and "CsvExampleGen" not in tasks
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert declared[run_inputs.BIGQUERY_INPUT] == {"type": "STRING"}
    # No CSV folder: submit passes bigquery_input in its place, and Vertex refuses unknown parameters.
    assert run_inputs.DATA_ROOT not in declared
    inputs = tasks["BigQueryExampleGen"]["inputs"]["parameters"]
    assert inputs["input_config"] == {"componentInputParameter": run_inputs.BIGQUERY_INPUT}
    split = json.loads(inputs["output_config"]["runtimeValue"]["constantValue"]["stringValue"])
    assert split == {
        "split_config": {
            "splits": [{"hash_buckets": 2, "name": "train"}, {"hash_buckets": 1, "name": "eval"}]
        }
    }
    # The rows meet the same contract as CSV rows: the curated schema, the validator, the gate.
    assert {"ExampleValidator", "StatisticsGen", "ImportSchemaGen"} <= set(tasks)
    stats = tasks["StatisticsGen"]["inputs"]["artifacts"]["examples"]["taskOutputArtifact"]
    assert stats["producerTask"] == "BigQueryExampleGen"


def test_the_executor_is_tfx_s_bigquery_one_and_beam_gets_the_project_and_a_temp_location(from_bigquery):
    spec = from_bigquery["pipelineSpec"]
    executor = spec["deploymentSpec"]["executors"]["BigQueryExampleGen_executor"]["container"]["args"]
    assert executor[executor.index("--executor_class_path") + 1] == (
        "tfx.extensions.google_cloud_big_query.example_gen.executor.Executor"
    )
    args = _container_args(from_bigquery)
    for name in ("BigQueryExampleGen", "StatisticsGen", "Transform", "Evaluator"):
        assert args[name] == [*IN_MEMORY_BEAM_ARGS, *BQ_ARGS], name


def test_on_dataflow_the_dataflow_arguments_already_carry_project_and_temp_location():
    assert beam_pipeline_args(DATAFLOW, image=ARGS["image"], bigquery=BIGQUERY) == EXPECTED
    assert beam_pipeline_args(None, image=ARGS["image"], bigquery=None) == list(IN_MEMORY_BEAM_ARGS)


def test_the_parameter_value_is_what_the_executor_parses_back_as_its_one_split():
    from tfx.proto import example_gen_pb2
    from tfx.utils import proto_utils

    query = windowed_query("my-project.sales.daily", "day")
    parsed = proto_utils.json_to_proto(input_config(query), example_gen_pb2.Input())
    assert [(s.name, s.pattern) for s in parsed.splits] == [("single_split", query)]
    with pytest.raises(ValueError, match="needs a query"):
        input_config(" ")


def test_a_run_of_a_bigquery_spec_passes_the_query_in_place_of_the_folder():
    files = {"schema_file": "gs://b/modules/" + "a" * 64 + "/schema.pbtxt"}
    values = run_inputs.runtime_parameters(
        files, "bigquery://p.d.t", "{}", "{}", bigquery_input='{"splits": []}'
    )
    assert values[run_inputs.BIGQUERY_INPUT] == '{"splits": []}' and run_inputs.DATA_ROOT not in values
