"""The model's module files, schema and holdout: as shipped, the penguins' example (species from four body
measurements); `invoke init` rewrites them for your own data (docs/your-data.md).

TFX loads ``preprocessing.py`` and ``model.py`` by *file path*, and on Vertex AI copies each one alone
(a ``gs://`` module file has no siblings), so neither module imports the other or anything in this package.
Where the files sit is named once, by the pipeline: ``cicd_pipeline.run_inputs.TRAINER_FILES`` (the schema
under ``schema/`` and the fixed holdout set under ``holdout/`` too). This package imports nothing.
"""
