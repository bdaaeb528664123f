"""cicd.source=bigquery's data digest through the real google-cloud-bigquery client, against the BigQuery
stand-in (tests/support/bigquery_standin.py): tables.get of the training table names the run's data, and each
fault ends in one line (core/faults.py).

What is not here: TFX's BigQueryExampleGen reading the rows. Its executor reads through Beam's
ReadFromBigQuery, whose own client has Google's endpoints built in (docs/your-data.md)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
import requests
from google.api_core import exceptions as gexc

from cicd_release.core.errors import CloudUnavailable, MissingData, Refused
from cicd_release.core.settings import Settings
from cicd_release.run import bigquery_data
from cicd_release.run.launch import resolve_data
from tests.support.bigquery_standin import BigQueryStandIn

PROJECT = "my-project-123"
TABLE = f"{PROJECT}.training.penguins"
DAY = datetime.date(2026, 3, 2)
ROWS = [{"species": "Adelie", "body_mass_g": 3750, "observed_on": "2026-03-01"}] * 3


@pytest.fixture
def standin(tmp_path, monkeypatch) -> Iterator[BigQueryStandIn]:
    """The stand-in with the training table, and Application Default Credentials (a service account key) whose
    token it issues: the chain's own client finds them as it would on Google, in Cloud Build."""
    server = BigQueryStandIn().start()
    server.create_table(TABLE, ROWS)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", server.service_account_key(tmp_path / "adc.json"))
    yield server
    server.stop()


def settings_for(standin: BigQueryStandIn, **values) -> Settings:
    config = {
        "project": PROJECT,
        "source": "bigquery",
        "bigquery_table": TABLE,
        "bigquery_date_column": "observed_on",
        "bigquery_api_endpoint": standin.url,
        "request_deadline_seconds": "2",
        **values,
    }
    return Settings.from_config(config)


def test_a_run_s_data_is_the_query_and_the_table_s_state_from_tables_get(standin):
    settings = settings_for(standin)
    data = resolve_data(settings, client=None, window=3)  # the storage client is for CSV snapshots only
    assert data.kind == "bigquery" and data.name == "penguins"
    assert data.query.startswith(
        "SELECT * EXCEPT (`observed_on`) FROM `my-project-123.training.penguins` WHERE"
    )
    assert (
        "GET",
        "/bigquery/v2/projects/my-project-123/datasets/training/tables/penguins",
    ) in standin.requests
    assert ("POST", "/token") in standin.requests  # the caller's key, exchanged for a token at the stand-in
    state = bigquery_data.table_state(settings)
    assert state["numRows"] == "3" and state["lastModifiedTime"] and state["streamingBuffer"] is None
    today = datetime.datetime.now(datetime.timezone.utc).date()
    assert data.digest == bigquery_data.data_digest(data.query, TABLE, state)
    assert data.uri == f"bigquery://{TABLE}?days=3&end={today.isoformat()}"


def test_the_digest_holds_while_the_table_holds_and_moves_when_it_changes(standin):
    settings = settings_for(standin)
    first = bigquery_data.resolve(settings, window=3, today=DAY).digest
    assert bigquery_data.resolve(settings, window=3, today=DAY).digest == first  # nothing changed: no new run
    assert bigquery_data.resolve(settings, window=4, today=DAY).digest != first  # another query
    standin.stream_rows(TABLE, ROWS[:1])
    streaming = bigquery_data.resolve(settings, window=3, today=DAY).digest
    assert streaming != first  # rows in the streaming buffer are rows the query reads
    standin.load_rows(TABLE, ROWS[:1])
    assert bigquery_data.resolve(settings, window=3, today=DAY).digest not in (first, streaming)


@pytest.mark.parametrize(
    ("table", "google_said"),
    [
        (f"{PROJECT}.training.penguins_v2", "Not found: Table my-project-123:training.penguins_v2"),
        (f"{PROJECT}.sales.penguins", "Not found: Dataset my-project-123:sales"),
    ],
)
def test_a_missing_table_ends_in_one_line_naming_the_setting_and_the_fix(standin, table, google_said):
    with pytest.raises(MissingData) as caught:
        resolve_data(settings_for(standin, bigquery_table=table), client=None)
    message = str(caught.value)
    assert caught.value.exit_code == 3 and "\n" not in message
    assert message.startswith(f"BigQuery at {standin.url} has no table {table} (the tables.get got HTTP 404")
    assert google_said in message
    assert message.endswith("create it and load the training rows, or fix cicd.bigquery_table.")


def test_anonymous_credentials_are_refused_as_google_refuses_them(standin):
    with pytest.raises(CloudUnavailable) as caught:
        resolve_data(settings_for(standin, anonymous_credentials="true"), client=None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"BigQuery at {standin.url} refused the credentials for the tables.get of {TABLE}"
    )
    assert "gcloud auth application-default login" in message
    assert (
        "GET",
        "/bigquery/v2/projects/my-project-123/datasets/training/tables/penguins",
    ) in standin.requests


def test_no_credentials_at_all_end_in_one_line_before_any_request(standin, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "none.json"))
    with pytest.raises(CloudUnavailable) as caught:
        resolve_data(settings_for(standin), client=None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"BigQuery at {standin.url}: no Google credentials for the tables.get of {TABLE}"
    )
    assert "gcloud auth application-default login" in message and standin.requests == []


@pytest.mark.parametrize(
    ("authorization", "reason", "said"),
    [(None, "required", "Login Required."), ("Bearer made-up", "authError", "Invalid Credentials")],
)
def test_a_call_without_a_token_it_issued_is_google_s_401(standin, authorization, reason, said):
    """Google's 401 body, as google-api-core reads it (the client itself refreshes on a 401 and so reports
    the refresh, above)."""
    headers = {"Authorization": authorization} if authorization else {}
    url = f"{standin.url}/bigquery/v2/projects/{PROJECT}/datasets/training/tables/penguins"
    response = requests.get(url, headers=headers, timeout=5)
    error = gexc.from_http_response(response)
    assert isinstance(error, gexc.Unauthorized) and error.errors[0]["reason"] == reason
    assert error.errors[0]["message"] == said and response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_an_endpoint_that_does_not_answer_ends_in_one_line_naming_its_setting(standin):
    settings = settings_for(standin)
    standin.stop()
    with pytest.raises(CloudUnavailable) as caught:
        bigquery_data.table_state(settings)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(
        f"BigQuery at {standin.url} failed the tables.get of {TABLE}"
    )
    assert "cicd.bigquery_api_endpoint" in message


@pytest.mark.parametrize(
    ("table", "google_said"),
    [
        (f"{PROJECT}.train-ing.penguins", 'Invalid dataset ID "train-ing"'),
        (f"{PROJECT}.training.pen!guins", 'Invalid table ID "pen!guins"'),
    ],
)
def test_the_stand_in_refuses_the_ids_google_refuses(standin, table, google_said):
    """The settings' own rule keeps such names out of the chain (packages/release/tests/test_bigquery_source.py);
    here the real client sends them as they are, and the refusal is Google's 400 `invalid`."""
    client = bigquery_data.client(settings_for(standin))
    with pytest.raises(gexc.BadRequest, match=google_said):
        client.get_table(table)
    with pytest.raises(Refused, match=f"refused the tables.get of {table}: HTTP 400 Bad Request"):
        bigquery_data.table_state(settings_for(standin).model_copy(update={"bigquery_table": table}))
