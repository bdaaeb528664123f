"""`invoke ci` on commits that change data, on a clone of the committed repository, against fake-gcs-server and
the Vertex stand-in. No image and no compile are involved (that is the point), so no container engine either:
the release the chain builds on is put in the bucket as a release leaves it (tests/support/released.py), with
the clone's own trainer files as its modules.

- a data-only commit plans `data` and runs data.upload, then pipeline.submit (on the new snapshot), then
  schedule.move (a schedule that follows LATEST now trains on it);
- a commit that touches the data without changing it finds the same snapshot and starts no run;
- a bad row stops the build at data.upload with exit 4 and the file:line: nothing uploaded, no run;
- a trainer change with new data: the code's workflow plus the upload, and the schedule moves to both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cicd_pipeline.run_inputs import TRAINER_FILES
from cicd_release.plan.release_state import read_record
from cicd_release.publish.snapshots import read_latest, upload_snapshot
from cicd_release.publish.storage import upload_content_addressed, upload_immutable, write_json_object
from cicd_release.run import schedules
from tests.support.checkout import git
from tests.support.checkout import invoke as invoke_timed
from tests.support.released import REPO, SCHEMA, VERSIONS, settings_for, spec, spec_name

ROOT = Path(__file__).resolve().parents[2]
CSV = Path("data") / "penguins" / "penguins.csv"


@pytest.fixture
def chain(clone, tmp_path, gcs_emulator, gcs_client, gcs_bucket, vertex_standin):
    """The clone released as it is: its trainer files as the modules, its data as the LATEST snapshot."""
    settings = settings_for(gcs_bucket.name, vertex_standin.endpoint)
    job = tmp_path / "spec.json"
    job.write_text(json.dumps(spec()))
    spec_uri = upload_immutable(gcs_client, job, f"{settings.specs_prefix}/{spec_name(spec())}")
    modules = upload_content_addressed(
        gcs_client, settings.modules_prefix, {name: clone / path for name, path in TRAINER_FILES.items()}
    )
    data = upload_snapshot(gcs_client, settings.resolved_data_root, clone / CSV.parent, SCHEMA).snapshot
    record = {
        "commit": git(clone, "rev-parse", "HEAD"),
        "versions": VERSIONS,
        "inputs": {
            "spec": spec_uri,
            "image": spec()["pipelineSpec"]["deploymentSpec"]["executors"]["exec-gen"]["container"]["image"],
            "modules": modules,
            "data_root": data.uri,
            "data_digest": data.sha256,
            "hyperparameters": "{}",
        },
        "run": {"resource_name": "projects/test-project/locations/us-central1/pipelineJobs/first"},
    }
    last = read_record(settings, gcs_client)
    write_json_object(gcs_client, last.uri, record, if_generation_match=last.generation)
    env = {
        **os.environ,
        "INVOKE_CICD_PROJECT": settings.project,
        "INVOKE_CICD_REGION": settings.region,
        "INVOKE_CICD_BUCKET": settings.bucket,
        "INVOKE_CICD_IMAGE_REPO": REPO,  # the released image's: no image is built for data
        "INVOKE_CICD_SERVICE_ACCOUNT": settings.service_account,
        "INVOKE_CICD_API_ENDPOINT": vertex_standin.endpoint,
        "INVOKE_CICD_ANONYMOUS_CREDENTIALS": "true",
    }
    return settings, env


def invoke(repo: Path, env: dict, *args: str, code: int = 0) -> str:
    return invoke_timed(repo, env, *args, code=code, timeout=600)[0]


def parameters(job: dict) -> dict[str, str]:
    config = job["runtimeConfig"]
    values = dict(config.get("parameterValues", {}))
    values.update({k: v["stringValue"] for k, v in config.get("parameters", {}).items()})
    return values


def add_rows(clone: Path, rows: str, message: str) -> None:
    with open(clone / CSV, "a") as handle:
        handle.write(rows)
    git(clone, "commit", "--quiet", "-am", message)


def test_data_commits_upload_then_train_and_move_the_schedules(clone, chain, gcs_client, vertex_standin):
    settings, env = chain
    schedules.create_schedule(settings, gcs_client, cron="0 3 * * 1", display_name="weekly")
    first = read_latest(gcs_client, settings.resolved_data_root)

    add_rows(clone, "Gentoo,47.5,15.0,218,4950\nAdelie,38.9,18.8,190,3600\n", "Two more penguins")
    out = invoke(clone, env, "ci", "--skip-tests", "--base", ":release")
    plan = json.loads((clone / ".cicd" / "plan.json").read_text())
    assert plan["workflow"] == "data" and plan["changed_packages"] == []
    assert plan["steps"] == ["test", "data.upload", "pipeline.submit", "schedule.move"]
    ran = [
        line.split(":")[0].removeprefix("== ")
        for line in out.splitlines()
        if line.endswith(" s") and "done" in line
    ]
    assert ran == ["test", "data.upload", "pipeline.submit", "schedule.move"], out
    assert "== build.image" not in out and "== pipeline.compile" not in out and "== modules.upload" not in out
    new = read_latest(gcs_client, settings.resolved_data_root)
    assert new.sha256 != first.sha256 and new.rows == first.rows + 2
    [run] = vertex_standin.created_bodies
    assert parameters(run)["data_root"] == new.uri
    assert run["labels"]["data_sha"] == new.sha256[:16] and run["labels"]["trigger"] == "release"
    assert json.loads(parameters(run)["model_labels"])["data_sha"] == new.sha256[:16]
    record = read_record(settings, gcs_client)
    assert record.commit == git(clone, "rev-parse", "HEAD") and record.inputs["data_digest"] == new.sha256
    [weekly] = schedules.list_schedules(settings)
    assert weekly.parameters["data_root"] == new.uri, "the schedule follows LATEST"
    assert weekly.labels["commit"] == record.commit[:12]

    # Paths propose, content decides: a commit that touches the data set without changing a byte of it (a
    # file mode) plans `data`, and the upload finds the same snapshot: nothing uploaded, no run.
    (clone / CSV).chmod(0o755)
    git(clone, "commit", "--quiet", "-am", "Make the data executable, for no reason")
    before = {b.name for b in gcs_client.list_blobs(settings.bucket, prefix="data/")}
    out = invoke(clone, env, "ci", "--skip-tests", "--base", ":release")
    assert json.loads((clone / ".cicd" / "plan.json").read_text())["workflow"] == "data"
    assert "already there (the same files): nothing uploaded" in out
    assert "pipeline.submit: skipped, nothing the run consumes changed" in out
    assert {b.name for b in gcs_client.list_blobs(settings.bucket, prefix="data/")} == before
    assert len(vertex_standin.created_bodies) == 1

    # A truncated row: the build stops at data.upload, naming the line; nothing is uploaded or run.
    runs = len(vertex_standin.created_bodies)
    add_rows(clone, "Chinstrap,49.1\n", "A row cut short")
    out = invoke(clone, env, "ci", "--skip-tests", "--base", ":release", code=4)
    assert "penguins/penguins.csv:" in out and "not 5 fields" in out and "Nothing was uploaded" in out
    assert "Traceback" not in out
    assert {b.name for b in gcs_client.list_blobs(settings.bucket, prefix="data/")} == before
    assert len(vertex_standin.created_bodies) == runs
    git(clone, "reset", "--quiet", "--hard", "HEAD~1")

    # New data and a trainer change together: the modules workflow plus the upload; the schedule moves to both.
    model = clone / TRAINER_FILES["model_module"]
    model.write_text(model.read_text() + "\n# A trainer-only change.\n")
    add_rows(clone, "Adelie,36.6,17.8,185,3700\n", "Tune the model, one more penguin")
    out = invoke(clone, env, "ci", "--skip-tests", "--base", ":release")
    plan = json.loads((clone / ".cicd" / "plan.json").read_text())
    assert plan["workflow"] == "modules"
    assert plan["steps"] == ["test", "modules.upload", "data.upload", "pipeline.submit", "schedule.move"]
    modules = json.loads((clone / ".cicd" / "modules.json").read_text())
    [weekly] = schedules.list_schedules(settings)
    assert weekly.parameters["model_module"] == modules["model_module"]
    assert weekly.parameters["data_root"] == read_latest(gcs_client, settings.resolved_data_root).uri
    assert f"schedule {weekly.id} ('weekly') moved" in out

    # The task faces: what a schedule runs, and a one-off retrain of the released spec on the newest data.
    out = invoke(clone, env, "schedule.list")
    assert "'weekly'  ACTIVE" in out and f"commit {git(clone, 'rev-parse', 'HEAD')[:12]}" in out
    runs = len(vertex_standin.created_bodies)
    out = invoke(clone, env, "pipeline.retrain", "--data", "latest")
    assert len(vertex_standin.created_bodies) == runs + 1
    retrained = vertex_standin.created_bodies[-1]
    latest = read_latest(gcs_client, settings.resolved_data_root)
    assert parameters(retrained)["data_root"] == latest.uri and f"data: {latest.uri}" in out
    assert (
        retrained["labels"]["data_sha"] == latest.sha256[:16] and retrained["labels"]["trigger"] == "retrain"
    )
    assert parameters(retrained)["model_module"] == modules["model_module"], "the released modules"
