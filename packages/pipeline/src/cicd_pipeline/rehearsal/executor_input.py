"""The ExecutorInput the Vertex launcher hands a container task, built from the spec, and its command line.

Vertex starts a task's container with the ``command`` and ``args`` of its executor, after replacing the
``{{$}}`` placeholder with the task's ``ExecutorInput`` as JSON (``ml_pipelines.ExecutorInput`` in
kubeflow/pipelines ``api/v2alpha1/pipeline_spec.proto``, the same message as
``kfp.pipeline_spec.pipeline_spec_pb2.ExecutorInput``):

- input parameters from the task's ``inputs.parameters``: compile-time constants (``runtimeValue``) and pipeline
  parameters (``componentInputParameter``), resolved against the run's values, else the spec's default;
- input artifacts as the upstream tasks' ExecutorOutput left them (name, ``uri``, ``metadata``), with the type
  the consuming component declares: TFX's entrypoint imports the artifact class from that type's schema title
  (``kubeflow_v2_entrypoint_utils._parse_raw_artifact``); a resolver that found nothing hands on an empty list;
- output artifacts and ``outputs.outputFile`` under the task's folder of the pipeline root.

For schema 2.0.0 (what TFX's ``KubeflowV2DagRunner`` compiles), TFX's entrypoint reads the deprecated
``inputs.parameters`` map (typed ``ml_pipelines.Value``), and ``inputs.parameterValues`` only when the spec passes
``--json_serialized_inputs_spec_args`` (schema 2.1.0). Both are filled, as TFX's own fixture of a launcher
invocation does (``tfx/orchestration/kubeflow/v2/container/testdata/executor_invocation.json``).

The message is checked against the proto before the run: the entrypoint parses it with ``ignore_unknown_fields``,
so a misspelt key here would otherwise vanish silently. (``tests/support/kfp_executor.py`` did this for one task
first; this is the same contract for every task.)
"""

from __future__ import annotations

import json
from typing import Any

from cicd_pipeline.rehearsal.spec import EXECUTOR_INPUT_PLACEHOLDER, PipelineJob, SpecError, Task

# A pipeline parameter's type, as the deprecated field (schema 2.0.0) and as ParameterType (schema 2.1.0) name
# it, to the ml_pipelines.Value field that carries it.
LEGACY_VALUE_FIELD = {
    "STRING": "stringValue",
    "INT": "intValue",
    "DOUBLE": "doubleValue",
    "NUMBER_INTEGER": "intValue",
    "NUMBER_DOUBLE": "doubleValue",
}
EXECUTOR_OUTPUT = "executor_output.json"


def plain(value: dict[str, Any]) -> Any:
    """The Python value of an ml_pipelines.Value in JSON (int64 is a string there)."""
    [(field, raw)] = value.items()
    return int(raw) if field == "intValue" else raw


def _legacy(task: Task, name: str, value: Any, parameter_type: str) -> dict[str, Any]:
    field = LEGACY_VALUE_FIELD.get(parameter_type)
    if field is None:
        raise SpecError(
            f"task {task.name}: input {name} has type {parameter_type}, which a rehearsal cannot pass."
        )
    return {field: str(value) if field == "intValue" else value}


