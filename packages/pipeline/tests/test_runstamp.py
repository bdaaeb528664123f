"""The no-change shortcut: a run's result is reused only when nothing it consumed changed and it is still the
store's latest run. Every input must move the fingerprint; a stale or foreign stamp must never be believed."""

import dataclasses

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from cicd_pipeline import runstamp
from cicd_pipeline.config import TrainingConfig


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x\n1\n")
    files = {}
    for name, text in (
        ("model_module", "m = 1\n"),
        ("preprocessing_module", "p = 1\n"),
        ("schema_file", "s\n"),
    ):
        files[name] = tmp_path / f"{name}.txt"
        files[name].write_text(text)
    return tmp_path, files


def fingerprint(root, files, config=None, labels=None):
    return runstamp.fingerprint(
        root / "state", files, root / "data", config or TrainingConfig(), labels or {}
    )


def test_every_input_moves_the_fingerprint(inputs):
    root, files = inputs
    seen = {fingerprint(root, files)}
    assert fingerprint(root, files) in seen, "the same inputs, the same fingerprint"
    for name in files:
        files[name].write_text(files[name].read_text() + "# edited\n")
        seen.add(fingerprint(root, files))
    (root / "data" / "a.csv").write_text("x\n2\n")
    seen.add(fingerprint(root, files))
    (root / "data" / "b.csv").write_text("x\n3\n")
    seen.add(fingerprint(root, files))
    seen.add(fingerprint(root, files, config=dataclasses.replace(TrainingConfig(), train_steps=7)))
    seen.add(fingerprint(root, files, labels={"commit": "abc"}))
    assert len(seen) == 1 + len(files) + 2 + 2


def record_run(metadata_path, pipeline_name: str, run_id: str) -> None:
    """A run of `pipeline_name` recorded as TFX records one: a pipeline context, a run context, an execution."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = mlmd.MetadataStore(config)
    pipeline_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline"))
    run_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline_run"))
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    pipeline_id = (
        pipeline.id
        if pipeline
        else store.put_contexts([metadata_store_pb2.Context(type_id=pipeline_type, name=pipeline_name)])[0]
    )
    [run] = store.put_contexts([metadata_store_pb2.Context(type_id=run_type, name=run_id)])
    [execution] = store.put_executions([metadata_store_pb2.Execution(type_id=execution_type)])
    associations = [
        metadata_store_pb2.Association(context_id=c, execution_id=execution) for c in (pipeline_id, run)
    ]
    store.put_attributions_and_associations([], associations)


def test_a_stamp_stands_only_for_the_same_inputs_and_the_latest_run(tmp_path):
    metadata = tmp_path / "metadata.sqlite"
    record_run(metadata, "p", "run-1")
    stamp = runstamp.Stamp("f1", "run-1", "report", True, [])
    runstamp.write(tmp_path, stamp)
    assert runstamp.unchanged(tmp_path, "f1", metadata, "p") == stamp
    assert runstamp.unchanged(tmp_path, "f2", metadata, "p") is None, "an input changed"
    assert runstamp.unchanged(tmp_path, "f1", metadata, "q") is None, "another pipeline's store"
    record_run(metadata, "p", "run-2")
    assert runstamp.unchanged(tmp_path, "f1", metadata, "p") is None, "a later run happened since"


def test_no_store_or_a_torn_stamp_means_run(tmp_path):
    runstamp.write(tmp_path, runstamp.Stamp("f1", "run-1", "report", True, []))
    assert runstamp.unchanged(tmp_path, "f1", tmp_path / "missing.sqlite", "p") is None
    (tmp_path / runstamp.STAMP_FILE).write_text('{"fingerprint": "f1", "run_')
    assert runstamp.read(tmp_path) is None
    runstamp.forget(tmp_path)
    assert runstamp.read(tmp_path) is None
    runstamp.forget(tmp_path)  # forgetting nothing is fine
