"""Schedules and retraining of the released spec: the real aiplatform client (REST) against the Vertex stand-in,
the real storage client against fake-gcs-server, and a release already in the bucket (tests/support/released.py).
"""

from __future__ import annotations

import json

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials

from cicd_release.core.errors import InputError, MissingRelease, MissingSchedule, Refused
from cicd_release.publish.snapshots import read_latest, upload_snapshot
from cicd_release.run import schedules
from cicd_release.run.launch import retrain
from tests.support import released
from tests.support.released import SCHEMA, data_folder, settings_for

COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


@pytest.fixture
def setting(gcs_emulator, gcs_bucket, vertex_standin):
    return settings_for(gcs_bucket.name, vertex_standin.endpoint)


@pytest.fixture
def release_a(gcs_client, setting, tmp_path):
    return released.release(gcs_client, setting, tmp_path, commit=COMMIT_A, variant="a")


def parameters(job: dict) -> dict[str, str]:
    config = job["runtimeConfig"]
    values = dict(config.get("parameterValues", {}))
    values.update({k: v["stringValue"] for k, v in config.get("parameters", {}).items()})
    return values


def only_schedule(standin) -> dict:
    [schedule] = standin.schedules.schedules.values()
    return schedule


def test_a_schedule_is_created_listed_moved_at_release_and_deleted(
    gcs_client, setting, release_a, tmp_path, vertex_standin
):
    lines = schedules.create_schedule(setting, gcs_client, cron="TZ=Europe/Amsterdam 0 3 * * 1")
    stored = only_schedule(vertex_standin)
    assert lines[0] == f"created {stored['name']}"
    # One run at a time, no queue: a run due while one is going is skipped.
    assert stored["maxConcurrentRunCount"] == "1" and not stored.get("allowQueueing")
    assert stored["maxConcurrentActiveRunCount"] == "1"  # what bounds running jobs, not just their requests
    assert stored["cron"] == "TZ=Europe/Amsterdam 0 3 * * 1" and stored["state"] == "ACTIVE"
    job = stored["createPipelineJobRequest"]["pipelineJob"]
    latest = read_latest(gcs_client, setting.resolved_data_root)
    assert parameters(job)["data_root"] == latest.uri
    assert parameters(job)["model_module"] == release_a["inputs"]["modules"]["model_module"]
    assert job["labels"]["data_follow"] == "latest" and job["labels"]["trigger"] == "schedule"
    assert job["labels"]["data_sha"] == latest.sha256[:16] and job["labels"]["commit"] == COMMIT_A[:12]
    assert job["serviceAccount"] == released.SERVICE_ACCOUNT
    assert json.loads(parameters(job)["model_labels"])["data_sha"] == latest.sha256[:16]

    [listed] = schedules.list_schedules(setting)
    assert (listed.name, listed.state, listed.cron) == (stored["name"], "ACTIVE", stored["cron"])
    assert listed.labels["spec_sha"] == release_a["inputs"]["spec"].rsplit("-", 1)[-1][:16]

    # The schedule's run trains the released code on the newest data, once at a time.
    first = vertex_standin.schedules.fire(stored["name"])
    assert first is not None and parameters(first)["data_root"] == latest.uri
    assert vertex_standin.schedules.fire(stored["name"]) is None, "a second run while the first is going"

    # A release lands a new spec and modules: the chain moves the schedule to them.
    release_b = released.release(gcs_client, setting, tmp_path, commit=COMMIT_B, variant="b")
    moved = schedules.sync_schedules(setting, gcs_client)
    assert len(moved) == 1 and "moved: commit aaaaaaaaaaaa -> bbbbbbbbbbbb" in moved[0]
    assert vertex_standin.schedules.update_masks == [["createPipelineJobRequest"]]
    job = only_schedule(vertex_standin)["createPipelineJobRequest"]["pipelineJob"]
    assert parameters(job)["model_module"] == release_b["inputs"]["modules"]["model_module"]
    assert job["pipelineSpec"]["pipelineInfo"]["description"] == "variant b"
    assert job["labels"]["commit"] == COMMIT_B[:12] and job["labels"]["data_follow"] == "latest"
    [listed] = schedules.list_schedules(setting)
    assert listed.labels["spec_sha"] == release_b["inputs"]["spec"].rsplit("-", 1)[-1][:16]
    assert only_schedule(vertex_standin)["cron"] == "TZ=Europe/Amsterdam 0 3 * * 1", "the cron is kept"
    # Moved once: a second sync finds it where it belongs.
    assert "already runs release bbbbbbbbbbbb" in schedules.sync_schedules(setting, gcs_client)[0]
    assert len(vertex_standin.schedules.update_masks) == 1

    lines = schedules.delete_schedule(setting, listed.id)
    assert lines[0].startswith(f"deleted {listed.name}") and vertex_standin.schedules.schedules == {}
    assert ("DELETE", f"/v1/{listed.name}") in vertex_standin.requests
    assert any(
        path.endswith(tuple(vertex_standin.schedules.operations)) for _, path in vertex_standin.requests
    )
    assert schedules.list_schedules(setting) == []
    assert schedules.sync_schedules(setting, gcs_client) == ["schedules: none for penguin-cicd"]


