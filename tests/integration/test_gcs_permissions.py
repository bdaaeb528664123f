"""GCS IAM, enforced locally: release code runs as an identity holding only the documented role.

fake-gcs-server lets anyone do anything, so a call that needs a permission the documented role
(roles/storage.objectAdmin on the bucket) lacks used to pass here and fail on Google Cloud: the pipeline-root
check once called ``bucket.exists()``, which needs storage.buckets.get. The IAM gate in
``tests/support/gcs_iam_proxy.py`` refuses such calls the way GCS does; these tests pin down first the gate
itself, then the release chain's storage calls under that role.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage

from cicd_release.core.errors import MissingBucket, Refused
from cicd_release.publish.storage import (
    parse_gs_uri,
    prefix_digest,
    read_json_object,
    upload_content_addressed,
    upload_immutable,
    write_json_object,
)
from cicd_release.run.submit import _check_pipeline_root
from tests.support.gcs_emulator import create_bucket
from tests.support.gcs_iam_fixtures import GcsAs
from tests.support.gcs_iam_proxy import GcsIamProxy
from tests.support.tf_gcs import TfGcs, TfGcsError

OBJECT_ADMIN = "roles/storage.objectAdmin"
PROJECT = "test-project"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _error_body(proxy: GcsIamProxy, path: str, token: str | None) -> tuple[int, dict]:
    """Status and JSON error document of a raw GET through the gate (the client would retry or refresh)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(proxy.endpoint + path, headers=headers)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    return caught.value.code, json.loads(caught.value.read())


# --- the gate refuses what Google refuses ---


def test_object_admin_reads_and_writes_objects_but_may_not_get_the_bucket(
    gcs_as: GcsAs, gcs_bucket: storage.Bucket, gcs_iam_proxy: GcsIamProxy
) -> None:
    client = gcs_as([OBJECT_ADMIN], gcs_bucket.name)
    bucket = client.bucket(gcs_bucket.name)

    bucket.blob("runs/a.txt").upload_from_string(b"a", if_generation_match=0)
    assert bucket.get_blob("runs/a.txt").download_as_bytes() == b"a"
    assert [b.name for b in client.list_blobs(gcs_bucket.name, prefix="runs/")] == ["runs/a.txt"]

    with pytest.raises(gexc.Forbidden, match=r"does not have storage\.buckets\.get access"):
        bucket.exists()
    principal, method, path, permission, allowed = gcs_iam_proxy.requests[-1]
    assert (method, path, permission, allowed) == (
        "GET",
        f"/storage/v1/b/{gcs_bucket.name}",
        "storage.buckets.get",
        False,
    )


def test_refusal_has_the_shape_and_message_gcs_answers_with(
    gcs_bucket: storage.Bucket, gcs_iam_proxy: GcsIamProxy
) -> None:
    principal = "deployer@test-project.iam.gserviceaccount.com"
    gcs_iam_proxy.grant("objects-only", principal, [OBJECT_ADMIN], bucket=gcs_bucket.name)

    code, body = _error_body(gcs_iam_proxy, f"/storage/v1/b/{gcs_bucket.name}", "objects-only")

    message = (
        f"{principal} does not have storage.buckets.get access to the Google Cloud Storage bucket. "
        "Permission 'storage.buckets.get' denied on resource (or it may not exist)."
    )
    assert code == 403
    assert body == {
        "error": {
            "code": 403,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "forbidden"}],
        }
    }


