"""The switches that move work off one machine, and each one's rule: Beam on Dataflow, the Trainer on Vertex AI
Training. `Settings` (settings.py) is built on `ScaleSettings`, so these are `cicd.*` settings like the others
(invoke.yaml, INVOKE_CICD_*), parsed and refused with the same one-line message.

A field's rule checks its own value whether or not its switch is on (a malformed value is a mistake either way);
what depends on two fields (a region Dataflow does not serve, an accelerator count without a type) is checked by
`ScaleSettings._together` once the object is whole. docs/scale.md says when to switch and what each costs.
Import-light on purpose (pydantic only): tasks import the settings at startup.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from cicd_release.core.rules import rule, switch

DIRECT, DATAFLOW = "direct", "dataflow"
LOCAL, VERTEX = "local", "vertex"

# The regions Dataflow runs jobs in (Google's "Dataflow locations" page, https://cloud.google.com/dataflow/docs/
# resources/locations, as written down on 2026-12-05; the page itself could not be read here: see docs/scale.md).
# Since Beam 2.44 the workers run in the job's region, so this is also where the workers are.
DATAFLOW_REGIONS = frozenset(
    {
        "africa-south1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast2",
        "asia-northeast3",
        "asia-south1",
        "asia-south2",
        "asia-southeast1",
        "asia-southeast2",
        "australia-southeast1",
        "australia-southeast2",
        "europe-central2",
        "europe-north1",
        "europe-southwest1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-west10",
        "europe-west12",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "northamerica-northeast2",
        "southamerica-east1",
        "southamerica-west1",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west2",
        "us-west3",
        "us-west4",
    }
)

# Compute Engine's machine type names: FAMILY-SHAPE-VCPUS (n1-standard-4, n2-highmem-16, a2-highgpu-1g) or a
# custom type ([FAMILY-]custom-VCPUS-MEMORY_MB[-ext]). Shared-core types (e2-micro, f1-micro, g1-small) are left
# out: Dataflow does not cover them by its SLA and a TFX worker does not fit in them.
_MACHINE_TYPE = re.compile(
    r"^(?:"
    r"(?:n1|n2|n2d|n4|e2|c2|c2d|c3|c3d|c4|c4a|c4d|m1|m2|m3|t2d|t2a|a2|a3|g2)"
    r"-(?:standard|highmem|highcpu|megamem|ultramem|hypermem|highgpu|megagpu|ultragpu)-[0-9]{1,3}[gt]?"
    r"|(?:(?:n1|n2|n2d|e2)-)?custom-[0-9]{1,3}-[0-9]{3,7}(?:-ext)?"
    r")$"
)
MACHINE_TYPE_EXPECTED = "a Compute Engine machine type such as n1-standard-4, n2-highmem-8 or custom-4-16384 (no shared-core type)"
# Vertex AI's AcceleratorType enum (google.cloud.aiplatform_v1.types.AcceleratorType), less the unspecified value.
ACCELERATOR_TYPES = (
    "NVIDIA_TESLA_K80",
    "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_V100",
    "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_A100",
    "NVIDIA_A100_80GB",
    "NVIDIA_L4",
    "NVIDIA_H100_80GB",
    "NVIDIA_H100_MEGA_80GB",
    "NVIDIA_H200_141GB",
    "NVIDIA_B200",
    "NVIDIA_GB200",
    "NVIDIA_RTX_PRO_6000",
    "TPU_V2",
    "TPU_V3",
    "TPU_V4_POD",
    "TPU_V5_LITEPOD",
)
# A VPC network name (RFC 1035, as Compute Engine names resources).
_NETWORK = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
# Beam's --subnetwork: regions/REGION/subnetworks/NAME, or the fully qualified name (WorkerOptions' help text).
_SUBNETWORK = re.compile(
    r"^(?:https://www\.googleapis\.com/compute/v1/projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/)?"
    r"regions/(?P<region>[a-z]+-[a-z]+[0-9]{1,2})/subnetworks/[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$"
)


def _one_of(*choices: str):
    return lambda value: None if value in choices else f"is not one of {', '.join(choices)}"


def _matches(pattern: re.Pattern, wrong: str):
    return lambda value: None if pattern.match(value) else wrong


def _count(low: int, high: int, default: int):
    """A whole number low..high from YAML (4) or text ("4"); empty means `default`."""

    def parse(value: Any) -> int:
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        text = str(value).strip()
        if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,6}", text):
            wrong = "is not a whole number"
        elif not low <= int(text) <= high:
            wrong = f"is not between {low} and {high}"
        else:
            return int(text)
        raise PydanticCustomError("cicd_setting", "{wrong}", {"wrong": wrong})

    return BeforeValidator(parse)


# A rule over two fields has no one field to point at: its whole one-line message travels in the error, and
# settings._settings_error raises it as it is.
TOGETHER = "cicd_together"


def _together_error(message: str) -> PydanticCustomError:
    return PydanticCustomError(TOGETHER, "{message}", {"message": message})


class ScaleSettings(BaseModel):
    """The scale-out switches; `Settings` inherits them (one settings model). Both off by default."""

    # --- Beam on Dataflow: every Beam component of the compiled spec (ExampleGen, StatisticsGen, Transform,
    # the judge's evaluations) runs as a Dataflow job; the local run keeps Beam's in-memory DirectRunner.
    beam_runner: Annotated[str, rule(_one_of(DIRECT, DATAFLOW))] = Field(
        DIRECT, description=f"{DIRECT} (Beam in the task's own container, the default) or {DATAFLOW}"
    )
    dataflow_machine_type: Annotated[str, rule(_matches(_MACHINE_TYPE, "is not a machine type"))] = Field(
        "n1-standard-4", description=MACHINE_TYPE_EXPECTED
    )
    # Dataflow's autoscaling ceiling: the cost of a run is bounded by it (docs/scale.md). Dataflow's own limit
    # is 1000 workers per job.
    dataflow_max_workers: Annotated[int, _count(1, 1000, 4)] = Field(
        4, description="a whole number of workers from 1 to 1000, e.g. 4 (the default)"
    )
    dataflow_network: Annotated[str, rule(_matches(_NETWORK, "is not a VPC network name"))] = Field(
        "", description="a VPC network name of lowercase letters, digits and '-', e.g. default"
    )
    dataflow_subnetwork: Annotated[str, rule(_matches(_SUBNETWORK, "is not a subnetwork"))] = Field(
        "",
        description="regions/REGION/subnetworks/NAME (or the full https://www.googleapis.com/compute/v1/"
        "projects/PROJECT/regions/REGION/subnetworks/NAME), REGION being cicd.region",
    )
    # Workers without public IPs reach Google APIs only through Private Google Access on their subnetwork.
    dataflow_no_public_ips: Annotated[bool, BeforeValidator(switch)] = Field(
        False, description="true or false (also 1 or 0); true needs Private Google Access on the subnetwork"
    )

    # --- The Trainer on Vertex AI Training (a CustomJob in the run's region, as the pipelines' account).
    trainer_backend: Annotated[str, rule(_one_of(LOCAL, VERTEX))] = Field(
        LOCAL, description=f"{LOCAL} (in the task's own container, the default) or {VERTEX}"
    )
    trainer_machine_type: Annotated[str, rule(_matches(_MACHINE_TYPE, "is not a machine type"))] = Field(
        "n1-standard-4", description=MACHINE_TYPE_EXPECTED
    )
    trainer_accelerator_type: Annotated[str, rule(_one_of(*ACCELERATOR_TYPES))] = Field(
        "", description=f"empty (no accelerator) or one of Vertex AI's {', '.join(ACCELERATOR_TYPES)}"
    )
    trainer_accelerator_count: Annotated[int, _count(0, 16, 0)] = Field(
        0, description="a whole number from 0 to 16, more than 0 only with cicd.trainer_accelerator_type"
    )
    trainer_replica_count: Annotated[int, _count(1, 100, 1)] = Field(
        1, description="a whole number of machines from 1 to 100, e.g. 1 (the default)"
    )

    @model_validator(mode="after")
    def _together(self) -> ScaleSettings:
        """The rules that read two fields; each a one-line SettingsError before any side effect."""
        # settings.py builds on this module; by the time an object is validated it is loaded.
        from cicd_release.core.settings import setting_message

        region = getattr(self, "region", "")
        if self.beam_runner == DATAFLOW and region and region not in DATAFLOW_REGIONS:
            raise _together_error(
                setting_message(
                    "region",
                    region,
                    "is not a region Dataflow serves (cicd.beam_runner=dataflow)",
                    "a Dataflow region such as europe-west4 or us-central1 (docs/scale.md lists them), "
                    "or cicd.beam_runner=direct",
                )
            )
        subnet = _SUBNETWORK.match(self.dataflow_subnetwork)
        if subnet and region and subnet["region"] != region:
            raise _together_error(
                setting_message(
                    "dataflow_subnetwork",
                    self.dataflow_subnetwork,
                    f"is in {subnet['region']}, not in cicd.region={region!r} (Dataflow's workers run in the "
                    "job's region)",
                    f"regions/{region}/subnetworks/NAME",
                )
            )
        if self.trainer_accelerator_count and not self.trainer_accelerator_type:
            raise _together_error(
                setting_message(
                    "trainer_accelerator_count",
                    self.trainer_accelerator_count,
                    "is set without cicd.trainer_accelerator_type",
                    "0, or an accelerator type beside it (e.g. cicd.trainer_accelerator_type=NVIDIA_TESLA_T4)",
                )
            )
        if self.trainer_accelerator_type and not self.trainer_accelerator_count:
            raise _together_error(
                setting_message(
                    "trainer_accelerator_type",
                    self.trainer_accelerator_type,
                    "is set with cicd.trainer_accelerator_count=0",
                    "a count of 1 or more in cicd.trainer_accelerator_count, or no accelerator type",
                )
            )
        return self

    @property
    def on_dataflow(self) -> bool:
        return self.beam_runner == DATAFLOW

    @property
    def on_vertex_training(self) -> bool:
        return self.trainer_backend == VERTEX

    @property
    def switches(self) -> frozenset[str]:
        """The switches that are on, by the names desired.py's `when` uses."""
        return frozenset(
            name for name, on in ((DATAFLOW, self.on_dataflow), (VERTEX, self.on_vertex_training)) if on
        )


