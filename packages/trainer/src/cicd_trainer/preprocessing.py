"""TF Transform module file: ``preprocessing_fn`` for the penguin data set.

Stand-alone on purpose: TFX copies this one file (on Vertex AI, from ``gs://``) and imports it on its own,
so it must not import its siblings. The label's name comes from the training config, through the pipeline:
TFX passes ``custom_config`` (``label``, ``task``, ``transformed_label``) to ``preprocessing_fn``.

Missing values are handled deliberately: two of the 344 shipped rows have no measurements at all and a few
more miss some. They are kept, and each missing measurement is replaced by that measurement's mean over the
analysed data (``tft.mean`` ignores missing values), so training and serving treat a missing input the same way.
"""

import tensorflow as tf
import tensorflow_transform as tft

FEATURE_KEYS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")


def transformed_name(key: str) -> str:
    return f"{key}_xf"


def _as_dense_float(x):
    """A [batch] float32 tensor, NaN where the value is missing (optional features arrive sparse)."""
    if isinstance(x, tf.sparse.SparseTensor):
        values = tf.cast(x.values, tf.float32)
        sparse = tf.sparse.SparseTensor(x.indices, values, [x.dense_shape[0], 1])
        return tf.squeeze(tf.sparse.to_dense(sparse, default_value=float("nan")), axis=1)
    x = tf.cast(x, tf.float32)
    return tf.reshape(x, [-1])


def _impute_with_mean(x):
    dense = _as_dense_float(x)
    present = tf.math.logical_not(tf.math.is_nan(dense))
    # The analyser sees only the present values, so the mean is of real measurements.
    mean = tft.mean(tf.boolean_mask(dense, present))
    return tf.where(present, dense, tf.fill(tf.shape(dense), mean))


def preprocessing_fn(inputs, custom_config):
    """Maps raw features to model inputs: imputed, z-scored measurements and an integer label.

    The label's vocabulary file is named after the label: the model reads it back to name its predictions.
    """
    if custom_config["task"] != "classification":
        raise ValueError(
            f"This preprocessing_fn encodes a class label; the task is {custom_config['task']!r}."
        )
    label = custom_config["label"]
    outputs = {}
    for key in FEATURE_KEYS:
        outputs[transformed_name(key)] = tft.scale_to_z_score(_impute_with_mean(inputs[key]))
    species = inputs[label]
    if isinstance(species, tf.sparse.SparseTensor):
        species = tf.squeeze(tf.sparse.to_dense(species, default_value=""), axis=1)
    outputs[custom_config["transformed_label"]] = tft.compute_and_apply_vocabulary(
        tf.reshape(species, [-1]), vocab_filename=label
    )
    return outputs
