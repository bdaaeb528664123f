"""What every task shares: settings read once, the training config, the error boundary, the plan gate."""

from __future__ import annotations

from pathlib import Path

from invoke import Exit

from cicd_release.core.errors import ReleaseError, SettingsError
from cicd_release.core.settings import Settings
from cicd_release.core.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
LOCAL_ROOT = ROOT / ".cicd" / "local"
# The training data sets: data/<cicd.dataset>/ (the shipped one is data/penguins/).
DATA_DIR = ROOT / "data"
DATA_ROOT_HELP = "data/<cicd.dataset>: data/penguins as shipped"
PLANNED_HELP = "Skip unless .cicd/plan.json lists this step (used by cloudbuild.yaml)."
ALLOW_DIRTY_HELP = (
    "Run on a working tree with uncommitted changes (a local experiment): the run's commit label and the "
    "release record then say dirty. Without it, uncommitted changes stop the task."
)
# What invoke's config declares, so that invoke.yaml and every INVOKE_CICD_<NAME> / INVOKE_TRAINING_<NAME>
# variable can set it (invoke maps a variable only onto a key it already has). Switches and numbers are declared
# as None: invoke then hands a variable's text over as it is, and the settings model or the training config
# reads it (invoke's own casting by the default's type turned "false" into True and "abc" into a traceback).
SETTINGS_DEFAULTS = Settings.defaults()


def training_defaults() -> dict[str, None]:
    """Every training setting but the pipeline name (that one is cicd.pipeline_name), declared as None."""
    import dataclasses

    from cicd_pipeline.config import TrainingConfig

    return {f.name: None for f in dataclasses.fields(TrainingConfig) if f.name != "pipeline_name"}


def trainer_files() -> dict[str, Path]:
    """The trainer's module files, schema and holdout in this working tree, by pipeline parameter name.

    Never `import cicd_trainer`: that finds whichever copy is installed (a venv's site-packages may hold an
    older one), and a local run must run what the editor shows.
    """
    from cicd_pipeline.run_inputs import TRAINER_FILES

    return {name: ROOT / path for name, path in TRAINER_FILES.items()}


def dataset_folder(c) -> Path:
    """The training data in this checkout: data/<cicd.dataset>/ (the setting is checked by its rule)."""
    name = dict(c.config.get("cicd", {})).get("dataset") or Settings.model_fields["dataset"].default
    try:
        return DATA_DIR / Settings.from_config({"dataset": name}).dataset
    except SettingsError as err:
        raise Exit(str(err), code=err.exit_code) from None


def local_beam(c, flag: str | None = None) -> str:
    """The local run's Beam mode: the flag, else cicd.local_beam (checked by its rule), else "" (auto)."""
    if flag:
        return flag  # checked where it is used, in one line naming it (cicd_pipeline.beam_mode)
    value = dict(c.config.get("cicd", {})).get("local_beam") or ""
    try:
        return Settings.from_config({"local_beam": value}).local_beam
    except SettingsError as err:
        raise Exit(str(err), code=err.exit_code) from None


def settings(c, **flags) -> Settings:
    """The typed settings from invoke's config, explicit flags winning; a bad one exits 2 naming it."""
    values = dict(c.config.get("cicd", {}))
    values.update({k: v for k, v in flags.items() if v})
    try:
        return Settings.from_config(values)
    except SettingsError as err:
        raise Exit(str(err), code=err.exit_code) from None


def training_values(values: dict) -> dict:
    """invoke's `training:` values as TrainingConfig takes them: None (not set) left out, so the field's default
    holds, and an INVOKE_TRAINING_* variable's text read as the field's number ("300" -> 300, "none" -> None for
    an optional one). Text that is no number stays text, and the config's rule names the setting and its fix."""
    import typing

    from cicd_pipeline.config import TrainingConfig

    types = typing.get_type_hints(TrainingConfig)
    read = {}
    for name, value in values.items():
        if value is None:
            continue
        kinds = typing.get_args(types.get(name)) or (types.get(name),)
        if isinstance(value, str) and (int in kinds or float in kinds):
            text = value.strip()
            if type(None) in kinds and text.lower() in ("", "none", "null"):
                value = None
            else:
                try:
                    value = int(text) if int in kinds else float(text)
                except ValueError:
                    pass  # the config's rule names it: "training.X='abc' is str; expected int; set ..."
        read[name] = value
    return read


