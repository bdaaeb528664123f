"""The fast CSV executor writes what TFX's CsvExampleGen executor writes: both run here, on the same files with
the same configs, and their examples are compared parsed, feature by feature, split by split."""

import glob
import os
import tempfile
from pathlib import Path

import pytest
import tensorflow as tf
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from cicd_components.fast_csv import executor as fast_csv

SHIPPED = Path(__file__).resolve().parents[3] / "data" / "penguins"
HASHED = example_gen_pb2.Output(
    split_config=example_gen_pb2.SplitConfig(
        splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
        ]
    )
)
ONE_INPUT = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*")])
# The pipeline's holdout: all rows in one split.
HOLDOUT = (
    example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="holdout", pattern="*.csv")]),
    example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[example_gen_pb2.SplitConfig.Split(name="holdout", hash_buckets=1)]
        )
    ),
)


IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def run(executor_class, input_base, out, input_config=ONE_INPUT, output_config=HASHED, beam=IN_MEMORY):
    """The executor's Do with a real Examples artifact, as CsvExampleGen's defaults configure it."""
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=beam,
        tmp_dir=tempfile.mkdtemp(dir=out.parent),
        unique_id="1",
    )
    executor_class(context).Do(
        {},
        {"examples": [examples]},
        {
            "input_base": str(input_base),
            "input_config": proto_utils.proto_to_json(input_config),
            "output_config": proto_utils.proto_to_json(output_config),
            "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
            "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        },
    )
    return examples


def written(examples) -> dict[str, list[tf.train.Example]]:
    """Each split's examples, parsed, in a canonical order (the files' order is not the contract)."""
    splits = {}
    for split in ("train", "eval", "holdout", "a", "b"):
        files = sorted(glob.glob(os.path.join(examples.uri, f"Split-{split}", "*")))
        if files:
            records = tf.data.TFRecordDataset(files, compression_type="GZIP")
            parsed = [tf.train.Example.FromString(r.numpy()) for r in records]
            splits[split] = sorted(parsed, key=lambda e: e.SerializeToString(deterministic=True))
    return splits


def canonical(splits) -> dict[str, list[bytes]]:
    """The examples as their deterministic serialization: equal values, equal bytes (nan included, which
    compares unequal to itself in a parsed message)."""
    return {s: [e.SerializeToString(deterministic=True) for e in examples] for s, examples in splits.items()}


def both(tmp_path, input_base, *configs):
    tfx_out = run(tfx_csv.Executor, input_base, tmp_path / "tfx", *configs)
    fast_out = run(fast_csv.Executor, input_base, tmp_path / "fast", *configs)
    assert fast_out.split_names == tfx_out.split_names
    assert fast_out.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"
    assert fast_out.get_string_custom_property("file_format") == "tfrecords_gzip"
    return written(tfx_out), written(fast_out)


def test_the_shipped_data_gives_tfxs_examples_in_tfxs_splits(tmp_path):
    theirs, ours = both(tmp_path, SHIPPED)
    assert {s: len(e) for s, e in ours.items()} == {s: len(e) for s, e in theirs.items()}
    assert sum(len(e) for e in ours.values()) == 277
    assert canonical(ours) == canonical(theirs)  # every feature, its kind and its values
    assert ours == theirs  # and as messages
    # An empty cell: the feature of its column's type with no value (Adelie,,,, is the shipped file's line 5).
    empty = [
        e for split in ours.values() for e in split if not e.features.feature["body_mass_g"].int64_list.value
    ]
    assert len(empty) == 2
    assert empty[0].features.feature["body_mass_g"].WhichOneof("kind") == "int64_list"
    assert empty[0].features.feature["bill_length_mm"].WhichOneof("kind") == "float_list"


def test_the_holdout_config_gives_one_split_of_every_row(tmp_path):
    theirs, ours = both(tmp_path, SHIPPED, *HOLDOUT)
    assert list(ours) == ["holdout"] and len(ours["holdout"]) == 277
    assert canonical(ours) == canonical(theirs)


ODD = (
    "whole,spaced,huge,real,text,empty,mixed,note\n"
    '1, 7 ,99999999999999999999,1e3,Adelie,,3,"a, quoted ""cell"""\n'
    "\n"  # a blank line: skipped by both
    '-2,8,1,nan,NA,,4.5,"two\nlines"\n'
    "+3,,2,-inf,null,,x,\n"
    ",1_000,3,0.1,,,,plain\n"
)


def test_odd_cells_are_typed_and_written_as_tfx_does(tmp_path):
    """Spaces and underscores Python's int() reads, a number beyond int64 (STRING), nan and inf, "NA" (a
    string, not a missing value), an all-empty column (no kind), quoting and a line break inside quotes."""
    data = tmp_path / "odd"
    data.mkdir()
    (data / "odd.csv").write_text(ODD)
    theirs, ours = both(tmp_path, data)
    assert canonical(ours) == canonical(theirs) and sum(len(e) for e in ours.values()) == 4
    first = next(
        e for split in ours.values() for e in split if e.features.feature["whole"].int64_list.value == [1]
    )
    kinds = {name: feature.WhichOneof("kind") for name, feature in first.features.feature.items()}
    assert kinds == {
        "whole": "int64_list",
        "spaced": "int64_list",
        "huge": "bytes_list",
        "real": "float_list",
        "text": "bytes_list",
        "empty": None,
        "mixed": "bytes_list",
        "note": "bytes_list",
    }


def test_input_splits_are_read_one_by_one(tmp_path):
    data = tmp_path / "two"
    data.mkdir()
    lines = (SHIPPED / "penguins.csv").read_text().splitlines(keepends=True)
    (data / "a.csv").write_text("".join(lines[:100]))
    (data / "b.csv").write_text("".join([lines[0], *lines[100:]]))
    splits = example_gen_pb2.Input(
        splits=[
            example_gen_pb2.Input.Split(name="a", pattern="a.csv"),
            example_gen_pb2.Input.Split(name="b", pattern="b.csv"),
        ]
    )
    theirs, ours = both(tmp_path, data, splits, example_gen_pb2.Output())
    assert [len(ours["a"]), len(ours["b"])] == [99, 178]
    assert canonical(ours) == canonical(theirs)


def test_multi_processing_gets_a_file_per_worker_with_the_same_examples(tmp_path):
    """One gzipped file is read by one worker: the next components get a file per worker to share out."""
    one = run(fast_csv.Executor, SHIPPED, tmp_path / "one")
    three = run(
        fast_csv.Executor,
        SHIPPED,
        tmp_path / "three",
        beam=["--direct_running_mode=multi_processing", "--direct_num_workers=3"],
    )
    files = sorted(p.name for p in Path(three.uri, "Split-train").iterdir())
    assert files == [f"data_tfrecord-0000{i}-of-00003.gz" for i in range(3)]
    assert canonical(written(three)) == canonical(written(one))


def test_a_short_row_fails_in_one_line_naming_the_file_and_the_line(tmp_path):
    data = tmp_path / "short"
    data.mkdir()
    (data / "p.csv").write_text("species,bill_length_mm,body_mass_g\nAdelie,39.1,3750\nGentoo,47.5\n")
    with pytest.raises(fast_csv.CsvReadError) as raised:
        run(fast_csv.Executor, data, tmp_path / "out")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{data / 'p.csv'}: line 3 has 2 field(s), the header 3 ")
    assert "invoke data.check" in message


def test_a_short_row_after_a_quoted_line_break_is_named_by_the_line_it_ends_on(tmp_path):
    data = tmp_path / "quoted"
    data.mkdir()
    (data / "p.csv").write_text(
        'species,island,note\nAdelie,Dream,"two\nlines"\nGentoo,Biscoe,ok\nChinstrap,Dream\n'
    )
    with pytest.raises(fast_csv.CsvReadError) as raised:
        run(fast_csv.Executor, data, tmp_path / "out")
    assert str(raised.value).startswith(f"{data / 'p.csv'}: line 5 has 2 field(s), the header 3 ")
    # pyarrow counts rows here (line 4), not lines: the file is read again for the line an editor shows.
    assert fast_csv._first_short_or_long_line(str(data / "p.csv"), 3) == 5
    assert fast_csv._first_short_or_long_line(str(SHIPPED / "penguins.csv"), 5) == "?"


def test_not_utf8_fails_in_one_line_naming_the_file(tmp_path):
    data = tmp_path / "latin1"
    data.mkdir()
    (data / "p.csv").write_bytes("species,island\nAdelie,Dr\xf6m\n".encode("latin-1"))
    with pytest.raises(
        fast_csv.CsvReadError, match=r"p\.csv: cannot be read as CSV \(.*UTF8.*\): fix the file"
    ):
        run(fast_csv.Executor, data, tmp_path / "out")
