"""The scale-out switches' rules (cicd_release/core/scale.py), through the one settings model as tasks build it."""

import pytest

from cicd_release.core.errors import SettingsError
from cicd_release.core.scale import DATAFLOW_NEEDS, TRAINER_NEEDS, dataflow_options, trainer_backend_options
from cicd_release.core.settings import Settings

CLOUD = {
    "project": "my-project-123",
    "region": "europe-west4",
    "bucket": "my-project-123-ml",
    "service_account": "vertex-pipelines@my-project-123.iam.gserviceaccount.com",
}


def test_both_switches_are_off_by_default_and_nothing_is_on():
    settings = Settings.from_config(Settings.defaults())
    assert settings.beam_runner == "direct" and settings.trainer_backend == "local"
    assert settings.switches == frozenset()
    assert dataflow_options(settings) is None
    assert trainer_backend_options(settings) is None


def test_environment_text_reaches_the_typed_fields():
    settings = Settings.from_config(
        {
            **CLOUD,
            "beam_runner": "dataflow",
            "dataflow_max_workers": "12",
            "dataflow_no_public_ips": "true",
            "trainer_backend": "vertex",
            "trainer_accelerator_type": "NVIDIA_TESLA_T4",
            "trainer_accelerator_count": "1",
            "trainer_replica_count": "2",
        }
    )
    assert settings.dataflow_max_workers == 12 and settings.dataflow_no_public_ips is True
    assert settings.trainer_accelerator_count == 1 and settings.trainer_replica_count == 2
    assert settings.switches == {"dataflow", "vertex"}


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"beam_runner": "spark"}, "cicd.beam_runner='spark' is not one of direct, dataflow"),
        ({"trainer_backend": "gke"}, "cicd.trainer_backend='gke' is not one of local, vertex"),
        (
            {"dataflow_machine_type": "n1-large-4"},
            "cicd.dataflow_machine_type='n1-large-4' is not a machine type",
        ),
        ({"trainer_machine_type": "e2-micro"}, "cicd.trainer_machine_type='e2-micro' is not a machine type"),
        ({"dataflow_max_workers": "0"}, "cicd.dataflow_max_workers='0' is not between 1 and 1000"),
        ({"dataflow_max_workers": "four"}, "cicd.dataflow_max_workers='four' is not a whole number"),
        ({"trainer_accelerator_count": "17"}, "is not between 0 and 16"),
        (
            {"trainer_accelerator_type": "NVIDIA_TESLA_X1"},
            "cicd.trainer_accelerator_type='NVIDIA_TESLA_X1' is not one of",
        ),
        ({"trainer_replica_count": "0"}, "cicd.trainer_replica_count='0' is not between 1 and 100"),
        ({"dataflow_network": "My_Net"}, "cicd.dataflow_network='My_Net' is not a VPC network name"),
        ({"dataflow_subnetwork": "subnet-a"}, "cicd.dataflow_subnetwork='subnet-a' is not a subnetwork"),
        ({"dataflow_no_public_ips": "maybe"}, "cicd.dataflow_no_public_ips='maybe' is not true or false"),
        # Rules over two fields.
        (
            {"beam_runner": "dataflow", "region": "us-west9"},
            "cicd.region='us-west9' is not a region Dataflow serves (cicd.beam_runner=dataflow)",
        ),
        (
            {"trainer_accelerator_count": "2"},
            "cicd.trainer_accelerator_count=2 is set without cicd.trainer_accelerator_type",
        ),
        ({"trainer_accelerator_type": "NVIDIA_L4"}, "is set with cicd.trainer_accelerator_count=0"),
        (
            {"region": "europe-west4", "dataflow_subnetwork": "regions/us-central1/subnetworks/work"},
            "is in us-central1, not in cicd.region='europe-west4'",
        ),
    ],
)
def test_a_malformed_switch_setting_is_refused_in_one_line(config, says):
    with pytest.raises(SettingsError) as caught:
        Settings.from_config(config)
    message = str(caught.value)
    assert says in message
    assert "\n" not in message and "INVOKE_CICD_" in message


def test_a_region_dataflow_does_not_serve_is_fine_while_beam_stays_in_the_task():
    assert Settings.from_config({"region": "us-west9"}).region == "us-west9"


@pytest.mark.parametrize(
    "machine_type",
    [
        "n1-standard-4",
        "n2-highmem-16",
        "c3-standard-22",
        "a2-highgpu-1g",
        "custom-4-16384",
        "n2-custom-8-32768-ext",
    ],
)
def test_machine_types_compute_engine_names_are_accepted(machine_type):
    assert Settings(dataflow_machine_type=machine_type).dataflow_machine_type == machine_type


