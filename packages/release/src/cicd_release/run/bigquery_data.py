"""A BigQuery source's run data: the query a run reads (the whole table, or a retrain's window of dates) and
the digest that names it, as snapshots.RunData, so records, labels and "nothing changed, no run" work as they
do for CSV snapshots.

A table cannot be snapshotted by content without reading it, so the digest names the query and the table's
state as BigQuery's tables.get reports it: lastModifiedTime (rows or schema changed), numRows, numBytes, and
whether rows still sit in the streaming buffer. The same query over a table in the same state is the same
data; a changed row moves lastModifiedTime and so the digest. The etag is left out: it is a hash of the whole
table resource (a new description or label moves it too), and Google does not document it as stable between
reads. google-cloud-bigquery (which TFX's BigQuery extension installs) makes the call; core/faults.py words
its faults.

In run/, beside launch.py (its one caller): it names what a run reads when the run starts and writes nothing to
the bucket, so it is not publish/ (snapshots.py there writes the CSV snapshots it resolves).
"""

from __future__ import annotations

import datetime
import hashlib
import json

from cicd_pipeline.bigquery_source import windowed_query
from cicd_release.core.errors import InputError
from cicd_release.core.faults import missing_table, reporting
from cicd_release.publish.snapshots import RunData

# What a run's record says its data came from: not a gs:// folder, a table.
SCHEME = "bigquery://"
# The fields of the table resource (REST reference, tables#Table) the digest names.
STATE_FIELDS = ("lastModifiedTime", "numRows", "numBytes")


def client(settings):
    """A google-cloud-bigquery client billing cicd.project, at cicd.bigquery_api_endpoint when one is set."""
    from google.cloud import bigquery

    from cicd_release.run.launch import credentials

    options = {"api_endpoint": settings.bigquery_api_endpoint} if settings.bigquery_api_endpoint else None
    return bigquery.Client(
        project=settings.project, credentials=credentials(settings), client_options=options
    )


def endpoint(settings) -> str:
    return settings.bigquery_api_endpoint or "https://bigquery.googleapis.com"


def table_state(settings, bq=None) -> dict:
    """The table's state (STATE_FIELDS and its streaming buffer) from tables.get. MissingData (exit 3) when the
    table is not there (core/faults.missing_table); the other faults as core/faults.py words them."""
    from google.cloud.bigquery.retry import DEFAULT_RETRY

    table = settings.bigquery_table
    deadline = float(settings.request_deadline_seconds)
    with reporting(
        "BigQuery",
        endpoint(settings),
        deadline=deadline,
        on_404=missing_table,
        retrying=True,
        setting="cicd.bigquery_api_endpoint",
    ) as calls:
        calls.now("tables.get", table)
        bq = bq or client(settings)  # inside: finding no credentials is a fault of this call too
        # The library retries for 10 minutes by default (retry._DEFAULT_RETRY_DEADLINE): cut to the deadline.
        found = bq.get_table(table, retry=DEFAULT_RETRY.with_timeout(deadline), timeout=deadline)
        resource = found._properties
    state = {name: resource.get(name) for name in STATE_FIELDS}
    buffer = resource.get("streamingBuffer")
    state["streamingBuffer"] = (
        {"estimatedRows": buffer.get("estimatedRows"), "oldestEntryTime": buffer.get("oldestEntryTime")}
        if buffer
        else None
    )
    return state


def data_digest(query: str, table: str, state: dict) -> str:
    """sha256 over the query, the table and its state: what the run's labels and record name its data by."""
    named = {"query": query, "table": table, "state": state}
    return hashlib.sha256(json.dumps(named, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def run_query(
    settings, selector: str | None = None, *, window: int | None = None, end: datetime.date
) -> tuple[str, str]:
    """(the SQL, the record's data_root) of what a run reads from cicd.bigquery_table: every row, or
    (`window`) the `window` dates by cicd.bigquery_date_column ending on `end` inclusive. InputError (exit 2)
    for a --data selector (a table has no snapshots) or a window without a date column; no call is made."""
    table, column = settings.bigquery_table, settings.bigquery_date_column
    if selector not in (None, "latest"):
        raise InputError(
            f"--data {selector!r} names a CSV snapshot, but cicd.source=bigquery reads {table}: leave --data "
            "out (the whole table) or give --window N (the last N days by cicd.bigquery_date_column)."
        )
    if window is not None and not column:
        raise InputError(
            f"--window {window} needs the table's date column: set cicd.bigquery_date_column in invoke.yaml or "
            "INVOKE_CICD_BIGQUERY_DATE_COLUMN (a DATE column of cicd.bigquery_table), or leave --window out."
        )
    if window is not None and window < 1:
        raise InputError(f"--window {window!r} must be a whole number of days, 1 or more.")
    query = windowed_query(table, column, end=end, days=window)
    # The record's data_root: the table, and the window when there is one (the digest tells states apart).
    uri = f"{SCHEME}{table}" + (f"?days={window}&end={end.isoformat()}" if window else "")
    return query, uri


def resolve(
    settings,
    selector: str | None = None,
    *,
    window: int | None = None,
    today: datetime.date | None = None,
    bq=None,
) -> RunData:
    """What a run reads (run_query, ending on `today`, the run's UTC date), named by the digest of the query
    and the table's state (one tables.get)."""
    end = today or datetime.datetime.now(datetime.timezone.utc).date()
    query, uri = run_query(settings, selector, window=window, end=end)
    table = settings.bigquery_table
    state = table_state(settings, bq)
    return RunData(
        uri=uri,
        digest=data_digest(query, table, state),
        name=table.rsplit(".", 1)[-1],
        kind="bigquery",
        rows=None,
        query=query,
    )
