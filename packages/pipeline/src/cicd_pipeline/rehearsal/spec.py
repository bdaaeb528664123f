"""The compiled pipeline job, read strictly: its tasks, how they are wired, the parameters it takes.

The job is what ``cicd_pipeline.runners.vertex.compile_vertex_spec`` returns and ``pipeline.compile`` writes
(``{"pipelineSpec": ..., "runtimeConfig": ...}``; a bare ``PipelineSpec`` is accepted too). Everything a
rehearsal needs from it is checked here before any task starts, the way Vertex checks a job when it is
created: a run parameter the spec does not declare, a parameter a task needs and nobody sets, an input wired
to a task or output that does not exist, an executor of a kind the launcher does not know. Each is a
``SpecError`` whose one line names the task and the cause.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
from typing import Any


class SpecError(ValueError):
    """The compiled spec cannot run as given; the message names the task (or parameter) and the cause."""


# The placeholder the launcher replaces with the whole ExecutorInput as JSON.
EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"
_TITLE = re.compile(r"^title:\s*(\S+)\s*$", re.MULTILINE)


def type_title(artifact_type: dict[str, Any]) -> str:
    """An artifact type's schema title (``tfx.Model``, ``cicd_components.RegisteredModel``)."""
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    match = _TITLE.search(artifact_type.get("instanceSchema", ""))
    return match.group(1) if match else "tfx.Artifact"


@dataclasses.dataclass(frozen=True)
class Task:
    """One task of the root DAG with its component and executor (a container or a resolver's queries)."""

    name: str
    spec: dict[str, Any]
    component: dict[str, Any]
    executor: dict[str, Any]

    @property
    def kind(self) -> str:
        return "container" if "container" in self.executor else "resolver"

    @property
    def container(self) -> dict[str, Any]:
        return self.executor["container"]

    @property
    def queries(self) -> dict[str, str]:
        """Output key -> the artifact filter of a resolver task."""
        queries = self.executor["resolver"].get("outputArtifactQueries", {})
        return {key: query["filter"] for key, query in queries.items()}

    @property
    def input_artifacts(self) -> dict[str, tuple[str, str]]:
        """Input key -> (producer task, its output key)."""
        wired = self.spec.get("inputs", {}).get("artifacts", {})
        return {
            key: (
                source["taskOutputArtifact"]["producerTask"],
                source["taskOutputArtifact"]["outputArtifactKey"],
            )
            for key, source in wired.items()
        }

    @property
    def input_types(self) -> dict[str, dict[str, Any]]:
        declared = self.component.get("inputDefinitions", {}).get("artifacts", {})
        return {key: spec["artifactType"] for key, spec in declared.items()}

    @property
    def output_types(self) -> dict[str, dict[str, Any]]:
        declared = self.component.get("outputDefinitions", {}).get("artifacts", {})
        return {key: spec["artifactType"] for key, spec in declared.items()}

    @property
    def parameter_sources(self) -> dict[str, dict[str, Any]]:
        return self.spec.get("inputs", {}).get("parameters", {})

    @property
    def parameter_types(self) -> dict[str, str]:
        declared = self.component.get("inputDefinitions", {}).get("parameters", {})
        return {
            name: spec.get("parameterType") or spec.get("type", "STRING") for name, spec in declared.items()
        }

    @property
    def caching(self) -> bool:
        return bool(self.spec.get("cachingOptions", {}).get("enableCache"))

    @property
    def executor_class(self) -> str:
        """The executor class a TFX container task runs (``--executor_class_path``), else the task's name."""
        args = list(self.container.get("args", [])) if self.kind == "container" else []
        if "--executor_class_path" in args[:-1]:
            return args[args.index("--executor_class_path") + 1]
        return self.name

    @property
    def upstream(self) -> tuple[str, ...]:
        """The tasks this one waits for: its explicit dependencies and the producers of its inputs."""
        producers = {producer for producer, _ in self.input_artifacts.values()}
        return tuple(sorted(set(self.spec.get("dependentTasks", ())) | producers))