def test_new_data_moves_the_schedules_that_follow_latest_and_not_the_pinned_ones(
    gcs_client, setting, release_a, tmp_path, vertex_standin
):
    pinned_sha = read_latest(gcs_client, setting.resolved_data_root).sha256
    schedules.create_schedule(setting, gcs_client, cron="0 3 * * *", display_name="nightly")
    schedules.create_schedule(
        setting, gcs_client, cron="0 4 * * *", display_name="pinned", data=pinned_sha[:12]
    )

    new = upload_snapshot(
        gcs_client, setting.resolved_data_root, data_folder(tmp_path / "new" / "penguins", 7), SCHEMA
    ).snapshot
    lines = schedules.sync_schedules(setting, gcs_client)
    assert sum("moved" in line for line in lines) == 1 and sum("already runs" in line for line in lines) == 1
    by_name = {s.display_name: s for s in schedules.list_schedules(setting)}
    assert by_name["nightly"].parameters["data_root"] == new.uri
    assert by_name["nightly"].labels["data_sha"] == new.sha256[:16]
    assert by_name["pinned"].parameters["data_root"].endswith(pinned_sha)
    assert by_name["pinned"].labels["data_follow"] == "pinned"


def test_a_window_schedule_trains_on_the_last_n_dated_snapshots(gcs_client, setting, release_a, tmp_path):
    for day, rows in (("2024-06-01", 1), ("2024-06-02", 2)):
        upload_snapshot(
            gcs_client,
            setting.resolved_data_root,
            data_folder(tmp_path / day / "penguins", rows),
            SCHEMA,
            date=day,
        )
    schedules.create_schedule(setting, gcs_client, cron="0 5 * * *", window=2)
    [before] = schedules.list_schedules(setting)
    assert before.labels["data_follow"] == "window-2"
    upload_snapshot(
        gcs_client,
        setting.resolved_data_root,
        data_folder(tmp_path / "d3" / "penguins", 3),
        SCHEMA,
        date="2024-06-03",
    )
    schedules.sync_schedules(setting, gcs_client)
    [after] = schedules.list_schedules(setting)
    manifest_uri = (
        after.parameters["data_root"].replace("/data/penguins/", "/data/penguins/manifests/") + ".json"
    )
    bucket, _, name = manifest_uri.removeprefix("gs://").partition("/")
    manifest = json.loads(gcs_client.bucket(bucket).blob(name).download_as_bytes())
    assert [m["date"] for m in manifest["members"]] == ["2024-06-02", "2024-06-03"]
    assert after.parameters["data_root"] != before.parameters["data_root"]


def test_pause_stops_runs_and_resume_never_catches_up(gcs_client, setting, release_a, vertex_standin):
    said = schedules.create_schedule(setting, gcs_client, cron="*/30 * * * *", display_name="half-hourly")
    assert said[-1].startswith("note: '*/30 * * * *' fires 2 times an hour"), "not accepted without a word"
    name = only_schedule(vertex_standin)["name"]
    assert "paused" in schedules.pause_schedule(setting, "half-hourly")[0]
    assert vertex_standin.schedules.fire(name) is None
    with pytest.raises(Refused, match="FAILED_PRECONDITION|not ACTIVE"):
        schedules.pause_schedule(setting, "half-hourly")
    assert "missed runs are not caught up" in schedules.resume_schedule(setting, name.rsplit("/", 1)[-1])[0]
    assert only_schedule(vertex_standin)["catchUp"] is False
    assert vertex_standin.schedules.fire(name) is not None


def test_what_is_refused_before_and_by_vertex(gcs_client, setting, release_a, vertex_standin):
    with pytest.raises(InputError, match="has 6 field"):
        schedules.create_schedule(setting, gcs_client, cron="0 3 * * 1 2024")
    with pytest.raises(InputError, match="not an IANA time zone"):
        schedules.create_schedule(setting, gcs_client, cron="TZ=Mars/Olympus 0 3 * * 1")
    with pytest.raises(InputError, match="the hour field '25'"):
        schedules.create_schedule(setting, gcs_client, cron="0 25 * * 1")
    assert vertex_standin.requests == [], "a bad cron never reaches Vertex"
    schedules.create_schedule(setting, gcs_client, cron="0 3 * * MON", display_name="weekly")
    with pytest.raises(InputError, match="exists already"):
        schedules.create_schedule(setting, gcs_client, cron="0 3 * * MON", display_name="weekly")
    with pytest.raises(MissingSchedule, match="No schedule 'monthly'.*weekly") as raised:
        schedules.pause_schedule(setting, "monthly")
    assert raised.value.exit_code == 3
    # Vertex refuses a schedule whose runs would act as an account the caller may not use.
    vertex_standin.service_accounts = {"someone-else@test-project.iam.gserviceaccount.com"}
    with pytest.raises(Refused, match="permission to act as"):
        schedules.create_schedule(setting, gcs_client, cron="0 6 * * *", display_name="other")


