"""Runners: where the pipeline runs (locally with LocalDagRunner, or compiled for Vertex AI Pipelines)."""

# Beam's DirectRunner in memory, in one process: on 2 cores the penguin pipeline ran in about half the time
# of multi_processing (see docs/platform.md); the data is small. Both runners start from it (inside each
# Vertex component container too) until a setting asks for Dataflow.
IN_MEMORY_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
