"""`invoke ci`: the release package's step table, as the plan says: what cloudbuild.yaml runs."""

from invoke import task

from tasks._common import ALLOW_DIRTY_HELP, ROOT, guard, settings, step_context, workspace


@task(
    help={
        "base": "The commit last built, or ':release' for the last release's (the record in the bucket); "
        "empty or missing from the clone -> full workflow.",
        "head": "The commit to build (default HEAD).",
        "skip_tests": "Do not run the `test` step (say so: for trying the chain itself).",
        "wait": "Follow the submitted run to its end and print what it did; fail if it failed.",
        "poll_seconds": "How often a followed run is asked for its state (default 30).",
        "allow_dirty": ALLOW_DIRTY_HELP,
    }
)
def ci(c, base=None, head="HEAD", skip_tests=False, wait=False, poll_seconds=30.0, allow_dirty=False):
    """Run the plan's steps, independent ones side by side: the same chain as cloudbuild.yaml, locally."""
    settings_ = settings(c)  # every setting is checked before the first step does anything
    from cicd_release.plan import release_state
    from cicd_release.plan.changes import STEPS, format_table
    from cicd_release.steps import run_chain

    chain = step_context(
        c,
        settings_,
        skip_tests=skip_tests,
        wait=wait,
        poll_seconds=float(poll_seconds),
        allow_dirty=allow_dirty,
    )
    # Before the plan asks the bucket or the registry anything: the chain releases what the checkout holds.
    guard(chain.check_clean, STEPS)
    result = guard(release_state.plan, ROOT, base or None, head, cloud=chain)
    workspace().write_json(workspace().plan_file, result.to_dict())
    print(format_table(result))
    chain.extra_tags = (result.head,)
    guard(run_chain, chain, result)
