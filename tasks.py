"""Invoke tasks: the local run and the release chain. `invoke --list` and `invoke --help TASK` are the manual.

Tasks are thin: they read settings (invoke.yaml / INVOKE_CICD_* environment / flags), call the packages'
functions, and report. cloudbuild.yaml calls these same tasks, and `invoke ci` runs them in the same order.
"""

import dataclasses
import json
import shutil
import sys
import time
import warnings
from pathlib import Path

from invoke import Collection, Exit, task

from cicd_pipeline.release.settings import Settings

# google-api-core warns on every import that Python 3.10 is past its end of life; TFX 1.16 holds us to 3.10
# (docs/platform.md). Said once here instead of forty times per task.
warnings.filterwarnings(
    "ignore", message="You are using a non-supported Python version", category=FutureWarning
)
warnings.filterwarnings("ignore", message="Support for google-cloud-storage < 3.0.0", category=FutureWarning)

ROOT = Path(__file__).resolve().parent
LOCAL_ROOT = ROOT / ".cicd" / "local"
DATA_ROOT = ROOT / "data" / "penguins"
PLANNED_HELP = "Skip unless .cicd/plan.json lists this step (used by cloudbuild.yaml)."


def _settings(c, **flags):
    """The typed settings from invoke's config with explicit flags winning; exits naming a bad setting."""
    from cicd_pipeline.release.settings import SettingsError

    values = dict(c.config.get("cicd", {}))
    values.update({k: v for k, v in flags.items() if v})
    try:
        return Settings.from_config(values)
    except SettingsError as err:
        raise Exit(str(err)) from None


def _require(settings, *names):
    from cicd_pipeline.release.settings import SettingsError

    try:
        return settings.require(names)
    except SettingsError as err:
        raise Exit(str(err)) from None


def _training_config(c, hyperparameters=None, train_steps=None):
    from cicd_pipeline.config import TrainingConfig

    overrides = {
        k: v for k, v in {"hyperparameters": hyperparameters, "train_steps": train_steps}.items() if v
    }
    # The pipeline's name is a setting (cicd.pipeline_name): one name for the spec, the runs and the bucket paths.
    name = {"pipeline_name": c.config.cicd.pipeline_name}
    try:
        return TrainingConfig(**{**dict(c.config.get("training", {})), **name, **overrides})
    except (TypeError, ValueError) as err:
        raise Exit(f"Bad training setting: {err}") from None


def _ws():
    from cicd_pipeline.release.chain import Workspace

    return Workspace(ROOT)


def _guard(fn, *args, **kwargs):
    """Runs a chain function; a user-facing error becomes a one-line exit, not a traceback."""
    from cicd_pipeline.release.errors import ReleaseError

    try:
        return fn(*args, **kwargs)
    except (ReleaseError, ValueError, FileExistsError) as err:
        raise Exit(f"{type(err).__name__}: {err}") from None


def _skip_unless_planned(planned, step):
    """With --planned, a step runs only if .cicd/plan.json (written by `invoke plan`) lists it."""
    if not planned:
        return False
    plan = _guard(_ws().read_json, _ws().plan_file, "plan --base REF")
    if step in plan["steps"]:
        return False
    print(f"{step}: skipped, not in the plan (workflow {plan['workflow']!r}).")
    return True


# ---------------------------------------------------------------- local run


@task(
    help={
        "root": f"Folder for the run's state: pipeline root, metadata, pushed models, registry (default {LOCAL_ROOT.relative_to(ROOT)}).",
        "data_root": f"Folder of training CSV files (default {DATA_ROOT.relative_to(ROOT)}).",
        "fresh": "Delete the root first, so nothing is reused from earlier runs.",
        "train_steps": "Training steps (default from the training config).",
        "hyperparameters": "JSON object overriding hyperparameters, e.g. '{\"learning_rate\": 0.02}'.",
    }
)
def run(c, root=None, data_root=None, fresh=False, train_steps=None, hyperparameters=None):
    """Run the whole pipeline locally (LocalDagRunner) and print where the model went, its metrics, its blessing."""
    import cicd_trainer
    from cicd_pipeline.report import format_summary, summarize_run
    from cicd_pipeline.runners.local import LocalInputs, LocalLayout, run_local

    config = _training_config(c, hyperparameters, int(train_steps) if train_steps else None)
    layout = LocalLayout(Path(root or LOCAL_ROOT).resolve())
    inputs = LocalInputs(
        data_root=Path(data_root or DATA_ROOT),
        schema_file=Path(cicd_trainer.SCHEMA_FILE),
        preprocessing_module=Path(cicd_trainer.PREPROCESSING_MODULE),
        model_module=Path(cicd_trainer.MODEL_MODULE),
    )
    if fresh and layout.root.exists():
        shutil.rmtree(layout.root)
    started = time.monotonic()
    try:
        run_local(layout, inputs, config)
    except ValueError as err:
        raise Exit(f"Cannot run: {err}") from None
    elapsed = time.monotonic() - started
    summary = summarize_run(layout.metadata_path, config.pipeline_name)
    print(format_summary(summary))
    print(f"\n  executed: {', '.join(summary.executed) or '(none)'}")
    print(f"  cached:   {', '.join(summary.cached) or '(none)'}")
    print(f"  wall time of the pipeline: {elapsed:.1f} s   (state in {layout.root})")


