"""ModelRegistryUploader: records the model that Pusher pushed in a model registry."""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from cicd_components.registry import executor


class RegisteredModel(types.Artifact):
    """Where a pushed model was registered (a local registry entry or a Vertex AI model version)."""

    # On Vertex, TFX's container entrypoint imports a custom artifact class from its type name, so the name
    # must be `<importable module>.<Class>` (TFX allows one dot): "cicd.RegisteredModel" failed every run at
    # this step before its executor started (tests/integration/test_vertex_executor.py).
    TYPE_NAME = "cicd_components.RegisteredModel"


class ModelRegistryUploaderSpec(ComponentSpec):
    PARAMETERS = {
        # "local:<folder>" (a registry.json in that folder) or "vertex:projects/<project>/locations/<region>".
        "registry": ExecutionParameter(type=str),
        # The model's name in the registry; each registration of the same name is a new version.
        "model_name": ExecutionParameter(type=str),
        # Vertex AI only: the serving container that Model Registry records for the model.
        "serving_image": ExecutionParameter(type=str, optional=True),
        # A JSON object of labels (e.g. commit and package versions) stored with the entry.
        "labels": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        # Pusher's output: says whether the model was pushed (blessed) and where to.
        "pushed_model": ChannelParameter(type=standard_artifacts.PushedModel),
        # The trained model that was pushed: a model already in the registry is not registered again (a
        # re-run that re-evaluates and re-pushes the same model keeps one version).
        "model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        # The Evaluator's verdict and numbers, recorded on the output so a run's outcome can be read back
        # from the orchestrator (Vertex keeps each output artifact's properties) without reading files.
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
    }
    OUTPUTS = {
        "registered_model": ChannelParameter(type=RegisteredModel),
    }


class ModelRegistryUploader(base_component.BaseComponent):
    """Registers the pushed model; a model that was not pushed (not blessed) is not registered."""

    SPEC_CLASS = ModelRegistryUploaderSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        pushed_model: types.BaseChannel,
        registry: str,
        model_name: str,
        model: types.BaseChannel | None = None,
        serving_image: str | None = None,
        labels=None,
        blessing: types.BaseChannel | None = None,
        evaluation: types.BaseChannel | None = None,
    ):
        """`pushed_model` from Pusher; `model` to register a trained model once; `blessing` and `evaluation`
        from the Evaluator, recorded on the output; `labels` a JSON object string (or a RuntimeParameter)."""
        super().__init__(
            spec=ModelRegistryUploaderSpec(
                pushed_model=pushed_model,
                model=model,
                blessing=blessing,
                evaluation=evaluation,
                registry=registry,
                model_name=model_name,
                serving_image=serving_image,
                labels=labels,
                registered_model=types.Channel(type=RegisteredModel),
            )
        )
