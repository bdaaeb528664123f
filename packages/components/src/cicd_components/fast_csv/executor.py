"""CsvExampleGen's executor with the CSV read and the tf.Example encoding in C++.

TFX's own (tfx/components/example_gen/csv_example_gen/executor.py) parses each line, infers the columns'
types and builds each tf.Example in Python: at 277,000 rows that is most of CsvExampleGen's time (profile in
docs/performance.md). This one reads each file with pyarrow's CSV reader, in blocks, twice: once to type the
columns as TFX does (columns.py), once to encode each block with tfx_bsl's RecordBatchToExamplesEncoder.
The examples are those TFX writes, feature by feature, and so are the splits: the base executor hashes each
example's deterministic serialization to pick its split, so each is serialized so (the C++ encoder orders
features its own way). The rest (artifacts, driver, span, version, fingerprint, split config, the
TFRecord files) is TFX's BaseExampleGenExecutor, unchanged.

For the in-process DirectRunner: the types are found while the Beam graph is built, in the launcher's
process. A Dataflow run keeps TFX's executor (cicd_pipeline.pipeline), whose parse runs on the workers.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
import tensorflow as tf
from absl import logging
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
from pyarrow import csv as pacsv
from tensorflow.core.example import example_pb2
from tfx import types
from tfx.components.example_gen import utils, write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor, _PartitionFn
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils
from tfx_bsl.coders.csv_decoder import ColumnType
from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder

from cicd_components.fast_csv import columns

# pyarrow's block: rows are read, typed and encoded this many bytes of CSV at a time (memory stays flat).
BLOCK_BYTES = 8 << 20


class CsvReadError(ValueError):
    """A CSV file CsvExampleGen cannot read: the message names the file, the line and the fix, in one line."""


def read_blocks(path: str, names: list[str]) -> Iterator[pa.RecordBatch]:
    """The rows of one CSV file under its header, every cell a string, `BLOCK_BYTES` of CSV at a time.

    Quoting as Python's csv module (and TFX) reads it: double quotes, "" inside them, line breaks inside a
    quoted cell. Blank lines are skipped, as TFX skips them.
    """
    bad: list[Any] = []

    def invalid(row) -> str:
        bad.append(row)
        return "error"

    options = dict(
        # One thread, the caller's: the file is a Python object and `invalid` a Python callback, and a reader
        # whose read-ahead threads outlive it can be collected in one of them at exit, which aborts the
        # process ("terminate called without an active exception", seen in a rehearsal task).
        read_options=pacsv.ReadOptions(
            column_names=names, skip_rows=1, block_size=BLOCK_BYTES, use_threads=False
        ),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid),
        # Every cell a string, "" included (no "NA" or "null" read as missing): the types are TFX's to infer.
        convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in names}),
    )
    try:
        # Opened as TFX's reader opens it (Beam's file systems: local, gs://); both closed when done.
        with FileSystems.open(path) as handle, pacsv.open_csv(handle, **options) as reader:
            yield from reader
    except pa.ArrowInvalid as err:
        raise CsvReadError(_what_went_wrong(path, names, bad, err)) from None


def _what_went_wrong(path: str, names: list[str], bad: list[Any], err: Exception) -> str:
    if bad:
        row = bad[0]
        # pyarrow's number is not the line: with quoted cells that may hold a line break it counts rows (one
        # reader thread) or gives none (several). The error path reads the file again for the editor's line.
        number = _first_short_or_long_line(path, len(names))
        return (
            f"{path}: line {number} has {row.actual_columns} field(s), the header {row.expected_columns} "
            f"({','.join(names)}): make every row as long as the header (`invoke data.check` names them all)."
        )
    reason = str(err).splitlines()[0]
    return f"{path}: cannot be read as CSV ({reason}): fix the file (`invoke data.check` names the problem)."


def _first_short_or_long_line(path: str, width: int) -> int | str:
    """The line (1-based, as an editor counts) where the first row whose field count is not `width` ends."""
    with FileSystems.open(path) as handle:
        rows = csv.reader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))
        for fields in rows:
            if fields and len(fields) != width:
                return rows.line_num
    return "?"


def column_types(paths: list[str], names: list[str]) -> list[ColumnType]:
    """The type of each column over all the files of a split, as TFX's ColumnTypeInferrer gives it."""
    found: list[ColumnType | None] = [None] * len(names)
    for path in paths:
        for block in read_blocks(path, names):
            found = [columns.widest(t, columns.infer(block.column(i))) for i, t in enumerate(found)]
    return [ColumnType.UNKNOWN if t is None else t for t in found]


def serialized_examples(path: str, names: list[str], types: list[ColumnType]) -> Iterator[bytes]:
    """A CSV file's rows as tf.Examples, each serialized deterministically (feature names sorted): the bytes
    TFX's partition hashes (the C++ encoder orders the features its own way)."""
    encoder = RecordBatchToExamplesEncoder()
    parse = example_pb2.Example.FromString
    for block in read_blocks(path, names):
        lists = [columns.feature_lists(block.column(i), t) for i, t in enumerate(types)]
        for encoded in encoder.encode(pa.RecordBatch.from_arrays(lists, names)):
            yield parse(encoded).SerializeToString(deterministic=True)


