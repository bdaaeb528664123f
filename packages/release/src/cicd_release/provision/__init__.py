"""The Google Cloud project a release needs, as data (desired), created (setup) and checked (doctor)."""
