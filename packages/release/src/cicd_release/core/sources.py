"""The data source setting's rules: `csv` (the default: CSV files under cicd.data_root, snapshotted) or
`bigquery` (a table read through TFX's BigQueryExampleGen, windowed by a date column).

Import-light (no google.*, no TFX) so settings and desired can import it. desired.py may import BIGQUERY_APIS and
BIGQUERY_ROLES to enable the API and grant the roles when the switch is on.
"""

from cicd_pipeline.bigquery_source import COLUMN_PATTERN, TABLE_PATTERN

SOURCES = ("csv", "bigquery")

# What a BigQuery run calls: the REST API for the type query and the EXPORT read's query and extract jobs; the
# Storage Read API when Beam's DIRECT_READ method is chosen.
BIGQUERY_APIS = ("bigquery.googleapis.com", "bigquerystorage.googleapis.com")
# The pipeline's service account runs query and extract jobs in the project (jobUser), reads the table
# (dataViewer) and opens read sessions (readSessionUser); Beam's temporary dataset is made by the job itself.
BIGQUERY_ROLES = ("roles/bigquery.jobUser", "roles/bigquery.dataViewer", "roles/bigquery.readSessionUser")


def check_source(value: str) -> str | None:
    """None when `value` is a source, else what is wrong (the setting's one-line message names the rule)."""
    return None if value in SOURCES else f"is not one of {', '.join(SOURCES)}"


def check_table(value: str) -> str | None:
    return None if TABLE_PATTERN.fullmatch(value) else "is not a BigQuery table named project.dataset.table"


def check_date_column(value: str) -> str | None:
    return None if COLUMN_PATTERN.fullmatch(value) else "is not a BigQuery column name"
