"""The TFX pipeline: its assembly (create_pipeline), its runners, and the release chain."""