@task(
    help={
        "out": "Where to write the inferred schema (never over an existing file).",
        "data_root": f"Folder of CSV files to infer from (default {DATA_ROOT.relative_to(ROOT)}).",
    }
)
def bootstrap(c, out, data_root=None):
    """Infer a first schema with SchemaGen, to curate and commit (the pipeline imports the curated one)."""
    import tempfile

    from cicd_pipeline.bootstrap import bootstrap_schema

    with tempfile.TemporaryDirectory() as workdir:
        try:
            path = bootstrap_schema(Path(data_root or DATA_ROOT), Path(workdir), Path(out))
        except (ValueError, FileExistsError) as err:
            raise Exit(str(err)) from None
    print(f"{path}: edit it (presence, value counts, domains), then point the trainer's SCHEMA_FILE at it.")


# ---------------------------------------------------------------- plan


@task(
    help={
        "base": "The commit last built (e.g. the previous push's sha). Missing from the clone -> full workflow.",
        "head": "The commit to build (default HEAD).",
        "json_": "Print one JSON object instead of a table.",
    }
)
def plan(c, base, head="HEAD", json_=False):
    """Which packages changed between two commits, and the cheapest correct workflow; writes .cicd/plan.json."""
    from cicd_pipeline.release.plan import format_table, make_plan

    result = _guard(make_plan, str(ROOT), base, head)
    _ws().write_json(_ws().plan_file, result.to_dict())
    print(result.to_json() if json_ else format_table(result))


# ---------------------------------------------------------------- build


@task(
    help={
        "package": "Only this package (components, pipeline or trainer); default all three.",
        "release": "Plain release version (no +g<commit> local part): only for tagged releases.",
        "planned": PLANNED_HELP,
    }
)
def wheels(c, package=None, release=False, planned=False):
    """Build wheels into dist/, named by package version (+ the commit for non-release builds)."""
    from cicd_pipeline.release import chain

    if _skip_unless_planned(planned, "build.wheels"):
        return
    if package and package not in chain.PACKAGES:
        raise Exit(f"--package {package!r} is not one of {', '.join(chain.PACKAGES)}.")
    if c.config.run.dry:
        print(f"would build wheels of {package or ', '.join(chain.PACKAGES)} into {_ws().dist}")
        return
    for wheel in _guard(chain.build_wheels, _ws(), [package] if package else chain.PACKAGES, release):
        print(wheel)


@task(
    help={
        "push": "Push the image (and extra tags) to the registry.",
        "tag": "An extra tag to add, e.g. the commit sha (repeatable).",
        "image_repo": "Artifact Registry path REGION-docker.pkg.dev/PROJECT/REPOSITORY.",
        "base_image": "Base image (default the pinned TFX image).",
        "planned": PLANNED_HELP,
    },
    iterable=["tag"],
)
def image(c, push=False, tag=None, image_repo=None, base_image=None, planned=False):
    """Build the components image through the docker SDK (Docker or podman's API), tagged <version>-<digest>."""
    if _skip_unless_planned(planned, "build.image"):
        return
    from cicd_pipeline.release import chain

    settings = _settings(c, image_repo=image_repo, base_image=base_image)
    if c.config.run.dry:
        reference = _guard(chain.image_reference, settings, ROOT)
        print(
            f"would build {reference} (extra tags: {tag or 'none'}) from {chain.DOCKERFILE} and the components "
            f"wheel in dist/ on {settings.base_image}{', and push' if push else ''}"
        )
        return
    print(_guard(chain.build_components_image, _ws(), settings, tag or (), push)["image"])


# ---------------------------------------------------------------- pipeline


def _storage_client(settings):
    from google.cloud import storage

    return storage.Client(project=settings.project or None)


def _compile(settings, config, upload):
    from cicd_pipeline.release import chain

    client = _storage_client(settings) if upload else None
    for path in _guard(chain.compile_spec, _ws(), settings, config, client):
        if path:
            print(path)


