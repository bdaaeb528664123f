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
import shutil
import subprocess
import time
from pathlib import Path

from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.release import image as image_lib
from cicd_pipeline.release import plan as plan_lib
from cicd_pipeline.release import storage as storage_lib
from cicd_pipeline.release import wheels as wheels_lib
from cicd_pipeline.release.errors import ReleaseError
from cicd_pipeline.release.settings import Settings

PACKAGES = tuple(plan_lib.PACKAGES)  # the one package map: release/plan.py
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


def build_components_image(ws: Workspace, settings: Settings, extra_tags=(), push: bool = False) -> dict:
    """Builds (and pushes) the components image from a context of the Dockerfile and the components wheel."""
    reference = image_reference(settings, ws.root)
    extra = [f"{reference.rsplit(':', 1)[0]}:{tag}" for tag in extra_tags]
    context = ws.out / "image-context"
    shutil.rmtree(context, ignore_errors=True)
    image_lib.prepare_context(context, ws.root / DOCKERFILE, [components_wheel(ws)])
    result = image_lib.build_image(
        context_dir=context,
        tag=reference,
        extra_tags=extra,
        push=push,
        build_args={
            "BASE_IMAGE": settings.base_image,
            "COMPONENTS_VERSION": versions(ws.root)["components"],
            "GIT_COMMIT": git_commit(ws.root),
        },
    )
    record = {"image": reference, "tags": result["tags"], "pushed": result.get("pushed", {})}
    ws.write_json(ws.out / "image.json", record)
    return record


def compile_spec(
    ws: Workspace, settings: Settings, config: TrainingConfig, client=None
) -> tuple[Path, str | None]:
    """Compiles the Vertex spec to .cicd/specs/<name>; with a storage client, also uploads it (never over
    another). Returns the local path and the gs:// URI (None when not uploaded)."""
    from cicd_pipeline.runners.vertex import (  # imports TFX: only when compiling
        compile_vertex_spec,
        write_spec,
    )

    settings.require(["project", "region", "bucket", "image_repo"])
    reference = image_reference(settings, ws.root)
    name = spec_name(settings, ws.root, reference, config)
    job = compile_vertex_spec(
        config=config,
        pipeline_root=settings.pipeline_root,
        serving_model_dir=settings.serving_model_dir,
        registry=settings.registry,
        image=reference,
        serving_image=settings.serving_image or None,
    )
    local = write_spec(job, ws.specs_dir, name)
    if client is None:
        return local, None
    uri = f"{settings.specs_prefix}/{name}"
    storage_lib.upload_immutable(client, local, uri)
    return local, uri


def submit_run(
    ws: Workspace, settings: Settings, config: TrainingConfig, client, wait=False, hyperparameters=None
):
    """Submits a Vertex AI run of the spec compiled for this checkout, with the uploaded trainer files."""
    from cicd_pipeline.release.submit import submit_pipeline_job  # google-cloud-aiplatform: slow to import

    settings.require(["project", "region", "bucket", "image_repo", "service_account"])
    template = (
        f"{settings.specs_prefix}/{spec_name(settings, ws.root, image_reference(settings, ws.root), config)}"
    )
    if not storage_lib.blob_exists(client, template):
        raise ChainError(
            f"No compiled spec for these pipeline sources at {template}: run `invoke pipeline.compile --upload` "
            "(a trainer-only change reuses the spec of the last pipeline change)."
        )
    parameters = {
        **ws.read_json(ws.modules_file, "modules.upload"),
        "data_root": settings.resolved_data_root,
        "hyperparameters": hyperparameters or config.hyperparameters,
    }
    credentials = None
    if settings.api_endpoint.startswith("http://"):
        # Only a local stand-in speaks plain HTTP; real Vertex endpoints use TLS and the caller's credentials.
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    job = submit_pipeline_job(
        template_path=template,
        project=settings.project,
        region=settings.region,
        pipeline_root=settings.pipeline_root,
        display_name=config.pipeline_name,
        job_id=f"{config.pipeline_name}-{git_commit(ws.root)[:12]}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}",
        parameter_values=parameters,
        labels=run_labels(ws.root),
        service_account=settings.service_account,
        enable_caching=True,
        wait=wait,
        api_endpoint=settings.api_endpoint or None,
        credentials=credentials,
        storage_client=client,
    )
    record = {**dataclasses.asdict(job), "template": template, "parameters": parameters}
    ws.write_json(ws.out / "job.json", record)
    return record
