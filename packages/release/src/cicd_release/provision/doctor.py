"""`invoke doctor`: is this project ready for a release? One line per check, `ok` or `FAIL` with the command
that fixes it; ProjectNotReady (exit 3) when any check fails. Cloud Build runs it first, so a broken project
fails a build in seconds, not after a 20-minute image build.

What it checks is the desired state of cicd_release/provision/desired.py (the same table `invoke setup` creates):
the APIs, the buckets (the artifact bucket in the region: Model Registry needs the model's artifacts there),
the repository, the service accounts, every role of the table, the last release's record (every problem that
makes a release refuse it), spec and image, and the data.

Roles are checked two ways, because Google's testIamPermissions answers for the *caller* only:
- the identity doctor runs as (on Cloud Build, the build's service account) asks testIamPermissions for the
  permissions the chain uses, on each resource: Google's own answer, counting every way a permission can be
  held (a role on the project, a group, a custom role);
- every other identity is checked in the resources' IAM policies: the table's role bound to it, on the
  resource or on the project (from where resources inherit it), under the table's condition where it has one.
  Reading policies needs resourcemanager.projects.getIamPolicy and the like: the custom role cicdPolicyReader,
  which setup makes and grants the build, holds the four getIamPolicy permissions and nothing else.
The custom role itself is read (iam.roles.get) and its permissions compared with the table's; a caller that may
not read role definitions (the build's account) asks testIamPermissions for them on the project instead.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator

from cicd_release.core.errors import CloudUnavailable, MissingBucket, ProjectNotReady, Refused, ReleaseError
from cicd_release.core.settings import Settings
from cicd_release.provision import desired
from cicd_release.provision.desired import Deployment
from cicd_release.provision.gcp_admin import Cloud, holds

OK, FAIL, SKIP = "ok", "FAIL", "skip"


@dataclasses.dataclass(frozen=True)
class Check:
    status: str  # OK, FAIL or SKIP
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status:<4}  {self.what}" + (f"  -> fix: {self.fix}" if self.fix else "")


def run_checks(cloud: Cloud, settings: Settings, say: Callable[[str], None] = print) -> list[Check]:
    """Runs every check, saying each line as it is known; ProjectNotReady at the end when one failed.

    An endpoint that cannot be reached at all stops at the first call (CloudUnavailable, one line).
    """
    deployment = Deployment.from_settings(settings)
    checks: list[Check] = []
    for check in _checks(cloud, settings, deployment):
        say(check.line())
        checks.append(check)
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        raise ProjectNotReady(
            f"{len(failed)} of {len(checks)} checks failed (each FAIL line above has its fix; "
            f"`{deployment.setup_command()}` makes all of the setup ones)."
        )
    return checks


def _checks(cloud: Cloud, settings: Settings, deployment: Deployment) -> Iterator[Check]:
    enabled = cloud.enabled_services(api.name for api in deployment.apis())
    for api in deployment.apis():
        if enabled.get(api.name):
            yield Check(OK, f"API {api.name} enabled")
        else:
            yield Check(FAIL, f"API {api.name} disabled ({api.reason})", deployment.fix_api(api.name))

    exists: dict[tuple[str, str], bool] = {("project", deployment.project): True}
    for check, name, found in _bucket_checks(cloud, deployment):
        exists[("bucket", name)] = found
        yield check
    yield from _guarded(
        f"repository {deployment.repository}", lambda: _repository_check(cloud, deployment, exists)
    )
    for identity in desired.IDENTITIES:
        email = deployment.accounts[identity.key]
        yield from _guarded(
            f"service account {email}",
            lambda email=email, key=identity.key: _account_check(cloud, deployment, email, key, exists),
        )

    if deployment.github:
        try:
            deployment = dataclasses.replace(deployment, project_number=cloud.project_number())
        except ReleaseError as err:
            yield Check(
                FAIL,
                f"project {deployment.project}: cannot read its number ({err})",
                deployment.fix_api("cloudresourcemanager.googleapis.com"),
            )
    else:
        unset = [
            f"cicd.{name}"
            for name in ("github_repo", "github_repo_id", "github_owner_id")
            if not getattr(settings, name)
        ]
        yield Check(
            SKIP,
            f"roles/iam.workloadIdentityUser for GitHub on the submitter: {' and '.join(unset)} "
            f"{'is' if len(unset) == 1 else 'are'} not set",
        )
    for role in desired.CUSTOM_ROLES:
        yield from _guarded(
            f"custom role {deployment.custom_role(role)}",
            lambda role=role: _custom_role_check(cloud, deployment, role),
        )
    yield from _grant_checks(cloud, deployment, exists)
    yield from _guarded("release", lambda: _release_checks(cloud, settings))
    yield from _guarded(f"data {settings.resolved_data_root}", lambda: [_data_check(cloud, settings)])


def _guarded(what: str, make: Callable[[], object]) -> Iterator[Check]:
    """The checks `make` returns, or one FAIL naming the refusal (an unreachable endpoint still stops all)."""
    try:
        result = make()
    except CloudUnavailable:
        raise
    except ReleaseError as err:
        yield Check(FAIL, f"{what}: {err}")
        return
    yield from result if isinstance(result, list) else [result]


def _bucket_checks(cloud: Cloud, deployment: Deployment) -> Iterator[tuple[Check, str, bool]]:
    """Each bucket's check, its name and whether it exists (its roles are checked only then)."""
    for name, region_matters in ((deployment.bucket, True), (deployment.staging_bucket, False)):
        try:
            found = cloud.bucket(name)
        except CloudUnavailable:
            raise
        except ReleaseError as err:
            if not region_matters and "storage.buckets.get" in str(err):
                # GCS answers 404 for a bucket that does not exist, to anyone: a refusal means it exists. The
                # build's account needs only its objects (it reads the uploaded source), not its metadata.
                yield (
                    Check(OK, f"bucket gs://{name} (exists; its metadata is not this caller's to read)"),
                    name,
                    True,
                )
            else:
                yield Check(FAIL, f"bucket gs://{name}: {err}"), name, False
            continue
        if found is None:
            yield Check(FAIL, f"bucket gs://{name} missing", deployment.fix_bucket(name)), name, False
        elif region_matters and found["location"] != deployment.region:
            yield (
                Check(
                    FAIL,
                    f"bucket gs://{name} is in {found['location']}, not {deployment.region} (Model Registry needs "
                    "the model's artifacts in its region; a bucket cannot move)",
                    f"set cicd.bucket to a new name, then {deployment.setup_command()}",
                ),
                name,
                True,
            )
        elif not found["uniform"]:
            yield (
                Check(
                    FAIL,
                    f"bucket gs://{name} has no uniform bucket-level access",
                    f"gcloud storage buckets update gs://{name} --uniform-bucket-level-access",
                ),
                name,
                True,
            )
        else:
            where = f" in {found['location']}" if region_matters else ""
            yield Check(OK, f"bucket gs://{name}{where}"), name, True


