"""A small compiled job shaped as TFX compiles one, whose tasks run tests/support/rehearsal_executor.py.

It has what the real spec has, in miniature: an ExampleGen with a preCacheCheck hook and a runtime parameter,
a Trainer, the two resolver tasks TFX compiles LatestBlessedModelStrategy into, and a Judge that takes the
resolved baseline. The rehearsal's unit tests (packages/pipeline/tests/test_rehearsal.py) and its container
test (tests/integration/test_rehearsal_engine.py) rehearse it in a fraction of the real spec's time.
"""

from __future__ import annotations

from pathlib import Path

EXECUTOR = Path(__file__).with_name("rehearsal_executor.py")
PIPELINE = "tiny"
BLESSING_RESOLVER = "latest_blessed_model_resolver-model-blessing-resolver"
MODEL_RESOLVER = "latest_blessed_model_resolver-model-resolver"


def _schema(title: str, **properties: str) -> dict:
    text = f"title: {title}\ntype: object\n"
    if properties:
        text += "properties:\n" + "".join(f"  {k}:\n    type: {v}\n" for k, v in properties.items())
    return {"artifactType": {"instanceSchema": text}}


EXAMPLES = _schema("tfx.Examples", span="integer", split_names="string")
MODEL = _schema("tfx.Model")
BLESSING = _schema("tfx.ModelBlessing")


def container(executor_class: str, driver: bool = False) -> dict:
    container = {
        "image": "example.com/p/components:1.0-abc",
        "command": ["python", str(EXECUTOR)],
        "args": ["--executor_class_path", executor_class, "--json_serialized_invocation_args", "{{$}}"],
    }
    if driver:
        container["lifecycle"] = {
            "preCacheCheck": {
                "command": ["python", str(EXECUTOR)],
                "args": ["--driver", "--json_serialized_invocation_args", "{{$}}"],
            }
        }
    return {"container": container}


def string(value: str) -> dict:
    return {"runtimeValue": {"constantValue": {"stringValue": value}}}


def tiny_job() -> dict:
    """A compiled job (schema 2.0.0, as TFX's KubeflowV2DagRunner writes it) of five tasks."""
    tasks = {
        "ExampleGen": {
            "cachingOptions": {"enableCache": True},
            "componentRef": {"name": "ExampleGen"},
            "inputs": {"parameters": {"data_root": {"componentInputParameter": "data_root"}}},
            "taskInfo": {"name": "ExampleGen"},
        },
        "Trainer": {
            "cachingOptions": {"enableCache": True},
            "componentRef": {"name": "Trainer"},
            "dependentTasks": ["ExampleGen"],
            "inputs": {
                "artifacts": {
                    "examples": {
                        "taskOutputArtifact": {"outputArtifactKey": "examples", "producerTask": "ExampleGen"}
                    }
                },
                "parameters": {"hyperparameters": {"componentInputParameter": "hyperparameters"}},
            },
            "taskInfo": {"name": "Trainer"},
        },
        BLESSING_RESOLVER: {
            "componentRef": {"name": BLESSING_RESOLVER},
            "taskInfo": {"name": BLESSING_RESOLVER},
        },
        MODEL_RESOLVER: {
            "componentRef": {"name": MODEL_RESOLVER},
            "inputs": {
                "artifacts": {
                    "input": {
                        "taskOutputArtifact": {
                            "outputArtifactKey": "model_blessing",
                            "producerTask": BLESSING_RESOLVER,
                        }
                    }
                }
            },
            "taskInfo": {"name": MODEL_RESOLVER},
        },
        "Evaluator": {
            "cachingOptions": {"enableCache": True},
            "componentRef": {"name": "Evaluator"},
            "dependentTasks": ["Trainer", MODEL_RESOLVER],
            "inputs": {
                "artifacts": {
                    "model": {
                        "taskOutputArtifact": {"outputArtifactKey": "model", "producerTask": "Trainer"}
                    },
                    "baseline_model": {
                        "taskOutputArtifact": {"outputArtifactKey": "model", "producerTask": MODEL_RESOLVER}
                    },
                },
                "parameters": {
                    "threshold": string("0.5"),
                    "registry": string("vertex:projects/p/locations/r"),
                },
            },
            "taskInfo": {"name": "Evaluator"},
        },
    }
    components = {
        "ExampleGen": {
            "executorLabel": "ExampleGen_executor",
            "inputDefinitions": {"parameters": {"data_root": {"type": "STRING"}}},
            "outputDefinitions": {"artifacts": {"examples": EXAMPLES}},
        },
        "Trainer": {
            "executorLabel": "Trainer_executor",
            "inputDefinitions": {
                "artifacts": {"examples": EXAMPLES},
                "parameters": {"hyperparameters": {"type": "STRING"}},
            },
            "outputDefinitions": {"artifacts": {"model": MODEL}},
        },
        BLESSING_RESOLVER: {
            "executorLabel": f"{BLESSING_RESOLVER}_executor",
            "outputDefinitions": {"artifacts": {"model_blessing": BLESSING}},
        },
        MODEL_RESOLVER: {
            "executorLabel": f"{MODEL_RESOLVER}_executor",
            "inputDefinitions": {"artifacts": {"input": BLESSING}},
            "outputDefinitions": {"artifacts": {"model": MODEL}},
        },
        "Evaluator": {
            "executorLabel": "Evaluator_executor",
            "inputDefinitions": {
                "artifacts": {"model": MODEL, "baseline_model": MODEL},
                "parameters": {"threshold": {"type": "STRING"}, "registry": {"type": "STRING"}},
            },
            "outputDefinitions": {"artifacts": {"blessing": BLESSING}},
        },
    }
    executors = {
        "ExampleGen_executor": container("fake.Gen", driver=True),
        "Trainer_executor": container("fake.Train"),
        "Evaluator_executor": container("fake.Judge"),
        f"{BLESSING_RESOLVER}_executor": {
            "resolver": {
                "outputArtifactQueries": {
                    "model_blessing": {
                        "filter": 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
                    }
                }
            }
        },
        f"{MODEL_RESOLVER}_executor": {
            "resolver": {
                "outputArtifactQueries": {
                    "model": {
                        "filter": 'schema_title="tfx.Model" AND state=LIVE AND '
                        "name=\"{{$.inputs.artifacts['input'].metadata['current_model_id']}}\""
                    }
                }
            }
        },
    }
    return {
        "displayName": PIPELINE,
        "pipelineSpec": {
            "pipelineInfo": {"name": PIPELINE},
            "schemaVersion": "2.0.0",
            "root": {
                "dag": {"tasks": tasks},
                "inputDefinitions": {
                    "parameters": {"data_root": {"type": "STRING"}, "hyperparameters": {"type": "STRING"}}
                },
            },
            "components": components,
            "deploymentSpec": {"executors": executors},
        },
        "runtimeConfig": {"gcsOutputDirectory": "gs://bucket/pipeline_root"},
    }
