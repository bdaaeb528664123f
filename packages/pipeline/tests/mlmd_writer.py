"""A small ML Metadata store written the way TFX's local runs write theirs, for the report and progress tests.

Contexts `pipeline` (the pipeline's name), `pipeline_run` (one per run) and `node` (`<pipeline>.<node id>`);
each execution is attributed to all three, its artifacts linked by INPUT and OUTPUT events whose path is the
input or output key (tests/e2e checks the same readers against a real run's store).
"""

from __future__ import annotations

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2 as pb

PIPELINE_NAME = "p"


class MlmdWriter:
    def __init__(self, path):
        self.path = path
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store = mlmd.MetadataStore(config)
        self._types: dict[tuple[str, str], int] = {}
        self.pipeline = self._context("pipeline", PIPELINE_NAME)
        self._nodes: dict[str, int] = {}

    def _type(self, kind: str, name: str) -> int:
        if (kind, name) not in self._types:
            put = {
                "context": (self.store.put_context_type, pb.ContextType),
                "execution": (self.store.put_execution_type, pb.ExecutionType),
                "artifact": (self.store.put_artifact_type, pb.ArtifactType),
            }[kind]
            message = put[1](name=name)
            if kind == "artifact":
                message.properties["split_names"] = pb.STRING
            self._types[kind, name] = put[0](message)
        return self._types[kind, name]

    def _context(self, type_name: str, name: str) -> int:
        return self.store.put_contexts([pb.Context(type_id=self._type("context", type_name), name=name)])[0]

    def run(self, run_id: str) -> int:
        return self._context("pipeline_run", run_id)

    def artifact(self, type_name: str = "Examples", uri: str = "", **properties: str) -> int:
        artifact = pb.Artifact(type_id=self._type("artifact", type_name), uri=uri, state=pb.Artifact.LIVE)
        for key, value in properties.items():
            artifact.properties[key].string_value = value
        return self.store.put_artifacts([artifact])[0]

    def execute(
        self,
        run: int,
        node: str,
        state: str = "COMPLETE",
        inputs: dict[str, list[int]] | None = None,
        outputs: dict[str, list[int]] | None = None,
        type_name: str | None = None,
        **properties: str,
    ) -> int:
        """Records an execution of `node` in `run` and returns its id."""
        execution = pb.Execution(
            type_id=self._type("execution", type_name or f"tfx.components.{node}"),
            last_known_state=pb.Execution.State.Value(state),
        )
        for key, value in properties.items():
            execution.custom_properties[key].string_value = value
        if node not in self._nodes:
            self._nodes[node] = self._context("node", f"{PIPELINE_NAME}.{node}")
        # As TFX does: one event per artifact and direction, its path listing every key it is under.
        events: dict[tuple[int, int], pb.Event] = {}
        for kind, side in ((pb.Event.INPUT, inputs or {}), (pb.Event.OUTPUT, outputs or {})):
            for key, ids in side.items():
                for index, artifact_id in enumerate(ids):
                    event = events.setdefault((kind, artifact_id), pb.Event(type=kind))
                    event.path.steps.add().key = key
                    event.path.steps.add().index = index
        pairs = [(self.store.get_artifacts_by_id([a])[0], event) for (_, a), event in events.items()]
        contexts = self.store.get_contexts_by_id([self.pipeline, run, self._nodes[node]])
        execution_id, _, _ = self.store.put_execution(execution, pairs, contexts)
        return execution_id

    def set_state(self, execution_id: int, state: str) -> None:
        execution = self.store.get_executions_by_id([execution_id])[0]
        execution.last_known_state = pb.Execution.State.Value(state)
        self.store.put_executions([execution])
