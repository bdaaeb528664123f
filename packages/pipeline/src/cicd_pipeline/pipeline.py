"""`create_pipeline()`: the training pipeline as a pure factory (typed parameters in, a TFX pipeline out).

Runners own the environment (roots, metadata, Beam arguments); nothing here reads the environment.
Any argument typed ``Param[...]`` may be a ``RuntimeParameter``: the Vertex AI compile uses that for the module
files, the schema, the data and the hyperparameters, so a change of those needs a new run, not a new spec.
"""

from typing import TypeVar

import tensorflow_model_analysis as tfma
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from tfx.components import CsvExampleGen, ExampleValidator, Pusher, StatisticsGen, Trainer, Transform
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration.data_types import RuntimeParameter
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from cicd_components import AnomaliesGate, HyperparametersGen, Judge, ModelRegistryUploader
from cicd_components.fast_csv.executor import Executor as FastCsvExecutor
from cicd_components.judge.verdict import METRICS, TASK_METRICS
from cicd_pipeline import bigquery_source
from cicd_pipeline.config import HYPERPARAMETER_TYPES, TASKS, module_config
from cicd_pipeline.vertex_training import TrainerBackend

T = TypeVar("T")
Param = T | RuntimeParameter


def eval_config(
    metric: str, threshold: float, transformed_label: str, prediction_key: str, per_class: str | None = None
) -> tfma.EvalConfig:
    """TFMA config: the judge's metric and the example count, overall and (with `per_class`, the raw label of a
    classification) per class; the threshold is the first of the Judge's checks (the no-regression rule, whose
    tolerance follows from the size of the set, is the Judge's: verdict.py). The Judge checks the overall slice
    alone; the per-class slices are for reading.

    `transformed_label` and `prediction_key` are the names the module files were told (config.module_config):
    the label as the model's `transform_features` signature gives it, and the serving output to score.
    """
    judged = METRICS[metric]
    bound = {"lower_bound" if judged.higher_is_better else "upper_bound": {"value": threshold}}
    measure = tfma.MetricConfig(
        class_name=judged.class_name,
        threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(**bound)),
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                prediction_key=prediction_key,
                label_key=transformed_label,
                # The label is a Transform output: TFMA runs the model's transform_features signature first.
                preprocessing_function_names=["transform_features"],
            )
        ],
        # The overall slice, which the judge's checks read, and one slice per class of the label: each class's
        # metric, which `invoke compare` shows for base and head (cicd_components.evaluation.slice_metrics).
        slicing_specs=[
            tfma.SlicingSpec(),
            *([tfma.SlicingSpec(feature_keys=[per_class])] if per_class else []),
        ],
        metrics_specs=[tfma.MetricsSpec(metrics=[measure, tfma.MetricConfig(class_name="ExampleCount")])],
    )


def csv_executor(beam_pipeline_args: list[str] | None) -> executor_spec.BeamExecutorSpec | None:
    """CsvExampleGen's executor: the components' fast one (pyarrow's reader, tfx_bsl's encoder, the files
    written without Beam) where the executor's own process does the work, locally and in a Vertex task with
    Beam's DirectRunner; None, TFX's own, when the Beam runner is Dataflow, whose workers do the parsing.
    Either writes the same examples in the same splits (packages/components/tests/test_fast_csv.py)."""
    runner = PipelineOptions(list(beam_pipeline_args or [])).view_as(StandardOptions).runner or ""
    if "dataflow" in runner.lower():
        return None
    return executor_spec.BeamExecutorSpec(FastCsvExecutor)


