"""The training config the committed invoke.yaml describes (the shipped penguins), as `invoke run` reads it."""

from pathlib import Path

import yaml

from cicd_pipeline.config import TrainingConfig

ROOT = Path(__file__).resolve().parents[2]


def shipped_config(root: Path = ROOT, **overrides) -> TrainingConfig:
    """TrainingConfig from `root/invoke.yaml` (training:, and cicd.pipeline_name as tasks/_common does)."""
    data = yaml.safe_load((root / "invoke.yaml").read_text()) or {}
    values = dict(data.get("training") or {})
    name = (data.get("cicd") or {}).get("pipeline_name")
    if name:
        values["pipeline_name"] = name
    return TrainingConfig(**{**values, **overrides})