def test_the_full_subnetwork_name_is_accepted():
    name = "https://www.googleapis.com/compute/v1/projects/net-host-123/regions/europe-west4/subnetworks/work"
    assert Settings(region="europe-west4", dataflow_subnetwork=name).dataflow_subnetwork == name


def test_dataflow_options_name_the_run_s_project_region_bucket_and_account():
    settings = Settings.from_config(
        {**CLOUD, "beam_runner": "dataflow", "dataflow_network": "default", "dataflow_no_public_ips": "yes"}
    )
    assert dataflow_options(settings) == {
        "project": "my-project-123",
        "region": "europe-west4",
        "temp_location": "gs://my-project-123-ml/dataflow/penguin-cicd/temp",
        "staging_location": "gs://my-project-123-ml/dataflow/penguin-cicd/staging",
        "service_account": "vertex-pipelines@my-project-123.iam.gserviceaccount.com",
        "machine_type": "n1-standard-4",
        "max_workers": 4,
        "network": "default",
        "subnetwork": "",
        "no_public_ips": True,
    }


@pytest.mark.parametrize("missing", DATAFLOW_NEEDS)
def test_dataflow_needs_where_and_as_whom_it_runs(missing):
    settings = Settings.from_config({**CLOUD, missing: "", "beam_runner": "dataflow"})
    with pytest.raises(SettingsError, match=f"cicd.{missing} is missing"):
        dataflow_options(settings)


def test_the_chain_s_settings_check_asks_for_what_the_dataflow_compile_needs_before_any_step():
    from cicd_release.steps import check_settings, required_settings

    # The compile alone does not need the pipelines' account; on Dataflow it names the workers' identity.
    assert "service_account" not in required_settings(["pipeline.compile"])
    config = {
        **CLOUD,
        "image_repo": "europe-west4-docker.pkg.dev/my-project-123/training",
        "serving_image": "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:2025",
        "service_account": "",
    }
    check_settings(Settings.from_config(config), ["pipeline.compile"])  # switch off: enough
    on = Settings.from_config({**config, "beam_runner": "dataflow"})
    check_settings(on, ["test"])  # no compile planned: nothing of Dataflow's is needed
    with pytest.raises(SettingsError, match="cicd.service_account is missing"):
        check_settings(on, ["pipeline.compile"])


def test_trainer_backend_options_are_the_custom_job_s_fields_as_the_pipelines_account():
    from cicd_pipeline.vertex_training import TrainerBackend

    settings = Settings.from_config(
        {
            **CLOUD,
            "trainer_backend": "vertex",
            "trainer_machine_type": "n1-highmem-8",
            "trainer_accelerator_type": "NVIDIA_TESLA_T4",
            "trainer_accelerator_count": "2",
            "trainer_replica_count": "3",
        }
    )
    options = trainer_backend_options(settings)
    assert options == {
        "project": "my-project-123",
        "region": "europe-west4",
        "machine_type": "n1-highmem-8",
        "accelerator_type": "NVIDIA_TESLA_T4",
        "accelerator_count": 2,
        "replica_count": 3,
        "service_account": "vertex-pipelines@my-project-123.iam.gserviceaccount.com",
    }
    # Exactly the fields the compile's TrainerBackend takes (the image is the compile's own).
    backend = TrainerBackend(**options, image="europe-west4-docker.pkg.dev/p/r/components:1-abc")
    pools = backend.job_spec()["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]
    assert pools[0]["machine_spec"] == {
        "machine_type": "n1-highmem-8",
        "accelerator_type": "NVIDIA_TESLA_T4",
        "accelerator_count": 2,
    }


@pytest.mark.parametrize("missing", TRAINER_NEEDS)
def test_the_custom_job_needs_where_and_as_whom_it_runs(missing):
    from cicd_release.steps import check_settings

    compile_settings = {
        "image_repo": "europe-west4-docker.pkg.dev/my-project-123/training",
        "serving_image": "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:2025",
    }
    settings = Settings.from_config({**CLOUD, **compile_settings, missing: "", "trainer_backend": "vertex"})
    with pytest.raises(SettingsError, match=f"cicd.{missing} is missing"):
        trainer_backend_options(settings)
    if missing != "service_account":
        return  # the compile alone needs the project and region already; the switch adds the account
    check_settings(settings.model_copy(update={"trainer_backend": "local"}), ["pipeline.compile"])
    with pytest.raises(SettingsError, match=f"cicd.{missing} is missing"):
        check_settings(settings, ["pipeline.compile"])
