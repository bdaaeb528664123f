"""Custom TFX components of the training pipeline.

Their executors run inside the pipeline's container image, so a change here means a new image.
"""

from cicd_components.anomalies_gate.component import AnomaliesGate
from cicd_components.hyperparameters.component import HyperparametersGen
from cicd_components.registry.component import ModelRegistryUploader

__all__ = ["AnomaliesGate", "HyperparametersGen", "ModelRegistryUploader"]
