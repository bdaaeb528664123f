"""`invoke init`: a working project for a CSV and a label column (column analysis, holdout, schema, module
files from templates, the training config). TFX-free: it reads and writes text."""