# What the Dataflow compile needs besides the switch: where the job runs, as whom, and its bucket.
DATAFLOW_NEEDS = ("project", "region", "bucket", "service_account")


def dataflow_options(settings: Any) -> dict[str, Any] | None:
    """The Dataflow options the compile passes to cicd_pipeline.engines (None when Beam stays in the task).

    Temp and staging sit under the bucket, per pipeline, so a run's scratch files stay beside its artifacts."""
    if not settings.on_dataflow:
        return None
    settings.require(DATAFLOW_NEEDS)
    scratch = f"gs://{settings.bucket}/dataflow/{settings.pipeline_name}"
    return {
        "project": settings.project,
        "region": settings.region,
        "temp_location": f"{scratch}/temp",
        "staging_location": f"{scratch}/staging",
        "service_account": settings.service_account,
        "machine_type": settings.dataflow_machine_type,
        "max_workers": settings.dataflow_max_workers,
        "network": settings.dataflow_network,
        "subnetwork": settings.dataflow_subnetwork,
        "no_public_ips": settings.dataflow_no_public_ips,
    }


# What the custom-job compile needs besides the switch: the job's project and region, and the identity it runs as.
TRAINER_NEEDS = ("project", "region", "service_account")


def compile_needs(settings: Any) -> tuple[str, ...]:
    """The settings the compile needs for the switches that are on (the chain checks them before any step)."""
    needs = (
        (DATAFLOW_NEEDS if settings.on_dataflow else ())
        + (TRAINER_NEEDS if settings.on_vertex_training else ())
        + settings.source_needs  # the data source switch's (core/sources.py)
    )
    return tuple(dict.fromkeys(needs))


def trainer_backend_options(settings: Any) -> dict[str, Any] | None:
    """cicd_pipeline.vertex_training.TrainerBackend's fields (without the image, which the compile sets to the
    components image), or None when the Trainer trains in its own task.

    The job runs as the pipelines' account: it reads the Trainer's inputs and writes the model in the bucket."""
    if not settings.on_vertex_training:
        return None
    settings.require(TRAINER_NEEDS)
    return {
        "project": settings.project,
        "region": settings.region,
        "machine_type": settings.trainer_machine_type,
        "accelerator_type": settings.trainer_accelerator_type,
        "accelerator_count": settings.trainer_accelerator_count,
        "replica_count": settings.trainer_replica_count,
        "service_account": settings.service_account,
    }
