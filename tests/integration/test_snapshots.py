"""Data snapshots in the bucket: the real google-cloud-storage client against fake-gcs-server.

Content-addressed (the same files are one snapshot), checked before anything is written, LATEST moved with a
generation precondition, dated snapshots and windows of them, and how a run's data is resolved.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from google.cloud import storage

from cicd_release.core.errors import DataError, InputError, MissingData, WriteConflict
from cicd_release.publish.snapshots import (
    materialize_window,
    read_latest,
    resolve,
    snapshot_digest,
    upload_snapshot,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "data" / "penguins"
SCHEMA = ROOT / "packages" / "trainer" / "src" / "cicd_trainer" / "schema" / "schema.pbtxt"
HEADER = "species,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\n"
# The shipped rows (the data set less its holdout, data/README.md), counted from the file, not remembered.
ROWS = len((SHIPPED / "penguins.csv").read_text().splitlines()) - 1


def data_folder(tmp_path: Path, name: str = "penguins", extra_rows: int = 0) -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True)
    text = (SHIPPED / "penguins.csv").read_text()
    text += "".join(f"Adelie,39.{i % 10},18.7,181,3750\n" for i in range(extra_rows))
    (folder / "penguins.csv").write_text(text)
    return folder


def objects(bucket: storage.Bucket) -> dict[str, str]:
    return {b.name: b.md5_hash for b in bucket.list_blobs()}


@pytest.fixture
def dataset(gcs_bucket: storage.Bucket) -> str:
    return f"gs://{gcs_bucket.name}/data/penguins"


def test_the_same_data_uploaded_twice_is_one_snapshot(tmp_path, gcs_client, gcs_bucket, dataset):
    source = data_folder(tmp_path)
    first = upload_snapshot(gcs_client, dataset, source, SCHEMA)
    after_first = objects(gcs_bucket)
    # The same bytes again, from another folder and with other file times: the content names the snapshot.
    again = data_folder(tmp_path / "elsewhere")
    os.utime(again / "penguins.csv", (1_000_000_000, 1_000_000_000))
    second = upload_snapshot(gcs_client, dataset, again, SCHEMA)

    assert first.new and first.latest_moved and first.latest_moved_from is None
    assert not second.new and not second.latest_moved
    assert second.snapshot.uri == first.snapshot.uri
    assert objects(gcs_bucket) == after_first, "nothing new was written"
    sha = first.snapshot.sha256
    assert set(after_first) == {
        f"data/penguins/{sha}/penguins.csv",
        f"data/penguins/manifests/{sha}.json",
        "data/penguins/LATEST",
    }
    manifest = json.loads(gcs_bucket.blob(f"data/penguins/manifests/{sha}.json").download_as_bytes())
    assert manifest["rows"] == ROWS and manifest["files"][0]["rows"] == ROWS
    assert manifest["files"][0]["sha256"] == first.snapshot.files[0]["sha256"]
    assert snapshot_digest(manifest["files"]) == sha
    uploaded = gcs_bucket.blob(f"data/penguins/{sha}/penguins.csv").download_as_bytes()
    assert uploaded == (SHIPPED / "penguins.csv").read_bytes()
    assert "already there (the same files): nothing uploaded" in second.lines()[0]
    # A local run labels its model with the same digest: local and Vertex models of these files agree.
    from cicd_release.publish.snapshots import folder_digest

    assert folder_digest(source) == sha


def test_new_data_is_a_new_snapshot_and_latest_moves_to_it(tmp_path, gcs_client, gcs_bucket, dataset):
    first = upload_snapshot(gcs_client, dataset, data_folder(tmp_path / "a"), SCHEMA)
    second = upload_snapshot(gcs_client, dataset, data_folder(tmp_path / "b", extra_rows=5), SCHEMA)

    assert second.snapshot.sha256 != first.snapshot.sha256 and second.snapshot.rows == ROWS + 5
    assert second.latest_moved and second.latest_moved_from == first.snapshot.sha256
    assert read_latest(gcs_client, dataset).sha256 == second.snapshot.sha256
    # The old snapshot stays whole: a run that trained on it can be repeated.
    assert gcs_bucket.blob(f"data/penguins/{first.snapshot.sha256}/penguins.csv").exists()
    data = resolve(gcs_client, dataset)
    assert (data.uri, data.digest, data.kind, data.rows) == (
        second.snapshot.uri,
        second.snapshot.sha256,
        "snapshot",
        ROWS + 5,
    )
    assert data.labels() == {"data_sha": second.snapshot.sha256[:16], "data_name": "penguins"}
    # Going back to the first data moves LATEST back to its snapshot, uploading nothing.
    back = upload_snapshot(gcs_client, dataset, data_folder(tmp_path / "c"), SCHEMA)
    assert not back.new and back.latest_moved and resolve(gcs_client, dataset).digest == first.snapshot.sha256


def test_bad_data_is_refused_before_anything_is_written(tmp_path, gcs_client, gcs_bucket, dataset):
    source = data_folder(tmp_path)
    with open(source / "penguins.csv", "a") as handle:
        handle.write("Gentoo,45.2\n")  # a truncated row
    with pytest.raises(DataError) as raised:
        upload_snapshot(gcs_client, dataset, source, SCHEMA)
    assert raised.value.exit_code == 4
    assert f"penguins/penguins.csv:{ROWS + 2}: not 5 fields" in str(
        raised.value
    ) and "Nothing was uploaded" in str(raised.value)
    assert objects(gcs_bucket) == {}


def test_a_folder_of_loose_files_is_not_turned_into_a_data_set(tmp_path, gcs_client, gcs_bucket, dataset):
    gcs_bucket.blob("data/penguins/penguins.csv").upload_from_filename(str(SHIPPED / "penguins.csv"))
    with pytest.raises(InputError, match="holds files directly .*penguins.csv.*--name"):
        upload_snapshot(gcs_client, dataset, data_folder(tmp_path), SCHEMA)
    assert set(objects(gcs_bucket)) == {"data/penguins/penguins.csv"}
    # Such a folder is still what a run reads when there is no snapshot (the layout before snapshots).
    data = resolve(gcs_client, dataset)
    assert (data.uri, data.kind, data.files) == (dataset, "folder", 1) and len(data.digest) == 64


def test_a_run_finds_a_snapshot_by_latest_sha_prefix_or_uri(tmp_path, gcs_client, dataset):
    old = upload_snapshot(gcs_client, dataset, data_folder(tmp_path / "a"), SCHEMA).snapshot
    new = upload_snapshot(gcs_client, dataset, data_folder(tmp_path / "b", extra_rows=1), SCHEMA).snapshot

    assert resolve(gcs_client, dataset, "latest").digest == new.sha256
    assert resolve(gcs_client, dataset, old.sha256).uri == old.uri
    assert resolve(gcs_client, dataset, old.sha256[:10]).uri == old.uri
    assert resolve(gcs_client, dataset, old.uri).digest == old.sha256
    assert resolve(gcs_client, dataset, f"{dataset}/LATEST").digest == new.sha256
    with pytest.raises(MissingData, match="No snapshot 00000000"):
        resolve(gcs_client, dataset, "00000000")
    with pytest.raises(Exception, match="names no snapshot"):
        resolve(gcs_client, dataset, "yesterday")


def test_no_data_at_all_says_how_to_upload(gcs_client, dataset):
    with pytest.raises(MissingData, match="invoke data.upload") as raised:
        resolve(gcs_client, dataset)
    assert raised.value.exit_code == 3


def test_a_window_is_the_last_n_dated_snapshots_as_one_reproducible_snapshot(
    tmp_path, gcs_client, gcs_bucket, dataset
):
    days = ["2024-06-01", "2024-06-02", "2024-06-03"]
    dated = [
        upload_snapshot(
            gcs_client, dataset, data_folder(tmp_path / d, extra_rows=i + 1), SCHEMA, date=d
        ).snapshot
        for i, d in enumerate(days)
    ]
    window = materialize_window(gcs_client, dataset, 2)

    assert [m["date"] for m in window.members] == days[1:]
    assert [m["sha256"] for m in window.members] == [s.sha256 for s in dated[1:]]
    assert sorted(f["name"] for f in window.files) == ["2024-06-02_penguins.csv", "2024-06-03_penguins.csv"]
    assert window.rows == dated[1].rows + dated[2].rows
    copied = gcs_bucket.blob(f"data/penguins/{window.sha256}/2024-06-03_penguins.csv").download_as_bytes()
    assert copied == (tmp_path / days[2] / "penguins" / "penguins.csv").read_bytes()
    # The same members make the same window, writing nothing; LATEST stays on the newest upload.
    before = objects(gcs_bucket)
    assert (
        materialize_window(gcs_client, dataset, 2).sha256 == window.sha256 and objects(gcs_bucket) == before
    )
    assert read_latest(gcs_client, dataset).sha256 == dated[-1].sha256
    data = resolve(gcs_client, dataset, window=2)
    assert (data.uri, data.digest) == (window.uri, window.sha256)
    # A new day moves the window along.
    upload_snapshot(
        gcs_client, dataset, data_folder(tmp_path / "d4", extra_rows=9), SCHEMA, date="2024-06-04"
    )
    assert [m["date"] for m in materialize_window(gcs_client, dataset, 2).members] == days[2:] + [
        "2024-06-04"
    ]


def test_a_date_names_one_snapshot(tmp_path, gcs_client, dataset):
    first = upload_snapshot(gcs_client, dataset, data_folder(tmp_path / "a"), SCHEMA, date="2024-06-01")
    # The same files again on that date: fine.
    upload_snapshot(gcs_client, dataset, data_folder(tmp_path / "b"), SCHEMA, date="2024-06-01")
    with pytest.raises(InputError, match="2024-06-01.*already names snapshot") as raised:
        upload_snapshot(
            gcs_client, dataset, data_folder(tmp_path / "c", extra_rows=1), SCHEMA, date="2024-06-01"
        )
    assert raised.value.exit_code == 2
    assert read_latest(gcs_client, dataset).sha256 == first.snapshot.sha256, "LATEST did not move"


def test_a_window_needs_dated_snapshots(tmp_path, gcs_client, dataset):
    upload_snapshot(gcs_client, dataset, data_folder(tmp_path), SCHEMA)
    with pytest.raises(MissingData, match="--date today"):
        materialize_window(gcs_client, dataset, 3)


def test_latest_moves_only_from_the_generation_it_was_read_at(
    tmp_path, gcs_client, gcs_bucket, dataset, monkeypatch
):
    upload_snapshot(gcs_client, dataset, data_folder(tmp_path / "a"), SCHEMA)
    import cicd_release.publish.snapshots as snapshots

    real_read = snapshots.read_json_object

    def read_then_another_upload_moves_it(client, uri, **kwargs):
        result = real_read(client, uri, **kwargs)
        if uri.endswith("/LATEST"):
            gcs_bucket.blob("data/penguins/LATEST").upload_from_string(b'{"sha256": "theirs"}')
        return result

    monkeypatch.setattr(snapshots, "read_json_object", read_then_another_upload_moves_it)
    with pytest.raises(WriteConflict, match="moved while this upload ran"):
        upload_snapshot(gcs_client, dataset, data_folder(tmp_path / "b", extra_rows=1), SCHEMA)
    assert json.loads(gcs_bucket.blob("data/penguins/LATEST").download_as_bytes()) == {"sha256": "theirs"}


def test_a_copy_of_the_shipped_folder_is_what_the_chain_uploads(tmp_path):
    """The sample in the repository passes the check the upload runs (the chain uploads it on a data change)."""
    shutil.copytree(SHIPPED, tmp_path / "penguins")
    from cicd_release.publish.snapshots import local_snapshot

    snapshot = local_snapshot("gs://b/data/penguins", tmp_path / "penguins", SCHEMA)
    assert snapshot.rows == ROWS and [f["name"] for f in snapshot.files] == ["penguins.csv"]
