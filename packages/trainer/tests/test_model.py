"""The Trainer module file: hyperparameters, the network, and ``run_fn`` end to end on real transformed data."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer import fn_args_utils
from tfx.components.util import tfxio_utils
from tfx.proto import example_gen_pb2

SPECIES = ("Adelie", "Chinstrap", "Gentoo")
MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
# Typical measurements of each species, pulled further apart than in nature so a few dozen steps learn them:
# bill length tells Adelie from the others, bill depth, flipper length and body mass tell Gentoo.
CENTRES = {
    "Adelie": (38.0, 18.5, 190, 3600),
    "Chinstrap": (50.0, 18.5, 195, 3700),
    "Gentoo": (47.0, 14.5, 220, 5200),
}
SPREAD = (1.0, 0.4, 3, 120)
HYPERPARAMETERS = {"space": [], "values": {"learning_rate": 0.05, "hidden_units": 8, "batch_size": 15}}


def synthetic_rows(per_species: int = 20, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for species, centre in CENTRES.items():
        for _ in range(per_species):
            row = {"species": species}
            for key, mean, spread in zip(MEASUREMENTS, centre, SPREAD, strict=True):
                value = rng.normal(mean, spread)
                row[key] = round(value, 1) if isinstance(mean, float) else int(round(value))
            rows.append(row)
    # A few empty cells, as in the shipped data: preprocessing must impute rather than drop them.
    rows[3]["bill_depth_mm"] = None
    rows[25]["body_mass_g"] = None
    rows[47]["flipper_length_mm"] = None
    return rows


def centre_row(species: str) -> dict:
    return dict(zip(MEASUREMENTS, CENTRES[species], strict=True))


def data_accessor() -> fn_args_utils.DataAccessor:
    """What the Trainer executor builds for tf.Example data (``fn_args_utils.get_common_fn_args``)."""

    def tfxio_for(file_pattern, schema):
        return tfxio_utils.make_tfxio(
            file_pattern=file_pattern,
            telemetry_descriptors=["Trainer"],
            payload_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            schema=schema,
        )

    return fn_args_utils.DataAccessor(
        tf_dataset_factory=lambda pattern, options, schema: tfxio_for(pattern, schema).TensorFlowDataset(
            options
        ),
        record_batch_factory=lambda pattern, options, schema: tfxio_for(pattern, schema).RecordBatches(
            options
        ),
        data_view_decode_fn=None,
    )


@pytest.fixture(scope="module")
def trained(model_module, run_transform, tmp_path_factory, custom_config):
    """Transform a learnable data set, train with the real ``run_fn``, and load the saved serving model."""
    workdir = tmp_path_factory.mktemp("trainer")
    transform_output, pattern = run_transform(synthetic_rows(), workdir)
    fn_args = fn_args_utils.FnArgs(
        working_dir=str(workdir / "working"),
        train_files=[pattern],
        eval_files=[pattern],
        train_steps=40,
        eval_steps=4,
        # The Trainer executor sets both; the deprecated name is the one run_fn reads.
        transform_graph_path=str(transform_output),
        transform_output=str(transform_output),
        data_accessor=data_accessor(),
        serving_model_dir=str(workdir / "serving_model"),
        model_run_dir=str(workdir / "model_run"),
        hyperparameters=HYPERPARAMETERS,
        custom_config=custom_config,
    )
    model_module.run_fn(fn_args)
    return fn_args, tf.saved_model.load(fn_args.serving_model_dir)


def serve(loaded, serialized: list[bytes]) -> tuple[np.ndarray, list[str]]:
    outputs = loaded.signatures["serving_default"](examples=tf.constant(serialized))
    return outputs["probabilities"].numpy(), [s.decode() for s in outputs["species"].numpy()]


def test_hyperparameters_default_when_none_are_given(model_module):
    assert model_module.hyperparameters_from(None) == model_module.DEFAULT_HYPERPARAMETERS
    assert model_module.hyperparameters_from({}) == model_module.DEFAULT_HYPERPARAMETERS


def test_hyperparameters_overrides_are_typed(model_module):
    # JSON round trips can turn integers into floats and a hand-written config may quote numbers.
    hparams = model_module.hyperparameters_from({"learning_rate": "0.1", "hidden_units": 16.0})
    assert hparams == {**model_module.DEFAULT_HYPERPARAMETERS, "learning_rate": 0.1, "hidden_units": 16}
    assert isinstance(hparams["hidden_units"], int) and isinstance(hparams["learning_rate"], float)


def test_hyperparameters_accept_the_keras_tuner_form(model_module):
    config = {"space": [{"class_name": "Int", "config": {"name": "num_layers"}}], "values": {"num_layers": 3}}
    assert model_module.hyperparameters_from(config) == {
        **model_module.DEFAULT_HYPERPARAMETERS,
        "num_layers": 3,
    }


def test_unknown_hyperparameters_are_named(model_module):
    with pytest.raises(ValueError, match="dropout"):
        model_module.hyperparameters_from({"dropout": 0.5})


def test_build_model_takes_the_transformed_measurements(model_module):
    hparams = model_module.hyperparameters_from({"num_layers": 3, "hidden_units": 5})
    model = model_module.build_model(hparams, num_classes=3)
    assert model.input_names == [f"{key}_xf" for key in MEASUREMENTS]
    assert model.output_shape == (None, 3)
    assert sum(layer.__class__.__name__ == "Dense" for layer in model.layers) == 3 + 1
    # The Transform layer hands over one [batch] tensor per feature, by name: the model must take that.
    logits = model({f"{key}_xf": tf.zeros([4]) for key in MEASUREMENTS})
    assert logits.shape == (4, 3)


def test_run_fn_records_the_hyperparameters_it_used(model_module, trained):
    fn_args, _ = trained
    with open(f"{fn_args.model_run_dir}/hyperparameters.json") as f:
        assert json.load(f) == model_module.hyperparameters_from(HYPERPARAMETERS)


def test_serving_takes_raw_examples_without_the_label(trained, make_raw_example):
    _, loaded = trained
    probabilities, names = serve(loaded, [make_raw_example(centre_row(s)) for s in SPECIES])
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert names == list(SPECIES)


def test_serving_imputes_missing_measurements(trained, make_raw_example):
    _, loaded = trained
    empty_cell = {**centre_row("Gentoo"), "bill_length_mm": None}
    absent = {key: value for key, value in centre_row("Gentoo").items() if key != "body_mass_g"}
    probabilities, names = serve(loaded, [make_raw_example(empty_cell), make_raw_example(absent)])
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    # Gentoo stays clear from its other measurements.
    assert names == ["Gentoo", "Gentoo"]


def test_transform_features_gives_the_label_for_evaluation(trained, make_raw_example):
    # TFMA gets the label through this signature, so species_xf must be there and follow the vocabulary.
    fn_args, loaded = trained
    rows = [{**centre_row(s), "species": s} for s in SPECIES]
    outputs = loaded.signatures["transform_features"](
        examples=tf.constant([make_raw_example(r) for r in rows])
    )
    assert set(outputs) == {f"{key}_xf" for key in MEASUREMENTS} | {"species_xf"}
    vocabulary = tft.TFTransformOutput(fn_args.transform_output).vocabulary_by_name("species")
    assert [vocabulary[i].decode() for i in outputs["species_xf"].numpy().reshape(-1)] == list(SPECIES)
