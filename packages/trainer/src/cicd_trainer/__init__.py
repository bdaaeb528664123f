"""The example model's module files (penguin species from four body measurements).

TFX loads ``preprocessing.py`` and ``model.py`` by *file path*, and on Vertex AI copies each one alone
(a ``gs://`` module file has no siblings), so neither module imports the other or anything in this package.
Where the files sit is named once, by the pipeline: ``cicd_pipeline.run_inputs.TRAINER_FILES`` (the schema
under ``schema/`` and the fixed holdout set under ``holdout/`` too). This package imports nothing.
"""
