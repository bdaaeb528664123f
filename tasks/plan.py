"""`invoke plan`: which packages changed between two commits, and the cheapest correct workflow."""

from invoke import task

from tasks._common import ROOT, guard, workspace


@task(
    help={
        "base": "The commit last built (e.g. the previous push's sha). Missing from the clone -> full workflow.",
        "head": "The commit to build (default HEAD).",
        "json_": "Print one JSON object instead of a table.",
    }
)
def plan(c, base, head="HEAD", json_=False):
    """Which packages changed between two commits, and the cheapest correct workflow; writes .cicd/plan.json."""
    from cicd_release.plan import format_table, make_plan

    result = guard(make_plan, str(ROOT), base, head)
    workspace().write_json(workspace().plan_file, result.to_dict())
    print(result.to_json() if json_ else format_table(result))
