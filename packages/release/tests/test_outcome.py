"""A Vertex run read back: task states and times, the verdict, the numbers, the registered version."""

from cicd_release.run.outcome import RunOutcome, format_outcome, markdown_outcome, outcome_from_resource


def job(state="PIPELINE_STATE_SUCCEEDED", blessed=1.0, registered=1.0, error=None):
    """A PipelineJob as aiplatform's MessageToDict gives it (snake_case, Struct numbers as floats)."""

    def task(number, name, task_state="SUCCEEDED", outputs=None):
        detail = {
            "task_id": str(number),
            "parent_task_id": "1",
            "task_name": name,
            "state": task_state,
            "start_time": "2026-11-27T10:00:00Z",
            "end_time": f"2026-11-27T10:0{number}:30Z",
        }
        if outputs:
            detail["outputs"] = {
                k: {"artifacts": [{"uri": "gs://b/x", "metadata": v}]} for k, v in outputs.items()
            }
        return detail

    registry = {
        "blessed": blessed,
        "registered": registered,
        "version": 3.0,
        "metrics": '{"sparse_categorical_accuracy": 0.98, "sparse_categorical_accuracy (change vs baseline)": 0.01}',
    }
    resource = {
        "name": "projects/p/locations/l/pipelineJobs/penguin-cicd-abc",
        "state": state,
        "job_detail": {
            "task_details": [
                {"task_id": "1", "task_name": "penguin-cicd", "state": "SUCCEEDED"},
                task(2, "Trainer"),
                task(
                    3,
                    "Pusher",
                    outputs={"pushed_model": {"pushed": registered, "pushed_destination": "gs://b/m/1"}},
                ),
                task(4, "ModelRegistryUploader", outputs={"registered_model": registry}),
            ]
        },
    }
    if error:
        resource["error"] = {"code": 9, "message": error}
    return resource


SNAPSHOT = "gs://b/data/penguins/" + "5" * 64


def test_the_run_names_the_snapshot_it_trained_on():
    resource = {
        **job(),
        "labels": {"data_sha": "5" * 16, "commit": "0123456789ab"},
        # TFX 1.16 compiles spec schema 2.0.0: aiplatform sends its values as typed `parameters`.
        "runtime_config": {"parameters": {"data_root": {"string_value": SNAPSHOT}}},
    }
    outcome = outcome_from_resource(resource)
    assert (outcome.data_root, outcome.data_sha) == (SNAPSHOT, "5" * 16)
    assert f"data: {SNAPSHOT} (data_sha {'5' * 16})" in format_outcome(outcome)
    assert f"Trained on `{SNAPSHOT}`" in markdown_outcome(outcome)
    schema_2_1 = {**job(), "runtime_config": {"parameter_values": {"data_root": SNAPSHOT}}}
    assert outcome_from_resource(schema_2_1).data_root == SNAPSHOT


def test_a_blessed_run_reads_back_with_its_numbers_and_version():
    outcome = outcome_from_resource(job(), "https://console/run")
    assert outcome.succeeded and outcome.verdict == "BLESSED"
    assert [t.name for t in outcome.tasks] == ["Trainer", "Pusher", "ModelRegistryUploader"], "not the root"
    assert outcome.tasks[0].seconds == 150.0
    assert outcome.metrics["sparse_categorical_accuracy"] == 0.98
    assert (outcome.registered_version, outcome.pushed_destination) == ("3", "gs://b/m/1")
    text = format_outcome(outcome)
    assert "model: BLESSED" in text and "registered: version 3" in text
    assert "| sparse_categorical_accuracy | 0.9800 |" in markdown_outcome(outcome, "0123456789abcdef")


def test_a_model_that_was_not_blessed_is_said_plainly():
    outcome = outcome_from_resource(job(blessed=0.0, registered=0.0))
    assert outcome.succeeded and outcome.verdict.startswith("NOT BLESSED")
    assert outcome.registered_version is None


def test_a_failed_run_says_so_and_keeps_the_error():
    outcome = outcome_from_resource(job(state="PIPELINE_STATE_FAILED", error="The DAG failed"))
    assert not outcome.succeeded and outcome.verdict == "run FAILED"
    assert "error: The DAG failed" in format_outcome(outcome)
    assert isinstance(outcome, RunOutcome)