def _repository_check(cloud: Cloud, deployment: Deployment, exists: dict) -> Check:
    found = cloud.repository(deployment.repository)
    exists[("repository", deployment.repository)] = bool(found)
    if not found:
        return Check(FAIL, f"repository {deployment.repository} missing", deployment.fix_repository())
    if found["format"] != "DOCKER":
        return Check(
            FAIL,
            f"repository {deployment.repository} is {found['format']}, not DOCKER",
            "set cicd.image_repo",
        )
    return Check(OK, f"repository {deployment.repository}")


def _account_check(cloud: Cloud, deployment: Deployment, email: str, key: str, exists: dict) -> Check:
    found = cloud.service_account(email) is not None
    exists[("service account", email)] = found
    if found:
        return Check(OK, f"service account {email}")
    return Check(
        FAIL, f"service account {email} missing ({desired.IDENTITY[key].does})", deployment.fix_account(key)
    )


def _custom_role_check(cloud: Cloud, deployment: Deployment, role: desired.CustomRole) -> Check:
    name = deployment.custom_role(role)
    fix = deployment.setup_command()
    try:
        found = cloud.custom_role(name)
    except Refused:
        caller = cloud.caller()
        if not caller:
            raise
        # The build's account may not read role definitions (no iam.roles.get, on purpose): what it holds of
        # the role's permissions, Google's own answer, says whether the role (granted to it) is whole.
        held = cloud.test_permissions("project", deployment.project, list(role.permissions))
        missing = [p for p in role.permissions if p not in held]
        if missing:
            return Check(
                FAIL, f"custom role {name}: {caller} (this caller) lacks {', '.join(missing)} from it", fix
            )
        return Check(
            OK, f"custom role {name}: {caller} (this caller) holds its {len(role.permissions)} permissions"
        )
    if found is None:
        return Check(FAIL, f"custom role {name} missing ({role.description})", fix)
    if found.get("deleted"):
        return Check(FAIL, f"custom role {name} is deleted (setup undeletes it)", fix)
    missing = sorted(set(role.permissions) - set(found.get("includedPermissions", [])))
    extra = sorted(set(found.get("includedPermissions", [])) - set(role.permissions))
    if missing or extra:
        said = ", ".join(
            part
            for part in (
                missing and f"lacks {', '.join(missing)}",
                extra and f"has more than it needs: {', '.join(extra)}",
            )
            if part
        )
        return Check(FAIL, f"custom role {name} {said}", fix)
    return Check(OK, f"custom role {name}: {', '.join(sorted(role.permissions))}")


