"""Names of release artifacts, derived from content so any step can compute them without running the others.

- the image tag: the components version plus a digest of what the image is built from (IMAGE_INPUTS);
- the spec name: the pipeline version plus a digest of the *compiled spec's bytes*, minus the fields TFX
  stamps. Paths only propose (the plan says a pipeline file changed); content decides: an edit that does not
  change the compiled spec (a report's docstring) gives the same name, the same object, and no new run.
Pure functions over files and dicts: no network, no git. `image_reference` is the image a checkout names,
which the image build tags, the compile writes into the spec and the plan asks the registry about.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cicd_components.canonical import canonical_json
from cicd_release.artifacts import image as image_lib
from cicd_release.artifacts import wheels as wheels_lib
from cicd_release.core.errors import InputError
from cicd_release.plan.changes import PACKAGES as PACKAGE_MAP

if TYPE_CHECKING:
    from cicd_release.core.settings import Settings

PACKAGES = tuple(PACKAGE_MAP)  # the one package map: plan/changes.py

# What the components image is built from: a change to any of these is a new image tag.
IMAGE_INPUTS = (
    "packages/components/src",
    "packages/components/pyproject.toml",
    "docker",
    "requirements/lock.txt",
)
# Fields KubeflowV2DagRunner writes from the TFX install, not from the pipeline: the SDK version and the
# tfx_* labels. They must not rename a spec whose graph is the same.
STAMPED_FIELDS = (("pipelineSpec", "sdkVersion"), ("labels",))


# Build leftovers and caches: they change without the sources changing, so they must not move the digest.
_IGNORED_DIRS = {
    "__pycache__",
    "build",
    "dist",
    ".pytest_cache",
    ".nox",
    ".venv",
    ".ruff_cache",
    ".mypy_cache",
}
_IGNORED_SUFFIXES = (".pyc", ".pyo")


def _is_ignored(relative: Path) -> bool:
    return (
        any(part in _IGNORED_DIRS or part.endswith(".egg-info") for part in relative.parts[:-1])
        or relative.name.endswith(_IGNORED_SUFFIXES)
        or relative.name.endswith(".egg-info")
    )


def content_digest(root: str | os.PathLike[str], paths: Iterable[str | os.PathLike[str]]) -> str:
    """Return the sha256 (hex) of the files under ``paths`` (files or folders, relative to ``root``).

    The digest covers each file's path relative to ``root`` and its bytes, in sorted order, so it changes
    when a file is added, removed, renamed or edited, and not when a checkout lands in another folder.
    """
    root = Path(root).resolve()
    files: set[Path] = set()
    for entry in paths:
        path = (root / entry).resolve()
        if not path.is_relative_to(root):
            raise InputError(f"{entry}: outside {root}; pass paths inside the repository root.")
        if path.is_file():
            files.add(path.relative_to(root))
        elif path.is_dir():
            files.update(p.relative_to(root) for p in path.rglob("*") if p.is_file())
        else:
            raise InputError(f"{path} does not exist: check the inputs listed for the digest.")
    if not files:
        raise InputError(f"no files under {list(paths)} in {root}: the image inputs are empty or mistyped.")
    digest = hashlib.sha256()
    for relative in sorted(f for f in files if not _is_ignored(f)):
        # Length-prefixed fields: no two different file sets can produce the same byte stream.
        name = relative.as_posix().encode("utf-8")
        data = (root / relative).read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def spec_digest(job: dict) -> str:
    """sha256 (hex) of a compiled pipeline job as canonical JSON, without the fields TFX stamps."""
    stripped = copy.deepcopy(job)
    for path in STAMPED_FIELDS:
        holder = stripped
        for key in path[:-1]:
            holder = holder.get(key, {})
        holder.pop(path[-1], None)
    return hashlib.sha256(canonical_json(stripped, spaced=False).encode()).hexdigest()


def spec_name(pipeline_name: str, pipeline_version: str, job: dict) -> str:
    """`<pipeline name>-<pipeline version>-<spec digest[:16]>.json`."""
    return f"{pipeline_name}-{pipeline_version}-{spec_digest(job)[:16]}.json"


def versions(root: str | os.PathLike[str]) -> dict[str, str]:
    """Each package's static version in the checkout at `root` (its pyproject.toml)."""
    return {p: wheels_lib.package_version(Path(root) / "packages" / p) for p in PACKAGES}


def image_reference(settings: Settings, root: str | os.PathLike[str]) -> str:
    """The components image for this checkout: `<repo>/<name>:<components version>-<content digest>`.

    The settings it reads (image_repo, image_name) are checked by the caller (the step table)."""
    digest = content_digest(root, IMAGE_INPUTS)
    return image_lib.image_uri(settings.image_repo, settings.image_name, versions(root)["components"], digest)
