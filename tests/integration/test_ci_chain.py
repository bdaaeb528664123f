"""`invoke ci` end to end on a temporary clone, against the GCS emulator, the Vertex stand-in and podman.

A full build first (no base: image, spec, modules, run, release record). Then:
- a docstring edit in the pipeline's report: the plan says recompile, the spec compiles to the same bytes and
  name, and `pipeline.submit` is skipped because nothing the run consumes changed;
- a change to one trainer module: the chain uploads it under a new content address and submits a run of the
  released spec that uses it, with no image built and no recompile;
- a pipeline change that compiles a new spec: the chain's last step moves the pipeline's schedule to it.
"""

import json
import os
import time
from pathlib import Path

import pytest

from cicd_release.plan.changes import STEPS
from tests.support.checkout import git, invoke

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "127.0.0.1:5000"


@pytest.fixture
def chain_env(clone, gcs_emulator, gcs_client, vertex_standin, docker_host, pinned_tfx_like_base_image):
    bucket = f"ci-{os.getpid()}-{int(time.time())}"
    gcs_client.create_bucket(bucket)
    # No data in the bucket: the first release uploads the checkout's data/penguins as the first snapshot.
    env = {
        **os.environ,
        "INVOKE_CICD_PROJECT": "test-project",
        "INVOKE_CICD_REGION": "us-central1",
        "INVOKE_CICD_BUCKET": bucket,
        # A repository of its own: the chain skips building an image whose content tag is already there.
        "INVOKE_CICD_IMAGE_REPO": f"{REGISTRY}/test-project/{bucket}",
        "INVOKE_CICD_BASE_IMAGE": pinned_tfx_like_base_image,
        "INVOKE_CICD_SERVING_IMAGE": f"europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15@sha256:{'0' * 64}",
        "INVOKE_CICD_SERVICE_ACCOUNT": "vertex-pipelines@test-project.iam.gserviceaccount.com",
        "INVOKE_CICD_API_ENDPOINT": vertex_standin.endpoint,
        "INVOKE_CICD_ANONYMOUS_CREDENTIALS": "true",
        "DOCKER_HOST": docker_host,
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    return env, bucket


def parameters(job: dict) -> dict[str, str]:
    """The run's parameter values: `parameterValues` (IR schema 2.1) or `parameters` (2.0.0, what TFX 1.16 emits)."""
    config = job["runtimeConfig"]
    if "parameterValues" in config:
        return config["parameterValues"]
    return {name: value["stringValue"] for name, value in config["parameters"].items()}


def record(gcs_client, bucket: str) -> dict:
    return json.loads(gcs_client.bucket(bucket).blob("releases/penguin-cicd/latest.json").download_as_bytes())


def test_first_release_then_unchanged_spec_then_a_cancelled_push_is_built_by_the_next(
    clone, chain_env, gcs_client, vertex_standin, docker_client
):
    env, bucket = chain_env
    # What the registry step's executor records on its output, which Vertex keeps as artifact metadata.
    vertex_standin.task_outputs = {
        "ModelRegistryUploader": {
            "registered_model": [
                {
                    "blessed": 1,
                    "registered": 1,
                    "version": 1,
                    "metrics": '{"sparse_categorical_accuracy": 0.97}',
                }
            ]
        }
    }
    follow = ("--wait", "--poll-seconds", "0.05")
    # The whole chain in a fresh interpreter, as Cloud Build starts it: every import its steps need is its own
    # (the tests' other `invoke` processes are forks of one that imported the cloud clients and TFX once).
    out, full_seconds = invoke(clone, env, "ci", "--skip-tests", "--base", ":release", *follow, fresh=True)
    plan = json.loads((clone / ".cicd" / "plan.json").read_text())
    assert plan["workflow"] == "full" and "no release record" in plan["reasons"][0]
    assert any(r.startswith("data.upload added: nothing to train on yet") for r in plan["reasons"]), plan
    for step in STEPS:  # every step of the chain ran (the tests too, saying they were skipped)
        assert f"== {step}: done" in out
    image = json.loads((clone / ".cicd" / "image.json").read_text())["image"]
    assert image.startswith(f"{REGISTRY}/test-project/{bucket}/cicd-components:0.1.0-")
    assert docker_client.images.get(image)  # built and tagged in the engine
    first_modules = json.loads((clone / ".cicd" / "modules.json").read_text())
    [first_job] = vertex_standin.created_bodies
    spec = json.loads((clone / ".cicd" / "spec.json").read_text())
    params = parameters(first_job)
    assert params["model_module"] == first_modules["model_module"]
    assert params["model_module"].startswith(f"gs://{bucket}/modules/")
    head = git(clone, "rev-parse", "HEAD")
    assert first_job["labels"]["commit"] == head[:12]
    assert set(first_job["labels"]) >= {
        "components_version",
        "pipeline_version",
        "release_version",
        "trainer_version",
    }
    # The run trains on the snapshot of the checkout's data the release uploaded, and says so.
    [snapshot] = [b.name for b in gcs_client.list_blobs(bucket, prefix="data/penguins/manifests/")]
    sha = snapshot.rsplit("/", 1)[-1].removesuffix(".json")
    assert params["data_root"] == f"gs://{bucket}/data/penguins/{sha}"
    assert first_job["labels"]["data_sha"] == sha[:16] and f"data_sha {sha[:16]}" in out
    # The registered model version carries the trail too: commit, versions, module and data digests.
    model_labels = json.loads(params["model_labels"])
    assert model_labels["commit"] == head[:12] and model_labels["data_sha"] == sha[:16]
    assert model_labels["model_module_sha"] == first_modules["model_module"].split("/")[-2][:16]
    # The build ends with what the run did, and leaves it where the GitHub job summary picks it up.
    assert "model: BLESSED" in out and "sparse_categorical_accuracy: 0.9700" in out
    assert "registered: version 1" in out
    summaries = [
        b.name for b in gcs_client.list_blobs(bucket, prefix=f"releases/penguin-cicd/summaries/{head}/")
    ]
    assert len(summaries) == 1 and summaries[0].endswith(f"{first_job['_jobId']}.md")
    executors = json.dumps(first_job["pipelineSpec"]["deploymentSpec"])
    assert image in executors, "the spec runs the components in the image just built"
    # Caching stays as compiled: the baseline resolver is never cached (a cached one freezes the baseline).
    tasks = first_job["pipelineSpec"]["root"]["dag"]["tasks"]
    resolver = next(name for name in tasks if "resolver" in name)
    assert not tasks[resolver].get("cachingOptions", {}).get("enableCache"), tasks[resolver]
    assert tasks["Trainer"]["cachingOptions"]["enableCache"] is True
    # A second build of the same content (a full build for a tasks/ change, say) does not move the tag.
    out, _ = invoke(clone, env, "build.image", "--push")
    assert f"{image}: already in the registry" in out and "not rebuilt" in out
    released = record(gcs_client, bucket)
    assert released["commit"] == head and released["inputs"]["spec"] == spec["uri"]
    assert released["run"]["resource_name"].endswith(f"/pipelineJobs/{first_job['_jobId']}")
    # A weekly schedule of this release; each later release moves it (schedule.move).
    from cicd_release.run import schedules
    from tests.support.released import settings_for

    schedule_settings = settings_for(bucket, vertex_standin.endpoint, env["INVOKE_CICD_IMAGE_REPO"])
    schedules.create_schedule(schedule_settings, gcs_client, cron="0 3 * * 1", display_name="weekly")

    # A docstring edit in the report: a pipeline-package change that cannot change the compiled spec.
    report = clone / "packages" / "pipeline" / "src" / "cicd_pipeline" / "report.py"
    report.write_text(
        report.read_text().replace('"""What a local run did', '"""What a local run did (edited)', 1)
    )
    git(clone, "commit", "--quiet", "-am", "Reword the report's docstring")
    out, _ = invoke(clone, env, "ci", "--skip-tests", "--base", ":release")
    plan = json.loads((clone / ".cicd" / "plan.json").read_text())
    assert plan["workflow"] == "pipeline" and "== pipeline.compile: done" in out
    assert json.loads((clone / ".cicd" / "spec.json").read_text())["uri"] == spec["uri"], (
        "same bytes, same name"
    )
    assert "pipeline.submit: skipped, nothing the run consumes changed" in out
    assert len(vertex_standin.created_bodies) == 1, "no Vertex run for a change the run cannot see"
    # The record moves to this commit (it is released by that same run), so later plans diff from here.
    assert (record(gcs_client, bucket)["commit"], record(gcs_client, bucket)["run"]) == (
        git(clone, "rev-parse", "HEAD"),
        released["run"],
    )
    head = git(clone, "rev-parse", "HEAD")

    # Push B changes one trainer module, and its build never runs (GitHub cancelled it as pending behind A);
    # push C changes only the docs. Diffed against the previous push, C would build nothing; diffed against
    # the last release (A), it carries B's change.
    model = clone / "packages" / "trainer" / "src" / "cicd_trainer" / "model.py"
    model.write_text(model.read_text() + "\n# A trainer-only change.\n")
    git(clone, "commit", "--quiet", "-am", "B: tune the model")
    (clone / "docs" / "notes.md").write_text("C: a docs-only push.\n")
    git(clone, "add", "docs/notes.md")
    git(clone, "commit", "--quiet", "-m", "C: docs")
    (clone / ".cicd" / "spec.json").unlink()  # a fresh Cloud Build workspace: the spec comes from the record
    # This build's images only: other test runs may share the engine.
    ours = f"{REGISTRY}/test-project/{bucket}/cicd-components"
    images_before = {i.id for i in docker_client.images.list(name=ours)}
    out, modules_seconds = invoke(clone, env, "ci", "--skip-tests", "--base", ":release")
    plan = json.loads((clone / ".cicd" / "plan.json").read_text())
    assert plan["base"] == head, "the diff starts at the last release, not at the previous push"
    assert plan["workflow"] == "modules" and plan["changed_packages"] == ["trainer"]
    assert "== build.image" not in out and "== pipeline.compile" not in out and "== build.wheels" not in out
    assert {i.id for i in docker_client.images.list(name=ours)} == images_before, "no image was built"
    assert "== build.image" not in out
    second_modules = json.loads((clone / ".cicd" / "modules.json").read_text())
    assert second_modules["model_module"] != first_modules["model_module"]
    assert second_modules["preprocessing_module"] == first_modules["preprocessing_module"]
    second_job = vertex_standin.created_bodies[1]
    assert parameters(second_job)["model_module"] == second_modules["model_module"]
    assert second_job["pipelineSpec"] == first_job["pipelineSpec"], "the same compiled spec, no recompile"
    assert record(gcs_client, bucket)["inputs"]["modules"] == second_modules
    assert record(gcs_client, bucket)["commit"] == git(clone, "rev-parse", "HEAD"), "C is the release now"
    uploaded = gcs_client.bucket(bucket).blob(second_modules["model_module"].split(f"gs://{bucket}/", 1)[1])
    assert uploaded.download_as_bytes() == model.read_bytes()

    # A pipeline-only push whose spec names an image tag that was never pushed (here: an image name the
    # image never went to, in the same repository: a record whose image is outside cicd.image_repo is
    # refused), the plan says "recompile", and the chain builds the missing image first instead of submitting
    # a run that would die pulling it.
    moved = {**env, "INVOKE_CICD_IMAGE_NAME": "cicd-moved"}
    report.write_text(report.read_text() + "\n# D: a pipeline-package edit.\n")
    git(clone, "commit", "--quiet", "-am", "D: pipeline edit")
    out, _ = invoke(clone, moved, "ci", "--skip-tests", "--base", ":release")
    plan = json.loads((clone / ".cicd" / "plan.json").read_text())
    assert plan["workflow"] == "pipeline" and "build.image" in plan["steps"], plan
    assert any(r.startswith("build.image added") for r in plan["reasons"])
    built = json.loads((clone / ".cicd" / "image.json").read_text())["image"]
    assert built.startswith(f"{REGISTRY}/test-project/{bucket}/cicd-moved:") and docker_client.images.get(
        built
    )
    assert built in json.dumps(vertex_standin.created_bodies[-1]["pipelineSpec"]["deploymentSpec"])
    # The release landed a new spec: the schedule now runs it (and the modules of B).
    new_spec = json.loads((clone / ".cicd" / "spec.json").read_text())
    assert new_spec["uri"] != spec["uri"]
    [weekly] = schedules.list_schedules(schedule_settings)
    assert weekly.labels["spec_sha"] == new_spec["name"].removesuffix(".json").rsplit("-", 1)[-1]
    assert weekly.parameters["model_module"] == second_modules["model_module"]
    [stored] = vertex_standin.schedules.schedules.values()
    assert built in json.dumps(
        stored["createPipelineJobRequest"]["pipelineJob"]["pipelineSpec"]["deploymentSpec"]
    )
    assert stored["cron"] == "0 3 * * 1" and "schedule.move: done" in out

    # A run that fails fails the build, says where, and leaves the release record where it was: the next
    # build retries it.
    before = record(gcs_client, bucket)
    vertex_standin.next_outcome = "FAILED"
    out, _ = invoke(clone, moved, "pipeline.submit", "--force", *follow, code=1)
    assert "ended PIPELINE_STATE_FAILED" in out and "Trainer" in out and "FAILED" in out
    assert record(gcs_client, bucket) == before
    print(f"\ninvoke ci wall time: full {full_seconds:.1f} s, modules-only {modules_seconds:.1f} s")