def _grant_checks(cloud: Cloud, deployment: Deployment, exists: dict) -> Iterator[Check]:
    caller = cloud.caller()
    policies: dict[tuple[str, str], dict | str] = {}
    for grant in deployment.grants():
        kind, name = deployment.target(grant.on)
        member, role = deployment.member(grant.member), deployment.role(grant)
        condition = deployment.condition(grant)
        where = deployment.shown(grant.on) + (f" if {condition['title']}" if condition else "")
        if not exists.get((kind, name), False):
            yield Check(SKIP, f"{role} for {member} on {where}: the resource is missing (above)")
            continue
        if caller and member == f"serviceAccount:{caller}":
            yield from _guarded(
                f"{role} on {where}",
                functools.partial(_tested, cloud, deployment, grant, kind, name, caller),
            )
            continue
        if (kind, name) not in policies:
            try:
                policies[(kind, name)] = cloud.policy(kind, name)
            except ReleaseError as err:
                policies[(kind, name)] = str(err)
        policy = policies[(kind, name)]
        if isinstance(policy, str):
            yield Check(
                FAIL,
                f"{role} for {member} on {where}: cannot read the IAM policy ({policy})",
                f"run `invoke doctor` as a project owner, or grant "
                f"{deployment.custom_role(desired.POLICY_READER)} to this caller",
            )
            continue
        project_policy = policies.get(("project", deployment.project))
        if project_policy is None and kind != "project":
            try:
                project_policy = policies[("project", deployment.project)] = cloud.policy(
                    "project", deployment.project
                )
            except ReleaseError as err:
                project_policy = policies[("project", deployment.project)] = str(err)
        # A conditional grant is the table's only on the resource itself: the project's policy knows no buckets.
        inherited = not condition and isinstance(project_policy, dict) and holds(project_policy, role, member)
        if holds(policy, role, member, condition) or inherited:
            yield Check(OK, f"{role} for {member} on {where}")
        else:
            yield Check(
                FAIL,
                f"{member} lacks {role} on {where} ({grant.reason})",
                deployment.fix_grant(grant),
            )


def _tested(
    cloud: Cloud, deployment: Deployment, grant: desired.Grant, kind: str, name: str, caller: str
) -> Check:
    held = cloud.test_permissions(kind, name, list(grant.permissions))
    missing = [p for p in grant.permissions if p not in held]
    where, role = deployment.shown(grant.on), deployment.role(grant)
    if missing:
        return Check(
            FAIL,
            f"{caller} (this caller) lacks {', '.join(missing)} on {where}, from {role} ({grant.reason})",
            deployment.fix_grant(grant),
        )
    return Check(OK, f"{role} on {where}: {caller} (this caller) holds {', '.join(grant.permissions)}")


