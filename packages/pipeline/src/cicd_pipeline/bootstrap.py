"""Bootstraps a schema: SchemaGen's inference over the data, written out to be curated and committed.

The pipeline itself imports the curated schema (ImportSchemaGen); SchemaGen only makes its first draft.
"""

import shutil
from pathlib import Path

from tfx.components import CsvExampleGen, SchemaGen, StatisticsGen
from tfx.orchestration import metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.pipeline import Pipeline

from cicd_pipeline.runners import IN_MEMORY_BEAM_ARGS


def bootstrap_schema(data_root: Path, workdir: Path, out: Path) -> Path:
    """Runs CsvExampleGen → StatisticsGen → SchemaGen on `data_root` and copies the schema to `out`.

    Refuses to replace an existing `out`: a curated schema is edited by hand and must not be lost.
    """
    if out.exists():
        raise FileExistsError(f"{out} exists: a curated schema is never replaced; pass another --out.")
    if not data_root.is_dir() or not any(data_root.glob("*.csv")):
        raise ValueError(f"data_root {data_root} is not a folder holding CSV files: pass --data-root.")
    example_gen = CsvExampleGen(input_base=str(data_root.resolve()))
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    # The inferred schema: types, presence, domains of the values seen.
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"])
    LocalDagRunner().run(
        Pipeline(
            pipeline_name="schema-bootstrap",
            pipeline_root=str(workdir / "pipeline_root"),
            components=[example_gen, statistics_gen, schema_gen],
            enable_cache=False,
            metadata_connection_config=metadata.sqlite_metadata_connection_config(
                str(workdir / "metadata.sqlite")
            ),
            beam_pipeline_args=list(IN_MEMORY_BEAM_ARGS),
        )
    )
    inferred = sorted((workdir / "pipeline_root" / "SchemaGen" / "schema").glob("*/schema.pbtxt"))
    if not inferred:  # SchemaGen completed without writing a schema: a bug of the pipeline, not of the data
        raise RuntimeError(f"SchemaGen wrote no schema.pbtxt under {workdir}/pipeline_root/SchemaGen.")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(inferred[-1], out)
    return out
