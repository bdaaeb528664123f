"""A release already in the bucket, made without TFX or an image: a small spec with the pipeline's runtime
parameters, uploaded modules, a data snapshot and the release record, as the chain leaves them.

For the tests of what runs after a release (retrain, schedules), which need the state a release leaves, not
the minutes of compiling and building it (tests/integration/test_ci_chain.py covers that).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from cicd_pipeline.run_inputs import RUNTIME_PARAMETERS
from cicd_release.artifacts.naming import spec_digest
from cicd_release.core.settings import Settings
from cicd_release.plan.release_state import MODULE_FILES
from cicd_release.publish.snapshots import upload_snapshot
from cicd_release.publish.storage import upload_content_addressed, upload_immutable, write_json_object

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "packages" / "trainer" / "src" / "cicd_trainer" / "schema" / "schema.pbtxt"
SHIPPED_CSV = ROOT / "data" / "penguins" / "penguins.csv"
SERVICE_ACCOUNT = "vertex-pipelines@test-project.iam.gserviceaccount.com"
# The repository a release's image comes from: release_state refuses a record whose image is elsewhere.
REPO = "127.0.0.1:5000/test-project/training"
IMAGE = f"{REPO}/cicd-components:0.1.0-abc"
VERSIONS = {"components": "0.1.0", "pipeline": "0.1.0", "release": "0.1.0", "trainer": "0.1.0"}


def spec(name: str = "penguin-cicd", image: str = IMAGE) -> dict[str, Any]:
    """A compiled-job-shaped document: one task, the pipeline's STRING parameters, schema 2.1."""
    return {
        "displayName": name,
        "pipelineSpec": {
            "pipelineInfo": {"name": name},
            "schemaVersion": "2.1.0",
            "sdkVersion": "tfx-1.16.0",
            "root": {
                "inputDefinitions": {
                    "parameters": {p: {"parameterType": "STRING"} for p in RUNTIME_PARAMETERS}
                },
                "dag": {
                    "tasks": {
                        "CsvExampleGen": {
                            "taskInfo": {"name": "CsvExampleGen"},
                            "componentRef": {"name": "comp-gen"},
                            "inputs": {
                                "parameters": {"input_base": {"componentInputParameter": "data_root"}}
                            },
                            "cachingOptions": {"enableCache": True},
                        }
                    }
                },
            },
            "components": {
                "comp-gen": {
                    "executorLabel": "exec-gen",
                    "inputDefinitions": {"parameters": {"input_base": {"parameterType": "STRING"}}},
                }
            },
            "deploymentSpec": {
                "executors": {"exec-gen": {"container": {"image": image, "command": ["true"]}}}
            },
        },
        "runtimeConfig": {"gcsOutputDirectory": "gs://placeholder/pipeline_root"},
    }


def spec_name(job: dict[str, Any]) -> str:
    """The name the compile gives a spec: release_state checks that its bytes hash to it."""
    return f"penguin-cicd-0.1.0-{spec_digest(job)[:16]}.json"


def settings_for(bucket: str, endpoint: str, image_repo: str = REPO) -> Settings:
    return Settings(
        project="test-project",
        region="us-central1",
        bucket=bucket,
        image_repo=image_repo,
        service_account=SERVICE_ACCOUNT,
        api_endpoint=endpoint,
        anonymous_credentials=True,
    )


def data_folder(folder: Path, extra_rows: int = 0) -> Path:
    """The shipped penguins, with ``extra_rows`` more rows: new data with the same schema."""
    folder.mkdir(parents=True, exist_ok=True)
    text = SHIPPED_CSV.read_text() + "".join(f"Gentoo,4{i % 10}.5,14.8,212,5200\n" for i in range(extra_rows))
    (folder / "penguins.csv").write_text(text)
    return folder


def release(
    client,
    settings: Settings,
    tmp_path: Path,
    *,
    commit: str,
    variant: str = "a",
    generation: int | None = None,
) -> dict[str, Any]:
    """Uploads a spec and modules named by ``variant`` and writes the release record for ``commit``; the data
    is the data set's LATEST (uploading the shipped data first if there is none). Returns the record."""
    from cicd_release.core.errors import MissingData
    from cicd_release.plan.release_state import read_record
    from cicd_release.publish.snapshots import resolve

    folder = tmp_path / f"release-{variant}"
    folder.mkdir(parents=True, exist_ok=True)
    job = spec()
    job["pipelineSpec"]["pipelineInfo"]["description"] = f"variant {variant}"
    spec_file = folder / "spec.json"
    spec_file.write_text(json.dumps(job))
    spec_uri = upload_immutable(client, spec_file, f"{settings.specs_prefix}/{spec_name(job)}")
    files = {}
    for parameter, name in MODULE_FILES.items():
        path = folder / name
        path.write_text(f"# {parameter} of variant {variant}\n")
        files[parameter] = path
    modules = upload_content_addressed(client, settings.modules_prefix, files)
    try:
        data = resolve(client, settings.resolved_data_root)
    except MissingData:
        upload_snapshot(
            client, settings.resolved_data_root, data_folder(tmp_path / "data0" / "penguins"), SCHEMA
        )
        data = resolve(client, settings.resolved_data_root)
    last = read_record(settings, client)
    current, uri = last.generation, last.uri
    record = {
        "commit": commit,
        "versions": dict(VERSIONS),
        "inputs": {
            "spec": spec_uri,
            "image": job["pipelineSpec"]["deploymentSpec"]["executors"]["exec-gen"]["container"]["image"],
            "modules": modules,
            "data_root": data.uri,
            "data_digest": data.digest,
            "hyperparameters": "{}",
        },
        "run": {
            "resource_name": f"projects/test-project/locations/us-central1/pipelineJobs/release-{variant}"
        },
    }
    write_json_object(client, uri, record, if_generation_match=current if generation is None else generation)
    return copy.deepcopy(record)
