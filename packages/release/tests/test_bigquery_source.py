"""cicd.source=bigquery on the release side: its settings' rules, the query a run reads, the digest that names
it, what the project must grant while the switch is on, and the schedules it refuses. The calls to BigQuery
itself are in tests/integration/test_bigquery_data.py (the real client against the stand-in)."""

from __future__ import annotations

import datetime
import json

import pytest

from cicd_pipeline.run_inputs import BIGQUERY_INPUT, DATA_ROOT
from cicd_release.core.errors import InputError, SettingsError
from cicd_release.core.scale import compile_needs
from cicd_release.core.settings import Settings
from cicd_release.core.sources import bigquery_options
from cicd_release.provision import desired
from cicd_release.provision.desired import Deployment
from cicd_release.publish.snapshots import RunData
from cicd_release.run.bigquery_data import SCHEME, data_digest, run_query
from cicd_release.run.launch import RunRequest
from cicd_release.run.schedules import create_schedule, sync_schedules

TABLE = "my-project-123.training.penguins"
ON = {"source": "bigquery", "bigquery_table": TABLE, "bigquery_date_column": "observed_on"}
END = datetime.date(2026, 3, 2)


def bigquery(**values) -> Settings:
    return Settings.from_config({**ON, **values})


# --- the settings' rules: one line naming the setting and the fix, when the settings are read


@pytest.mark.parametrize(
    ("config", "says"),
    [
        (
            {"bigquery_table": "training.penguins"},
            "cicd.bigquery_table='training.penguins' is not a BigQuery table",
        ),
        ({"bigquery_table": "my-project-123.training.pen-guins"}, "cicd.bigquery_table="),
        ({"bigquery_table": "my-project-123.training.penguins`; DROP TABLE x"}, "cicd.bigquery_table="),
        (
            {"bigquery_date_column": "observed on"},
            "cicd.bigquery_date_column='observed on' is not a BigQuery",
        ),
        ({"bigquery_date_column": "day`) FROM x --"}, "cicd.bigquery_date_column="),
        ({"bigquery_date_column": "1st_day"}, "cicd.bigquery_date_column='1st_day'"),
        ({"bigquery_table": ""}, "cicd.bigquery_table is missing, and cicd.source=bigquery reads it"),
        ({"source": "parquet"}, "cicd.source='parquet' is not one of csv, bigquery"),
        ({"bigquery_api_endpoint": "http://example.com:9050"}, "cicd.bigquery_api_endpoint="),
    ],
)
def test_a_malformed_bigquery_setting_is_refused_in_one_line_naming_it_and_the_fix(config, says):
    with pytest.raises(SettingsError) as caught:
        bigquery(**config)
    message = str(caught.value)
    assert says in message and caught.value.exit_code == 2
    setting = message.split("=", 1)[0].split()[0]
    assert "\n" not in message and f"INVOKE_{setting.upper().replace('.', '_')}" in message


def test_the_table_and_column_are_free_while_the_source_is_csv_and_bigquery_is_off():
    settings = Settings.from_config({"bigquery_table": TABLE})
    assert settings.source == "csv" and not settings.on_bigquery
    assert "bigquery" not in settings.switches and bigquery_options(settings) is None


def test_a_domain_scoped_project_is_a_table_name():
    assert bigquery(bigquery_table="example.com:my-project.training.penguins").on_bigquery


def test_the_compile_asks_for_the_project_and_bucket_of_beam_s_read_before_any_step():
    assert compile_needs(bigquery()) == ("project", "bucket")
    assert compile_needs(Settings()) == ()
    with pytest.raises(SettingsError, match="cicd.project is missing"):
        bigquery_options(bigquery())
    options = bigquery_options(bigquery(project="my-project-123", bucket="my-project-123-ml"))
    assert options == {
        "project": "my-project-123",
        "temp_location": "gs://my-project-123-ml/bigquery/penguin-cicd/temp",
    }


# --- the query a run reads (run/bigquery_data.run_query, what resolve_data sends)


def test_a_window_is_the_last_n_days_by_the_date_column_in_standard_sql():
    query, uri = run_query(bigquery(), window=3, end=END)
    assert query == (
        "SELECT * EXCEPT (`observed_on`) FROM `my-project-123.training.penguins` "
        "WHERE `observed_on` BETWEEN DATE '2026-02-28' AND DATE '2026-03-02'"
    )
    assert uri == f"{SCHEME}{TABLE}?days=3&end=2026-03-02"


def test_one_day_is_that_day_and_a_window_crosses_a_year():
    assert "BETWEEN DATE '2026-03-02' AND DATE '2026-03-02'" in run_query(bigquery(), window=1, end=END)[0]
    query, _ = run_query(bigquery(), window=7, end=datetime.date(2027, 1, 3))
    assert "BETWEEN DATE '2026-12-28' AND DATE '2027-01-03'" in query


def test_without_a_window_the_whole_table_is_read():
    assert run_query(bigquery(), end=END) == (
        f"SELECT * EXCEPT (`observed_on`) FROM `{TABLE}`",
        f"{SCHEME}{TABLE}",
    )
    assert run_query(bigquery(bigquery_date_column=""), "latest", end=END)[0] == f"SELECT * FROM `{TABLE}`"


def test_a_domain_scoped_table_is_quoted_whole():
    table = "example.com:my-project.training.penguins"
    query, _ = run_query(bigquery(bigquery_table=table), window=2, end=END)
    assert f"FROM `{table}` WHERE" in query


