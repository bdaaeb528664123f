"""A Beam component started from the Dataflow spec, as Vertex AI Pipelines starts it, hands Beam the Dataflow options.

The spec is compiled with the Dataflow switch's options (cicd_release.core.scale.dataflow_options), and the
CsvExampleGen task's container command runs in a subprocess from it (``tests/support/kfp_executor.py`` builds its
ExecutorInput as the launcher would): TFX's ``kubeflow_v2_run_executor`` parses the arguments after the
ExecutorInput as the Beam arguments and gives them to the executor (``BaseBeamExecutor.Context``), whose
``_make_beam_pipeline`` calls ``beam.Pipeline(argv=...)``.

Beam is stopped there, at the pipeline's construction, before any graph is built or anything contacts Dataflow:
a ``sitecustomize.py`` first on the subprocess's PYTHONPATH replaces ``apache_beam.pipeline.Pipeline.__init__``
with a function that parses the ``argv`` it is given with Beam's own ``PipelineOptions``, runs Beam's own
``PipelineOptionsValidator`` for the ``DataflowRunner`` on them (what the Dataflow runner checks before it submits:
project, region, gs:// temp and staging locations, worker options), writes what it saw to a file and ends the
process with exit code 97. Nothing of the executor's is changed: it reaches Beam exactly as it would on Vertex.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.kfp_executor import (
    build_executor_input,
    find_container_task,
    pythonpath,
    run_container_task,
)

STOPPED_AT_BEAM = 97
IMAGE = "europe-west4-docker.pkg.dev/my-project-123/training/cicd-components:0.1.0-0123456789ab"
ACCOUNT = "vertex-pipelines@my-project-123.iam.gserviceaccount.com"
DATAFLOW = {
    "project": "my-project-123",
    "region": "europe-west4",
    "temp_location": "gs://my-project-123-ml/dataflow/penguin-cicd/temp",
    "staging_location": "gs://my-project-123-ml/dataflow/penguin-cicd/staging",
    "service_account": ACCOUNT,
    "machine_type": "n1-standard-4",
    "max_workers": 4,
    "network": "training",
    "subnetwork": "regions/europe-west4/subnetworks/training",
    "no_public_ips": True,
}


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    """The release chain's compile with the switch on (imports TFX, ~30 s): the settings' options, as made by
    cicd_release.core.scale from INVOKE_CICD_BEAM_RUNNER=dataflow and the project's settings."""
    from cicd_pipeline.runners.vertex import compile_vertex_spec
    from cicd_release.core.scale import dataflow_options
    from cicd_release.core.settings import Settings
    from tests.support.training import shipped_config

    settings = Settings.from_config(
        {
            "project": "my-project-123",
            "region": "europe-west4",
            "bucket": "my-project-123-ml",
            "service_account": ACCOUNT,
            "beam_runner": "dataflow",
            "dataflow_network": "training",
            "dataflow_subnetwork": "regions/europe-west4/subnetworks/training",
            "dataflow_no_public_ips": "true",
        }
    )
    options = dataflow_options(settings)
    assert options == DATAFLOW
    return compile_vertex_spec(
        config=shipped_config(),
        pipeline_root="gs://my-project-123-ml/pipeline_root",
        serving_model_dir="gs://my-project-123-ml/serving_model/penguin-cicd",
        registry="vertex:projects/my-project-123/locations/europe-west4",
        image=IMAGE,
        dataflow=options,
    )


@pytest.fixture
def beam_stop(tmp_path: Path) -> tuple[Path, Path]:
    """(site folder, record file): any interpreter with the folder on its path stops at Beam's pipeline."""
    site, record = tmp_path / "site", tmp_path / "beam_options.json"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f'''"""Written by {__name__}: record the options Beam is handed, then stop before Dataflow is contacted."""
import json
import os
import sys

try:
    import apache_beam.pipeline as _pipeline
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner

    def _stop(self, runner=None, options=None, argv=None, display_data=None):
        parsed = options if options is not None else PipelineOptions(argv or [])
        with open({str(record)!r}, "w") as out:
            json.dump(
                {{
                    "argv": list(argv) if argv is not None else None,
                    "options": parsed.get_all_options(drop_default=True),
                    "dataflow_validation_errors": PipelineOptionsValidator(parsed, DataflowRunner()).validate(),
                }},
                out,
                default=str,
            )
        os._exit({STOPPED_AT_BEAM})

    _pipeline.Pipeline.__init__ = _stop
except Exception as exc:  # site would print this and let Beam run on
    sys.exit(f"sitecustomize could not stop Beam at its pipeline: {{exc!r}}")
'''
    )
    return site, record


def test_example_gen_started_from_the_spec_hands_beam_the_dataflow_options(job, tmp_path, beam_stop):
    site, record = beam_stop
    task = find_container_task(job, "CsvExampleGen")
    data = tmp_path / "data"
    data.mkdir()
    executor_input = build_executor_input(
        job,
        task,
        parameter_values={"data_root": str(data)},
        input_artifacts={},
        task_root=tmp_path
        / "pipeline_root"
        / "123456789012"
        / "penguin-cicd-20241201000000"
        / "CsvExampleGen_1",
    )
    env = {**os.environ, "PYTHONPATH": pythonpath(site), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = run_container_task(task, executor_input, env=env)

    assert done.returncode == STOPPED_AT_BEAM, done.stderr[-4000:]
    seen = json.loads(record.read_text())
    # The executor handed Beam the spec's arguments, in order, between what TFX itself puts around them: the
    # entrypoint's own path first (absl's argv[0], which Beam ignores) and TFX's job labels last
    # (tfx/utils/telemetry_utils.make_beam_labels_args), which Dataflow shows on the job.
    argv = seen["argv"]
    assert argv[0].endswith("kubeflow_v2_run_executor.py")
    labels = argv[14:]
    assert labels[::2] == ["--labels"] * 3 and {label.split("=")[0] for label in labels[1::2]} == {
        "tfx_executor",
        "tfx_py_version",
        "tfx_version",
    }
    assert argv[1:14] == [
        "--runner=DataflowRunner",
        "--project=my-project-123",
        "--region=europe-west4",
        "--temp_location=gs://my-project-123-ml/dataflow/penguin-cicd/temp",
        "--staging_location=gs://my-project-123-ml/dataflow/penguin-cicd/staging",
        f"--service_account_email={ACCOUNT}",
        f"--sdk_container_image={IMAGE}",
        "--experiments=use_runner_v2",
        "--machine_type=n1-standard-4",
        "--max_num_workers=4",
        "--network=training",
        "--subnetwork=regions/europe-west4/subnetworks/training",
        "--no_use_public_ips",
    ]
    # Beam reads them as the options they are meant to be (option names of apache-beam 2.59).
    options = seen["options"]
    assert options["runner"] == "DataflowRunner"
    assert (options["project"], options["region"]) == ("my-project-123", "europe-west4")
    assert options["temp_location"] == DATAFLOW["temp_location"]
    assert options["staging_location"] == DATAFLOW["staging_location"]
    assert options["service_account_email"] == ACCOUNT
    assert options["sdk_container_image"] == IMAGE
    assert "use_runner_v2" in options["experiments"]
    assert (options["machine_type"], options["max_num_workers"]) == ("n1-standard-4", 4)
    assert (options["network"], options["subnetwork"]) == ("training", DATAFLOW["subnetwork"])
    assert options["use_public_ips"] is False
    # And the Dataflow runner's own check of them, before it would submit, finds nothing wrong.
    assert seen["dataflow_validation_errors"] == []
