"""TFX Trainer module file: ``run_fn`` trains the penguin classifier.

Stand-alone on purpose: TFX copies this one file (on Vertex AI, from ``gs://``) and imports it on its own,
so the few names it shares with ``preprocessing.py`` are repeated here rather than imported. The label's
names come from the training config, through the pipeline: TFX passes them in ``fn_args.custom_config``
(``label``, ``transformed_label``, ``prediction_key``).

The saved model carries two signatures:
- ``serving_default``: serialized raw ``tf.Example``s in (no label needed), class probabilities (under
  ``prediction_key``) and the predicted species name (under the label's name) out;
- ``transform_features``: the Transform graph alone, which the Evaluator (TFMA) uses to get the label.
"""

import json
import os

# TF Transform 1.16 is Keras 2 only: keep TensorFlow on tf-keras even if this module is imported first.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tf_keras as keras  # noqa: E402
from tfx_bsl.public import tfxio  # noqa: E402

# AutoGraph leaves modules named `keras` alone but not `tf_keras` (the same Keras 2 code under another name),
# so the first `fit` step transpiles tf-keras' own internals. Exempting tf_keras as TensorFlow exempts keras
# changes no result (same accuracy to the last digit) and took the local Trainer component from 38.0 s to
# 12.3 s (medians of 3 alternating cold runs, docs/platform.md); this file's own functions are still
# converted. Private API, hence the guard: if it moves, training is only slower.
try:
    from tensorflow.python.autograph.core import config as _autograph_config  # noqa: E402

    if not any(getattr(rule, "_prefix", None) == "tf_keras" for rule in _autograph_config.CONVERSION_RULES):
        _autograph_config.CONVERSION_RULES = (
            _autograph_config.DoNotConvert("tf_keras"),
            *_autograph_config.CONVERSION_RULES,
        )
except (ImportError, AttributeError):
    pass

FEATURE_KEYS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")

# Used when the pipeline passes no hyperparameters artifact (e.g. a bare Trainer in a test).
DEFAULT_HYPERPARAMETERS = {
    "learning_rate": 0.01,
    "hidden_units": 8,
    "num_layers": 2,
    "batch_size": 20,
    "seed": 42,
}


def transformed_name(key: str) -> str:
    return f"{key}_xf"


def hyperparameters_from(config) -> dict:
    """Defaults overlaid with the hyperparameters artifact's values.

    Accepts the plain mapping that HyperparametersGen writes and the keras-tuner form (``{"values": {...}}``)
    that TFX's Tuner writes, so a Tuner can replace HyperparametersGen without touching this file.
    """
    values = dict(config or {})
    if isinstance(values.get("values"), dict):
        values = values["values"]
    unknown = sorted(set(values) - set(DEFAULT_HYPERPARAMETERS))
    if unknown:
        raise ValueError(
            f"Unknown hyperparameters {unknown}; this model understands {sorted(DEFAULT_HYPERPARAMETERS)}."
        )
    merged = {**DEFAULT_HYPERPARAMETERS, **values}
    for key in ("hidden_units", "num_layers", "batch_size", "seed"):
        merged[key] = int(merged[key])
    merged["learning_rate"] = float(merged["learning_rate"])
    return merged


def build_model(hparams: dict, num_classes: int) -> keras.Model:
    """A small dense network over the four transformed measurements; outputs logits."""
    inputs = [keras.layers.Input(shape=(1,), name=transformed_name(key)) for key in FEATURE_KEYS]
    x = keras.layers.concatenate(inputs)
    for _ in range(hparams["num_layers"]):
        x = keras.layers.Dense(hparams["hidden_units"], activation="relu")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(hparams["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def _input_fn(file_pattern, data_accessor, tf_transform_output, batch_size, seed, label_key):
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=label_key, shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema,
    ).repeat()


def make_serving_signatures(model, tf_transform_output: tft.TFTransformOutput, custom_config: dict) -> dict:
    """The ``serving_default`` and ``transform_features`` signatures, both on serialized raw tf.Examples."""
    label, prediction_key = custom_config["label"], custom_config["prediction_key"]
    # Keep the Transform layer and the class names tracked by the model so they are saved with it.
    model.tft_layer = tf_transform_output.transform_features_layer()
    model.class_names = tf.constant(tf_transform_output.vocabulary_by_name(label))

    raw_feature_spec = tf_transform_output.raw_feature_spec()
    serving_feature_spec = {k: v for k, v in raw_feature_spec.items() if k != label}
    # autograph=False: these functions have no Python control flow on tensors, and AutoGraph would transpile
    # everything they call (TF Transform's layer, tfx-bsl's schema code): about half of the Trainer's time.
    signature = [tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")]

    @tf.function(input_signature=signature, autograph=False)
    def serve_tf_examples_fn(serialized):
        transformed = model.tft_layer(tf.io.parse_example(serialized, serving_feature_spec))
        probabilities = tf.nn.softmax(model(transformed))
        return {
            prediction_key: probabilities,
            label: tf.gather(model.class_names, tf.argmax(probabilities, axis=1)),
        }

    @tf.function(input_signature=signature, autograph=False)
    def transform_features_fn(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, raw_feature_spec))

    return {"serving_default": serve_tf_examples_fn, "transform_features": transform_features_fn}


def run_fn(fn_args) -> None:
    """TFX Trainer entry point: train on the transformed examples, save the serving model."""
    config = fn_args.custom_config
    if config["task"] != "classification":
        raise ValueError(f"This run_fn trains a classifier; the task is {config['task']!r}.")
    hparams = hyperparameters_from(fn_args.hyperparameters)
    keras.utils.set_random_seed(hparams["seed"])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    num_classes = len(tf_transform_output.vocabulary_by_name(config["label"]))

    def dataset(files):
        return _input_fn(
            files,
            fn_args.data_accessor,
            tf_transform_output,
            hparams["batch_size"],
            hparams["seed"],
            config["transformed_label"],
        )

    train, evaluation = dataset(fn_args.train_files), dataset(fn_args.eval_files)
    model = build_model(hparams, num_classes)
    model.fit(
        train,
        steps_per_epoch=fn_args.train_steps,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        verbose=2,
    )
    model.save(
        fn_args.serving_model_dir,
        save_format="tf",
        signatures=make_serving_signatures(model, tf_transform_output, config),
    )
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "hyperparameters.json"), "w") as f:
        json.dump(hparams, f, indent=2, sort_keys=True)
