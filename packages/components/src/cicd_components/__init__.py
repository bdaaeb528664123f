"""Custom TFX components of the training pipeline.

Their executors run inside the pipeline's container image, so a change here means a new image.
The components are imported on first use (PEP 562): `cicd_components.labels` alone must not pull in TFX.
"""

import importlib

_EXPORTS = {
    "AnomaliesGate": "cicd_components.anomalies_gate.component",
    "HyperparametersGen": "cicd_components.hyperparameters.component",
    "Judge": "cicd_components.judge.component",
    "ModelRegistryUploader": "cicd_components.registry.component",
    # The artifact type's name is "cicd_components.RegisteredModel": TFX imports the class from it on Vertex.
    "RegisteredModel": "cicd_components.registry.component",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
