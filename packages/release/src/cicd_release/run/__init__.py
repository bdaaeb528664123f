"""Runs: submitted to Vertex AI and followed, scheduled, rehearsed here first, or two refs compared locally."""
