"""Fixtures that load the module files the way TFX does and run them through real TF Transform.

Nothing here is mocked: Transform runs on the Beam DirectRunner, the examples are real ``tf.Example`` records
read back through tfx-bsl, and the module files are imported by file path, never through ``cicd_trainer``.
"""

import functools
import importlib.util
import os
import sys
import types
from pathlib import Path

# TF Transform 1.16 is Keras 2 only, and Keras 3 is installed next to it (TFX pulls it in): TensorFlow must
# pick tf-keras before anything imports it, or ``tf.keras`` and the Transform layer disagree.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import apache_beam as beam  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tensorflow_transform.beam as tft_beam  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow_metadata.proto.v0 import schema_pb2  # noqa: E402
from tensorflow_transform.tf_metadata import dataset_metadata  # noqa: E402
from tfx_bsl.public import tfxio  # noqa: E402

import cicd_trainer  # noqa: E402

# The files of the cicd_trainer package on the path (the installed copy under nox, the checkout's under
# `invoke run --watch`): the trainer exports no paths, and the pipeline's list of them
# (cicd_pipeline.run_inputs) is not installed here. The package itself is imported, empty as it is, so that
# coverage (`--cov=cicd_trainer`) measures the module files loaded from its folder.
TRAINER = Path(cicd_trainer.__file__).resolve().parent
PREPROCESSING_MODULE = TRAINER / "preprocessing.py"
MODEL_MODULE = TRAINER / "model.py"
SCHEMA_FILE = TRAINER / "schema" / "schema.pbtxt"

MEASUREMENTS = {
    "bill_length_mm": "float",
    "bill_depth_mm": "float",
    "flipper_length_mm": "int",
    "body_mass_g": "int",
}
SPECIES = ("Adelie", "Chinstrap", "Gentoo")
# What the pipeline hands the module files as custom_config for the penguins (cicd_pipeline.config.module_config
# of training.label species; tests/e2e/test_agreement.py keeps the two the same).
CUSTOM_CONFIG = {
    "label": "species",
    "task": "classification",
    "transformed_label": "species_xf",
    "prediction_key": "probabilities",
}


def _load_by_path(path: Path, name: str) -> types.ModuleType:
    """Imports one file on its own, as TFX's ``import_utils.import_func_from_source`` does.

    Like TFX, it registers the module in ``sys.modules`` before running it: Beam pickles ``preprocessing_fn``
    by reference to its module, and an unregistered module would reach the workers without its globals.
    """
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def module_files() -> tuple[Path, Path]:
    """The two module files, as TFX is given them: preprocessing.py and model.py."""
    return PREPROCESSING_MODULE, MODEL_MODULE


@pytest.fixture(scope="session")
def preprocessing_module() -> types.ModuleType:
    return _load_by_path(PREPROCESSING_MODULE, "user_module_preprocessing")


@pytest.fixture(scope="session")
def model_module() -> types.ModuleType:
    return _load_by_path(MODEL_MODULE, "user_module_model")


@pytest.fixture(scope="session")
def custom_config() -> dict:
    """What Transform and Trainer pass the module files for the penguins (their ``custom_config``)."""
    return dict(CUSTOM_CONFIG)


@pytest.fixture(scope="session")
def raw_schema() -> schema_pb2.Schema:
    """The curated schema, which is what SchemaImporter hands Transform in the pipeline."""
    return text_format.Parse(SCHEMA_FILE.read_text(), schema_pb2.Schema())


def raw_example(row: dict) -> bytes:
    """A serialized raw ``tf.Example`` like CsvExampleGen writes.

    ``None`` is an empty cell: the feature is there with no value (as CsvExampleGen writes it). A key left
    out of ``row`` is a feature absent altogether (as a serving client may send it). Both must read as missing.
    """
    feature = {}
    for key, value in row.items():
        if key == "species":
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        elif MEASUREMENTS[key] == "float":
            values = [] if value is None else [float(value)]
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            values = [] if value is None else [int(value)]
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="session")
def make_raw_example():
    """make_raw_example(row) -> serialized raw tf.Example; see ``raw_example``."""
    return raw_example


def _write_tfrecord(path: Path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


@pytest.fixture(scope="session")
def run_transform(preprocessing_module, raw_schema):
    """run_transform(rows, workdir) -> (transform_output_dir, transformed_examples_file_pattern).

    Does what TFX's Transform executor does, on a small scale: raw tf.Examples on disk, read through tfx-bsl
    with the raw schema, analysed and transformed by the module file's ``preprocessing_fn``; the transform
    graph written with ``WriteTransformFn`` and the transformed rows written back as tf.Examples.
    """

    def run(rows, workdir: Path):
        raw_file = workdir / "raw" / "data.tfrecord"
        _write_tfrecord(raw_file, (raw_example(row) for row in rows))
        transform_output = workdir / "transform_graph"
        transformed_prefix = workdir / "transformed" / "data"

        source = tfxio.TFExampleRecord(
            file_pattern=str(raw_file), schema=raw_schema, telemetry_descriptors=["cicd_trainer_tests"]
        )
        with beam.Pipeline(runner="DirectRunner") as pipeline:
            with tft_beam.Context(temp_dir=str(workdir / "tft_tmp")):
                raw_data = pipeline | "ReadRaw" >> source.BeamSource()
                (transformed, transformed_metadata), transform_fn = (
                    raw_data,
                    source.TensorAdapterConfig(),
                ) | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(
                    # As TFX's Transform executor binds it (executor_utils.MaybeBindCustomConfig).
                    functools.partial(preprocessing_module.preprocessing_fn, custom_config=CUSTOM_CONFIG)
                )
                _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(str(transform_output))
                # The serving signature reads the raw feature spec from here; TFX's executor writes it the same way.
                _ = dataset_metadata.DatasetMetadata(
                    raw_schema
                ) | "WriteRawMetadata" >> tft_beam.WriteMetadata(
                    str(transform_output / tft.TFTransformOutput.RAW_METADATA_DIR), pipeline
                )
                coder = tft.coders.ExampleProtoCoder(transformed_metadata.schema)
                _ = (
                    transformed
                    | "Encode" >> beam.Map(coder.encode)
                    | "WriteTransformed" >> beam.io.WriteToTFRecord(str(transformed_prefix))
                )
        return transform_output, f"{transformed_prefix}*"

    return run


@pytest.fixture(scope="session")
def read_transformed():
    """read_transformed(file_pattern) -> the transformed rows as dicts of feature name to a Python scalar."""

    def read(file_pattern: str) -> list[dict]:
        rows = []
        for path in tf.io.gfile.glob(file_pattern):
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                example = tf.train.Example.FromString(record)
                row = {}
                for name, feature in example.features.feature.items():
                    values = list(getattr(feature, feature.WhichOneof("kind")).value)
                    assert len(values) == 1, f"{name} should hold exactly one value, got {values}"
                    row[name] = values[0]
                rows.append(row)
        return rows

    return read