def training_config(c, hyperparameters=None, train_steps=None, require_label=True):
    """The training config (training: in invoke.yaml or INVOKE_TRAINING_*, the pipeline name from
    cicd.pipeline_name, flags).

    Without a label column nothing can be trained: exit 2 saying how to set one, unless `require_label` is
    False (the release steps check their settings first, in their own order; the compile names it then).
    """
    from cicd_pipeline.config import ConfigError, TrainingConfig

    overrides = {
        k: v for k, v in {"hyperparameters": hyperparameters, "train_steps": train_steps}.items() if v
    }
    # One name for the spec, the runs and the bucket paths: the setting cicd.pipeline_name.
    name = {"pipeline_name": c.config.cicd.pipeline_name}
    try:
        config = TrainingConfig(
            **{**training_values(dict(c.config.get("training", {}))), **name, **overrides}
        )
    except ConfigError as err:
        raise Exit(str(err), code=2) from None
    except TypeError as err:  # an unknown key under training: in invoke.yaml
        raise Exit(f"training: {err}; known keys are TrainingConfig's fields.", code=2) from None
    if require_label and not config.label:
        raise Exit(
            "training.label is not set: nothing says which column to predict. Run `invoke init --data CSV "
            "--label COLUMN` for your data, or set training.label in invoke.yaml.",
            code=2,
        )
    return config


def guard(fn, *args, **kwargs):
    """Runs a package function; a user-caused stop (a ReleaseError) becomes one line and its exit code.

    Anything else is a bug and keeps its traceback.
    """
    try:
        return fn(*args, **kwargs)
    except ReleaseError as err:
        raise Exit(f"{type(err).__name__}: {err}", code=err.exit_code) from None


def workspace() -> Workspace:
    return Workspace(ROOT)


def storage_client(settings_: Settings):
    from google.cloud import storage

    from cicd_release.run.launch import credentials

    # Anonymous for a local emulator (cicd.anonymous_credentials): never send a developer's identity to it.
    anonymous = credentials(settings_)
    if anonymous is not None:
        return storage.Client(project=settings_.project or "local", credentials=anonymous)
    return storage.Client(project=settings_.project or None)


def step_context(c, settings_: Settings | None = None, step: str | None = None, **options):
    """The `StepContext` a step works from: this checkout, validated settings and config, the options given.

    With `step`, the settings the step table says it needs are checked here, at the task's entry, before it
    does anything: exit 2 naming the first that is missing; and a step that releases what the checkout holds
    refuses uncommitted changes (exit 2) unless `allow_dirty` is among the options (a dry run only says).
    """
    import threading

    from cicd_release.steps import StepContext, check_settings

    settings_ = settings_ or settings(c)
    if step is not None:
        guard(check_settings, settings_, [step])
    config = training_config(c, require_label=False)
    # Made on first use (most steps never talk to storage), one per thread: `invoke ci` runs independent
    # steps side by side, and a client's HTTP session is not thread-safe.
    local = threading.local()

    def lazy_client():
        if not hasattr(local, "client"):
            local.client = storage_client(settings_)
        return local.client

    ctx = StepContext(
        ws=workspace(), settings=settings_, config=config, storage_client=lazy_client, **options
    )
    if step is not None and not c.config.run.dry:
        guard(ctx.check_clean, [step])
    return ctx


def run_step(name: str, ctx) -> None:
    """Runs one step of the table (its settings were checked when `ctx` was made for it) and prints its lines."""
    from cicd_release.steps import STEPS

    for line in guard(STEPS[name].run, ctx):
        print(line)


def skip_unless_planned(planned: bool, step: str) -> bool:
    """With --planned, a step runs only if .cicd/plan.json (written by `invoke plan`) lists it."""
    if not planned:
        return False
    plan = guard(workspace().read_json, workspace().plan_file, "plan --base REF")
    from cicd_release.core.git import head_commit

    head = guard(head_commit, ROOT)
    if plan.get("head") != head:
        raise Exit(
            f"{workspace().plan_file} plans commit {str(plan.get('head'))[:12]}, but the checkout is at {head[:12]}: "
            "run `invoke plan` again for this commit.",
            code=2,
        )
    if step in plan["steps"]:
        return False
    print(f"{step}: skipped, not in the plan (workflow {plan['workflow']!r}).")
    return True
