"""What the tests' warm interpreter imports once (tests/support/warm_python.py): its top-level imports, never
this module itself, and nothing of this repository (a forked `invoke` imports the checkout's packages from its
own path, as a fresh process does).

The third-party modules that `invoke`'s tasks import before they do any work: TensorFlow, TFX, Beam and the
TF libraries for a local run, KFP for a compile, the Google Cloud clients and the docker SDK for the release
chain. A name missing here only costs a forked process its import; one imported here that a fresh process
would import differently (another version on its PYTHONPATH) would be wrong: this list holds only what the
session's venv installs.
"""

import apache_beam  # noqa: F401
import google.cloud.aiplatform  # noqa: F401
import google.cloud.storage  # noqa: F401
import invoke  # noqa: F401
import kfp.dsl  # noqa: F401
import ml_metadata  # noqa: F401
import tensorflow  # noqa: F401
import tensorflow_data_validation  # noqa: F401
import tensorflow_model_analysis  # noqa: F401
import tensorflow_transform  # noqa: F401
import tfx.orchestration.local.local_dag_runner  # noqa: F401
import tfx.v1  # noqa: F401
import yaml  # noqa: F401

import docker  # noqa: F401
