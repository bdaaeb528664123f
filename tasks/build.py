"""`invoke build.*`: the wheels and the components image."""

from invoke import Collection, Exit, task

from cicd_components.untrusted import clip
from tasks._common import (
    ALLOW_DIRTY_HELP,
    PLANNED_HELP,
    guard,
    run_step,
    settings,
    skip_unless_planned,
    step_context,
    workspace,
)


@task(
    help={
        "package": "Only this package (components, pipeline, release or trainer); default all.",
        "release_": "Plain release version (no +g<commit> local part): only for tagged releases.",
        "planned": PLANNED_HELP,
        "allow_dirty": ALLOW_DIRTY_HELP,
    }
)
def wheels(c, package=None, release_=False, planned=False, allow_dirty=False):
    """Build wheels into dist/, named by package version (+ the commit for non-release builds)."""
    from cicd_release import steps

    if skip_unless_planned(planned, "build.wheels"):
        return
    if package and package not in steps.PACKAGES:
        raise Exit(f"--package {clip(repr(package))} is not one of {', '.join(steps.PACKAGES)}.", code=2)
    packages = (package,) if package else steps.PACKAGES
    if c.config.run.dry:
        print(f"would build wheels of {', '.join(packages)} into {workspace().dist}")
        return
    ctx = step_context(c, step="build.wheels", allow_dirty=allow_dirty)
    for wheel in guard(steps.build_wheels, ctx, packages, release_):
        print(wheel)


@task(
    help={
        "push": "Push the image (and extra tags) to the registry.",
        "tag": "An extra tag to add, e.g. the commit sha (repeatable).",
        "image_repo": "Artifact Registry path REGION-docker.pkg.dev/PROJECT/REPOSITORY.",
        "base_image": "Base image (default the pinned TFX image).",
        "planned": PLANNED_HELP,
        "allow_dirty": ALLOW_DIRTY_HELP,
    },
    iterable=["tag"],
)
def image(c, push=False, tag=None, image_repo=None, base_image=None, planned=False, allow_dirty=False):
    """Build the components image through the docker SDK (Docker or podman's API), tagged <version>-<digest>."""
    if skip_unless_planned(planned, "build.image"):
        return
    from cicd_release import steps

    settings_ = settings(c, image_repo=image_repo, base_image=base_image)
    ctx = step_context(
        c, settings_, "build.image", push=push, extra_tags=tuple(tag or ()), allow_dirty=allow_dirty
    )
    if c.config.run.dry:
        reference = guard(steps.image_reference, settings_, workspace().root)
        print(
            f"would build {reference} (extra tags: {tag or 'none'}) from {steps.DOCKERFILE} and the components "
            f"wheel in dist/ on {settings_.base_image}{', and push' if push else ''}"
        )
        return
    run_step("build.image", ctx)


ns = Collection("build")
ns.add_task(wheels)
ns.add_task(image)
