"""Runners: where the pipeline runs (locally with LocalDagRunner, or compiled for Vertex AI Pipelines)."""
