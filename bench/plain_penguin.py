"""The baseline: the penguin pipeline as TFX's own example writes it (tfx/examples/penguin/penguin_pipeline_local.py).

Same data, schema, module files, step counts and evaluation as `invoke run`, and TFX's ways left as they are:
module files packed into wheels and pip-installed by each executor, Beam's DirectRunner with the example's
`--direct_running_mode=multi_processing --direct_num_workers=0`, no run stamp. It does less than ours: no data
gate, HyperparametersGen or registry record (near free), and TFX's Evaluator once, where ours also reads the
holdout set (HoldoutExampleGen) and its judge evaluates candidate and baseline on it too.

    python bench/plain_penguin.py --root DIR [--checkout DIR] [--fresh]

Prints `pipeline wall: S s` and one line per component (executed or cached), for bench/run.py.
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINER = Path("packages/trainer/src/cicd_trainer")
# What the module files are handed (their custom_config), as ours hands them: the penguins' label.
CUSTOM_CONFIG = {
    "label": "species",
    "task": "classification",
    "transformed_label": "species_xf",
    "prediction_key": "probabilities",
}
# The TFX penguin example's DirectRunner settings.
BEAM_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]


def create_pipeline(root: Path, checkout: Path, data_root: Path):
    import tensorflow_model_analysis as tfma
    from tfx import v1 as tfx

    example_gen = tfx.components.CsvExampleGen(input_base=str(data_root))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(
        schema_file=str(checkout / TRAINER / "schema" / "schema.pbtxt")
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        module_file=str(checkout / TRAINER / "preprocessing.py"),
        custom_config=CUSTOM_CONFIG,
    )
    trainer = tfx.components.Trainer(
        module_file=str(checkout / TRAINER / "model.py"),
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=200),
        eval_args=tfx.proto.EvalArgs(num_steps=50),
        custom_config=CUSTOM_CONFIG,
    )
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    eval_config = tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                prediction_key="probabilities",
                label_key="species_xf",
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(
                        class_name="SparseCategoricalAccuracy",
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.6}),
                            change_threshold=tfma.GenericChangeThreshold(
                                direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -0.02}
                            ),
                        ),
                    ),
                    tfma.MetricConfig(class_name="ExampleCount"),
                ]
            )
        ],
    )
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=eval_config,
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(root / "serving_model"))
        ),
    )
    return tfx.dsl.Pipeline(
        pipeline_name="penguin-plain",
        pipeline_root=str(root / "pipeline_root"),
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            transform,
            trainer,
            model_resolver,
            evaluator,
            pusher,
        ],
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "metadata.sqlite")
        ),
        beam_pipeline_args=BEAM_ARGS,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="state folder (metadata, artifacts)")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="where the trainer's files are")
    parser.add_argument("--data-root", type=Path, default=ROOT / "data" / "penguins")
    parser.add_argument("--fresh", action="store_true", help="delete the state folder first")
    args = parser.parse_args(argv)
    if args.fresh and args.root.exists():
        shutil.rmtree(args.root)
    args.root.mkdir(parents=True, exist_ok=True)
    from tfx import v1 as tfx

    from cicd_pipeline.report import summarize_run  # the run report of this repository, read-only

    pipeline = create_pipeline(args.root.resolve(), args.checkout.resolve(), args.data_root.resolve())
    started = time.monotonic()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    elapsed = time.monotonic() - started
    summary = summarize_run(args.root / "metadata.sqlite", "penguin-plain")
    for component in summary.components:
        print(f"  {component.node:<30} {component.state:<9} {component.seconds:7.1f} s")
    print(f"  model: {'BLESSED' if summary.blessed else 'NOT BLESSED'}")
    print(f"pipeline wall: {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