def test_object_viewer_may_read_but_not_upload(
    gcs_as: GcsAs, gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    gcs_bucket.blob("published.txt").upload_from_string(b"hello")  # as the admin, straight to the emulator
    viewer = gcs_as(["roles/storage.objectViewer"], gcs_bucket.name)

    assert viewer.bucket(gcs_bucket.name).blob("published.txt").download_as_bytes() == b"hello"
    with pytest.raises(gexc.Forbidden, match=r"storage\.objects\.create") as caught:
        viewer.bucket(gcs_bucket.name).blob("new.txt").upload_from_string(b"x", if_generation_match=0)

    assert caught.value.code == 403
    assert gcs_client.bucket(gcs_bucket.name).get_blob("new.txt") is None


def test_request_without_a_token_is_401_and_an_unknown_token_too(
    gcs_bucket: storage.Bucket, gcs_iam_proxy: GcsIamProxy
) -> None:
    code, body = _error_body(gcs_iam_proxy, f"/storage/v1/b/{gcs_bucket.name}/o", token=None)
    assert code == 401
    assert body["error"]["errors"][0]["reason"] == "required"
    assert body["error"]["message"].startswith("Anonymous caller does not have storage.objects.list access")

    code, body = _error_body(gcs_iam_proxy, f"/storage/v1/b/{gcs_bucket.name}/o", token="never-granted")
    assert code == 401
    assert body["error"]["message"] == "Invalid Credentials"
    assert [r.allowed for r in gcs_iam_proxy.requests] == [False, False]


def test_legacy_bucket_reader_may_get_the_bucket_and_list_but_not_read_objects(
    gcs_as: GcsAs, gcs_bucket: storage.Bucket
) -> None:
    gcs_bucket.blob("a.txt").upload_from_string(b"a")
    reader = gcs_as(["roles/storage.legacyBucketReader"], gcs_bucket.name)

    assert reader.bucket(gcs_bucket.name).exists()
    assert [b.name for b in reader.list_blobs(gcs_bucket.name)] == ["a.txt"]
    with pytest.raises(gexc.Forbidden, match=r"storage\.objects\.get"):
        reader.bucket(gcs_bucket.name).blob("a.txt").download_as_bytes()


@pytest.mark.parametrize("match_generation", [False, True], ids=["blind-overwrite", "if-generation-match"])
def test_replacing_an_object_needs_objects_delete_which_object_creator_lacks(
    gcs_as: GcsAs, gcs_bucket: storage.Bucket, match_generation: bool
) -> None:
    creator = gcs_as(["roles/storage.objectCreator"], gcs_bucket.name)
    blob = creator.bucket(gcs_bucket.name).blob("record.json")
    blob.upload_from_string(b"1", if_generation_match=0)  # creating is fine
    generation = gcs_bucket.get_blob("record.json").generation
    kwargs = {"if_generation_match": generation} if match_generation else {}

    with pytest.raises(gexc.Forbidden, match=r"storage\.objects\.delete"):
        blob.upload_from_string(b"2", **kwargs)

    assert gcs_bucket.get_blob("record.json").generation == generation  # untouched


def test_roles_granted_on_one_bucket_do_not_reach_another(
    gcs_as: GcsAs, gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    other = create_bucket(gcs_client, f"test-{uuid.uuid4().hex[:20]}")
    client = gcs_as([OBJECT_ADMIN], gcs_bucket.name)

    with pytest.raises(gexc.Forbidden, match=r"storage\.objects\.list"):
        list(client.list_blobs(other.name))


def test_resumable_upload_is_checked_once_and_its_chunks_ride_on_the_session(
    gcs_as: GcsAs, gcs_bucket: storage.Bucket, gcs_iam_proxy: GcsIamProxy
) -> None:
    client = gcs_as([OBJECT_ADMIN], gcs_bucket.name)
    data = bytes(range(256)) * 2400  # ~600 KiB: three 256 KiB chunks

    with client.bucket(gcs_bucket.name).blob("big.bin").open("wb", chunk_size=256 * 1024) as handle:
        handle.write(data)

    assert gcs_bucket.blob("big.bin").download_as_bytes() == data
    uploads = [r for r in gcs_iam_proxy.requests if r.path.startswith("/upload/")]
    assert [(r.method, r.permission) for r in uploads] == [("POST", "storage.objects.create")] + [
        ("PUT", None)
    ] * 3
    assert all(r.allowed and r.principal == uploads[0].principal for r in uploads)


# --- the release chain under the documented role ---


def test_pipeline_root_check_passes_with_only_object_admin(gcs_as: GcsAs, gcs_bucket: storage.Bucket) -> None:
    client = gcs_as([OBJECT_ADMIN], gcs_bucket.name)

    _check_pipeline_root(f"gs://{gcs_bucket.name}/pipeline_root", PROJECT, None, client)


def test_pipeline_root_check_names_a_missing_bucket(gcs_as: GcsAs) -> None:
    missing = f"test-missing-{uuid.uuid4().hex[:12]}"
    client = gcs_as([OBJECT_ADMIN], missing)

    with pytest.raises(MissingBucket, match=rf"gs://{missing}, which does not exist"):
        _check_pipeline_root(f"gs://{missing}/pipeline_root", PROJECT, None, client)


def test_pipeline_root_check_without_a_role_names_the_role_to_grant(
    gcs_as: GcsAs, gcs_bucket: storage.Bucket
) -> None:
    client = gcs_as([], gcs_bucket.name)

    with pytest.raises(Refused, match=rf"may not list gs://{gcs_bucket.name}") as caught:
        _check_pipeline_root(f"gs://{gcs_bucket.name}/pipeline_root", PROJECT, None, client)

    assert "roles/storage.objectAdmin" in str(caught.value)


def test_release_storage_calls_work_with_only_object_admin(
    tmp_path: Path, gcs_as: GcsAs, gcs_bucket: storage.Bucket, gcs_iam_proxy: GcsIamProxy
) -> None:
    client = gcs_as([OBJECT_ADMIN], gcs_bucket.name)
    root = f"gs://{gcs_bucket.name}"
    module = _write(tmp_path / "model.py", "VERSION = 1\n")
    spec = _write(tmp_path / "pipeline.json", '{"pipelineInfo": {"name": "p"}}\n')

    uris = upload_content_addressed(client, f"{root}/modules", {"model": module})
    assert upload_content_addressed(client, f"{root}/modules", {"model": module}) == uris  # re-run: no-op
    spec_uri = upload_immutable(client, spec, f"{root}/specs/pipeline-1.json")
    assert upload_immutable(client, spec, spec_uri) == spec_uri
    digest, count = prefix_digest(client, f"{root}/modules")
    assert count == 1 and digest

    record_uri = f"{root}/state/release.json"
    assert read_json_object(client, record_uri) == (None, 0)
    first = write_json_object(client, record_uri, {"release": 1}, if_generation_match=0)
    assert read_json_object(client, record_uri) == ({"release": 1}, first)
    # Replacing the record needs storage.objects.delete besides .create: objectAdmin has both.
    second = write_json_object(client, record_uri, {"release": 2}, if_generation_match=first)
    assert read_json_object(client, record_uri) == ({"release": 2}, second)

    refused = [r for r in gcs_iam_proxy.requests if not r.allowed]
    assert refused == []
    assert any(
        r.permission == "storage.objects.create storage.objects.delete" for r in gcs_iam_proxy.requests
    )
    bucket, name = parse_gs_uri(uris["model"])
    assert client.bucket(bucket).blob(name).download_as_bytes() == module.read_bytes()


def test_updating_the_release_record_is_refused_without_objects_delete(
    gcs_as: GcsAs, gcs_bucket: storage.Bucket
) -> None:
    # Creator + viewer can do everything the chain does except replace the record: the documented role
    # has to be objectAdmin (or another role with storage.objects.delete), not these two.
    client = gcs_as(["roles/storage.objectCreator", "roles/storage.objectViewer"], gcs_bucket.name)
    record_uri = f"gs://{gcs_bucket.name}/state/release.json"
    generation = write_json_object(client, record_uri, {"release": 1}, if_generation_match=0)

    with pytest.raises(Refused, match=r"storage\.objects\.delete") as refused:
        write_json_object(client, record_uri, {"release": 2}, if_generation_match=generation)

    assert refused.value.exit_code == 1 and "\n" not in str(refused.value)  # one line, not a traceback

    assert read_json_object(client, record_uri) == ({"release": 1}, generation)


# --- what TensorFlow's GCS file system does as the pipelines' identity (cloud review #1) ---


def _vertex_roles_on_the_bucket() -> list[str]:
    from cicd_release.provision import desired

    return [g.role for g in desired.GRANTS if g.member == "vertex" and g.on == desired.BUCKET]


def _tf_as(proxy: GcsIamProxy, roles: list[str], bucket: str) -> TfGcs:
    token = uuid.uuid4().hex
    proxy.grant(token, f"vertex-{token[:8]}@{PROJECT}.iam.gserviceaccount.com", roles, bucket=bucket)
    return TfGcs(proxy.endpoint, token)


def test_tensorflow_makedirs_under_an_empty_prefix_needs_the_bucket_metadata(
    gcs_bucket: storage.Bucket, gcs_iam_proxy: GcsIamProxy
) -> None:
    """Object Admin alone: Pusher's first push dies with PermissionDenied on the bucket's metadata."""
    tf = _tf_as(gcs_iam_proxy, [OBJECT_ADMIN], gcs_bucket.name)
    with pytest.raises(TfGcsError) as refused:
        tf.makedirs(f"gs://{gcs_bucket.name}/serving_model/penguin-cicd/1733300000")
    assert (refused.value.code, refused.value.method, refused.value.path) == (
        403,
        "GET",
        f"/storage/v1/b/{gcs_bucket.name}",
    )


def test_the_pipelines_account_as_set_up_can_push_a_first_model(
    gcs_bucket: storage.Bucket, gcs_iam_proxy: GcsIamProxy
) -> None:
    """The roles desired.py grants the pipelines' account on the bucket let TensorFlow create a new folder."""
    tf = _tf_as(gcs_iam_proxy, _vertex_roles_on_the_bucket(), gcs_bucket.name)
    tf.makedirs(f"gs://{gcs_bucket.name}/serving_model/penguin-cicd/1733300000")

    names = {b.name for b in gcs_bucket.client.list_blobs(gcs_bucket.name, prefix="serving_model/")}
    assert names == {
        "serving_model/",
        "serving_model/penguin-cicd/",
        "serving_model/penguin-cicd/1733300000/",
    }
    # The walk reached the bucket itself (nothing under serving_model/ yet): that is the call that needs it.
    assert ("GET", f"/storage/v1/b/{gcs_bucket.name}", 200) in tf.sent


def _summaries_reader(gcs_iam_proxy: GcsIamProxy, bucket: str, monkeypatch: pytest.MonkeyPatch):
    """A client acting as the GitHub submitter: roles/storage.objectViewer under setup's own condition."""
    from google.oauth2.credentials import Credentials

    from cicd_release.provision import desired

    [grant] = [
        g for g in desired.GRANTS if g.member == "submitter" and g.role == "roles/storage.objectViewer"
    ]
    deployment = desired.Deployment(
        project=PROJECT,
        region="europe-west4",
        bucket=bucket,
        repository_location="europe-west4",
        repository_id="training",
        accounts={},
        pipeline="penguin-cicd",
    )
    condition = deployment.condition(grant)
    token = f"submitter-{uuid.uuid4().hex}"
    principal = f"cicd-submitter@{PROJECT}.iam.gserviceaccount.com"
    gcs_iam_proxy.grant(token, principal, [grant.role], bucket=bucket, condition=condition["expression"])
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_iam_proxy.endpoint)
    return storage.Client(project=PROJECT, credentials=Credentials(token=token))


def test_the_submitter_lists_and_reads_run_summaries_and_nothing_else(
    gcs_bucket: storage.Bucket, gcs_iam_proxy: GcsIamProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What release.yml does (`gcloud storage ls` of the commit's summaries folder, then `cat` the newest) works
    under the condition; data, specs and any other list are refused, as Google evaluates the condition."""
    commit = "c" * 40
    folder = f"releases/penguin-cicd/summaries/{commit}/"
    gcs_bucket.blob(folder + "penguin-cicd-1.md").upload_from_string(b"# run 1")
    gcs_bucket.blob("data/penguins/penguins.csv").upload_from_string(b"species\n")
    gcs_bucket.blob("releases/penguin-cicd/latest.json").upload_from_string(b"{}")
    client = _summaries_reader(gcs_iam_proxy, gcs_bucket.name, monkeypatch)

    listed = [b.name for b in client.list_blobs(gcs_bucket.name, prefix=folder, delimiter="/")]
    assert listed == [folder + "penguin-cicd-1.md"]
    assert client.bucket(gcs_bucket.name).blob(listed[-1]).download_as_bytes() == b"# run 1"

    for name in ("data/penguins/penguins.csv", "releases/penguin-cicd/latest.json"):
        with pytest.raises(gexc.Forbidden, match=r"storage\.objects\.get"):
            client.bucket(gcs_bucket.name).blob(name).download_as_bytes()
    for prefix in ("", "data/", "releases/penguin-cicd/"):
        with pytest.raises(gexc.Forbidden, match=r"storage\.objects\.list"):
            list(client.list_blobs(gcs_bucket.name, prefix=prefix or None))


def test_a_condition_on_object_names_alone_refuses_every_list(
    gcs_bucket: storage.Bucket, gcs_iam_proxy: GcsIamProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list is checked on the bucket (projects/_/buckets/B), which no object-name prefix matches: the reason
    the summaries condition has its objectListPrefix half."""
    from google.oauth2.credentials import Credentials

    gcs_bucket.blob("releases/s/a.md").upload_from_string(b"a")
    expression = f'resource.name.startsWith("projects/_/buckets/{gcs_bucket.name}/objects/releases/s/")'
    gcs_iam_proxy.grant(
        "names-only",
        "names-only@x.iam.gserviceaccount.com",
        ["roles/storage.objectViewer"],
        bucket=gcs_bucket.name,
        condition=expression,
    )
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_iam_proxy.endpoint)
    client = storage.Client(project=PROJECT, credentials=Credentials(token="names-only"))

    assert client.bucket(gcs_bucket.name).blob("releases/s/a.md").download_as_bytes() == b"a"
    with pytest.raises(gexc.Forbidden, match=r"storage\.objects\.list"):
        list(client.list_blobs(gcs_bucket.name, prefix="releases/s/"))
