"""The data source switch and its rules: `csv` (the default: CSV files under cicd.data_root, snapshotted) or
`bigquery` (a table read through TFX's BigQueryExampleGen, windowed by a date column). `Settings` (settings.py)
is built on `SourceSettings`, as it is on scale.py's `ScaleSettings`: each field's rule sits next to it, and what
reads two fields is checked once the object is whole, before any side effect.

Import-light (pydantic; no google.*, no TFX) so settings and desired can import it. desired.py follows the switch
(BIGQUERY) with the API and roles a BigQuery run needs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from cicd_pipeline.bigquery_source import COLUMN_PATTERN, TABLE_PATTERN
from cicd_release.core.rules import rule

# TOGETHER: a rule over two fields, which settings._settings_error raises whole.
from cicd_release.core.scale import TOGETHER

CSV, BIGQUERY = "csv", "bigquery"
SOURCES = (CSV, BIGQUERY)


def check_source(value: str) -> str | None:
    """None when `value` is a source, else what is wrong (the setting's one-line message names the rule)."""
    return None if value in SOURCES else f"is not one of {', '.join(SOURCES)}"


def check_table(value: str) -> str | None:
    return None if TABLE_PATTERN.fullmatch(value) else "is not a BigQuery table named project.dataset.table"


def check_date_column(value: str) -> str | None:
    return None if COLUMN_PATTERN.fullmatch(value) else "is not a BigQuery column name"


class SourceSettings(BaseModel):
    """Where the training rows come from; `Settings` inherits it (one settings model). CSV by default."""

    source: Annotated[str, rule(check_source)] = Field(
        CSV,
        description=f"{CSV} (CSV snapshots under cicd.data_root, the default) or {BIGQUERY} (cicd.bigquery_table)",
    )
    # The table a BigQuery run reads; its project may differ from cicd.project (the query jobs still run in
    # cicd.project: the pipelines' account then needs roles/bigquery.dataViewer there too, docs/your-data.md).
    bigquery_table: Annotated[str, rule(check_table)] = Field(
        "",
        description="a BigQuery table PROJECT.DATASET.TABLE of letters, digits and '_' "
        "(no dashes or spaces in the dataset or table id), e.g. my-project-123.training.penguins",
    )
    # The DATE column a retrain's --window filters on; left out of the rows (the ExampleGen converts INTEGER,
    # FLOAT, BOOLEAN and STRING only). Empty: every row, no window.
    bigquery_date_column: Annotated[str, rule(check_date_column)] = Field(
        "", description="the table's DATE column name (letters, digits, '_'), e.g. observed_on"
    )

    @model_validator(mode="after")
    def _source_together(self) -> SourceSettings:
        if self.source == BIGQUERY and not self.bigquery_table:
            expected = type(self).model_fields["bigquery_table"].description
            message = (
                f"cicd.bigquery_table is missing, and cicd.source=bigquery reads it; expected {expected} "
                "(or cicd.source=csv); set cicd.bigquery_table in invoke.yaml or INVOKE_CICD_BIGQUERY_TABLE."
            )
            raise PydanticCustomError(TOGETHER, "{message}", {"message": message})
        return self

    @property
    def on_bigquery(self) -> bool:
        return self.source == BIGQUERY

    @property
    def source_switches(self) -> frozenset[str]:
        """The source switch when it is on, by the name desired.py's `when` uses."""
        return frozenset({BIGQUERY}) if self.on_bigquery else frozenset()

    @property
    def source_needs(self) -> tuple[str, ...]:
        """The settings the compile needs for the source (scale.compile_needs adds them to the switches')."""
        return BIGQUERY_NEEDS if self.on_bigquery else ()


# What a BigQuery run needs besides the switch: the project its jobs run in and bill to, and the bucket under
# which the EXPORT read writes its avro files.
BIGQUERY_NEEDS = ("project", "bucket")


def bigquery_options(settings) -> dict | None:
    """What the compile needs for a BigQuery source (cicd_pipeline.runners.vertex's `bigquery`), or None.

    Beam's ReadFromBigQuery (EXPORT) runs its query and extract jobs in --project and writes the extracted avro
    files under --temp_location: under the bucket, per pipeline, beside the run's other scratch files."""
    if not settings.on_bigquery:
        return None
    settings.require(BIGQUERY_NEEDS)
    return {
        "project": settings.project,
        "temp_location": f"gs://{settings.bucket}/bigquery/{settings.pipeline_name}/temp",
    }
