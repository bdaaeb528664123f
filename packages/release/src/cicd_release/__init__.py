"""The release chain: what a push needs (plan), and the steps that build, compile, upload and submit.

Each module holds the logic of one step as plain functions with explicit arguments; ``tasks.py`` wires
settings into them. Nothing here reads the environment at import time.
"""
