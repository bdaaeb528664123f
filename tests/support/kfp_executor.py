"""Run one container task of a compiled KFP v2 pipeline job locally, as the Vertex AI Pipelines launcher does.

Vertex starts a task's container with the ``command`` and ``args`` of its executor in
``pipelineSpec.deploymentSpec.executors``, after replacing the ``{{$}}`` placeholder with the task's
``ExecutorInput`` as JSON (``ml_pipelines.ExecutorInput`` in kubeflow/pipelines ``api/v2alpha1/pipeline_spec.proto``;
the same message as ``kfp.pipeline_spec.pipeline_spec_pb2.ExecutorInput``). This module builds that message from
the spec itself:

- input parameters from the task's ``inputs.parameters``: compile-time constants (``runtimeValue``) and pipeline
  parameters (``componentInputParameter``), resolved against the run's parameter values, else the pipeline's
  default, else refused as Vertex refuses a run that leaves a parameter without a value;
- input artifacts, given by the caller as an upstream task would have left them (``uri`` and ``metadata``), with
  the artifact ``type`` the component declares: TFX's container entrypoint imports the artifact class from that
  type's schema title (``kubeflow_v2_entrypoint_utils._parse_raw_artifact``);
- output artifacts and ``outputs.outputFile``, where the entrypoint writes the ``ExecutorOutput``, laid out under a
  task root as Vertex lays them out under the pipeline root (``<root>/<project number>/<job>/<task>_<id>/...``).

For schema 2.0.0 (what TFX's ``KubeflowV2DagRunner`` compiles by default), TFX's entrypoint reads the deprecated
``inputs.parameters`` map (typed ``ml_pipelines.Value``); it reads ``inputs.parameterValues`` only when the spec
passes ``--json_serialized_inputs_spec_args`` (schema 2.1.0). Both are filled, as TFX's own fixture of a launcher
invocation does (``tfx/orchestration/kubeflow/v2/container/testdata/executor_invocation.json``).

The message is checked against the proto before the run: the entrypoint parses it with ``ignore_unknown_fields``,
so a misspelt key here would otherwise vanish silently and the test would prove nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

# The launcher's placeholder and the parameter types' Value fields: the rehearsal's own, one home.
from cicd_pipeline.rehearsal.executor_input import LEGACY_VALUE_FIELD, plain
from cicd_pipeline.rehearsal.spec import EXECUTOR_INPUT_PLACEHOLDER

# Vertex names artifacts as ML Metadata resources; the entrypoint maps these names to numeric ids and back.
ARTIFACT_NAME_PREFIX = "projects/123456789012/locations/us-central1/metadataStores/default/artifacts/"


@dataclass(frozen=True)
class ContainerTask:
    """One task of the root DAG, with its component and the container Vertex starts for it."""

    name: str
    task: dict[str, Any]
    component: dict[str, Any]
    container: dict[str, Any]


def find_container_task(job: dict[str, Any], task_name: str) -> ContainerTask:
    """The task ``task_name`` of the job's root DAG and its executor's container (KeyError naming the tasks)."""
    spec = job["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    if task_name not in tasks:
        raise KeyError(f"no task {task_name!r} in the compiled spec; tasks: {sorted(tasks)}")
    task = tasks[task_name]
    component = spec["components"][task["componentRef"]["name"]]
    executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
    if "container" not in executor:
        raise ValueError(f"task {task_name!r} runs no container: its executor is {sorted(executor)}")
    return ContainerTask(name=task_name, task=task, component=component, container=executor["container"])


def _legacy(value: Any, parameter_type: str) -> dict[str, Any]:
    """A Python value as the ml_pipelines.Value of ``parameter_type`` (int64 as a string, as proto JSON has it)."""
    field = LEGACY_VALUE_FIELD.get(parameter_type)
    if field is None:
        raise NotImplementedError(f"parameter type {parameter_type!r} has no ml_pipelines.Value form")
    return {field: str(value) if field == "intValue" else value}


def resolve_input_parameters(
    job: dict[str, Any], task: ContainerTask, parameter_values: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Each input parameter of the task as the ml_pipelines.Value the launcher hands the container.

    ``parameter_values`` are the run's pipeline parameters, as ``PipelineJob(parameter_values=...)`` takes them.
    """
    root_parameters = job["pipelineSpec"]["root"].get("inputDefinitions", {}).get("parameters", {})
    declared = task.component.get("inputDefinitions", {}).get("parameters", {})
    resolved = {}
    for name, source in task.task.get("inputs", {}).get("parameters", {}).items():
        spec = declared[name]
        parameter_type = spec.get("parameterType") or spec["type"]
        if "runtimeValue" in source:
            runtime_value = source["runtimeValue"]
            if "constantValue" in runtime_value:  # schema 2.0.0: an ml_pipelines.Value
                resolved[name] = runtime_value["constantValue"]
            else:  # schema 2.1.0: a google.protobuf.Value
                resolved[name] = _legacy(runtime_value["constant"], parameter_type)
        elif "componentInputParameter" in source:
            pipeline_parameter = source["componentInputParameter"]
            if pipeline_parameter in parameter_values:
                resolved[name] = _legacy(parameter_values[pipeline_parameter], parameter_type)
            elif "defaultValue" in root_parameters.get(pipeline_parameter, {}):
                resolved[name] = _legacy(root_parameters[pipeline_parameter]["defaultValue"], parameter_type)
            else:
                # Vertex refuses to start such a run; the spec has no default to fall back on.
                raise ValueError(
                    f"task {task.name!r} input {name!r} takes pipeline parameter {pipeline_parameter!r}, which "
                    "the run does not set and the compiled spec gives no default."
                )
        else:
            raise NotImplementedError(
                f"task {task.name!r} input {name!r}: source {sorted(source)} not supported"
            )
    return resolved


