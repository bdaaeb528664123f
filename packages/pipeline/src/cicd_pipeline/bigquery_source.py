"""BigQuery as the pipeline's source: the windowed query and TFX's BigQueryExampleGen that runs it.

What TFX 1.16's BigQueryExampleGen executor calls (tfx/extensions/google_cloud_big_query/example_gen/executor.py):
google-cloud-bigquery's `client.query("SELECT * FROM (<query>) LIMIT 0")` for the column types, then Beam's
`ReadFromBigQuery(query=..., use_standard_sql=True)` (EXPORT by default: a query job into a temporary table, an
extract job to avro files in Cloud Storage, a read of those files). Each row becomes a tf.Example; only INTEGER,
BOOLEAN, FLOAT and STRING columns convert, so the window's DATE column is filtered on and then left out
(`SELECT * EXCEPT`): a selected DATE column would stop the executor.
"""

import datetime
import json
import re

# project.dataset.table, as BigQuery names them: project ids 6-30 of [a-z0-9-] (a domain-scoped
# `example.com:project` too); dataset ids letters, digits, underscores (1024 max); table ids letters, digits,
# underscores, dashes and spaces are allowed by BigQuery, but spaces and dashes are refused here so the name can
# be quoted in one pair of backticks without escaping.
TABLE_PATTERN = re.compile(
    r"(?:[a-z][a-z0-9.-]{0,61}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_]{1,1024}"
)
COLUMN_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")


def windowed_query(
    table: str, date_column: str = "", *, end: datetime.date | None = None, days: int | None = None
) -> str:
    """The rows of `table` that retraining reads: all of them, or (`days`) the `days` dates ending at `end`
    inclusive, by `date_column`, which is then left out of the rows. ValueError names a malformed input."""
    if not TABLE_PATTERN.fullmatch(table):
        raise ValueError(f"BigQuery table {table!r} is not project.dataset.table")
    if date_column and not COLUMN_PATTERN.fullmatch(date_column):
        raise ValueError(f"BigQuery date column {date_column!r} is not a column name")
    if days is None:
        select = f"SELECT * EXCEPT (`{date_column}`)" if date_column else "SELECT *"
        return f"{select} FROM `{table}`"
    if not date_column:
        raise ValueError("a window over a BigQuery table needs its date column")
    if days < 1:
        raise ValueError(f"a window of {days} days is empty; give 1 or more")
    if end is None:
        raise ValueError("a window needs its last date")
    start = end - datetime.timedelta(days=days - 1)
    return (
        f"SELECT * EXCEPT (`{date_column}`) FROM `{table}` "
        f"WHERE `{date_column}` BETWEEN DATE '{start.isoformat()}' AND DATE '{end.isoformat()}'"
    )


# TFX's default for a query-based ExampleGen's one split (example_gen/utils.py, make_default_input_config).
SPLIT = "single_split"


def input_config(query: str) -> str:
    """`query` as the ExampleGen's input_config (example_gen_pb2.Input as JSON, its one split's pattern): the
    value of the compiled spec's `bigquery_input` runtime parameter, which the executor parses back."""
    if not query.strip():
        raise ValueError("a BigQuery source needs a query")
    return json.dumps({"splits": [{"name": SPLIT, "pattern": query}]}, sort_keys=True)


def example_gen(query):
    """TFX's BigQueryExampleGen over `query`, split 2:1 into train and eval like the CSV source. The project
    that runs the query jobs is Beam's --project (beam_pipeline_args), as the executor reads it.

    `query` is the SQL text, or a RuntimeParameter whose run-time value is `input_config(query)`: the Vertex
    compile uses that so each run (a retrain's window ending on its own day) passes its own query to the same
    spec. KubeflowV2DagRunner compiles only a top-level RuntimeParameter, so it stands for the whole
    input_config; the 2:1 output split is then given explicitly (TFX derives it from a literal input_config)."""
    # Imported here: the extension pulls google-cloud-bigquery, which the CSV path never needs.
    from tfx.extensions.google_cloud_big_query.example_gen.component import BigQueryExampleGen
    from tfx.proto import example_gen_pb2

    if isinstance(query, str):
        return BigQueryExampleGen(query=query)
    split = example_gen_pb2.SplitConfig.Split
    return BigQueryExampleGen(
        input_config=query,
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[split(name="train", hash_buckets=2), split(name="eval", hash_buckets=1)]
            )
        ),
    )
