"""The Vertex compile, run from the checkout's own sources: the chain's one step that runs TFX to build something.

`compile_in_checkout` runs `python -m cicd_pipeline.runners.vertex` in a fresh interpreter with the checkout's
pipeline and components first on the path, so the spec always comes from the sources being released (not a
copy installed earlier), and TFX is never imported by the process that drives the chain. `compile_inputs`
says what a compiled spec was made from, so `pipeline.submit` can refuse one made from something else.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cicd_release.artifacts import naming
from cicd_release.core.errors import ReleaseError
from cicd_release.core.settings import Settings

# Compiled from the checkout's own sources, never from a copy installed earlier.
COMPILE_SOURCES = ("packages/pipeline/src", "packages/components/src")


def compile_inputs(root: Path, config: Any, settings: Settings) -> dict:
    """What a compiled spec depends on: the compile's sources, the lock, the training config, the settings."""
    return {
        "sources": naming.content_digest(root, [*COMPILE_SOURCES, "requirements/lock.txt"]),
        "config": dataclasses.asdict(config),
        "settings": settings.model_dump(mode="json"),
    }


def compile_in_checkout(root: Path, arguments: dict) -> dict:
    """The compiled pipeline job (KFP v2 IR) of the checkout at `root`, given the runner's `arguments`."""
    path = [str(root / p) for p in COMPILE_SOURCES]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="cicd-compile-") as tmp:
        args_file, out_file = Path(tmp, "args.json"), Path(tmp, "job.json")
        args_file.write_text(json.dumps(arguments))
        result = subprocess.run(
            [sys.executable, "-m", "cicd_pipeline.runners.vertex", str(args_file), str(out_file)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            tail = "\n".join(result.stderr.splitlines()[-30:])
            raise ReleaseError(f"Compiling the pipeline of {root} failed (exit {result.returncode}):\n{tail}")
        return json.loads(out_file.read_text())
