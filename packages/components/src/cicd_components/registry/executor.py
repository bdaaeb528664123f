"""ModelRegistryUploader's executor: a local JSON registry, or Vertex AI Model Registry."""

import datetime
import json
import os
from pathlib import Path
from typing import Any

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from cicd_components.files import atomic_write
from cicd_components.labels import vertex_labels

REGISTRY_FILE = "registry.json"


def parse_registry(registry: str) -> tuple[str, str]:
    """("local", folder) or ("vertex", "projects/P/locations/L"); a ValueError naming the fix otherwise."""
    kind, _, where = registry.partition(":")
    if kind == "local" and where:
        return kind, where
    if kind == "vertex":
        parts = where.split("/")
        if len(parts) == 4 and parts[0] == "projects" and parts[2] == "locations" and parts[1] and parts[3]:
            return kind, where
    raise ValueError(
        f"ModelRegistryUploader 'registry' is {registry!r}; use 'local:<folder>' or "
        "'vertex:projects/<project>/locations/<region>'."
    )


def record_local(folder: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Appends `entry` to <folder>/registry.json as the next version of its model; returns the stored entry.

    An entry for the same trained model (`model_uri`) is returned as it is: one model, one version.

    The file is replaced atomically, so a reader never sees half an entry.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, REGISTRY_FILE)
    models: list[dict[str, Any]] = []
    if os.path.exists(path):
        with open(path) as f:
            models = json.load(f)["models"]
    same_name = [m for m in models if m["model_name"] == entry["model_name"]]
    for existing in same_name:
        if entry.get("model_uri") and existing.get("model_uri") == entry["model_uri"]:
            return existing
    versions = [m["version"] for m in same_name]
    stored = {**entry, "version": max(versions, default=0) + 1}
    models.append(stored)
    atomic_write(Path(path), json.dumps({"models": models}, indent=2, sort_keys=True))
    return stored


def record_vertex(parent: str, entry: dict[str, Any], serving_image: str) -> dict[str, Any]:
    """Uploads the pushed model to Vertex AI Model Registry, as a new version when the name exists."""
    from google.cloud import aiplatform  # only imported where it is used: the local runner never needs it

    _, project, _, location = parent.split("/")
    if not serving_image:
        raise ValueError("ModelRegistryUploader needs 'serving_image' to register a model in Vertex AI.")
    existing = aiplatform.Model.list(
        filter=f'display_name="{entry["model_name"]}"', project=project, location=location
    )
    # Model Registry refuses labels outside [a-z0-9_-] (a version "0.1.0" must become "0-1-0").
    model = aiplatform.Model.upload(
        display_name=entry["model_name"],
        artifact_uri=entry["pushed_destination"],
        serving_container_image_uri=serving_image,
        parent_model=existing[0].resource_name if existing else None,
        labels=vertex_labels(entry["labels"]),
        project=project,
        location=location,
    )
    return {**entry, "resource_name": model.resource_name, "version": model.version_id}


def record_outcome(registered: types.Artifact, input_dict: dict[str, list[types.Artifact]]) -> None:
    """The judge's verdict (`blessed`), overall metrics (`metrics`, a JSON object) and each check it made
    (`checks`, a JSON list of lines) on the output."""
    if input_dict.get("blessing"):
        blessing = artifact_utils.get_single_instance(input_dict["blessing"])
        registered.set_int_custom_property("blessed", blessing.get_int_custom_property("blessed"))
    if input_dict.get("evaluation"):
        from cicd_components.evaluation import judged_metrics, verdict_checks

        evaluation = artifact_utils.get_single_uri(input_dict["evaluation"])
        registered.set_string_custom_property(
            "metrics", json.dumps(judged_metrics(evaluation), sort_keys=True)
        )
        checks = verdict_checks(evaluation)
        if checks is not None:
            registered.set_string_custom_property("checks", json.dumps([c["line"] for c in checks]))


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        kind, where = parse_registry(exec_properties["registry"])
        pushed = artifact_utils.get_single_instance(input_dict["pushed_model"])
        registered = artifact_utils.get_single_instance(output_dict["registered_model"])
        record_outcome(registered, input_dict)
        if not pushed.get_int_custom_property("pushed"):
            logging.info("The model was not pushed (not blessed): nothing to register.")
            registered.set_int_custom_property("registered", 0)
            return
        entry = {
            "model_name": exec_properties["model_name"],
            "pushed_destination": pushed.get_string_custom_property("pushed_destination"),
            "pushed_model_uri": pushed.uri,
            "model_uri": artifact_utils.get_single_uri(input_dict["model"])
            if input_dict.get("model")
            else None,
            "registered_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "labels": json.loads(exec_properties.get("labels") or "{}"),
        }
        if kind == "local":
            stored = record_local(where, entry)
        else:
            stored = record_vertex(where, entry, exec_properties.get("serving_image") or "")
        registered.set_int_custom_property("registered", 1)
        registered.set_string_custom_property("registry", exec_properties["registry"])
        registered.set_int_custom_property("version", int(stored["version"]))
        registered.set_string_custom_property("pushed_destination", entry["pushed_destination"])
        if stored.get("resource_name"):  # which Vertex model the version belongs to
            registered.set_string_custom_property("resource_name", stored["resource_name"])
        logging.info("Registered %s version %s in %s", entry["model_name"], stored["version"], where)
