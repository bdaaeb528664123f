"""What a failed upload says it wrote is true: the outside probe killed an upload after one of three files was
written and was told "Nothing was written yet". Through the fault proxy against fake-gcs-server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cicd_release.core.errors import CloudUnavailable
from cicd_release.publish.snapshots import upload_snapshot
from cicd_release.publish.storage import upload_immutable
from tests.support.gcs_emulator import make_storage_client
from tests.support.released import SCHEMA, SHIPPED_CSV

FAST = 2.0


@pytest.fixture
def faulty(gcs_faults, gcs_emulator):
    return make_storage_client(gcs_faults.endpoint)


def test_a_snapshot_upload_cut_at_its_second_file_names_the_file_it_wrote(
    tmp_path: Path, gcs_faults, faulty, gcs_bucket
):
    folder = tmp_path / "penguins"
    folder.mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        shutil.copy(SHIPPED_CSV, folder / name)
    gcs_faults.fail(503, times=None, on="b.csv")  # every request naming the second file

    with pytest.raises(CloudUnavailable) as caught:
        upload_snapshot(faulty, f"gs://{gcs_bucket.name}/data/penguins", folder, SCHEMA, deadline=FAST)

    message = str(caught.value)
    written = [b.name for b in gcs_bucket.client.list_blobs(gcs_bucket.name)]
    assert [n.rsplit("/", 1)[1] for n in written] == ["a.csv"], written
    assert "Nothing was written" not in message and "\n" not in message
    assert f"Written: gs://{gcs_bucket.name}/{written[0]}. Not written: " in message
    assert "b.csv" in message.split("Not written: ")[1] and "Running it again is safe" in message


def test_an_upload_given_up_on_in_flight_does_not_say_nothing_was_written(
    tmp_path: Path, gcs_faults, faulty, gcs_bucket
):
    local = tmp_path / "spec.json"
    local.write_text("{}")
    gcs_faults.slow(20, on="/upload/")  # the host takes the upload and never answers in time

    with pytest.raises(CloudUnavailable) as caught:
        upload_immutable(faulty, local, f"gs://{gcs_bucket.name}/specs/s.json", deadline=FAST)

    message = str(caught.value)
    assert "Nothing was written yet" not in message, "the write may have landed: it was in flight"
    assert "Nothing was confirmed written" in message and "never in part" in message