def runtime_artifact(
    name: str, type_schema: dict[str, Any], uri: str, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An ml_pipelines.RuntimeArtifact in proto JSON (properties live in ``metadata``, not the deprecated maps)."""
    artifact = {"name": name, "type": type_schema, "uri": uri}
    if metadata:
        artifact["metadata"] = metadata
    return artifact


def build_executor_input(
    job: dict[str, Any],
    task: ContainerTask,
    *,
    parameter_values: dict[str, Any],
    input_artifacts: dict[str, dict[str, Any]],
    task_root: Path,
) -> dict[str, Any]:
    """The task's ExecutorInput (proto JSON), checked against the proto.

    ``input_artifacts`` maps each input of the task to ``{"uri": ..., "metadata": {...}}``, as the upstream task's
    ExecutorOutput left it; every input the task declares must be given, as Vertex gives all of them. Output
    artifacts get ``task_root/<output key>`` and the ExecutorOutput goes to ``task_root/executor_output.json``.
    """
    inputs_spec = task.component.get("inputDefinitions", {}).get("artifacts", {})
    outputs_spec = task.component.get("outputDefinitions", {}).get("artifacts", {})
    wanted = set(task.task.get("inputs", {}).get("artifacts", {}))
    if set(input_artifacts) != wanted:
        raise ValueError(
            f"task {task.name!r} takes input artifacts {sorted(wanted)}; given {sorted(input_artifacts)}"
        )
    ids = iter(range(1, 1000))
    artifacts = {
        key: {
            "artifacts": [
                runtime_artifact(
                    f"{ARTIFACT_NAME_PREFIX}{next(ids)}",
                    inputs_spec[key]["artifactType"],
                    given["uri"],
                    given.get("metadata"),
                )
            ]
        }
        for key, given in sorted(input_artifacts.items())
    }
    outputs = {
        key: {
            "artifacts": [
                runtime_artifact(
                    f"{ARTIFACT_NAME_PREFIX}{next(ids)}", spec["artifactType"], str(task_root / key)
                )
            ]
        }
        for key, spec in sorted(outputs_spec.items())
    }
    parameters = resolve_input_parameters(job, task, parameter_values)
    executor_input = {
        "inputs": {
            "parameters": parameters,
            "parameterValues": {name: plain(value) for name, value in parameters.items()},
            "artifacts": artifacts,
        },
        "outputs": {"artifacts": outputs, "outputFile": str(task_root / "executor_output.json")},
    }
    json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput())  # strict: no unknown field
    return executor_input


def container_command_line(task: ContainerTask, executor_input: dict[str, Any]) -> list[str]:
    """The container's command and args with ``{{$}}`` replaced; ``python`` is this interpreter.

    Any other placeholder is refused, so a spec that starts using one fails here, not silently at run time.
    """
    command = list(task.container.get("command", [])) + list(task.container.get("args", []))
    if command and command[0] == "python":
        command[0] = sys.executable  # the image's python; here, the interpreter running the tests
    line = [part.replace(EXECUTOR_INPUT_PLACEHOLDER, json.dumps(executor_input)) for part in command]
    unknown = [part for part in command if "{{$" in part.replace(EXECUTOR_INPUT_PLACEHOLDER, "")]
    if unknown:
        raise NotImplementedError(f"placeholders other than {EXECUTOR_INPUT_PLACEHOLDER} in {unknown}")
    return line


def run_container_task(
    task: ContainerTask,
    executor_input: dict[str, Any],
    *,
    env: dict[str, str],
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the task's command line as the container would, with ``env`` plus the container's own ``env``."""
    container_env = {item["name"]: item["value"] for item in task.container.get("env", [])}
    return subprocess.run(
        container_command_line(task, executor_input),
        env={**env, **container_env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def read_executor_output(executor_input: dict[str, Any]) -> dict[str, Any]:
    """The ExecutorOutput the container wrote (proto JSON), checked against the proto."""
    output = json.loads(Path(executor_input["outputs"]["outputFile"]).read_text())
    json_format.ParseDict(output, pipeline_spec_pb2.ExecutorOutput())
    return output


def pythonpath(*first: str | os.PathLike[str]) -> str:
    """``first`` ahead of the current PYTHONPATH, for a child that must import what this process imports."""
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join([*map(str, first), *current])