def split_files(input_base: str, pattern: str) -> tuple[list[str], list[str], list[ColumnType]]:
    """The files of one input split, their header and their columns' types; TFX's checks and messages, so
    either executor fails alike."""
    full = os.path.join(input_base, pattern)
    paths = fileio.glob(full)
    if not paths:
        raise RuntimeError(f"Split pattern {full} does not match any files.")
    names = io_utils.load_csv_column_names(paths[0])
    for path in paths[1:]:
        if io_utils.load_csv_column_names(path) != names:
            raise RuntimeError(f"Files in same split {full} have different header.")
    return paths, names, column_types(paths, names)


class _EncodeFile(beam.DoFn):
    def __init__(self, names: list[str], types: list[ColumnType]):
        self._names = names
        self._types = types

    def process(self, path: str) -> Iterator[bytes]:
        yield from serialized_examples(path, self._names, self._types)


@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
class CsvToSerializedExamples(beam.PTransform):
    """The CSV files of one input split as serialized tf.Examples (TFX's _CsvToExample, same arguments)."""

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str):
        super().__init__()
        self._base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        self._pattern = split_pattern

    def expand(self, pipeline: beam.Pipeline) -> beam.pvalue.PCollection:
        paths, names, types = split_files(self._base, self._pattern)
        return (
            pipeline
            | "CreateFilenames" >> beam.Create(paths)
            | "EncodeFile" >> beam.ParDo(_EncodeFile(names, types))
        )


class Executor(BaseExampleGenExecutor):
    """CsvExampleGen's executor, reading with pyarrow and encoding with tfx_bsl (see the module's text).

    For what CsvExampleGen writes by default (tf.Examples in gzipped TFRecord files, split by hash) it writes
    the files itself, without Beam: the base executor's Beam graph costs per row (the partition, a Reshuffle
    that holds every row at once, the write) about as much as TFX's Python parse (docs/performance.md). The
    split of each row is TFX's own partition function's. The rows stay in the files' order where TFX's
    Reshuffle leaves them in a random one: the Trainer's dataset shuffles, the judge counts. Anything else
    (a partition feature, Parquet) goes through the base executor's Beam graph with this reader.
    """

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return CsvToSerializedExamples

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        payload = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        file_format = exec_properties.get(
            standard_component_specs.OUTPUT_FILE_FORMAT_KEY, example_gen_pb2.FILE_FORMAT_UNSPECIFIED
        )
        if (
            output_config.split_config.HasField("partition_feature_name")
            or payload not in (None, example_gen_pb2.FORMAT_TF_EXAMPLE)
            or file_format
            not in (example_gen_pb2.FILE_FORMAT_UNSPECIFIED, example_gen_pb2.FORMAT_TFRECORDS_GZIP)
        ):
            return super().Do(input_dict, output_dict, exec_properties)
        self._log_startup(input_dict, output_dict, exec_properties)
        outputs = output_dict[standard_component_specs.EXAMPLES_KEY]
        split_names = utils.generate_output_split_names(input_config, output_config)
        artifact_utils.get_single_instance(outputs).split_names = artifact_utils.encode_split_names(
            split_names
        )
        base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        if output_config.split_config.splits:  # one input split, hashed into the output splits
            buckets = list(itertools.accumulate(s.hash_buckets for s in output_config.split_config.splits))
            jobs = [(input_config.splits[0].pattern, split_names, buckets)]
        else:  # each input split is an output split
            jobs = [
                (s.pattern, [name], [1]) for s, name in zip(input_config.splits, split_names, strict=True)
            ]
        shards = self._shards()
        for pattern, names, buckets in jobs:
            paths, columns_, types_ = split_files(base, pattern)
            writers = [
                [_writer(artifact_utils.get_split_uri(outputs, n), i, shards) for i in range(shards)]
                for n in names
            ]
            counts = [0] * len(names)
            try:
                for path in paths:
                    for example in serialized_examples(path, columns_, types_):
                        index = _PartitionFn(example, len(buckets), buckets, output_config.split_config)
                        writers[index][counts[index] % shards].write(example)
                        counts[index] += 1
            finally:
                for writer in itertools.chain.from_iterable(writers):
                    writer.close()
            logging.info("Examples written: %s", dict(zip(names, counts, strict=True)))
        # The properties the base executor sets after its Beam graph.
        for artifact in outputs:
            if payload:
                examples_utils.set_payload_format(artifact, payload)
            if file_format:
                examples_utils.set_file_format(artifact, write_split.to_file_format_str(file_format))

    def _shards(self) -> int:
        """Files per split: one per Beam worker of the run's multi-processing DirectRunner, else one.

        A gzipped file is read whole by one worker: with a single file the next components' Beam work (the
        statistics, Transform, the judge) would run on one core however many workers there are. TFX's own
        write leaves about a file per worker in that mode, for the same reason.
        """
        options = PipelineOptions(list(self._beam_pipeline_args or [])).view_as(DirectOptions)
        if options.direct_running_mode != "multi_processing":
            return 1
        return options.direct_num_workers or os.cpu_count() or 1


def _writer(split_uri: str, shard: int, shards: int) -> tf.io.TFRecordWriter:
    """A gzipped TFRecord file named as Beam's write names its shards (write_split.WriteSplit)."""
    fileio.makedirs(split_uri)
    name = f"{write_split.DEFAULT_TF_RECORD_FILE_NAME}-{shard:05d}-of-{shards:05d}.gz"
    return tf.io.TFRecordWriter(os.path.join(split_uri, name), options="GZIP")
