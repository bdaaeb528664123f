"""One run's executions read back from the SQLite ML Metadata store: node, state, times, inputs, outputs.

The live progress lines, the reasons a component re-ran and the HTML report all read the store through here,
read-only: TFX keeps writing to it during a run, and MLMD's own busy handler makes its writes wait out a
reader's few milliseconds.
"""

from __future__ import annotations

import dataclasses

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

STATES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}
_Event = metadata_store_pb2.Event
# A resolver's picks are INTERNAL_OUTPUT events: they count as what it hands on.
_OUTPUTS = (_Event.OUTPUT, _Event.INTERNAL_OUTPUT)
RESOLVER_TYPE = "tfx.dsl.components.common.resolver.Resolver"


@dataclasses.dataclass(frozen=True)
class Execution:
    id: int
    node: str  # the pipeline node's id (CsvExampleGen, latest_blessed_model_resolver, ...)
    type: str
    state: str  # NEW, RUNNING, COMPLETE (executed), CACHED (reused an earlier result), FAILED, CANCELED
    started: float  # seconds since the epoch
    updated: float
    inputs: dict[str, tuple[int, ...]]  # input key -> artifact ids
    outputs: dict[str, tuple[int, ...]]  # output key -> artifact ids
    properties: dict[str, str]  # the execution's properties (a component's parameters), as text

    @property
    def seconds(self) -> float:
        return self.updated - self.started


def open_store(metadata_path) -> mlmd.MetadataStore:
    """A read-only connection (it never creates the file: a run that has not started has no store yet)."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def _value(value: metadata_store_pb2.Value) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind in ("int_value", "double_value", "bool_value"):
        return str(getattr(value, kind))
    return str(value).strip()


def _keys(event: metadata_store_pb2.Event) -> list[str]:
    # One event may carry several paths (an artifact that is both `model` and `baseline_model`).
    return [step.key for step in event.path.steps if step.HasField("key")]


def node_of(store: mlmd.MetadataStore, execution: metadata_store_pb2.Execution) -> str:
    nodes = [c.name for c in store.get_contexts_by_execution(execution.id) if c.type == "node"]
    return nodes[0].split(".", 1)[-1] if nodes else execution.type.rsplit(".", 1)[-1]


def read_executions(
    store: mlmd.MetadataStore,
    executions: list[metadata_store_pb2.Execution],
    nodes: dict[int, str] | None = None,
) -> list[Execution]:
    """`executions` with their nodes, inputs and outputs, in the order they were created.

    `nodes` caches execution id -> node across calls (a poller asks about the same executions each time).
    """
    nodes = {} if nodes is None else nodes
    events = store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
    inputs: dict[int, dict[str, list[int]]] = {}
    outputs: dict[int, dict[str, list[int]]] = {}
    for event in events:
        side = inputs if event.type == _Event.INPUT else outputs if event.type in _OUTPUTS else None
        if side is None:
            continue
        for key in _keys(event):
            side.setdefault(event.execution_id, {}).setdefault(key, []).append(event.artifact_id)
    out = []
    for e in sorted(executions, key=lambda e: (e.create_time_since_epoch, e.id)):
        if e.id not in nodes:
            nodes[e.id] = node_of(store, e)
        out.append(
            Execution(
                id=e.id,
                node=nodes[e.id],
                type=e.type,
                state=STATES.get(e.last_known_state, "UNKNOWN"),
                started=e.create_time_since_epoch / 1000,
                updated=e.last_update_time_since_epoch / 1000,
                inputs={k: tuple(sorted(v)) for k, v in inputs.get(e.id, {}).items()},
                outputs={k: tuple(sorted(v)) for k, v in outputs.get(e.id, {}).items()},
                properties={k: _value(v) for k, v in e.custom_properties.items()}
                | {k: _value(v) for k, v in e.properties.items()},
            )
        )
    return out


def executions_since(
    store: mlmd.MetadataStore, pipeline_name: str, since: float, nodes: dict[int, str] | None = None
) -> list[Execution]:
    """Executions of `pipeline_name` created at or after `since` (seconds since the epoch): a running run's."""
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return []
    query = f"create_time_since_epoch >= {int(since * 1000)}"
    found = store.get_executions_by_context(pipeline.id, list_options=mlmd.ListOptions(filter_query=query))
    return read_executions(store, found, nodes)


def latest_run_context(store: mlmd.MetadataStore, pipeline_name: str) -> metadata_store_pb2.Context:
    """The `pipeline_run` context of the newest run of `pipeline_name`. A ValueError when there is none.

    Only runs of this pipeline: a store may hold others (their executions are not in this pipeline's context).
    """
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        raise ValueError(f"No run of pipeline {pipeline_name!r} is recorded in this store.")
    ours = {e.id for e in store.get_executions_by_context(pipeline.id)}
    runs = [
        c
        for c in store.get_contexts_by_type("pipeline_run")
        if any(e.id in ours for e in store.get_executions_by_context(c.id))
    ]
    if not runs:
        raise ValueError(f"No run of pipeline {pipeline_name!r} is recorded in this store.")
    return max(runs, key=lambda c: (c.create_time_since_epoch, c.id))


def latest_run(store: mlmd.MetadataStore, pipeline_name: str) -> tuple[str, list[Execution]]:
    """The newest run of `pipeline_name`: its id and its executions. A ValueError when there is none."""
    run = latest_run_context(store, pipeline_name)
    return run.name, read_executions(store, list(store.get_executions_by_context(run.id)))


def producers(store: mlmd.MetadataStore, artifact_ids: list[int]) -> dict[int, str]:
    """artifact id -> the node that first wrote it (a cached execution re-links an artifact it did not make)."""
    events = [e for e in store.get_events_by_artifact_ids(artifact_ids) if e.type in _OUTPUTS]
    first: dict[int, int] = {}
    for event in events:
        first[event.artifact_id] = min(first.get(event.artifact_id, event.execution_id), event.execution_id)
    executions = {e.id: e for e in store.get_executions_by_id(list(set(first.values())))}
    return {a: node_of(store, executions[x]) for a, x in first.items() if x in executions}


def previous_execution(
    store: mlmd.MetadataStore, pipeline_name: str, execution: Execution
) -> Execution | None:
    """The latest execution of the same node, before `execution`, that actually ran (COMPLETE)."""
    node = store.get_context_by_type_and_name("node", f"{pipeline_name}.{execution.node}")
    if node is None:
        return None
    complete = metadata_store_pb2.Execution.COMPLETE
    earlier = [
        e
        for e in store.get_executions_by_context(node.id)
        # MLMD numbers executions in the order they were made: a smaller id is an earlier one.
        if e.id < execution.id and e.last_known_state == complete
    ]
    if not earlier:
        return None
    latest = max(earlier, key=lambda e: e.id)
    return read_executions(store, [latest])[0]