class PipelineJob:
    """A compiled job: ``pipelineSpec`` (tasks, components, executors, parameters) and its ``runtimeConfig``."""

    def __init__(self, job: dict[str, Any], source: str = "the spec"):
        self.job = job
        self.source = source
        self.spec = job.get("pipelineSpec", job)
        try:
            root = self.spec["root"]
            self._tasks_json = root["dag"]["tasks"]
            self._components = self.spec["components"]
            self._executors = self.spec["deploymentSpec"]["executors"]
        except (KeyError, TypeError) as err:
            raise SpecError(
                f"{source} is not a compiled pipeline (no {err} in it): pass the JSON `invoke pipeline.compile` "
                "writes."
            ) from None
        self.tasks = {name: self._task(name, spec) for name, spec in self._tasks_json.items()}
        self._check_wiring()

    @classmethod
    def from_file(cls, path: Path) -> PipelineJob:
        try:
            job = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SpecError(
                f"{path} does not exist: run `invoke pipeline.compile`, or pass --spec PATH."
            ) from None
        except (OSError, json.JSONDecodeError) as err:
            raise SpecError(f"{path} is not a readable JSON spec ({err}): compile it again.") from None
        return cls(job, str(path))

    def _task(self, name: str, spec: dict[str, Any]) -> Task:
        component_name = spec.get("componentRef", {}).get("name")
        component = self._components.get(component_name)
        if component is None:
            raise SpecError(f"task {name}: its component {component_name!r} is not in the spec's components.")
        label = component.get("executorLabel")
        executor = self._executors.get(label)
        if executor is None:
            raise SpecError(f"task {name}: its executor {label!r} is not in the spec's deploymentSpec.")
        if not ({"container", "resolver"} & set(executor)):
            raise SpecError(
                f"task {name}: executor kind {sorted(executor)} is not one a rehearsal runs (container, "
                "resolver); the spec needs a newer rehearsal."
            )
        return Task(name, spec, component, executor)

    def _check_wiring(self) -> None:
        for task in self.tasks.values():
            for key, source in task.spec.get("inputs", {}).get("artifacts", {}).items():
                if "taskOutputArtifact" not in source:
                    raise SpecError(
                        f"task {task.name}: input {key} comes from {sorted(source)}, which a rehearsal does "
                        "not support (only other tasks' outputs)."
                    )
            for key, (producer, output) in task.input_artifacts.items():
                if producer not in self.tasks:
                    raise SpecError(
                        f"task {task.name}: input {key} comes from task {producer}, which is not in the spec."
                    )
                if output not in self.tasks[producer].output_types:
                    raise SpecError(
                        f"task {task.name}: input {key} takes output {output!r} of task {producer}, which "
                        f"declares {sorted(self.tasks[producer].output_types)}."
                    )
                if key not in task.input_types:
                    raise SpecError(
                        f"task {task.name}: input {key} is wired but its component does not declare it."
                    )
            for dependency in task.spec.get("dependentTasks", ()):
                if dependency not in self.tasks:
                    raise SpecError(
                        f"task {task.name}: depends on task {dependency}, which is not in the spec."
                    )
        self.order()  # a cycle is a SpecError too

    @property
    def pipeline_name(self) -> str:
        return self.spec.get("pipelineInfo", {}).get("name", "pipeline")

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        """The pipeline's runtime parameters as declared: name -> {type, defaultValue?}."""
        return self.spec["root"].get("inputDefinitions", {}).get("parameters", {})

    def order(self) -> list[str]:
        """Every task after those it waits for; among tasks ready together, by name (a stable walk)."""
        waiting = {name: set(task.upstream) for name, task in self.tasks.items()}
        done: list[str] = []
        while waiting:
            ready = sorted(name for name, upstream in waiting.items() if not upstream - set(done))
            if not ready:
                raise SpecError(f"{self.source}: tasks {sorted(waiting)} wait for each other (a cycle).")
            done.append(ready[0])
            del waiting[ready[0]]
        return done

    def graph(self) -> dict[str, list[str]]:
        """Task -> the tasks it waits for, in run order (what the live progress and the report draw)."""
        return {name: list(self.tasks[name].upstream) for name in self.order()}

    def check_run_parameters(self, values: dict[str, Any]) -> None:
        """Refuses a run as Vertex refuses to create it: a value for an undeclared parameter, or none (and no
        default) for one that a task takes."""
        unknown = sorted(set(values) - set(self.parameters))
        if unknown:
            raise SpecError(
                f"the run sets parameter(s) {', '.join(unknown)}, which the spec does not declare (it takes "
                f"{', '.join(sorted(self.parameters)) or 'none'}): Vertex would refuse the job. Compile the spec "
                "from this checkout again."
            )
        for name in self.order():
            task = self.tasks[name]
            for key, source in task.parameter_sources.items():
                wanted = source.get("componentInputParameter")
                if wanted is None:
                    continue
                if wanted not in self.parameters:
                    raise SpecError(
                        f"task {name}: input {key} takes pipeline parameter {wanted}, which the spec does not declare."
                    )
                if wanted not in values and "defaultValue" not in self.parameters[wanted]:
                    raise SpecError(
                        f"task {name}: input {key} takes pipeline parameter {wanted}, which the run does not set "
                        "and the spec gives no default: Vertex would refuse the job (the run's parameters are "
                        "built by cicd_release.run.launch.RunRequest.parameters)."
                    )

    def string_constants(self) -> list[tuple[str, str, str]]:
        """(task, parameter, value) of every string constant a task is given."""
        found = []
        for name in self.order():
            for key, source in self.tasks[name].parameter_sources.items():
                value = _constant(source)
                if isinstance(value, str):
                    found.append((name, key, value))
        return found

    def retargeted(self, rewrites: list[tuple[str, str]]) -> tuple[PipelineJob, list[str]]:
        """A copy whose string constants have each ``old`` prefix of ``rewrites`` replaced by ``new`` (also
        inside JSON text, such as Pusher's ``push_destination``); and a line per replacement made."""
        job = copy.deepcopy(self.job)
        spec = job.get("pipelineSpec", job)
        said = []
        for name, task in spec["root"]["dag"]["tasks"].items():
            for key, source in task.get("inputs", {}).get("parameters", {}).items():
                value = _constant(source)
                if not isinstance(value, str):
                    continue
                new = value
                for old, replacement in rewrites:
                    new = new.replace(old, replacement)
                if new != value:
                    _set_constant(source, new)
                    changed = [f"{old} -> {replacement}" for old, replacement in rewrites if old in value]
                    said.append(f"{name}.{key}: {'; '.join(changed)}")
        return PipelineJob(job, self.source), said


def _constant(source: dict[str, Any]) -> Any:
    runtime = source.get("runtimeValue")
    if runtime is None:
        return None
    if "constantValue" in runtime:  # schema 2.0.0: an ml_pipelines.Value (int64 is text: only stringValue is)
        return runtime["constantValue"].get("stringValue")
    return runtime.get("constant")  # schema 2.1.0: a google.protobuf.Value


def _set_constant(source: dict[str, Any], value: str) -> None:
    runtime = source["runtimeValue"]
    if "constantValue" in runtime:
        runtime["constantValue"] = {"stringValue": value}
    else:
        runtime["constant"] = value
