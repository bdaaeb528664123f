"""A pipeline whose Trainer runs as a Vertex AI custom job, end to end to the judge, on the Vertex stand-in.

The pipeline is the real one (`create_pipeline` through the local runner, `run_local`) with a Vertex AI Training
backend: its Trainer is TFX's Google Cloud extension Trainer, whose executor builds the CustomJob, submits it
with the real gapic ``JobServiceClient``, polls it every 30 s (TFX's ``_POLLING_INTERVAL_IN_SECONDS``, left as it
is) and fails the node if the job fails. The stand-in validates the job as Vertex does and runs its primary
replica's command, TFX's ``python -m tfx.scripts.run_executor ...`` worker line, as a local process; that worker
trains the model into the Trainer's output, and the Evaluator (the judge) then reaches a verdict on it.

Pointing the client at the stand-in, at the boundary only: TFX builds ``gapic.JobServiceClient(client_options=
{"api_endpoint": "<region>-aiplatform.googleapis.com"})``, which takes gRPC by default and has no endpoint
setting in the environment. A ``sitecustomize.py`` first on the run's PYTHONPATH wraps that client's
constructor in the run's process only: it checks TFX asked for the region's Vertex endpoint, then gives the
stand-in's URL, the REST transport (the stand-in speaks Vertex's REST protocol, not gRPC) and anonymous
credentials. Nothing else of TFX or the client is touched: the request, its encoding, the polling and the
error mapping are theirs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.kfp_executor import pythonpath
from tests.support.training import ROOT, shipped_config
from tests.support.vertex_standin import VertexStandIn

PROJECT, REGION = "test-project", "us-central1"
IMAGE = "127.0.0.1:5000/p/r/cicd-components:0.1.0-0123456789ab"
WORKER = ["python", "-m", "tfx.scripts.run_executor", "--executor_class_path"]

RUN = """
import json, sys
from pathlib import Path

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.runners.local import LocalInputs, LocalLayout, run_local
from cicd_pipeline.vertex_training import TrainerBackend

root, checkout, config = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
backend = TrainerBackend(project={project!r}, region={region!r}, image={image!r}, machine_type="n1-standard-4")
run_local(
    LocalLayout(Path(root)),
    LocalInputs.in_checkout(checkout, checkout / "data" / "penguins"),
    TrainingConfig(**config),
    trainer_backend=backend,
)
"""


@pytest.fixture
def standin_site(tmp_path: Path, vertex_standin: VertexStandIn) -> Path:
    """A directory whose sitecustomize.py aims TFX's JobServiceClient at the stand-in, over REST."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f'''"""Written by {__name__}: Vertex AI Training's JobServiceClient talks to the stand-in, never to Google."""
import sys

try:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform_v1.services.job_service import client as job_service

    _init = job_service.JobServiceClient.__init__

    def _to_standin(self, *args, client_options=None, **kwargs):
        asked = dict(client_options or {{}}).get("api_endpoint")
        if asked != "{REGION}-aiplatform.googleapis.com":
            raise RuntimeError(f"JobServiceClient asked for endpoint {{asked!r}}, not the region's Vertex endpoint")
        kwargs.update(credentials=AnonymousCredentials(), transport="rest")
        _init(self, *args, client_options={{"api_endpoint": {vertex_standin.endpoint!r}}}, **kwargs)

    job_service.JobServiceClient.__init__ = _to_standin
except Exception as exc:  # site would print this and run on towards the real endpoint
    sys.exit(f"sitecustomize could not aim JobServiceClient at the stand-in: {{exc!r}}")
'''
    )
    return site


def test_the_trainer_runs_as_a_custom_job_and_the_judge_reaches_a_verdict(
    tmp_path: Path, vertex_standin: VertexStandIn, standin_site: Path
):
    from cicd_pipeline.report import summarize_run

    vertex_standin.custom_jobs.log_dir = tmp_path
    config = shipped_config()
    layout = tmp_path / "run"
    ran = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN.format(project=PROJECT, region=REGION, image=IMAGE),
            str(layout),
            str(ROOT),
            json.dumps(dataclasses.asdict(config)),
        ],
        env={**os.environ, "PYTHONPATH": pythonpath(standin_site)},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    logs = "\n".join(p.read_text()[-3000:] for p in vertex_standin.custom_jobs.logs.values())
    assert ran.returncode == 0, f"{ran.stderr[-4000:]}\n--- custom job ---\n{logs}"

    # One custom job, as TFX built it: the settings' machine and the components image, TFX's worker line.
    [(name, job)] = vertex_standin.custom_jobs.jobs.items()
    assert name.startswith(f"projects/{PROJECT}/locations/{REGION}/customJobs/")
    assert job["state"] == "JOB_STATE_SUCCEEDED", logs
    [pool] = job["jobSpec"]["workerPoolSpecs"]
    assert pool["machineSpec"] == {"machineType": "n1-standard-4"}
    assert pool["replicaCount"] == "1"  # int64: a string in proto JSON
    assert pool["containerSpec"]["imageUri"] == IMAGE
    command = pool["containerSpec"]["command"]
    assert command[: len(WORKER)] == WORKER
    assert command[len(WORKER)] == "tfx.components.trainer.executor.GenericExecutor"
    assert job["displayName"].startswith("tfx_")

    # The judge's verdict on the model the custom job trained.
    summary = summarize_run(layout / "metadata.sqlite", config.pipeline_name)
    states = {c.node: c.state for c in summary.components}
    assert states["Trainer"] == states["Evaluator"] == "COMPLETE"
    assert summary.checks, "the judge made no check"
    assert summary.blessed is True, summary.refusals
    assert summary.metrics["sparse_categorical_accuracy"] >= config.accuracy_threshold
    models = list((layout / "pipeline_root").glob("Trainer/model/*/Format-Serving/saved_model.pb"))
    assert len(models) == 1
