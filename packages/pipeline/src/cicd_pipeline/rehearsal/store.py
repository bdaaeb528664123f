"""The rehearsals' ML Metadata store (SQLite): what Vertex ML Metadata holds for a pipeline's runs.

It is laid out as TFX's local runner lays out its own store, so the live progress lines
(``cicd_pipeline.progress``), the run summary (``cicd_pipeline.report``) and the HTML report read a rehearsal
exactly as they read ``invoke run``: a ``pipeline`` context named after the pipeline, a ``pipeline_run``
context per rehearsal, a ``node`` context per task (``<pipeline>.<task>``), an execution per task (RUNNING,
then COMPLETE, CACHED, FAILED or CANCELED) with its parameters as properties, INPUT and OUTPUT events keyed by
input and output name, and artifacts of TFX's type names with their metadata as typed properties.

Each artifact also keeps what Vertex keeps and the launcher hands on: its resource name (``name``, the
``current_model_id`` a blessing points at), its type's schema title and its metadata exactly as the task's
ExecutorOutput set it (custom properties ``rehearsal:schema_title`` and ``rehearsal:metadata``). The
resolver's queries and the cache are answered from the store, across rehearsals.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import ml_metadata as mlmd
import yaml
from ml_metadata.proto import metadata_store_pb2 as pb

from cicd_pipeline.rehearsal.query import Candidate
from cicd_pipeline.rehearsal.spec import type_title

# Vertex names artifacts as ML Metadata resources; TFX's entrypoint hashes the name into an integer id and
# writes it back into the blessing's current_model_id.
ARTIFACT_NAME_PREFIX = "projects/rehearsal/locations/local/metadataStores/default/artifacts/"
SCHEMA_TITLE = "rehearsal:schema_title"
METADATA = "rehearsal:metadata"
CACHE_KEY = "rehearsal:cache_key"
_YAML_TYPES = {
    "integer": pb.INT,
    "int": pb.INT,
    "string": pb.STRING,
    "number": pb.DOUBLE,
    "double": pb.DOUBLE,
}
_STATE_NAMES = {v: k for k, v in pb.Artifact.State.items()}


def type_name(title: str) -> str:
    """TFX's TYPE_NAME for a schema title: ``tfx.Model`` -> ``Model``; a custom type's title is its name."""
    return title.removeprefix("tfx.")


def _declared_properties(artifact_type: dict[str, Any]) -> dict[str, int]:
    schema = yaml.safe_load(artifact_type.get("instanceSchema", "")) or {}
    properties = schema.get("properties") or {}
    return {name: _YAML_TYPES.get(str(spec.get("type")), pb.STRING) for name, spec in properties.items()}


def _set_value(target: pb.Value, value: Any, kind: int | None = None) -> None:
    if kind == pb.STRING:
        target.string_value = value if isinstance(value, str) else json.dumps(value)
    elif kind == pb.DOUBLE:
        target.double_value = float(value)
    elif isinstance(value, bool):
        target.int_value = int(value)
    elif isinstance(value, int) or (isinstance(value, float) and value.is_integer() and kind != pb.DOUBLE):
        # ExecutorOutput carries numbers as doubles; TFX's own store keeps blessed, pushed, version, span as ints.
        target.int_value = int(value)
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    else:
        target.string_value = json.dumps(value, sort_keys=True)


class Store:
    """One pipeline's records in the SQLite store at ``path`` (made on first use)."""

    def __init__(self, path: Path, pipeline_name: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = str(self.path)
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.mlmd = mlmd.MetadataStore(config)
        self.pipeline_name = pipeline_name
        self._context_types = {
            name: self.mlmd.put_context_type(pb.ContextType(name=name), can_add_fields=True)
            for name in ("pipeline", "pipeline_run", "node")
        }
        self.pipeline = self._context("pipeline", pipeline_name)
        self.run: pb.Context | None = None
        self._artifact_types: dict[str, int] = {}
        self._execution_types: dict[str, int] = {}

    def _context(self, kind: str, name: str) -> pb.Context:
        found = self.mlmd.get_context_by_type_and_name(kind, name)
        if found is not None:
            return found
        [context_id] = self.mlmd.put_contexts([pb.Context(type_id=self._context_types[kind], name=name)])
        [context] = self.mlmd.get_contexts_by_id([context_id])
        return context

    def start_run(self, run_id: str) -> None:
        self.run = self._context("pipeline_run", run_id)

    # ------------------------------------------------------------------------------------------ artifacts

    def _artifact_type(self, artifact_type: dict[str, Any]) -> tuple[int, dict[str, int]]:
        title = type_title(artifact_type)
        properties = _declared_properties(artifact_type)
        if title not in self._artifact_types:
            declared = pb.ArtifactType(name=type_name(title), properties=properties)
            self._artifact_types[title] = self.mlmd.put_artifact_type(
                declared, can_add_fields=True, can_omit_fields=True
            )
        return self._artifact_types[title], properties

    def new_output(self, artifact_type: dict[str, Any], uri: str) -> dict[str, Any]:
        """A PENDING artifact for a task's output, named as Vertex names it: ``{"id", "name", "uri"}``."""
        type_id, _ = self._artifact_type(artifact_type)
        # Named once, when made (ML Metadata keeps a name as first written): a random number, as Vertex's are.
        name = f"{ARTIFACT_NAME_PREFIX}{uuid.uuid4().int % 10**19}"
        artifact = pb.Artifact(type_id=type_id, uri=uri, name=name, state=pb.Artifact.PENDING)
        artifact.custom_properties[SCHEMA_TITLE].string_value = type_title(artifact_type)
        [artifact_id] = self.mlmd.put_artifacts([artifact])
        return {"id": artifact_id, "name": name, "uri": uri}

    def settle(self, record: dict[str, Any], artifact_type: dict[str, Any], state: str) -> dict[str, Any]:
        """Writes an output's URI, metadata (as typed properties, and as given) and state (LIVE, ABANDONED)."""
        _, properties = self._artifact_type(artifact_type)
        [artifact] = self.mlmd.get_artifacts_by_id([record["id"]])
        artifact.uri = record["uri"]
        artifact.state = pb.Artifact.State.Value(state)
        metadata = record.get("metadata") or {}
        for key, value in metadata.items():
            declared = properties.get(key)
            if declared is not None and not isinstance(value, (dict, list)):
                _set_value(artifact.properties[key], value, declared)
            else:
                _set_value(artifact.custom_properties[key], value)
        artifact.custom_properties[METADATA].string_value = json.dumps(metadata, sort_keys=True)
        self.mlmd.put_artifacts([artifact])
        return record

    @staticmethod
    def _record(artifact: pb.Artifact) -> dict[str, Any]:
        metadata = artifact.custom_properties.get(METADATA)
        return {
            "id": artifact.id,
            "name": artifact.name,
            "uri": artifact.uri,
            "metadata": json.loads(metadata.string_value) if metadata is not None else {},
        }

    def query(self, predicate) -> list[dict[str, Any]]:
        """The latest artifact of this pipeline that ``predicate`` (query.compile_filter) accepts: [] or [one]."""
        found = []
        for artifact in self.mlmd.get_artifacts_by_context(self.pipeline.id):
            title = artifact.custom_properties.get(SCHEMA_TITLE)
            record = self._record(artifact)
            candidate = Candidate(
                schema_title=title.string_value if title is not None else "",
                state=_STATE_NAMES.get(artifact.state, "UNKNOWN"),
                name=artifact.name,
                metadata=record["metadata"],
            )
            if predicate(candidate):
                found.append((artifact.create_time_since_epoch, artifact.id, record))
        return [max(found)[2]] if found else []

    # ----------------------------------------------------------------------------------------- executions

    def _execution_type(self, name: str) -> int:
        if name not in self._execution_types:
            self._execution_types[name] = self.mlmd.put_execution_type(
                pb.ExecutionType(name=name), can_add_fields=True
            )
        return self._execution_types[name]

    def start(
        self,
        task: str,
        execution_type: str,
        properties: dict[str, Any],
        inputs: dict[str, list[dict[str, Any]]],
    ) -> int:
        """A RUNNING execution of ``task`` in this run, with its parameters and INPUT events."""
        execution = pb.Execution(
            type_id=self._execution_type(execution_type), last_known_state=pb.Execution.RUNNING
        )
        for key, value in properties.items():
            execution.custom_properties[key].string_value = str(value)
        links = self._links(pb.Event.INPUT, inputs)
        node = self._context("node", f"{self.pipeline_name}.{task}")
        execution_id, _, _ = self.mlmd.put_execution(
            execution, links, [self.pipeline, self.run, node], reuse_context_if_already_exist=True
        )
        return execution_id

    def finish(
        self,
        execution_id: int,
        state: str,
        outputs: dict[str, list[dict[str, Any]]] | None = None,
        cache_key: str | None = None,
        resolver: bool = False,
    ) -> None:
        """Ends an execution in ``state`` (COMPLETE, CACHED, FAILED, CANCELED) with its OUTPUT events."""
        [execution] = self.mlmd.get_executions_by_id([execution_id])
        execution.last_known_state = pb.Execution.State.Value(state)
        if cache_key:
            execution.custom_properties[CACHE_KEY].string_value = cache_key
        kind = pb.Event.INTERNAL_OUTPUT if resolver else pb.Event.OUTPUT
        links = self._links(kind, outputs or {})
        node = self._context("node", f"{self.pipeline_name}.{self._node_of(execution_id)}")
        self.mlmd.put_execution(
            execution, links, [self.pipeline, self.run, node], reuse_context_if_already_exist=True
        )

    def _links(
        self, kind: int, artifacts: dict[str, list[dict[str, Any]]]
    ) -> list[tuple[pb.Artifact, pb.Event]]:
        """One event per artifact, with a path per key it is linked under (the candidate that is also the
        baseline: ML Metadata keeps one event of a kind per artifact and execution, as TFX records it)."""
        paths: dict[int, list[tuple[str, int]]] = {}
        for key, records in sorted(artifacts.items()):
            for index, record in enumerate(records):
                paths.setdefault(record["id"], []).append((key, index))
        found = {a.id: a for a in self.mlmd.get_artifacts_by_id(list(paths))} if paths else {}
        return [(found[artifact_id], _event(kind, keys)) for artifact_id, keys in paths.items()]

    def _node_of(self, execution_id: int) -> str:
        nodes = [
            c.name
            for c in self.mlmd.get_contexts_by_execution(execution_id)
            if c.type_id == self._context_types["node"]
        ]
        return nodes[0].split(".", 1)[-1]

    def cached(self, cache_key: str) -> dict[str, list[dict[str, Any]]] | None:
        """The outputs of this pipeline's latest COMPLETE execution with ``cache_key``, all still LIVE."""
        matches = [
            e
            for e in self.mlmd.get_executions_by_context(self.pipeline.id)
            if e.last_known_state == pb.Execution.COMPLETE
            and e.custom_properties.get(CACHE_KEY) is not None
            and e.custom_properties[CACHE_KEY].string_value == cache_key
        ]
        if not matches:
            return None
        latest = max(matches, key=lambda e: e.id)
        events = [e for e in self.mlmd.get_events_by_execution_ids([latest.id]) if e.type == pb.Event.OUTPUT]
        artifacts = {a.id: a for a in self.mlmd.get_artifacts_by_id([e.artifact_id for e in events])}
        if any(a.state != pb.Artifact.LIVE for a in artifacts.values()):
            return None
        outputs: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for event in events:
            steps = list(event.path.steps)
            for position, step in enumerate(steps):
                if step.HasField("key"):
                    following = steps[position + 1] if position + 1 < len(steps) else None
                    index = following.index if following is not None and following.HasField("index") else 0
                    outputs.setdefault(step.key, []).append(
                        (index, self._record(artifacts[event.artifact_id]))
                    )
        return {
            key: [record for _, record in sorted(items, key=lambda x: x[0])] for key, items in outputs.items()
        }


def _event(kind: int, keys: list[tuple[str, int]]) -> pb.Event:
    event = pb.Event(type=kind)
    for key, index in keys:
        event.path.steps.add().key = key
        event.path.steps.add().index = index
    return event