def _release_checks(cloud: Cloud, settings: Settings) -> list[Check]:
    """The last release's record can be trusted (release_state.record_problems: each problem its own line), and
    its spec and image are where it says (a trainer-only build reuses them)."""
    from cicd_release.artifacts import image as image_lib
    from cicd_release.plan import release_state
    from cicd_release.publish import storage as storage_lib

    uri = release_state.record_uri(settings)
    deadline = float(settings.request_deadline_seconds)
    with cloud.reporting("Cloud Storage", "storage.googleapis.com"):
        data, _ = storage_lib.read_json_object(cloud.storage, uri, deadline=deadline)
        problems = release_state.record_problems(settings, cloud.storage, data) if data is not None else []
    if data is None:
        return [Check(OK, f"release: no release yet ({uri} absent; the first build makes everything)")]
    refused = (
        "find out who changed it (only a release writes it), then delete it "
        f"(`gcloud storage rm {uri}`: the next build releases everything) or put back a good one from "
        f"{settings.releases_prefix}/runs/"
    )
    if problems and problems[0][0] == "content":
        return [Check(FAIL, f"release record {uri} refused: its {problems[0][1]}", refused)]
    release = f"release {data['commit'][:12]}"
    inputs = data["inputs"]
    spec, image = inputs["spec"], inputs["image"]
    spec_wrong = [why for what, why in problems if what.startswith("spec ")]
    image_wrong = [why for what, why in problems if what.startswith("image ")]
    checks = []
    if spec_wrong:
        checks.append(Check(FAIL, f"{release}: spec {spec} {spec_wrong[0]} (the record is refused)", refused))
    else:
        with cloud.reporting("Cloud Storage", "storage.googleapis.com"):
            spec_found = storage_lib.blob_exists(cloud.storage, spec, deadline=deadline)
        if spec_found:
            checks.append(Check(OK, f"{release}: spec {spec}"))
        else:
            checks.append(
                Check(
                    FAIL,
                    f"{release}: spec {spec or '(none in the record)'} missing",
                    "run the full chain once: `gcloud builds submit` with _BASE='' (or the release workflow's "
                    "base input left empty)",
                )
            )
    checks += [
        Check(FAIL, f"{release}: {what} {why} (the record is refused)", refused)
        for what, why in problems
        if not what.startswith(("spec ", "image "))
    ]
    if image_wrong:
        # Never asked: a registry outside the configured repository gets no request (and no token) from us.
        checks.append(Check(FAIL, f"release image {image} {image_wrong[0]} (the record is refused)", refused))
        return checks
    try:
        # A Google token only for Artifact Registry hosts (registry_auth's rule): never to another registry.
        present = bool(image) and image_lib.image_exists(
            image, image_lib.registry_auth(image), timeout=deadline
        )
    except ReleaseError as err:
        checks.append(Check(FAIL, f"release image {image}: {err}"))
        return checks
    if present:
        checks.append(Check(OK, f"release image {image}"))
    else:
        checks.append(
            Check(
                FAIL,
                f"release image {image or '(none in the record)'} missing",
                "run the full chain once (the plan adds build.image for a missing tag): `gcloud builds submit` "
                "with _BASE=''",
            )
        )
    return checks


def _data_check(cloud: Cloud, settings: Settings) -> Check:
    """The data root a run reads holds at least one object.

    Where a data snapshot gets a LATEST pointer (gs://BUCKET/data/NAME/LATEST), check the pointer and the
    snapshot it names here: the run's data root is then the snapshot, not the folder.
    """
    from cicd_release.core.faults import missing_bucket
    from cicd_release.publish import storage as storage_lib

    root = settings.resolved_data_root
    bucket, prefix = storage_lib.parse_gs_uri(root)
    try:
        with cloud.reporting("Cloud Storage", "storage.googleapis.com") as calls:
            calls.now("listing", root, on_404=missing_bucket)
            blobs = list(
                cloud.storage.list_blobs(
                    bucket,
                    prefix=prefix.rstrip("/") + "/",
                    max_results=1,
                    timeout=float(settings.request_deadline_seconds),
                )
            )
    except MissingBucket:
        return Check(
            FAIL,
            f"no bucket gs://{bucket} for the data {root}",
            f"gcloud storage buckets create gs://{bucket}",
        )
    if blobs:
        return Check(OK, f"data under {root}")
    return Check(
        FAIL,
        f"no data under {root} (CsvExampleGen would find no files)",
        f"gcloud storage cp data/{settings.dataset}/*.csv {root}/",
    )