@pytest.mark.parametrize(
    ("config", "selector", "window", "says"),
    [
        ({}, "3f2a9c01", None, "--data '3f2a9c01' names a CSV snapshot, but cicd.source=bigquery reads"),
        ({"bigquery_date_column": ""}, None, 7, "--window 7 needs the table's date column: set"),
        ({}, None, 0, "--window 0 must be a whole number of days, 1 or more"),
    ],
)
def test_what_a_table_cannot_give_is_refused_in_one_line_before_any_call(config, selector, window, says):
    with pytest.raises(InputError) as caught:
        run_query(bigquery(**config), selector, window=window, end=END)
    assert str(caught.value).startswith(says) and "\n" not in str(caught.value)


def test_the_run_passes_the_query_as_the_spec_s_bigquery_input_in_place_of_a_folder():
    query, uri = run_query(bigquery(), window=3, end=END)
    data = RunData(uri=uri, digest="d" * 64, name="penguins", kind="bigquery", query=query)
    request = RunRequest(
        spec="gs://b/specs/s.json",
        image="europe-west4-docker.pkg.dev/p/r/i@sha256:" + "a" * 64,
        modules={},
        data=data,
        hyperparameters="{}",
        commit="c" * 40,
        versions={},
        trigger="retrain",
    )
    parameters = request.parameters()
    assert DATA_ROOT not in parameters
    assert json.loads(parameters[BIGQUERY_INPUT])["splits"][0]["pattern"] == query
    assert request.inputs()["data_query"] == query and request.inputs()["data_root"] == uri


# --- the digest: the query and the table's state name the data


STATE = {"lastModifiedTime": "1764900000000", "numRows": "342", "numBytes": "20520", "streamingBuffer": None}


def test_the_same_query_over_the_same_table_state_is_the_same_digest():
    assert data_digest("SELECT 1", TABLE, dict(STATE)) == data_digest("SELECT 1", TABLE, dict(STATE))


@pytest.mark.parametrize(
    "change",
    [
        {"query": "SELECT * FROM `my-project-123.training.penguins` WHERE TRUE"},
        {"table": "my-project-123.training.penguins_v2"},
        {"state": {**STATE, "lastModifiedTime": "1764900000001"}},
        {"state": {**STATE, "numRows": "343"}},
        {"state": {**STATE, "numBytes": "20580"}},
        {"state": {**STATE, "streamingBuffer": {"estimatedRows": "5", "oldestEntryTime": "1764900000500"}}},
    ],
)
def test_a_changed_query_or_table_state_is_another_digest(change):
    base = {"query": f"SELECT * FROM `{TABLE}`", "table": TABLE, "state": STATE}
    assert data_digest(**{**base, **change}) != data_digest(**base)


def test_each_window_day_is_its_own_query_and_so_its_own_digest():
    today, _ = run_query(bigquery(), window=3, end=END)
    tomorrow, _ = run_query(bigquery(), window=3, end=END + datetime.timedelta(days=1))
    assert data_digest(today, TABLE, STATE) != data_digest(tomorrow, TABLE, STATE)


# --- the project: the BigQuery API and its roles only while the switch is on (setup and doctor read these)


def deployment(**values) -> Deployment:
    github = {"github_repo": "my-org/penguins", "github_repo_id": "260064828", "github_owner_id": "1342004"}
    return Deployment.from_settings(
        Settings(project="my-project-1", **github, **values), project_number="1234"
    )


def test_with_the_source_on_csv_nothing_of_bigquery_is_asked_for():
    d = deployment()
    assert "bigquery.googleapis.com" not in {api.name for api in d.apis()}
    assert not [g for g in d.grants() if g.role.startswith("roles/bigquery.")]


def test_bigquery_on_adds_its_api_and_three_roles_each_with_why():
    d = deployment(source="bigquery", bigquery_table=TABLE)
    assert [api.name for api in d.apis()] == [*(a.name for a in desired.APIS), "bigquery.googleapis.com"]
    added = [g for g in d.grants() if g not in desired.GRANTS]
    assert {(g.member, g.role, g.on) for g in added} == {
        ("vertex", "roles/bigquery.user", desired.PROJECT),
        ("vertex", "roles/bigquery.dataViewer", desired.PROJECT),
        # The chain's own tables.get (the digest), as the build's account: metadata, no rows.
        ("builder", "roles/bigquery.metadataViewer", desired.PROJECT),
    }
    assert all(g.reason and g.permissions for g in added)
    # Least privilege: jobUser lacks the dataset Beam's EXPORT read makes; no Storage Read API role (no
    # DIRECT_READ), no admin or editor role.
    assert "bigquery.datasets.create" in next(g for g in added if g.role == "roles/bigquery.user").permissions
    assert not [g for g in added if g.role.endswith(("admin", "dataEditor", "readSessionUser"))]
    assert any("--role=roles/bigquery.dataViewer" in d.fix_grant(g) for g in added)


def test_all_three_switches_grant_each_role_once():
    d = deployment(source="bigquery", bigquery_table=TABLE, beam_runner="dataflow", trainer_backend="vertex")
    grants = list(d.grants())
    assert len(grants) == len(set(grants)) == len(desired.GRANTS) + len(desired.SWITCHED_GRANTS)


# --- schedules: a schedule repeats the query and digest it was made with


def test_a_schedule_of_a_bigquery_source_is_refused_in_one_line_before_any_call():
    with pytest.raises(InputError) as caught:
        create_schedule(bigquery(), client=None, cron="0 3 * * *")
    message = str(caught.value)
    assert message.startswith("cicd.source=bigquery has no Vertex schedules") and "\n" not in message
    assert "invoke pipeline.retrain --window N" in message and "cicd.source=csv" in message
    assert sync_schedules(bigquery(), client=None) == [f"schedules: left as they are ({message})"]