def csv_example_gen(reader: executor_spec.BeamExecutorSpec | None, **arguments) -> CsvExampleGen:
    """TFX's CsvExampleGen (its driver, span, version, fingerprint, split configs, artifacts) with `reader` as
    its executor when given. CsvExampleGen's constructor takes no custom_executor_spec (FileBasedExampleGen's
    does, and CsvExampleGen does not pass it on), so the spec is set on the built node, as TFX's own
    with_beam_pipeline_args sets its arguments."""
    component = CsvExampleGen(**arguments)
    if reader is not None:
        component.executor_spec = reader.copy()
    return component


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_root: Param[str],
    schema_file: Param[str],
    preprocessing_module: Param[str],
    model_module: Param[str],
    hyperparameters: Param[str],
    serving_model_dir: str,
    registry: str,
    model_name: str,
    train_steps: int,
    eval_steps: int,
    label: str,
    threshold: float,
    task: str = "classification",
    metric: str = "",
    holdout_root: Param[str] | None = None,
    regression_tolerance: float | None = None,
    min_examples_per_split: int = 0,
    min_examples_per_class: int = 0,
    serving_image: str | None = None,
    registry_labels: Param[str] | None = None,
    trainer_backend: TrainerBackend | None = None,
    enable_cache: bool = True,
    metadata_connection_config=None,
    beam_pipeline_args: list[str] | None = None,
    bigquery_query: Param[str] | None = None,
) -> Pipeline:
    """The training pipeline of whatever data and module files it is given.

    `label` is the column to predict and `task` classification or regression: both reach the module files as
    their `custom_config` (config.module_config), the data gate and the judge. `metric` (empty: the task's own,
    accuracy or rmse) and `threshold` are the judge's.
    `holdout_root` is a folder of CSV files that new data does not replace: candidate and baseline are also
    scored there, and the no-regression check is made there (bad new data corrupts its own eval split).
    `regression_tolerance` None derives the tolerance from the size of the set (one standard error).
    `bigquery_query` (bigquery_source.windowed_query, or a RuntimeParameter of its input_config JSON) reads the
    rows from BigQuery in place of data_root's CSV files; the same curated schema and data gate then judge them.
    `registry_labels` is a JSON object of labels the registered model version carries (commit, package
    versions, module and data digests): the trail from a model back to the code and data that made it.
    `trainer_backend` None trains in the pipeline's own process; a backend trains in a Vertex AI custom job.
    """
    if not label:
        raise ValueError("No label column: set training.label in invoke.yaml (`invoke init` writes it).")
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}.")
    metric = metric or TASK_METRICS[task][0]
    custom_config = module_config(label, task)
    # CsvExampleGen's executor, for the training data and the holdout alike.
    reader = csv_executor(beam_pipeline_args)
    # Reads the CSV files under data_root (or the BigQuery query's rows) and splits them 2:1 into train and eval.
    if bigquery_query is not None:
        example_gen = bigquery_source.example_gen(bigquery_query)
    else:
        example_gen = csv_example_gen(reader, input_base=data_root)
    # Per-split feature statistics, for validation and for the run report.
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    # The curated schema committed in the repo: the contract the data must meet.
    schema_gen = ImportSchemaGen(schema_file=schema_file)
    # Finds where the data breaks that contract (types, presence, domains); it reports, the gate stops.
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    # The latest blessed model, the baseline the new one must not regress from.
    model_resolver = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    # Stops the run on anomalies, too few examples, a class too few of its own, or data whose distributions
    # (the label's too) drifted from the data that trained the blessed model: nothing is trained on data that
    # breaks the schema or cannot judge a model.
    anomalies_gate = AnomaliesGate(
        anomalies=example_validator.outputs["anomalies"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        min_examples_per_split=min_examples_per_split,
        min_examples_per_class=min_examples_per_class,
        label_feature=label,
        baseline_blessing=model_resolver.outputs["model_blessing"],
    )
    # Imputes, scales and encodes the features; the same graph is saved into the model for serving.
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        module_file=preprocessing_module,
        # The label and the task: preprocessing_fn(inputs, custom_config) reads them from here.
        custom_config=custom_config,
        # Transform's own statistics of the data before and after (TFDV in its Beam graph) and its analyzer
        # cache are read by nothing here: StatisticsGen already feeds the checks, and no later Transform is
        # handed the cache. Without them its Beam graph is about a third smaller (docs/performance.md).
        disable_statistics=True,
        disable_analyzer_cache=True,
    )
    transform.add_upstream_node(anomalies_gate)
    # The hyperparameters of this run, from a pipeline parameter, checked against the model's keys and types.
    hyperparameters_gen = HyperparametersGen(values=hyperparameters, known=HYPERPARAMETER_TYPES)
    # Trains the Keras model of the trainer's model module: here, or in a Vertex AI custom job when a backend
    # says so (TFX's extension Trainer submits the job; its worker runs TFX's own Trainer executor).
    trainer_class = Trainer
    if trainer_backend is not None:
        # TFX's Google Cloud extension, imported only here: it loads the Vertex AI client, which a local run
        # never needs (`tfx.v1` would load it for every run: about 2 s of CPU).
        from tfx.extensions.google_cloud_ai_platform.trainer.component import Trainer as VertexTrainer

        trainer_class = VertexTrainer
    trainer = trainer_class(
        module_file=model_module,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=hyperparameters_gen.outputs["hyperparameters"],
        train_args=trainer_pb2.TrainArgs(num_steps=train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=eval_steps),
        # run_fn reads the label, the task and its output names from fn_args.custom_config; the extension
        # Trainer reads the custom job's region, project and worker pools from the same dict.
        custom_config={**custom_config, **(trainer_backend.custom_config() if trainer_backend else {})},
    )
    # The fixed holdout set, one split of its own: new data never replaces it, so bad data cannot corrupt
    # the judge as well as the model.
    holdout_gen = (
        csv_example_gen(
            reader,
            input_base=holdout_root,
            input_config=example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name="holdout", pattern="*.csv")]
            ),
            # One output split with all the rows (one input split alone would be hashed 2:1 by default).
            output_config=example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[example_gen_pb2.SplitConfig.Split(name="holdout", hash_buckets=1)]
                )
            ),
        ).with_id("HoldoutExampleGen")
        if holdout_root is not None
        else None
    )
    # Blesses the model if its metric meets the threshold on the eval split and the holdout, and does not
    # regress from the baseline on the holdout (TFX's Evaluator twice, one blessing; the node keeps its name).
    evaluator = Judge(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        holdout_examples=holdout_gen.outputs["examples"] if holdout_gen else None,
        statistics=statistics_gen.outputs["statistics"],
        eval_config=eval_config(
            metric,
            threshold,
            custom_config["transformed_label"],
            custom_config["prediction_key"],
            per_class=custom_config["label"] if custom_config["task"] == "classification" else None,
        ),
        metric=metric,
        threshold=threshold,
        regression_tolerance=regression_tolerance,
    ).with_id("Evaluator")
    # Copies a blessed model to the serving location; does nothing for a model that was not blessed.
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_model_dir)
        ),
    )
    # Records the pushed model in the model registry, as a new version of `model_name`.
    registry_uploader = ModelRegistryUploader(
        pushed_model=pusher.outputs["pushed_model"],
        model=trainer.outputs["model"],
        blessing=evaluator.outputs["blessing"],
        evaluation=evaluator.outputs["evaluation"],
        registry=registry,
        model_name=model_name,
        serving_image=serving_image,
        labels=registry_labels,
    )
    return Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            model_resolver,
            anomalies_gate,
            transform,
            hyperparameters_gen,
            trainer,
            *([holdout_gen] if holdout_gen else []),
            evaluator,
            pusher,
            registry_uploader,
        ],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
