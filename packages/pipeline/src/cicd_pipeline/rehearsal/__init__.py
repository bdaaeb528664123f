"""A rehearsal: the compiled Vertex AI spec run end to end on this machine, as Vertex AI Pipelines runs it.

A compiled spec is a contract with Vertex's launcher. For each task, ``deploymentSpec.executors[...]`` names an
image and a command (TFX's ``kubeflow_v2_run_executor``); the launcher hands it an ``ExecutorInput``
(parameter values, input artifacts with URIs and metadata, output artifact URIs, the output file); the task
writes an ``ExecutorOutput``, which the launcher reads to record the output artifacts and their metadata.
Resolver tasks are artifact queries against Vertex ML Metadata. A rehearsal plays that launcher:

- ``spec``: the job read strictly (tasks, wiring, parameters, where it writes), checked before anything runs;
- ``executor_input``: the ExecutorInput of one task, checked against KFP's proto;
- ``query``: the resolver's artifact filters and their placeholders;
- ``store``: ML Metadata in SQLite, laid out as TFX's local runner lays it out (so the live progress lines,
  the run summary and the HTML report of ``invoke run`` read it unchanged), holding every rehearsal's
  artifacts: the resolver's queries and the cache are answered from it, so a second rehearsal finds the
  first one's blessed model as its baseline;
- ``runners``: a task's command in this environment (a subprocess) or inside the components image through a
  container engine (the docker SDK: Docker, or podman's Docker-compatible API);
- ``warm``: the local runner's warm start, TFX's task entry points forked from one interpreter that imported
  what they import;
- ``launcher``: the walk over the DAG, and the one-line verdict of a failed task.

Nothing here imports TFX at module level; the launcher imports it when it maps artifact types.
"""

from cicd_pipeline.rehearsal.launcher import Outcome, RehearsalFailed, rehearse
from cicd_pipeline.rehearsal.spec import PipelineJob, SpecError

__all__ = ["Outcome", "PipelineJob", "RehearsalFailed", "SpecError", "rehearse"]
