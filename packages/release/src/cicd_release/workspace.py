"""The files that steps hand to later steps, under `<checkout>/.cicd/`, and the checks that they still hold.

A Cloud Build step is its own container and only the workspace is shared, so each step writes what the next
needs here: the plan, the compiled spec's name, the uploaded module URIs, the image, the submitted job. A
hand-off is bound to the checkout: `current_modules`, `released_modules` and `spec_for_run` refuse one made
from other files, sources, config or settings than the checkout's now.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

# The one atomic write (mkstemp, then replace), which steps and runs import from here.
from cicd_components.files import atomic_write
from cicd_release.errors import HandOffMissing, MissingRelease, ReleaseError

__all__ = ["Workspace", "atomic_write"]


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


# ------------------------------------------------------------------------------------- hand-off checks


def current_modules(ws: Workspace, files: Mapping[str, str]) -> dict[str, str]:
    """The uploaded module URIs of .cicd/modules.json, checked against `files` (parameter name -> repository
    path) in the checkout now: each URI is named by its file's sha256, so a file edited (or a checkout moved)
    since the upload is refused."""
    modules = ws.read_json(ws.modules_file, "modules.upload")
    for name, path in files.items():
        uri = modules.get(name, "")
        if f"/{_sha256(ws.root / path)}/" not in uri:
            raise ReleaseError(
                f"{ws.modules_file} names {uri or 'no upload'} for {path}, which does not hold the file in "
                "this checkout now: run `invoke modules.upload` again."
            )
    return modules


def released_modules(
    ws: Workspace, files: Mapping[str, str], modules: Mapping[str, str] | None
) -> dict[str, str]:
    """With no modules.upload in this build (a data change), the modules of the last release (None: there is
    no release record), checked against the checkout's files the same way: a file that differs needs
    `modules.upload`, never a guess."""
    modules = modules or {}
    for name, path in files.items():
        if f"/{_sha256(ws.root / path)}/" not in modules.get(name, ""):
            raise ReleaseError(
                f"{path} in this checkout is not the file the last release uploaded "
                f"({modules.get(name) or 'no release record'}): run `invoke modules.upload` first."
            )
    return dict(modules)


def spec_for_run(ws: Workspace, made_from: dict, released: Mapping[str, str] | None, record_uri: str) -> dict:
    """The spec a submit runs: the one `pipeline.compile --upload` made in this checkout (while it was made
    from what the checkout holds now, `made_from`), else the last release's (`released`: its spec and image
    URIs; None when there is no release record, at `record_uri`)."""
    if ws.spec_file.exists():
        spec = ws.read_json(ws.spec_file, "pipeline.compile --upload")
        if spec.get("made_from") != made_from:
            raise ReleaseError(
                f"{ws.spec_file} was compiled from other sources, config or settings than this checkout's: "
                "run `invoke pipeline.compile --upload` again."
            )
        if spec.get("uri"):
            return spec
        raise ReleaseError(
            f"The spec in {ws.spec_file} was not uploaded: run `invoke pipeline.compile --upload`."
        )
    if released:
        return {"uri": released["spec"], "image": released["image"]}
    raise MissingRelease(
        f"No spec compiled in this checkout and no release record at {record_uri}: the first release "
        "builds everything; run `invoke ci --base ''` (or `invoke pipeline.compile --upload` first)."
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
