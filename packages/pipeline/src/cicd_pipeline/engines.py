"""Where a compiled spec's Beam components run: in the task's own container (Beam's in-memory DirectRunner), or
as Dataflow jobs, from the release settings' Dataflow options (cicd_release.core.scale.dataflow_options).

TFX hands `beam_pipeline_args` to every Beam-based executor (BaseBeamExecutor): ExampleGen, StatisticsGen,
SchemaGen, ExampleValidator, Transform, Evaluator. The option names are apache-beam 2.59's PipelineOptions
(GoogleCloudOptions, WorkerOptions, SetupOptions, DebugOptions). The local run never comes here: it keeps its
own runner (runners/local.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cicd_pipeline.runners import IN_MEMORY_BEAM_ARGS


def dataflow_beam_args(options: Mapping[str, Any], *, image: str) -> list[str]:
    """The Beam arguments that run a component's Beam pipeline on Dataflow.

    `image` is the components image: Dataflow's workers run it as the SDK container (Runner v2, which custom
    containers require), so they import the same TFX, the same components and the same lock as the launcher.
    The workers run as the pipelines' service account, in the run's project and region, with temp and staging
    under the bucket; the machine type and the worker ceiling bound what one job costs.
    """
    args = [
        "--runner=DataflowRunner",
        f"--project={options['project']}",
        f"--region={options['region']}",
        f"--temp_location={options['temp_location']}",
        f"--staging_location={options['staging_location']}",
        f"--service_account_email={options['service_account']}",
        f"--sdk_container_image={image}",
        # Runner v2 is Beam Python's default on Dataflow since 2.45; said here so a custom container never runs
        # on the legacy runner, which does not take one.
        "--experiments=use_runner_v2",
        f"--machine_type={options['machine_type']}",
        f"--max_num_workers={options['max_workers']}",
    ]
    if options.get("network"):
        args.append(f"--network={options['network']}")
    if options.get("subnetwork"):
        args.append(f"--subnetwork={options['subnetwork']}")
    if options.get("no_public_ips"):
        args.append("--no_use_public_ips")
    return args


def bigquery_beam_args(options: Mapping[str, Any]) -> list[str]:
    """What a BigQuery source needs of Beam in the task's own container: the project its query and extract jobs
    run in (TFX's executor reads --project for its type query too) and where the EXPORT read's avro files go
    (ReadFromBigQuery's gcs_location defaults to --temp_location). Dataflow's arguments carry both already."""
    return [f"--project={options['project']}", f"--temp_location={options['temp_location']}"]


def beam_pipeline_args(
    dataflow: Mapping[str, Any] | None, *, image: str, bigquery: Mapping[str, Any] | None = None
) -> list[str]:
    """Dataflow's arguments when `dataflow` holds its options, else the in-memory DirectRunner's (with a
    BigQuery source's project and temp location when `bigquery` holds cicd_release.core.sources.bigquery_options)."""
    if dataflow:
        return dataflow_beam_args(dataflow, image=image)
    return [*IN_MEMORY_BEAM_ARGS, *(bigquery_beam_args(bigquery) if bigquery else ())]
