"""`invoke settings.check`: the settings checked by the project's settings model and step table, and nothing
done; also a release build's inputs that are not settings. .github/workflows/release.yml calls it before it
submits anything to Cloud Build."""

from invoke import Collection, Exit, task

from cicd_components.untrusted import clip
from tasks._common import guard, settings, workspace


@task(
    help={
        "step": "Also require the settings this step needs (repeatable): test, build.wheels, build.image, "
        "pipeline.compile, modules.upload, data.upload, pipeline.submit or schedule.move.",
        "all_": "Require the settings of every step of the chain (what a full build needs).",
        "planned": "Require the settings of the steps .cicd/plan.json lists (`invoke plan` writes it).",
        "cloud_build": "Complete the settings cloudbuild.yaml derives from the project and region when no "
        "substitution gives them (the repository REGION-docker.pkg.dev/PROJECT/training and the pipelines' "
        "account vertex-pipelines@PROJECT) before checking them: what release.yml submits.",
        "base": "Also check a release build's base: empty, :release or a 40-hex commit sha.",
        "build_account": "Also check the service account Cloud Build runs as (a service account e-mail).",
        "step_image": "Also check the image every Cloud Build step runs in: pinned by digest.",
    },
    iterable=["step"],
)
def check(
    c,
    step=None,
    all_=False,
    planned=False,
    cloud_build=False,
    base=None,
    build_account=None,
    step_image=None,
):
    """Check the settings (invoke.yaml, INVOKE_CICD_*) and do nothing else: exit 2 in one line on a bad one."""
    from cicd_release.core.settings import check_as
    from cicd_release.plan import changes as plan_lib
    from cicd_release.plan import release_state
    from cicd_release.steps import check_settings, required_settings

    settings_ = settings(c)  # each value by its rule: exit 2 naming the first bad one
    unknown = sorted(set(step or ()) - set(plan_lib.STEPS))
    if unknown:
        raise Exit(
            f"--step {clip(repr(unknown[0]))} is not a step: use one of {', '.join(plan_lib.STEPS)}.", code=2
        )
    steps = [*(step or ()), *(plan_lib.STEPS if all_ else ())]
    if planned:
        steps += guard(workspace().read_json, workspace().plan_file, "plan --base REF")["steps"]
    if cloud_build:
        from cicd_release.core.settings import Settings
        from cicd_release.provision.desired import cloud_defaults

        # Only what cloudbuild.yaml derives: release.yml gives the region and the bucket itself.
        derived = guard(cloud_defaults, settings_)
        values = {"image_repo": derived.image_repo, "service_account": derived.service_account}
        settings_ = guard(Settings, **{**settings_.model_dump(), **values})
    needed = required_settings(steps)
    guard(check_settings, settings_, steps)  # with the switches' needs (Dataflow: the workers' account)
    if base is not None:
        guard(release_state.check_build_base, base)
    if build_account is not None:
        guard(check_as, "service_account", build_account, "--build-account")
    if step_image is not None:
        expected = "an image pinned by digest, e.g. python:3.10.15-bookworm@sha256:<64 hex digits>"
        guard(check_as, "base_image", step_image, "--step-image", expected)
    names = f" ({', '.join(needed)})" if needed else ""
    print(f"settings: ok for {', '.join(dict.fromkeys(steps)) or 'no step'}{names}")


ns = Collection("settings")
ns.add_task(check)
