"""`invoke setup` and `invoke doctor`: make a Google Cloud project ready for the release chain, and check it.

Both read the desired state of cicd_release/provision/desired.py; docs/deploy.md walks the path from an empty project.
"""

from invoke import task

from tasks._common import guard, settings


@task(
    help={
        "project": "The Google Cloud project id (or cicd.project).",
        "github_repo": "OWNER/REPOSITORY whose GitHub Actions may release (or cicd.github_repo).",
        "github_repo_id": "GitHub's numeric id of that repository (or cicd.github_repo_id): "
        "`gh api repos/OWNER/REPOSITORY --jq .id`.",
        "github_owner_id": "GitHub's numeric id of its owner (or cicd.github_owner_id): "
        "`gh api repos/OWNER/REPOSITORY --jq .owner.id`.",
        "region": "Region of the bucket, repository and runs (or cicd.region; default europe-west4, as "
        "cloudbuild.yaml).",
        "apply": "Make the changes. Without it, print what would be created or changed, and change nothing.",
    }
)
def setup(c, project="", github_repo="", region="", apply=False, github_repo_id="", github_owner_id=""):
    """Create or check the APIs, buckets, repository, service accounts, roles and GitHub sign-in a release needs.

    GitHub's sign-in is bound to the repository and its owner by their numeric ids (a name can be claimed again
    once deleted) and to the main branch alone."""
    settings_ = settings(
        c,
        project=project,
        github_repo=github_repo,
        region=region,
        github_repo_id=github_repo_id,
        github_owner_id=github_owner_id,
    )
    from cicd_release.provision import setup as setup_lib
    from cicd_release.provision.desired import Deployment, cloud_defaults
    from cicd_release.provision.gcp_admin import Cloud

    guard(settings_.require, ["project", "github_repo", "github_repo_id", "github_owner_id"])
    settings_ = guard(cloud_defaults, settings_)
    deployment = guard(Deployment.from_settings, settings_)
    cloud = Cloud(settings_, deployment.project)
    if apply:
        guard(setup_lib.apply, cloud, deployment)  # says each change as it makes it
        # Read back: what was applied is now in place, and the plan's own lines say so.
        plan = guard(setup_lib.make_plan, cloud, deployment)
        lines = [plan.summary(), "", *setup_lib.github_lines(plan.deployment)]
    else:
        plan = guard(setup_lib.make_plan, cloud, deployment)
        lines = setup_lib.format_plan(plan, applied=False)
    for line in lines:
        print(line)


@task(help={"project": "The Google Cloud project id (or cicd.project)."})
def doctor(c, project=""):
    """Check a configured project in seconds: one line per check, each failure with the command that fixes it."""
    settings_ = settings(c, project=project)
    from cicd_release.provision import doctor as doctor_lib
    from cicd_release.provision.desired import cloud_defaults
    from cicd_release.provision.gcp_admin import Cloud

    settings_ = guard(cloud_defaults, settings_)
    guard(doctor_lib.run_checks, Cloud(settings_, settings_.project), settings_)
