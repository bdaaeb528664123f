"""`invoke plan`: which packages changed between two commits, and the cheapest correct workflow."""

from invoke import task

from tasks._common import ROOT, guard, step_context, workspace


@task(
    help={
        "base": "The commit last built, or ':release' for the commit of the last release (the record in the "
        "bucket; cloudbuild.yaml uses it). Empty or missing from the clone -> full workflow.",
        "head": "The commit to build (default HEAD).",
        "json_": "Print one JSON object instead of a table.",
        "markdown": "Print Markdown (for a GitHub job summary) instead of a table.",
        "cloud": "Also check every setting the planned steps need and add the steps that make what the "
        "registry or bucket lacks (the image a compile names, a spec to reuse). Implied by --base :release.",
    }
)
def plan(c, base="", head="HEAD", json_=False, cloud=False, markdown=False):
    """Which packages changed between two commits, and the cheapest correct workflow; writes .cicd/plan.json."""
    from cicd_release.plan import release_state
    from cicd_release.plan.changes import format_markdown, format_table

    # Only a cloud plan reads the settings (and the bucket): a plan from git alone needs neither.
    cloud_ = step_context(c) if cloud or base == release_state.RELEASE_BASE else None
    result = guard(release_state.plan, ROOT, base or None, head, cloud=cloud_)
    workspace().write_json(workspace().plan_file, result.to_dict())
    print(result.to_json() if json_ else format_markdown(result) if markdown else format_table(result))
