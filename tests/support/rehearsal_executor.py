"""A stand-in for TFX's container entrypoint in the rehearsal's unit tests: the same contract, no TFX.

Like ``tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`` it takes ``--executor_class_path`` and
``--json_serialized_invocation_args`` (the ExecutorInput, parsed strictly against KFP's proto), runs the
"executor" the class path names, and writes the ExecutorOutput to ``outputs.outputFile``; with ``--driver`` it
plays TFX's file-based ExampleGen driver (the ``preCacheCheck`` hook: the data's fingerprint as a parameter).
A class path it does not know fails as ``import_utils.import_class_by_path`` does. Each run leaves the
ExecutorInput it was given in ``<first output's URI>/executor_input.json`` for the tests to read.
"""

import argparse
import hashlib
import importlib.util
import json
import sys
import time
import types
from pathlib import Path

from google.protobuf import json_format


def _pipeline_spec_pb2():
    """KFP's pipeline-spec protos without KFP's package start-up (its client pulls google-auth and cryptography,
    whose native libraries the container test's Python-only image does not have): the ``kfp`` package is
    registered by its folder, unexecuted, and only ``kfp.pipeline_spec`` is imported."""
    if "kfp" not in sys.modules:
        found = importlib.util.find_spec("kfp")
        package = types.ModuleType("kfp")
        package.__path__ = list(found.submodule_search_locations)
        sys.modules["kfp"] = package
    from kfp.pipeline_spec import pipeline_spec_pb2

    return pipeline_spec_pb2


def _first(artifacts: dict, key: str) -> dict | None:
    found = artifacts.get(key, {}).get("artifacts", [])
    return found[0] if found else None


def gen(executor_input: dict, parameters: dict) -> dict:
    data = Path(parameters["data_root"]) / "data.csv"
    out = Path(_first(executor_input["outputs"]["artifacts"], "examples")["uri"])
    (out / "data.csv").write_text(data.read_text())
    return {"examples": {"span": 0.0, "split_names": '["train", "eval"]'}}


def train(executor_input: dict, parameters: dict) -> dict:
    examples = _first(executor_input["inputs"]["artifacts"], "examples")
    out = Path(_first(executor_input["outputs"]["artifacts"], "model")["uri"])
    rows = (Path(examples["uri"]) / "data.csv").read_text().splitlines()
    (out / "model.json").write_text(
        json.dumps({"rows": len(rows), "hyperparameters": parameters["hyperparameters"]})
    )
    return {"model": {}}


def judge(executor_input: dict, parameters: dict) -> dict:
    inputs = executor_input["inputs"]["artifacts"]
    model, baseline = _first(inputs, "model"), _first(inputs, "baseline_model")
    blessing = Path(_first(executor_input["outputs"]["artifacts"], "blessing")["uri"])
    (blessing / "baseline.json").write_text(json.dumps(baseline))
    blessed = float(parameters["threshold"]) <= 0.5
    (blessing / ("BLESSED" if blessed else "NOT_BLESSED")).write_text("")
    # As TFX's entrypoint leaves an Evaluator's blessing: the model's resource name, numbers as doubles.
    return {
        "blessing": {
            "blessed": 1.0 if blessed else 0.0,
            "current_model_id": model["name"],
            "current_model": model["uri"],
        }
    }


def meet(executor_input: dict, parameters: dict) -> dict:
    """Waits (up to a minute) for the task named ``other`` to be running too: passes only side by side."""
    folder = Path(parameters["rendezvous"])
    (folder / parameters["me"]).write_text("here")
    deadline = time.monotonic() + 60
    while not (folder / parameters["other"]).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{parameters['other']} never ran beside {parameters['me']}")
        time.sleep(0.05)
    return {"examples": {}}


def diverge(executor_input: dict, parameters: dict) -> dict:
    raise ValueError("the model diverged: loss is nan after 3 steps")


EXECUTORS = {
    "fake.Gen": gen,
    "fake.Train": train,
    "fake.Judge": judge,
    "fake.Meet": meet,
    "fake.Diverge": diverge,
}


def driver(executor_input: dict, parameters: dict) -> None:
    """What ExampleGen's preCacheCheck writes: the data's fingerprint, which then enters the cache key."""
    data = Path(parameters["data_root"]) / "data.csv"
    output = {
        "parameterValues": {"input_fingerprint": hashlib.sha256(data.read_bytes()).hexdigest(), "span": 0},
        "parameters": {"input_fingerprint": {"stringValue": hashlib.sha256(data.read_bytes()).hexdigest()}},
    }
    path = Path(executor_input["outputs"]["outputFile"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(output))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executor_class_path")
    parser.add_argument("--json_serialized_invocation_args", required=True)
    parser.add_argument("--driver", action="store_true")
    args, _ = parser.parse_known_args(argv)
    message = _pipeline_spec_pb2().ExecutorInput()
    json_format.Parse(args.json_serialized_invocation_args, message)  # strict: an unknown field fails here
    executor_input = json.loads(args.json_serialized_invocation_args)
    parameters = {
        k: next(iter(v.values())) for k, v in executor_input["inputs"].get("parameters", {}).items()
    }
    if args.driver:
        driver(executor_input, parameters)
        return 0
    if args.executor_class_path not in EXECUTORS:  # as tfx.utils.import_utils.import_class_by_path fails
        module = args.executor_class_path.rsplit(".", 1)[0]
        try:
            raise ModuleNotFoundError(f"No module named {module!r}")
        except ModuleNotFoundError as err:
            raise ImportError(f"Could not import {args.executor_class_path}") from err
    outputs = executor_input["outputs"]["artifacts"]
    first = next(iter(outputs.values()))["artifacts"][0]["uri"]
    Path(first, "executor_input.json").write_text(json.dumps(executor_input))
    metadata = EXECUTORS[args.executor_class_path](executor_input, parameters)
    written = {
        key: {"artifacts": [{"name": a["name"], "uri": a["uri"], "metadata": metadata.get(key, {})}]}
        for key, value in outputs.items()
        for a in value["artifacts"]
    }
    Path(executor_input["outputs"]["outputFile"]).write_text(json.dumps({"artifacts": written}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