def resolve_parameters(job: PipelineJob, task: Task, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each input parameter of the task as the ml_pipelines.Value the launcher hands the container."""
    types = task.parameter_types
    resolved = {}
    for name, source in task.parameter_sources.items():
        parameter_type = types.get(name, "STRING")
        if "runtimeValue" in source:
            runtime = source["runtimeValue"]
            if "constantValue" in runtime:  # schema 2.0.0: already an ml_pipelines.Value
                resolved[name] = runtime["constantValue"]
            else:  # schema 2.1.0: a google.protobuf.Value
                resolved[name] = _legacy(task, name, runtime["constant"], parameter_type)
        elif "componentInputParameter" in source:
            wanted = source["componentInputParameter"]
            declared = job.parameters.get(wanted, {})
            if wanted in values:
                resolved[name] = _legacy(task, name, values[wanted], parameter_type)
            elif "defaultValue" in declared:
                default = declared["defaultValue"]
                # 2.0.0 writes the default as an ml_pipelines.Value, 2.1.0 as a plain value.
                resolved[name] = (
                    default if isinstance(default, dict) else _legacy(task, name, default, parameter_type)
                )
            else:
                raise SpecError(
                    f"task {task.name}: input {name} takes pipeline parameter {wanted}, which the run does not set "
                    "and the spec gives no default."
                )
        else:
            raise SpecError(
                f"task {task.name}: input {name} comes from {sorted(source)}, which a rehearsal does not support."
            )
    return resolved


def runtime_artifact(
    name: str, artifact_type: dict[str, Any], uri: str, metadata: dict | None = None
) -> dict:
    """An ml_pipelines.RuntimeArtifact in proto JSON (properties in ``metadata``, not the deprecated maps)."""
    artifact = {"name": name, "type": artifact_type, "uri": uri}
    if metadata:
        artifact["metadata"] = metadata
    return artifact


def build_executor_input(
    task: Task,
    parameters: dict[str, dict[str, Any]],
    inputs: dict[str, list[dict[str, Any]]],
    outputs: dict[str, dict[str, Any]],
    output_file: str,
) -> dict[str, Any]:
    """The task's ExecutorInput (proto JSON), checked against the proto.

    ``inputs``: input key -> the artifacts handed on (``{"name", "uri", "metadata"}``; possibly none); each is
    given the type the task's component declares. ``outputs``: output key -> ``{"name", "uri"}``.
    """
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    input_types, output_types = task.input_types, task.output_types
    executor_input = {
        "inputs": {
            "parameters": parameters,
            "parameterValues": {name: plain(value) for name, value in parameters.items()},
            "artifacts": {
                key: {
                    "artifacts": [
                        runtime_artifact(a["name"], input_types[key], a["uri"], a.get("metadata"))
                        for a in inputs[key]
                    ]
                }
                for key in sorted(inputs)
            },
        },
        "outputs": {
            "artifacts": {
                key: {
                    "artifacts": [
                        runtime_artifact(outputs[key]["name"], output_types[key], outputs[key]["uri"])
                    ]
                }
                for key in sorted(outputs)
            },
            "outputFile": output_file,
        },
    }
    try:
        json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput())  # strict: no unknown field
    except json_format.ParseError as err:
        raise SpecError(f"task {task.name}: its ExecutorInput does not parse as KFP's proto: {err}") from None
    return executor_input


def command_line(
    task: Task,
    executor_input: dict[str, Any],
    container: dict[str, Any] | None = None,
    python: str | None = None,
) -> list[str]:
    """The container's command and args (or a lifecycle hook's, ``container``) with ``{{$}}`` replaced.

    ``python``: the interpreter that stands for the image's ``python`` (running in this environment). Any
    other placeholder is refused: a spec that starts using one fails here, not silently at run time.
    """
    container = task.container if container is None else container
    command = list(container.get("command", [])) + list(container.get("args", []))
    unknown = [part for part in command if "{{$" in part.replace(EXECUTOR_INPUT_PLACEHOLDER, "")]
    if unknown:
        raise SpecError(
            f"task {task.name}: its command uses placeholders other than {EXECUTOR_INPUT_PLACEHOLDER} "
            f"({unknown[0][:80]}), which a rehearsal does not fill."
        )
    if python and command and command[0] in ("python", "python3"):
        command[0] = python
    payload = json.dumps(executor_input)
    return [part.replace(EXECUTOR_INPUT_PLACEHOLDER, payload) for part in command]


def read_executor_output(text: str, task: Task) -> dict[str, Any]:
    """The ExecutorOutput a task wrote (proto JSON), checked against the proto as the launcher parses it."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    try:
        output = json.loads(text)
        json_format.ParseDict(output, pipeline_spec_pb2.ExecutorOutput())
    except (ValueError, json_format.ParseError) as err:
        raise SpecError(f"task {task.name}: its ExecutorOutput is not KFP's ExecutorOutput: {err}") from None
    return output
