"""The outside probe's weak items, each ending in one true line: job ids that cannot collide, a data upload
whose schedule move failed saying the snapshot was made."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cicd_release import steps
from cicd_release.core.errors import MissingResourceError
from cicd_release.core.settings import Settings
from cicd_release.core.workspace import Workspace
from cicd_release.publish import snapshots
from cicd_release.publish.snapshots import Snapshot, Uploaded
from cicd_release.run import launch
from cicd_release.steps import StepContext

VERTEX_JOB_ID = re.compile(r"^[a-z][-a-z0-9]{0,127}$")  # google-cloud-aiplatform's PipelineJob check


def test_two_runs_of_one_commit_in_one_second_get_two_job_ids(monkeypatch):
    monkeypatch.setattr(
        launch.time, "gmtime", lambda: launch.time.struct_time((2026, 1, 2, 3, 4, 5, 4, 2, 0))
    )
    ids = {launch.job_id("penguin-cicd", "a" * 40) for _ in range(1000)}
    assert len(ids) == 1000
    longest = launch.job_id("p" * 50, "a" * 40)
    assert all(VERTEX_JOB_ID.match(i) for i in [*ids, longest]) and len(longest) <= 128
    assert longest.startswith("p" * 50 + "-aaaaaaaaaaaa-20260102030405-")


def test_a_data_upload_whose_schedule_move_failed_says_the_snapshot_was_made(tmp_path, monkeypatch):
    (tmp_path / "data" / "penguins").mkdir(parents=True)
    snapshot = Snapshot("gs://my-bucket/data/penguins", "e" * 64, ())
    monkeypatch.setattr(snapshots, "upload_snapshot", lambda *a, **k: Uploaded(snapshot, True, None, True))

    def refused(ctx):
        raise MissingResourceError("Vertex AI could not list schedules: not found.")

    monkeypatch.setattr(steps, "follow_data", refused)
    ctx = StepContext(ws=Workspace(Path(tmp_path)), settings=Settings(bucket="my-bucket"), config=None)
    with pytest.raises(MissingResourceError) as caught:
        steps.upload_data(ctx)
    message = str(caught.value)
    assert caught.value.exit_code == 3 and "\n" not in message
    assert message.startswith(
        f"The snapshot gs://my-bucket/data/penguins/{'e' * 64} was uploaded and LATEST moved to it"
    )
    assert "Vertex AI could not list schedules" in message and "`invoke schedule.move`" in message


@pytest.mark.parametrize(
    ("cron", "times"),
    [("* * * * *", 60), ("*/30 * * * *", 2), ("TZ=Europe/Amsterdam 5-10 * * * *", 6), ("0,20,40 3 * * *", 3)],
)
def test_a_cron_firing_more_than_once_an_hour_is_said_not_accepted_silently(cron, times):
    from cicd_release.run.schedules import check_cron, cron_note

    note = cron_note(check_cron(cron))
    assert note.startswith(f"note: {cron!r} fires {times} times an hour") and "skipped" in note


@pytest.mark.parametrize("cron", ["0 3 * * 1", "15 * * * *", "0 */2 * * *"])
def test_a_cron_firing_at_most_hourly_needs_no_note(cron):
    from cicd_release.run.schedules import check_cron, cron_note

    assert cron_note(check_cron(cron)) is None


def test_a_long_cron_is_clipped_in_its_message():
    from cicd_release.core.errors import InputError
    from cicd_release.run.schedules import check_cron

    with pytest.raises(InputError) as caught:
        check_cron("0 " * 60_000)
    assert len(str(caught.value)) < 600
