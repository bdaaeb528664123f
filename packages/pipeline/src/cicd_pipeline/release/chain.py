"""The release chain's steps over a repository checkout: the logic behind `invoke build.*`, `pipeline.*`,
`modules.*` and `ci`, and behind cloudbuild.yaml's steps, which call those tasks.

Steps hand results to later steps through files under `<repo>/.cicd/` (a Cloud Build step is its own
container; only the workspace is shared): the plan, the uploaded module URIs, the compiled spec.

Names are derived from content, so any step can compute them without running the others:
- the image tag from the components package, the Dockerfile and the lock (image.content_digest);
- the spec name from the pipeline package, the lock, the image and the settings it is compiled with.
A trainer-only change therefore finds the spec and image of the last pipeline/components change by name.
"""

import dataclasses
import hashlib
import json
import subprocess
from pathlib import Path

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.release import image as image_lib
from cicd_pipeline.release import storage as storage_lib
from cicd_pipeline.release import wheels as wheels_lib
from cicd_pipeline.release.errors import ReleaseError
from cicd_pipeline.release.settings import Settings

PACKAGES = ("components", "pipeline", "trainer")
# The trainer's files that runs use, by pipeline parameter name (repo-relative: the pipeline package does
# not import the trainer; it only passes these files' uploaded URIs).
TRAINER_FILES = {
    "preprocessing_module": "packages/trainer/src/cicd_trainer/preprocessing.py",
    "model_module": "packages/trainer/src/cicd_trainer/model.py",
    "schema_file": "packages/trainer/src/cicd_trainer/schema/schema.pbtxt",
}
IMAGE_INPUTS = (
    "packages/components/src",
    "packages/components/pyproject.toml",
    "docker",
    "requirements/lock.txt",
)
SPEC_INPUTS = ("packages/pipeline/src", "packages/pipeline/pyproject.toml", "requirements/lock.txt")
DOCKERFILE = "docker/Dockerfile"


class ChainError(ReleaseError, RuntimeError):
    """A step cannot run: the message names what is missing and which step or setting provides it."""


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
    def specs_dir(self) -> Path:
        return self.out / "specs"

    def write_json(self, path: Path, data: dict) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    def read_json(self, path: Path, made_by: str) -> dict:
        if not path.exists():
            raise ChainError(f"{path} does not exist: run `invoke {made_by}` first.")
        return json.loads(path.read_text())


def git_commit(root: Path) -> str:
    """HEAD's sha, or a ChainError: every artifact and run is traced to a commit."""
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if result.returncode:
        raise ChainError(f"{root} is not a git checkout with a commit: {result.stderr.strip()}")
    return result.stdout.strip()


def is_dirty(root: Path, paths) -> bool:
    result = subprocess.run(
        ["git", "status", "--porcelain", "--", *paths], cwd=root, capture_output=True, text=True
    )
    return bool(result.stdout.strip())


def versions(root: Path) -> dict[str, str]:
    return {p: wheels_lib.package_version(root / "packages" / p) for p in PACKAGES}


def local_version(root: Path, package: str) -> str:
    """`g<sha12>` for a clean package, plus `.dirty<hash>` when its files differ from the commit."""
    local = f"g{git_commit(root)[:12]}"
    package_dir = f"packages/{package}"
    if is_dirty(root, [package_dir]):
        local += f".dirty{image_lib.content_digest(root, [package_dir])[:8]}"
    return local


def image_reference(settings: Settings, root: Path) -> str:
    """The components image for this checkout: `<repo>/<name>:<components version>-<content digest>`."""
    settings.require(["image_repo", "image_name"])
    digest = image_lib.content_digest(root, IMAGE_INPUTS)
    return image_lib.image_uri(settings.image_repo, settings.image_name, versions(root)["components"], digest)


def spec_name(settings: Settings, root: Path, image: str, config: TrainingConfig) -> str:
    """`<pipeline name>-<pipeline version>-<digest>.json`, the digest over everything the compile reads."""
    inputs = {
        "sources": image_lib.content_digest(root, SPEC_INPUTS),
        "image": image,
        "config": dataclasses.asdict(config),
        "pipeline_root": settings.pipeline_root,
        "serving_model_dir": settings.serving_model_dir,
        "registry": settings.registry,
        "serving_image": settings.serving_image,
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    return f"{config.pipeline_name}-{versions(root)['pipeline']}-{digest}.json"


def build_wheels(ws: Workspace, packages=PACKAGES, release: bool = False) -> list[Path]:
    """One wheel per package in dist/; a non-release build carries the commit in its local version."""
    return [
        wheels_lib.build_wheel(
            ws.root / "packages" / p, ws.dist, None if release else local_version(ws.root, p)
        )
        for p in packages
    ]


def components_wheel(ws: Workspace) -> Path:
    version = versions(ws.root)["components"]
    local = local_version(ws.root, "components")
    wheel = ws.dist / f"cicd_components-{version}+{local}-py3-none-any.whl"
    if not wheel.exists():
        raise ChainError(f"{wheel.name} is not in {ws.dist}: run `invoke build.wheels` first.")
    return wheel


def upload_modules(ws: Workspace, settings: Settings, client) -> dict[str, str]:
    """Uploads the trainer files content-addressed (never overwriting); records the URIs for submit."""
    settings.require(["bucket"])
    files = {name: ws.root / path for name, path in TRAINER_FILES.items()}
    uris = storage_lib.upload_content_addressed(client, settings.modules_prefix, files)
    ws.write_json(ws.modules_file, uris)
    return uris


def run_labels(root: Path) -> dict[str, str]:
    """Labels every run carries: the commit and the three package versions (sanitised by submit)."""
    return {"commit": git_commit(root)[:12], **{f"{p}_version": v for p, v in versions(root).items()}}
