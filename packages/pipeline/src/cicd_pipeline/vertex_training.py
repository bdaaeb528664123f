"""The Trainer as a Vertex AI custom job: the typed backend and the `custom_config` TFX's extension reads.

With a backend, the pipeline's Trainer is TFX's Google Cloud extension Trainer
(`tfx.extensions.google_cloud_ai_platform.Trainer`, executor `...trainer.executor.GenericExecutor`): its task
submits a Vertex `CustomJob` whose worker pools run the components image with TFX's own worker command
(`python -m tfx.scripts.run_executor ...`, which the extension writes into each pool's `container_spec.command`),
waits for the job and fails the task if the job does. The Vertex path (`ai_platform_enable_vertex`), never the
retired AI Platform Training one.

The settings model owns the rules of the values (cicd_release); this module takes them typed and checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# TFX's custom_config keys (tfx.extensions.google_cloud_ai_platform.constants and .trainer.executor), spelt out
# so that building the config imports no TFX: the compile imports the extension itself.
ENABLE_VERTEX_KEY = "ai_platform_enable_vertex"
VERTEX_REGION_KEY = "ai_platform_vertex_region"
TRAINING_ARGS_KEY = "ai_platform_training_args"


@dataclass(frozen=True)
class TrainerBackend:
    """Where and on what the Trainer runs when it runs as a Vertex AI custom job.

    `replica_count` counts every replica: Vertex runs the first worker pool as the chief, one replica, and any
    further replicas in a second pool of the same machines (CustomJobSpec.workerPoolSpecs).
    `accelerator_type` empty means no accelerator (and `accelerator_count` 0). `service_account` is the
    identity the job runs as (CustomJobSpec.service_account): the pipeline's own, which reads the Trainer's
    inputs and writes its model in the bucket; empty, Vertex's default for custom jobs.
    """

    project: str
    region: str
    image: str = ""
    machine_type: str = "n1-standard-4"
    accelerator_type: str = ""
    accelerator_count: int = 0
    replica_count: int = 1
    service_account: str = ""

    def worker_pool_specs(self) -> list[dict[str, Any]]:
        """CustomJobSpec.worker_pool_specs (proto field names, as TFX hands them to the gapic client)."""
        machine_spec: dict[str, Any] = {"machine_type": self.machine_type}
        if self.accelerator_type:
            machine_spec["accelerator_type"] = self.accelerator_type
            machine_spec["accelerator_count"] = self.accelerator_count
        # No command: TFX sets each pool's container_spec.command to its run_executor line.
        pool = {"machine_spec": machine_spec, "container_spec": {"image_uri": self.image}}
        chief = {**pool, "replica_count": 1}
        workers = self.replica_count - 1
        return [chief, *([{**pool, "replica_count": workers}] if workers else [])]

    def job_spec(self) -> dict[str, Any]:
        """CustomJob.job_spec: the worker pools, and the service account when one is given."""
        spec: dict[str, Any] = {"worker_pool_specs": self.worker_pool_specs()}
        if self.service_account:
            spec["service_account"] = self.service_account
        return spec

    def custom_config(self) -> dict[str, Any]:
        """The extension Trainer's `custom_config` entries: Vertex on, its region, the job's project and spec."""
        if not self.image:
            raise ValueError("TrainerBackend.image is empty: the custom job runs the components image.")
        return {
            ENABLE_VERTEX_KEY: True,
            VERTEX_REGION_KEY: self.region,
            # TFX pops "project" out of these args and sends the rest as the CustomJob (job_spec).
            TRAINING_ARGS_KEY: {
                "project": self.project,
                "job_spec": self.job_spec(),
            },
        }
