"""`invoke plan`: which packages changed between two commits, and the cheapest correct workflow."""

from invoke import task

from tasks._common import ROOT, guard, release, settings, workspace


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
    from cicd_release import steps
    from cicd_release.plan import format_markdown, format_table, make_plan

    if cloud or base == steps.RELEASE_BASE:
        chain = release(c, settings(c))
        result = guard(steps.plan_release, chain, base or None, head)
        guard(steps.check_settings, chain.settings, result)
    else:
        result = guard(make_plan, str(ROOT), base or None, head)
    workspace().write_json(workspace().plan_file, result.to_dict())
    print(result.to_json() if json_ else format_markdown(result) if markdown else format_table(result))
