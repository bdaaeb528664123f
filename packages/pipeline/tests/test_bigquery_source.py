"""The BigQuery source: the windowed query retraining runs, and create_pipeline choosing BigQueryExampleGen."""

import datetime

import pytest
from test_pipeline import make

from cicd_pipeline.bigquery_source import windowed_query

TABLE = "my-project.sales.daily"


def test_window_covers_the_days_ending_at_the_last_date_and_leaves_the_date_column_out():
    query = windowed_query(TABLE, "day", end=datetime.date(2026, 3, 2), days=3)
    assert query == (
        "SELECT * EXCEPT (`day`) FROM `my-project.sales.daily` "
        "WHERE `day` BETWEEN DATE '2026-02-28' AND DATE '2026-03-02'"
    )


def test_no_window_reads_the_whole_table():
    assert windowed_query(TABLE) == "SELECT * FROM `my-project.sales.daily`"
    assert windowed_query(TABLE, "day") == "SELECT * EXCEPT (`day`) FROM `my-project.sales.daily`"


@pytest.mark.parametrize(
    ("table", "column", "days", "end", "wrong"),
    [
        ("sales.daily", "day", 1, datetime.date(2026, 1, 1), "project.dataset.table"),
        (
            "my-project.sales.daily`; DROP TABLE x; --",
            "day",
            1,
            datetime.date(2026, 1, 1),
            "project.dataset.table",
        ),
        (TABLE, "day`) FROM x --", 1, datetime.date(2026, 1, 1), "not a column name"),
        (TABLE, "", 3, datetime.date(2026, 1, 1), "needs its date column"),
        (TABLE, "day", 0, datetime.date(2026, 1, 1), "is empty"),
        (TABLE, "day", 3, None, "last date"),
    ],
)
def test_malformed_inputs_are_refused_before_any_query(table, column, days, end, wrong):
    with pytest.raises(ValueError, match=wrong):
        windowed_query(table, column, end=end, days=days)


def test_create_pipeline_reads_bigquery_when_given_a_query_and_csv_otherwise():
    query = windowed_query(TABLE, "day", end=datetime.date(2026, 3, 2), days=7)
    bq = make(bigquery_query=query)
    ids = [c.id for c in bq.components]
    assert ids[0] == "BigQueryExampleGen" and "CsvExampleGen" not in ids
    gen = bq.components[0]
    assert query in gen.exec_properties["input_config"]
    # The rows meet the same contract: the curated schema's validator reads this ExampleGen's examples.
    validator = next(c for c in bq.components if c.id == "ExampleValidator")
    assert validator.inputs["statistics"].producer_component_id == "StatisticsGen"
    stats = next(c for c in bq.components if c.id == "StatisticsGen")
    assert stats.inputs["examples"].producer_component_id == "BigQueryExampleGen"
    assert make().components[0].id == "CsvExampleGen"
