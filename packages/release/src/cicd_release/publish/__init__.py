"""Immutable objects in the bucket: written once, never overwritten (modules, specs, data snapshots)."""
