"""The files that steps hand to later steps, under `<checkout>/.cicd/`.

A Cloud Build step is its own container and only the workspace is shared, so each step writes what the next
needs here: the plan, the compiled spec's name, the uploaded module URIs, the image, the submitted job.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

# The one atomic write (mkstemp, then replace), which steps and runs import from here.
from cicd_components.files import atomic_write
from cicd_release.errors import ReleaseError

__all__ = ["HandOffMissing", "Workspace", "atomic_write"]


class HandOffMissing(ReleaseError):
    """A step needs a file an earlier step writes: the message names the step to run."""


@dataclasses.dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def out(self) -> Path:
        return self.root / ".cicd"

    @property
    def dist(self) -> Path:
        return self.root / "dist"

    @property
    def plan_file(self) -> Path:
        return self.out / "plan.json"

    @property
    def modules_file(self) -> Path:
        return self.out / "modules.json"

    @property
    def spec_file(self) -> Path:
        """What `pipeline.compile` made: the spec's name and gs:// URI, and the image it runs."""
        return self.out / "spec.json"

    @property
    def wheels_file(self) -> Path:
        """The wheels `build.wheels` made, by package: later steps take their paths from here."""
        return self.out / "wheels.json"

    @property
    def image_file(self) -> Path:
        return self.out / "image.json"

    @property
    def job_file(self) -> Path:
        """The last submitted (or skipped) run: an audit record for the build log, read by nothing."""
        return self.out / "job.json"

    @property
    def outcome_file(self) -> Path:
        """A followed run's outcome as Markdown (the GitHub job summary)."""
        return self.out / "outcome.md"

    @property
    def specs_dir(self) -> Path:
        return self.out / "specs"

    def write_json(self, path: Path, data: dict) -> Path:
        return atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def read_json(self, path: Path, made_by: str) -> dict:
        if not path.exists():
            raise HandOffMissing(f"{path} does not exist: run `invoke {made_by}` first.")
        return json.loads(path.read_text())