@task(
    help={
        "upload": "Also upload the spec to gs://BUCKET/specs/ (never overwriting), where submit finds it.",
        "planned": PLANNED_HELP,
    }
)
def compile_(c, upload=False, planned=False):
    """Compile the Vertex AI (KFP v2 IR) spec to .cicd/specs/<name>-<version>-<digest>.json."""
    if _skip_unless_planned(planned, "pipeline.compile"):
        return
    _compile(_settings(c), _training_config(c), upload)


def _submit(settings, config, wait, hyperparameters=None):
    from cicd_pipeline.release import chain

    job = _guard(chain.submit_run, _ws(), settings, config, _storage_client(settings), wait, hyperparameters)
    print(json.dumps(job, indent=2))


@task(
    help={
        "wait": "Follow the run to its end; exit non-zero unless it succeeded.",
        "hyperparameters": "JSON object overriding the hyperparameters for this run only.",
        "planned": PLANNED_HELP,
    }
)
def submit(c, wait=False, hyperparameters=None, planned=False):
    """Submit a Vertex AI pipeline run of the compiled spec with the uploaded modules, caching on, labelled."""
    if _skip_unless_planned(planned, "pipeline.submit"):
        return
    _submit(_settings(c), _training_config(c), wait, hyperparameters)


# ---------------------------------------------------------------- modules


@task(help={"planned": PLANNED_HELP})
def upload(c, planned=False):
    """Upload the trainer's module files and schema to gs://BUCKET/modules/<sha256>/ (never overwriting)."""
    if _skip_unless_planned(planned, "modules.upload"):
        return
    from cicd_pipeline.release import chain

    settings = _require(_settings(c), "bucket")
    if c.config.run.dry:
        print(
            f"would upload {', '.join(chain.TRAINER_FILES.values())} under {settings.modules_prefix}/<sha256>/"
        )
        return
    for name, uri in _guard(chain.upload_modules, _ws(), settings, _storage_client(settings)).items():
        print(f"{name}: {uri}")


# ---------------------------------------------------------------- tests and ci


@task(
    help={"sessions": "nox sessions to run (default: lint and the package unit tests)."},
    iterable=["sessions"],
)
def test(c, sessions=None):
    """The unit tests and lint, each in its own nox session."""
    c.run(f"nox -s {' '.join(sessions or ['lint', 'tests'])}", pty=False)


@task(
    help={
        "base": "The commit last built; missing (e.g. a shallow clone) -> full workflow.",
        "head": "The commit to build (default HEAD).",
        "skip_tests": "Do not run the `test` step (say so: for trying the chain itself).",
        "wait": "Follow the submitted run to its end.",
    }
)
def ci(c, base=None, head="HEAD", skip_tests=False, wait=False):
    """Run the plan's steps in order: the same chain as cloudbuild.yaml, locally."""
    from cicd_pipeline.release import chain
    from cicd_pipeline.release.plan import STEPS, format_table, make_plan, needs

    result = _guard(make_plan, str(ROOT), base, head)
    _ws().write_json(_ws().plan_file, result.to_dict())
    print(format_table(result))
    settings = _settings(c)
    config = _training_config(c)
    steps = {
        "test": lambda: print("test: skipped (--skip-tests)") if skip_tests else test(c),
        "build.wheels": lambda: [print(w) for w in _guard(chain.build_wheels, _ws(), chain.PACKAGES)],
        "build.image": lambda: image(c, push=True, tag=[chain.git_commit(ROOT)]),
        "pipeline.compile": lambda: _compile(settings, config, upload=True),
        "modules.upload": lambda: upload(c),
        "pipeline.submit": lambda: _submit(settings, config, wait),
    }
    for step in STEPS:
        if needs(result, step):
            print(f"\n== {step}")
            started = time.monotonic()
            steps[step]()
            print(f"== {step}: done in {time.monotonic() - started:.1f} s")


@task
def lock(c):
    """Re-resolve requirements/lock.txt from requirements/lock.in (Python 3.10), with uv."""
    c.run(f"uv pip compile --python-version 3.10 {ROOT}/requirements/lock.in -o {ROOT}/requirements/lock.txt")


build = Collection("build")
build.add_task(wheels)
build.add_task(image)
pipeline = Collection("pipeline")
pipeline.add_task(run)
pipeline.add_task(compile_, name="compile")
pipeline.add_task(submit)
modules = Collection("modules")
modules.add_task(upload)
schema = Collection("schema")
schema.add_task(bootstrap)

ns = Collection(run, plan, test, ci, lock, build, pipeline, modules, schema)
# Every setting is declared here so that invoke.yaml and INVOKE_CICD_<NAME> variables can set it.
ns.configure({"cicd": {f.name: f.default for f in dataclasses.fields(Settings)}, "training": {}})
if __name__ == "__main__":
    sys.exit("Run these with invoke: `invoke --list`.")
