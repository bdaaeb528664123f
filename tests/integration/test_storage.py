"""Immutable, content-addressed uploads against a real GCS emulator (fake-gcs-server) with the real client.

Files here are small on purpose: google-cloud-storage sends files up to 8 MiB as one multipart request, on
which fake-gcs-server enforces ``ifGenerationMatch``; it ignores the precondition on resumable uploads (real
GCS does not), so a large file would test the emulator rather than our code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from google.cloud import storage

from cicd_release.core.errors import InputError, WriteConflict
from cicd_release.publish.storage import (
    blob_exists,
    parse_gs_uri,
    prefix_digest,
    read_json_object,
    upload_content_addressed,
    upload_immutable,
    write_json_object,
)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _objects(bucket: storage.Bucket) -> dict[str, int]:
    """Object name -> generation: a changed generation would mean an overwrite."""
    return {blob.name: blob.generation for blob in bucket.client.list_blobs(bucket.name)}


def test_upload_content_addressed_names_objects_by_sha256_and_keeps_the_basename(
    tmp_path: Path, gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    preprocessing = _write(
        tmp_path / "preprocessing.py", "def preprocessing_fn(inputs):\n    return inputs\n"
    )
    model = _write(tmp_path / "model.py", "def run_fn(fn_args):\n    pass\n")

    uris = upload_content_addressed(
        gcs_client,
        f"gs://{gcs_bucket.name}/modules/trainer-0.1.0",
        {"preprocessing": preprocessing, "model": model},
    )

    sha = hashlib.sha256(preprocessing.read_bytes()).hexdigest()
    assert uris["preprocessing"] == f"gs://{gcs_bucket.name}/modules/trainer-0.1.0/{sha}/preprocessing.py"
    assert set(uris) == {"preprocessing", "model"}
    for logical, uri in uris.items():
        bucket, name = parse_gs_uri(uri)
        source = preprocessing if logical == "preprocessing" else model
        assert gcs_client.bucket(bucket).blob(name).download_as_bytes() == source.read_bytes()


def test_reupload_of_same_content_is_a_noop_with_the_same_uris(
    tmp_path: Path, gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    module = _write(tmp_path / "model.py", "VERSION = 1\n")
    prefix = f"gs://{gcs_bucket.name}/modules"
    first = upload_content_addressed(gcs_client, prefix, {"model": module})
    before = _objects(gcs_bucket)

    second = upload_content_addressed(gcs_client, prefix, {"model": module})

    assert second == first
    assert _objects(gcs_bucket) == before  # same objects, same generations: nothing rewritten


def test_changed_content_gets_a_new_object_and_the_old_one_stays(
    tmp_path: Path, gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    module = _write(tmp_path / "model.py", "VERSION = 1\n")
    prefix = f"gs://{gcs_bucket.name}/modules"
    old = upload_content_addressed(gcs_client, prefix, {"model": module})["model"]
    module.write_text("VERSION = 2\n")

    new = upload_content_addressed(gcs_client, prefix, {"model": module})["model"]

    assert new != old
    assert blob_exists(gcs_client, old) and blob_exists(gcs_client, new)


def test_existing_object_with_other_content_is_never_overwritten(
    tmp_path: Path, gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    spec = _write(tmp_path / "pipeline.json", '{"pipelineInfo": {"name": "new"}}')
    uri = f"gs://{gcs_bucket.name}/specs/pipeline-0.2.0.json"
    gcs_bucket.blob("specs/pipeline-0.2.0.json").upload_from_string(b'{"pipelineInfo": {"name": "old"}}')
    before = _objects(gcs_bucket)

    with pytest.raises(WriteConflict, match=r"specs/pipeline-0\.2\.0\.json already exists"):
        upload_immutable(gcs_client, spec, uri)

    assert _objects(gcs_bucket) == before
    assert (
        gcs_bucket.blob("specs/pipeline-0.2.0.json").download_as_bytes()
        == b'{"pipelineInfo": {"name": "old"}}'
    )


def test_content_addressed_name_taken_by_other_bytes_raises(
    tmp_path: Path, gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    module = _write(tmp_path / "model.py", "VERSION = 1\n")
    sha = hashlib.sha256(module.read_bytes()).hexdigest()
    # Someone wrote other bytes where this content's address is: the address no longer proves the content.
    gcs_bucket.blob(f"modules/{sha}/model.py").upload_from_string(b"tampered\n")

    with pytest.raises(WriteConflict, match=sha):
        upload_content_addressed(gcs_client, f"gs://{gcs_bucket.name}/modules", {"model": module})


def test_upload_immutable_writes_once_then_accepts_identical_bytes(
    tmp_path: Path, gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    spec = _write(tmp_path / "pipeline.json", '{"schemaVersion": "2.1.0"}')
    uri = f"gs://{gcs_bucket.name}/specs/abc123/pipeline.json"
    assert not blob_exists(gcs_client, uri)

    assert upload_immutable(gcs_client, spec, uri) == uri
    generation = _objects(gcs_bucket)["specs/abc123/pipeline.json"]
    assert upload_immutable(gcs_client, spec, uri) == uri

    assert blob_exists(gcs_client, uri)
    assert _objects(gcs_bucket)["specs/abc123/pipeline.json"] == generation


def test_missing_local_file_fails_before_anything_is_uploaded(
    tmp_path: Path, gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    present = _write(tmp_path / "model.py", "VERSION = 1\n")
    missing = tmp_path / "preprocessing.py"

    with pytest.raises(InputError, match="preprocessing.py"):
        # The present file comes first, so an implementation uploading as it goes would leave it behind.
        upload_content_addressed(
            gcs_client, f"gs://{gcs_bucket.name}/modules", {"model": present, "preprocessing": missing}
        )

    assert _objects(gcs_bucket) == {}


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "empty"),
        ("/tmp/pipeline.json", "must start with gs://"),
        ("s3://bucket/key", "must start with gs://"),
        ("gs:///key", "no bucket name"),
    ],
)
def test_parse_gs_uri_rejects_bad_uris_by_name(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_gs_uri(uri)
    assert repr(uri) in str(raised.value)


def test_parse_gs_uri_splits_bucket_and_object() -> None:
    assert parse_gs_uri("gs://bkt/a/b/c.json") == ("bkt", "a/b/c.json")
    assert parse_gs_uri("gs://bkt") == ("bkt", "")


def test_upload_immutable_needs_an_object_name(tmp_path: Path, gcs_client: storage.Client) -> None:
    spec = _write(tmp_path / "pipeline.json", "{}")
    with pytest.raises(ValueError, match="names no object"):
        upload_immutable(gcs_client, spec, "gs://bucket/specs/")


def test_a_record_moves_only_from_the_generation_read_so_of_two_writers_one_wins(
    gcs_bucket: storage.Bucket,
) -> None:
    uri = f"gs://{gcs_bucket.name}/releases/p/latest.json"
    assert read_json_object(gcs_bucket.client, uri) == (None, 0)
    first = write_json_object(gcs_bucket.client, uri, {"commit": "a"}, if_generation_match=0)
    with pytest.raises(WriteConflict, match="changed since it was read"):
        write_json_object(gcs_bucket.client, uri, {"commit": "b"}, if_generation_match=0)  # it exists now
    data, generation = read_json_object(gcs_bucket.client, uri)
    assert (data, generation) == ({"commit": "a"}, first)
    # Two builds read the same generation; the first write wins, the second is refused and writes nothing.
    write_json_object(gcs_bucket.client, uri, {"commit": "c"}, if_generation_match=generation)
    with pytest.raises(WriteConflict):
        write_json_object(gcs_bucket.client, uri, {"commit": "d"}, if_generation_match=generation)
    assert read_json_object(gcs_bucket.client, uri)[0] == {"commit": "c"}


def test_a_data_folder_is_named_by_its_objects(gcs_bucket: storage.Bucket) -> None:
    uri = f"gs://{gcs_bucket.name}/data/penguins"
    assert prefix_digest(gcs_bucket.client, uri) == ("", 0)
    gcs_bucket.blob("data/penguins/a.csv").upload_from_string("x\n1\n")
    gcs_bucket.blob("data/penguins-old/a.csv").upload_from_string("x\n2\n")  # a sibling prefix: not inside
    digest, count = prefix_digest(gcs_bucket.client, uri)
    assert count == 1 and len(digest) == 64
    assert prefix_digest(gcs_bucket.client, uri + "/") == (digest, 1)
    gcs_bucket.blob("data/penguins/a.csv").upload_from_string("x\n3\n")
    assert prefix_digest(gcs_bucket.client, uri)[0] != digest, "an edited file is a new digest"