def test_the_stand_in_refuses_what_the_schedule_service_refuses(
    gcs_client, setting, release_a, vertex_standin
):
    """Straight through the SDK's own schedule client: the rules hold whatever our code sends."""
    from google.cloud import aiplatform
    from google.cloud.aiplatform.compat.types import schedule as gca_schedule
    from google.protobuf import field_mask_pb2

    schedules.create_schedule(setting, gcs_client, cron="0 3 * * *", display_name="nightly")
    name = only_schedule(vertex_standin)["name"]
    existing = aiplatform.PipelineJobSchedule.get(name, credentials=AnonymousCredentials())
    api = existing.api_client
    parent = "projects/test-project/locations/us-central1"
    request = existing.gca_resource.create_pipeline_job_request

    def refused(match: str, call) -> None:
        with pytest.raises(gexc.BadRequest, match=match):
            call()

    refused(
        "max_concurrent_run_count is required",
        lambda: api.create_schedule(
            parent=parent,
            schedule=gca_schedule.Schedule(
                display_name="x", cron="0 3 * * *", create_pipeline_job_request=request
            ),
        ),
    )
    other_parent = type(request)(request)
    other_parent.parent = "projects/test-project/locations/europe-west4"
    refused(
        "parent must be the schedule's",
        lambda: api.create_schedule(
            parent=parent,
            schedule=gca_schedule.Schedule(
                display_name="x",
                cron="0 3 * * *",
                max_concurrent_run_count=1,
                create_pipeline_job_request=other_parent,
            ),
        ),
    )
    refused(
        "update_mask is required",
        lambda: api.update_schedule(
            schedule=gca_schedule.Schedule(name=name, cron="0 4 * * *"), update_mask=None
        ),
    )
    refused(
        "Invalid update mask path 'stateOfMind'",
        lambda: api.update_schedule(
            schedule=gca_schedule.Schedule(name=name, cron="0 4 * * *"),
            update_mask=field_mask_pb2.FieldMask(paths=["state_of_mind"]),
        ),
    )
    refused(
        "cannot be unset",
        lambda: api.update_schedule(
            schedule=gca_schedule.Schedule(name=name),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
    )
    refused(
        "Invalid Schedule.cron",
        lambda: api.update_schedule(
            schedule=gca_schedule.Schedule(name=name, cron="every monday"),
            update_mask=field_mask_pb2.FieldMask(paths=["cron"]),
        ),
    )
    # An update of the cron alone keeps the request (and the state) as they were.
    api.update_schedule(
        schedule=gca_schedule.Schedule(name=name, cron="0 4 * * *"),
        update_mask=field_mask_pb2.FieldMask(paths=["cron"]),
    )
    stored = only_schedule(vertex_standin)
    assert stored["cron"] == "0 4 * * *" and stored["createPipelineJobRequest"]["parent"] == parent


def test_retrain_latest_submits_the_released_spec_with_the_newest_snapshot_and_its_label(
    gcs_client, setting, release_a, tmp_path, vertex_standin
):
    new = upload_snapshot(
        gcs_client, setting.resolved_data_root, data_folder(tmp_path / "n" / "penguins", 11), SCHEMA
    ).snapshot
    lines = retrain(setting, gcs_client, data="latest", hyperparameters='{"learning_rate": 0.02}')

    [body] = vertex_standin.created_bodies
    values = parameters(body)
    assert values["data_root"] == new.uri and values["hyperparameters"] == '{"learning_rate": 0.02}'
    assert values["model_module"] == release_a["inputs"]["modules"]["model_module"]
    assert body["pipelineSpec"]["pipelineInfo"]["description"] == "variant a", (
        "the released spec, as released"
    )
    assert body["labels"]["data_sha"] == new.sha256[:16] and body["labels"]["trigger"] == "retrain"
    assert body["labels"]["commit"] == COMMIT_A[:12] and body["labels"]["data_name"] == "penguins"
    assert json.loads(values["model_labels"])["data_sha"] == new.sha256[:16]
    assert f"data: {new.uri} (1 file(s), {new.rows} rows)" in lines
    # The record follows the run (same commit, new data): a data commit of these files starts nothing more.
    record = json.loads(
        gcs_client.bucket(setting.bucket).blob("releases/penguin-cicd/latest.json").download_as_bytes()
    )
    assert record["commit"] == COMMIT_A and record["inputs"]["data_digest"] == new.sha256
    assert record["trigger"] == "retrain"


def test_retrain_before_any_release_record_uses_the_newest_spec_and_writes_no_record(
    gcs_client, setting, release_a, vertex_standin
):
    gcs_client.bucket(setting.bucket).blob("releases/penguin-cicd/latest.json").delete()
    lines = retrain(setting, gcs_client)
    assert any("no release record yet" in line for line in lines)
    [body] = vertex_standin.created_bodies
    assert parameters(body)["model_module"] == release_a["inputs"]["modules"]["model_module"]
    assert not gcs_client.bucket(setting.bucket).blob("releases/penguin-cicd/latest.json").exists()


def test_retrain_with_nothing_released_says_how_to_release(gcs_client, setting):
    with pytest.raises(MissingRelease, match="Release once first") as raised:
        retrain(setting, gcs_client)
    assert raised.value.exit_code == 3
