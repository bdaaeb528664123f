"""What a Google Cloud project needs before the first release, as data: the APIs, the buckets, the Artifact
Registry repository, the three service accounts, the Workload Identity pool and provider, and every role with
the reason it is needed and the permissions the chain uses from it.

`invoke setup` creates this (cicd_release/provision/setup.py), `invoke doctor` checks it (cicd_release/provision/doctor.py), and
docs/deploy.md lists it; a test keeps the three the same. Pure: no google.* import, no I/O.

Sources for the roles: Cloud Build's "Configure user-specified service accounts" (a build with its own service
account writes its logs itself: roles/logging.logWriter) and gcloud's `builds submit` (submit_util.py: it gets
the staging bucket, then uploads the source); Vertex AI Pipelines' "Configure your project" (the pipeline's
service account needs Vertex AI User and object access to the pipeline root); Model Registry's "Import models"
(the artifacts must be in a bucket in the model's region); google-github-actions/auth (Workload Identity
Federation with service account impersonation: roles/iam.workloadIdentityUser for the repository's
principalSet, the IAM Credentials and STS APIs, and an attribute condition so no other repository can use the
provider; its security considerations: the numeric, never reused `repository_id` and `repository_owner_id`
rather than names, and only the protected main branch's ref). Role contents: Google's "IAM basic and predefined
roles reference".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

from cicd_release.core.errors import InputError
from cicd_release.core.scale import DATAFLOW, VERTEX
from cicd_release.core.settings import Settings
from cicd_release.core.sources import BIGQUERY


@dataclasses.dataclass(frozen=True)
class Api:
    name: str
    reason: str
    # The switches (cicd_release.core.scale: DATAFLOW, VERTEX; cicd_release.core.sources: BIGQUERY) any of which
    # needs it; () for always.
    when: tuple[str, ...] = ()


# Every API a release touches. serviceusage and storage are on in a new project; the others are not.
APIS = (
    Api(
        "aiplatform.googleapis.com", "Vertex AI Pipelines runs the training; Model Registry keeps the models"
    ),
    Api("artifactregistry.googleapis.com", "the components image lives in an Artifact Registry repository"),
    Api("cloudbuild.googleapis.com", "the release chain runs on Cloud Build"),
    Api(
        "cloudresourcemanager.googleapis.com",
        "project IAM policies; the project number for the Workload Identity provider",
    ),
    Api("iam.googleapis.com", "service accounts and the Workload Identity pool"),
    Api("iamcredentials.googleapis.com", "GitHub's job exchanges its federated token for the submitter's"),
    Api("logging.googleapis.com", "Cloud Build writes the build's logs to Cloud Logging"),
    Api("serviceusage.googleapis.com", "setup and doctor read and enable the APIs"),
    Api(
        "storage.googleapis.com", "the bucket of modules, specs, data, the pipeline root and release records"
    ),
    Api(
        "sts.googleapis.com",
        "Workload Identity Federation exchanges GitHub's OIDC token (Security Token Service)",
    ),
)


@dataclasses.dataclass(frozen=True)
class Identity:
    key: str  # what the grants table calls it
    account_id: str  # the service account id (its e-mail's local part); vertex's comes from the settings
    title: str
    does: str


IDENTITIES = (
    Identity(
        "submitter",
        "cicd-submitter",
        "GitHub release submitter",
        "GitHub Actions act as it (Workload Identity Federation) to submit the build",
    ),
    Identity(
        "builder",
        "cicd-builder",
        "Cloud Build release chain",
        "the build runs as it (every cloudbuild.yaml step)",
    ),
    Identity(
        "vertex",
        "vertex-pipelines",
        "Vertex AI pipeline runs",
        "every task of the training run runs as it on Vertex AI",
    ),
)
IDENTITY = {identity.key: identity for identity in IDENTITIES}

# The member that is not a service account: GitHub Actions runs of the one repository (a principalSet).
GITHUB = "github"

# Where a role is granted.
PROJECT, BUCKET, STAGING, REPOSITORY = "project", "bucket", "staging bucket", "repository"
ON_ACCOUNT = "service account "  # + an identity key: granted on that service account


@dataclasses.dataclass(frozen=True)
class Grant:
    member: str  # an identity key, or GITHUB
    role: str
    on: str  # PROJECT, BUCKET, STAGING, REPOSITORY or ON_ACCOUNT + identity key
    reason: str
    # The permissions of the role the chain uses: what `invoke doctor` asks testIamPermissions for when it runs
    # as this member. Each is in the role (Google's roles reference; a test checks against the stand-in's table).
    permissions: tuple[str, ...]
    # An IAM condition narrowing the binding (its title; the expression is Deployment.condition's), or "".
    condition: str = ""
    # The switches (cicd_release.core.scale: DATAFLOW, VERTEX; cicd_release.core.sources: BIGQUERY) any of which
    # needs it; () for always.
    when: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class CustomRole:
    """A role of the project's own (projects/PROJECT/roles/ID): exactly the permissions a predefined role would
    give too many of. IAM's rules: the id is [a-zA-Z0-9_.]{3,64}; each permission must be one Google supports in
    custom roles ("Custom roles support levels"); a deleted role keeps its id for 37 days and is undeleted."""

    role_id: str
    title: str
    description: str
    permissions: tuple[str, ...]


# doctor reads IAM policies (never data): roles/iam.securityReviewer would let every build step read every
# policy and role definition in the project. These are all doctor's reads use: the four getIamPolicy reads,
# and iam.serviceAccounts.get, with which it finds the submitter and the builder accounts (securityReviewer
# held it too; the vertex account it could read through roles/iam.serviceAccountUser). Each is SUPPORTED in
# custom roles (Google's "Custom roles support levels" table).
POLICY_READER = CustomRole(
    "cicdPolicyReader",
    "CI/CD policy reader",
    "invoke doctor reads the IAM policies of the project, the buckets, the repository and the service accounts, "
    "and finds the accounts",
    (
        "resourcemanager.projects.getIamPolicy",
        "iam.serviceAccounts.getIamPolicy",
        "storage.buckets.getIamPolicy",
        "artifactregistry.repositories.getIamPolicy",
        "iam.serviceAccounts.get",
    ),
)
CUSTOM_ROLES = (POLICY_READER,)
CUSTOM_ROLE_PREFIX = (
    "projects/PROJECT/roles/"  # as the table writes a custom role; Deployment.role resolves it
)

# The one conditional binding: the GitHub job reads its run's summary, and nothing else in the bucket.
SUMMARIES_ONLY = "run summaries only"


GRANTS = (
    # --- the GitHub submitter
    Grant(
        GITHUB,
        "roles/iam.workloadIdentityUser",
        ON_ACCOUNT + "submitter",
        "GitHub Actions runs of this repository (by its id) on main, and of no other, act as the submitter",
        ("iam.serviceAccounts.getAccessToken",),
    ),
    Grant(
        "submitter",
        "roles/cloudbuild.builds.editor",
        PROJECT,
        "`gcloud builds submit` creates the build and follows it to its end",
        ("cloudbuild.builds.create", "cloudbuild.builds.get"),
    ),
    Grant(
        "submitter",
        "roles/serviceusage.serviceUsageConsumer",
        PROJECT,
        "gcloud calls the project's APIs on its quota (serviceusage.services.use)",
        ("serviceusage.services.use",),
    ),
    Grant(
        "submitter",
        "roles/iam.serviceAccountUser",
        ON_ACCOUNT + "builder",
        "the build it submits runs as the build account (`--service-account`: iam.serviceAccounts.actAs)",
        ("iam.serviceAccounts.actAs",),
    ),
    Grant(
        "submitter",
        "roles/storage.legacyBucketReader",
        STAGING,
        "`gcloud builds submit` reads the staging bucket before it uploads (storage.buckets.get)",
        ("storage.buckets.get",),
    ),
    Grant(
        "submitter",
        "roles/storage.objectCreator",
        STAGING,
        "uploads the checkout as the build's source",
        ("storage.objects.create",),
    ),
    Grant(
        "submitter",
        "roles/storage.objectViewer",
        BUCKET,
        "the GitHub job lists and reads its run's summary under releases/PIPELINE/summaries/, and nothing else "
        "in the bucket (an IAM condition)",
        ("storage.objects.get", "storage.objects.list"),
        condition=SUMMARIES_ONLY,
    ),
    # --- the Cloud Build service account
    Grant(
        "builder",
        "roles/storage.objectViewer",
        STAGING,
        "Cloud Build fetches the uploaded source as the build's service account",
        ("storage.objects.get",),
    ),
    Grant(
        "builder",
        "roles/logging.logWriter",
        PROJECT,
        "a build with its own service account writes its logs to Cloud Logging (CLOUD_LOGGING_ONLY)",
        ("logging.logEntries.create",),
    ),
    Grant(
        "builder",
        "roles/artifactregistry.writer",
        REPOSITORY,
        "build.image pushes the components image; the plan asks which tags exist",
        (
            "artifactregistry.repositories.get",
            "artifactregistry.repositories.downloadArtifacts",
            "artifactregistry.repositories.uploadArtifacts",
        ),
    ),
    Grant(
        "builder",
        "roles/storage.objectAdmin",
        BUCKET,
        "writes specs, modules, release records and run summaries; reads the data digest",
        ("storage.objects.create", "storage.objects.get", "storage.objects.list"),
    ),
    Grant(
        "builder",
        "roles/storage.legacyBucketReader",
        BUCKET,
        "invoke doctor reads the bucket's region (Storage Object Admin has no storage.buckets.get)",
        ("storage.buckets.get",),
    ),
    Grant(
        "builder",
        "roles/aiplatform.user",
        PROJECT,
        "pipeline.submit creates the Vertex AI run and follows it",
        ("aiplatform.pipelineJobs.create", "aiplatform.pipelineJobs.get"),
    ),
    Grant(
        "builder",
        "roles/iam.serviceAccountUser",
        ON_ACCOUNT + "vertex",
        "pipeline.submit starts the run as the pipeline account (iam.serviceAccounts.actAs)",
        ("iam.serviceAccounts.actAs",),
    ),
    Grant(
        "builder",
        "roles/serviceusage.serviceUsageViewer",
        PROJECT,
        "invoke doctor, the build's first step, reads which APIs are enabled",
        ("serviceusage.services.get",),
    ),
    Grant(
        "builder",
        CUSTOM_ROLE_PREFIX + POLICY_READER.role_id,
        PROJECT,
        "invoke doctor reads who holds which role and finds the service accounts: four getIamPolicy permissions "
        "and iam.serviceAccounts.get, no data, no role definitions (a custom role, not roles/iam.securityReviewer)",
        POLICY_READER.permissions,
    ),
    # --- the Vertex AI pipelines' service account
    Grant(
        "vertex",
        "roles/aiplatform.user",
        PROJECT,
        "the run's tasks record their metadata; ModelRegistryUploader lists and uploads model versions",
        ("aiplatform.metadataStores.get", "aiplatform.models.list", "aiplatform.models.upload"),
    ),
    Grant(
        "vertex",
        "roles/storage.objectAdmin",
        BUCKET,
        "reads the data and module files, writes the pipeline root and the pushed model",
        ("storage.objects.create", "storage.objects.get", "storage.objects.list"),
    ),
    Grant(
        "vertex",
        "roles/storage.legacyBucketReader",
        BUCKET,
        "TensorFlow's GCS file system reads the bucket's metadata when it makes a folder under an empty prefix "
        "(Pusher's first push to serving_model/); Storage Object Admin has no storage.buckets.get",
        ("storage.buckets.get",),
    ),
)

# --- What a scale-out switch adds (docs/scale.md), only while it is on: setup creates and doctor checks these then.
# Sources: Dataflow's "Dataflow security and permissions" (the worker service account needs roles/dataflow.worker;
# whoever creates the job needs roles/dataflow.developer and iam.serviceAccounts.actAs on the worker account;
# workers pull a custom SDK container as the worker account) and Vertex AI's "Use a custom service account" (the
# caller of a CustomJob with a service account needs iam.serviceAccounts.actAs on it). The pipelines' account
# creates both kinds of job from inside its tasks and is also the identity they run as: it acts as itself.
SWITCHED_APIS = (
    Api(
        "dataflow.googleapis.com",
        "the Beam components run as Dataflow jobs (cicd.beam_runner=dataflow)",
        when=(DATAFLOW,),
    ),
    Api(
        "bigquery.googleapis.com",
        "BigQueryExampleGen's type query and Beam's EXPORT read (a query job, then an extract job to the "
        "bucket) read the training table (cicd.source=bigquery)",
        when=(BIGQUERY,),
    ),
)

SWITCHED_GRANTS = (
    Grant(
        "vertex",
        "roles/dataflow.developer",
        PROJECT,
        "the Beam components, running as the pipelines' account, create their Dataflow jobs and follow them",
        ("dataflow.jobs.create", "dataflow.jobs.get"),
        when=(DATAFLOW,),
    ),
    Grant(
        "vertex",
        "roles/dataflow.worker",
        PROJECT,
        "Dataflow's workers run as the pipelines' account (--service_account_email) and lease and report "
        "their work items",
        ("dataflow.workItems.lease", "dataflow.workItems.update", "dataflow.workItems.sendMessage"),
        when=(DATAFLOW,),
    ),
    Grant(
        "vertex",
        "roles/artifactregistry.reader",
        REPOSITORY,
        "Dataflow's workers pull the components image, their SDK container, as the pipelines' account",
        ("artifactregistry.repositories.downloadArtifacts",),
        when=(DATAFLOW,),
    ),
    Grant(
        "vertex",
        "roles/iam.serviceAccountUser",
        ON_ACCOUNT + "vertex",
        "the pipelines' account starts Dataflow jobs and Vertex AI Training custom jobs that run as itself "
        "(iam.serviceAccounts.actAs on itself); creating the custom job is in roles/aiplatform.user, held already",
        ("iam.serviceAccounts.actAs",),
        when=(DATAFLOW, VERTEX),
    ),
    # cicd.source=bigquery: Beam's ReadFromBigQuery (apache_beam/io/gcp/bigquery.py, EXPORT, the TFX executor's
    # default) dry-runs the query for its location, creates a temporary dataset, runs the query into it, extracts
    # the result to avro under --temp_location and deletes the dataset. roles/bigquery.jobUser has no
    # bigquery.datasets.create; roles/bigquery.user is the smallest predefined role with both, and the creator of a
    # dataset owns it (so it may export and delete its tables). The Storage Read API (DIRECT_READ) is not used.
    Grant(
        "vertex",
        "roles/bigquery.user",
        PROJECT,
        "BigQueryExampleGen, as the pipelines' account, runs its query and extract jobs in the project and makes "
        "Beam's temporary dataset for the query's result",
        ("bigquery.jobs.create", "bigquery.datasets.create"),
        when=(BIGQUERY,),
    ),
    Grant(
        "vertex",
        "roles/bigquery.dataViewer",
        PROJECT,
        "the query reads the training table's rows (tables.getData) and schema (tables.get); a table in another "
        "project needs this role there too (docs/your-data.md)",
        ("bigquery.tables.get", "bigquery.tables.getData"),
        when=(BIGQUERY,),
    ),
    # The chain's submit names the run's data by the table's state (cicd_release.run.bigquery_data): one
    # tables.get, as the build's account. metadataViewer reads tables' metadata and no rows.
    Grant(
        "builder",
        "roles/bigquery.metadataViewer",
        PROJECT,
        "the release chain's submit reads the training table's state for the run's data digest (tables.get)",
        ("bigquery.tables.get",),
        when=(BIGQUERY,),
    ),
)

# Workload Identity Federation for GitHub Actions (google-github-actions/auth).
POOL_ID, PROVIDER_ID = "github", "github-actions"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
# The branch whose workflows may release: no other ref (a pushed branch with a workflow of its own, a dispatch
# of release.yml on a feature branch) gets a token for the submitter.
RELEASE_REF = "refs/heads/main"
ATTRIBUTE_MAPPING = {
    "google.subject": "assertion.sub",
    "attribute.repository": "assertion.repository",  # by name, for people reading the audit logs only
    "attribute.repository_id": "assertion.repository_id",
    "attribute.repository_owner_id": "assertion.repository_owner_id",
    "attribute.ref": "assertion.ref",
}
DEFAULT_REGION = "europe-west4"  # cloudbuild.yaml's _REGION default
DEFAULT_REPOSITORY = "training"  # cloudbuild.yaml's _IMAGE_REPO default names this repository
_AR_HOST = re.compile(r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev$")


def attribute_condition(repository_id: str, owner_id: str) -> str:
    """Only tokens GitHub issued for this repository of this owner (by their ids, which are never reused), for
    a workflow running on the release branch, pass: no other repository, owner or branch can use the provider."""
    return (
        f"assertion.repository_owner_id == '{owner_id}' && assertion.repository_id == '{repository_id}' "
        f"&& assertion.ref == '{RELEASE_REF}'"
    )


def cloud_defaults(settings: Settings) -> Settings:
    """The settings with the values cloudbuild.yaml uses when a substitution is not given (a test keeps them
    the same): region europe-west4, bucket PROJECT-ml, repository REGION-docker.pkg.dev/PROJECT/training and
    the pipelines' account vertex-pipelines@PROJECT."""
    settings.require(["project"])
    project = settings.project
    region = settings.region or DEFAULT_REGION
    values = {
        "region": region,
        "bucket": settings.bucket or f"{project}-ml",
        "image_repo": settings.image_repo or f"{region}-docker.pkg.dev/{project}/{DEFAULT_REPOSITORY}",
        "service_account": settings.service_account
        or f"{IDENTITY['vertex'].account_id}@{project}.iam.gserviceaccount.com",
    }
    return settings.model_copy(update=values)


@dataclasses.dataclass(frozen=True)
class Deployment:
    """The desired state resolved for one project: names of every resource and member."""

    project: str
    region: str
    bucket: str
    repository_location: str
    repository_id: str
    accounts: dict[str, str]  # identity key -> e-mail
    github_repo: str = ""  # empty: the GitHub binding is not part of this deployment (doctor says so)
    project_number: str = ""  # needed for the principalSet and the provider's name; "" until known
    github_repo_id: str = ""  # GitHub's numeric ids: the condition and the binding use them, not names
    github_owner_id: str = ""
    pipeline: str = "penguin-cicd"  # cicd.pipeline_name: its folder under releases/ holds the run summaries
    switches: frozenset[str] = frozenset()  # the switches that are on (Settings.switches: scale-out, source)

    @classmethod
    def from_settings(cls, settings: Settings, project_number: str = "") -> Deployment:
        settings = cloud_defaults(settings)
        host, _, path = settings.image_repo.partition("/")
        location = _AR_HOST.match(host)
        repo_project, _, repository = path.partition("/")
        if location is None:
            raise InputError(
                f"cicd.image_repo={settings.image_repo!r} is not an Artifact Registry repository "
                "(LOCATION-docker.pkg.dev/PROJECT/REPOSITORY): setup and doctor manage Artifact Registry only."
            )
        if repo_project != settings.project:
            raise InputError(
                f"cicd.image_repo={settings.image_repo!r} is in project {repo_project!r}, not in "
                f"cicd.project={settings.project!r}: setup creates and doctor checks one project's resources."
            )
        vertex_id, _, vertex_project = settings.service_account.partition("@")
        if vertex_project != f"{settings.project}.iam.gserviceaccount.com":
            raise InputError(
                f"cicd.service_account={settings.service_account!r} is not an account of project "
                f"{settings.project!r}: setup creates it there."
            )
        accounts = {
            identity.key: f"{identity.account_id}@{settings.project}.iam.gserviceaccount.com"
            for identity in IDENTITIES
        }
        accounts["vertex"] = settings.service_account
        return cls(
            project=settings.project,
            region=settings.region,
            bucket=settings.bucket,
            repository_location=location["location"],
            repository_id=repository,
            accounts=accounts,
            github_repo=settings.github_repo,
            project_number=project_number,
            github_repo_id=settings.github_repo_id,
            github_owner_id=settings.github_owner_id,
            pipeline=settings.pipeline_name,
            switches=settings.switches,
        )

    # --- names

    @property
    def staging_bucket(self) -> str:
        """Where `gcloud builds submit` uploads the source (gcloud's default name; release.yml passes it)."""
        return f"{self.project}_cloudbuild"

    @property
    def repository(self) -> str:
        return (
            f"projects/{self.project}/locations/{self.repository_location}/repositories/{self.repository_id}"
        )

    @property
    def pool(self) -> str:
        return f"projects/{self.project}/locations/global/workloadIdentityPools/{POOL_ID}"

    @property
    def provider(self) -> str:
        return f"{self.pool}/providers/{PROVIDER_ID}"

    @property
    def provider_for_github(self) -> str:
        """The provider as google-github-actions/auth wants it: by project *number*."""
        return (
            f"projects/{self.project_number}/locations/global/workloadIdentityPools/{POOL_ID}"
            f"/providers/{PROVIDER_ID}"
        )

    @property
    def github(self) -> bool:
        """Whether the GitHub sign-in is part of this deployment: a repository and both of its ids."""
        return bool(self.github_repo and self.github_repo_id and self.github_owner_id)

    def role(self, grant_or_role: Grant | str) -> str:
        """The role's name as IAM takes it: a predefined role as is, a custom one as projects/ID/roles/ROLE."""
        role = grant_or_role.role if isinstance(grant_or_role, Grant) else grant_or_role
        if role.startswith(CUSTOM_ROLE_PREFIX):
            return f"projects/{self.project}/roles/{role.removeprefix(CUSTOM_ROLE_PREFIX)}"
        return role

    def custom_role(self, role: CustomRole) -> str:
        return f"projects/{self.project}/roles/{role.role_id}"

    @property
    def summaries_prefix(self) -> str:
        """Where the build leaves each run's summary (release_state.record_outcome) for the GitHub job."""
        return f"releases/{self.pipeline}/summaries/"

    def condition(self, grant: Grant) -> dict[str, str] | None:
        """The IAM condition of a conditional grant ({title, description, expression}), else None.

        Reading an object is checked on the object (resource.name projects/_/buckets/B/objects/NAME); listing is
        checked on the bucket, whose name no object prefix matches, so a name condition alone refuses every list.
        Google's API attribute storage.googleapis.com/objectListPrefix (the list request's prefix) lets a list
        through only when it asks for names under the same folder.
        """
        if not grant.condition:
            return None
        if grant.condition != SUMMARIES_ONLY:
            raise ValueError(f"unknown condition {grant.condition!r}")
        prefix = self.summaries_prefix
        return {
            "title": SUMMARIES_ONLY,
            "description": f"objects under gs://{self.bucket}/{prefix}, and lists of them",
            "expression": (
                f'resource.name.startsWith("projects/_/buckets/{self.bucket}/objects/{prefix}") || '
                f'api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("{prefix}")'
            ),
        }

    def account_id(self, key: str) -> str:
        return self.accounts[key].partition("@")[0]

    def member(self, key: str) -> str:
        """The IAM member of an identity key: a service account, or the repository's GitHub principalSet."""
        if key == GITHUB:
            if not self.project_number or not self.github:
                raise ValueError(
                    "the GitHub member needs the project number and cicd.github_repo and its ids"
                )
            # By the repository's id: a name can be claimed again once deleted, an id never.
            return (
                f"principalSet://iam.googleapis.com/projects/{self.project_number}/locations/global/"
                f"workloadIdentityPools/{POOL_ID}/attribute.repository_id/{self.github_repo_id}"
            )
        return f"serviceAccount:{self.accounts[key]}"

    def target(self, on: str) -> tuple[str, str]:
        """(kind, name) of where a grant is made: ("project", id), ("bucket", name), ("repository", resource
        name) or ("service account", e-mail)."""
        if on == PROJECT:
            return PROJECT, self.project
        if on == BUCKET:
            return BUCKET, self.bucket
        if on == STAGING:
            return BUCKET, self.staging_bucket
        if on == REPOSITORY:
            return REPOSITORY, self.repository
        if on.startswith(ON_ACCOUNT):
            return "service account", self.accounts[on.removeprefix(ON_ACCOUNT)]
        raise ValueError(f"unknown grant target {on!r}")

    def shown(self, on: str) -> str:
        kind, name = self.target(on)
        if kind == BUCKET:
            return f"gs://{name}"
        if kind == REPOSITORY:
            return f"repository {self.repository_id} ({self.repository_location})"
        return f"{kind} {name}"

    def switched_on(self, when: tuple[str, ...]) -> bool:
        """Whether a row that `when` names switches for applies: always for (), else when one of them is on."""
        return not when or not self.switches.isdisjoint(when)

    def apis(self) -> tuple[Api, ...]:
        """The APIs this deployment needs: the table's, and those of the switches that are on."""
        return APIS + tuple(api for api in SWITCHED_APIS if self.switched_on(api.when))

    def grants(self) -> Iterator[Grant]:
        """The table's grants that apply here (the GitHub binding only with a repository and the number), then
        those of the switches that are on."""
        for grant in (*GRANTS, *SWITCHED_GRANTS):
            if grant.member == GITHUB and not (self.github and self.project_number):
                continue
            if self.switched_on(grant.when):
                yield grant

    # --- the command that fixes each thing by hand (doctor prints it; setup --apply does all of them)

    def fix_api(self, api: str) -> str:
        return f"gcloud services enable {api} --project={self.project}"

    def fix_bucket(self, name: str) -> str:
        return (
            f"gcloud storage buckets create gs://{name} --project={self.project} --location={self.region} "
            "--uniform-bucket-level-access"
        )

    def fix_repository(self) -> str:
        return (
            f"gcloud artifacts repositories create {self.repository_id} --repository-format=docker "
            f"--location={self.repository_location} --project={self.project}"
        )

    def fix_account(self, key: str) -> str:
        return (
            f"gcloud iam service-accounts create {self.account_id(key)} --project={self.project} "
            f'--display-name="{IDENTITY[key].title}"'
        )

    def fix_grant(self, grant: Grant) -> str:
        kind, name = self.target(grant.on)
        binding = f"--member={self.member(grant.member)} --role={self.role(grant)}"
        condition = self.condition(grant)
        if kind == PROJECT:
            return f"gcloud projects add-iam-policy-binding {name} {binding} --condition=None"
        if kind == BUCKET:
            if condition:
                # The expression holds commas: gcloud's ^;^ prefix makes ';' the separator (`gcloud topic escaping`).
                binding += (
                    f" --condition='^;^title={condition['title']};expression={condition['expression']}'"
                )
            return f"gcloud storage buckets add-iam-policy-binding gs://{name} {binding}"
        if kind == REPOSITORY:
            return (
                f"gcloud artifacts repositories add-iam-policy-binding {self.repository_id} "
                f"--location={self.repository_location} --project={self.project} {binding}"
            )
        return f"gcloud iam service-accounts add-iam-policy-binding {name} --project={self.project} {binding}"

    def fix_custom_role(self, role: CustomRole) -> str:
        return (
            f"gcloud iam roles update {role.role_id} --project={self.project} "
            f"--permissions={','.join(role.permissions)} (or create, or undelete, as the check says)"
        )

    def setup_command(self) -> str:
        repo = f" --github-repo={self.github_repo}" if self.github_repo else " --github-repo=OWNER/REPO"
        ids = f" --github-repo-id={self.github_repo_id or 'ID'} --github-owner-id={self.github_owner_id or 'ID'}"
        return f"invoke setup --project={self.project}{repo}{ids} --apply"

    def github_variables(self) -> dict[str, str]:
        """The repository variables .github/workflows/release.yml reads, as this deployment needs them."""
        return {
            "GCP_PROJECT": self.project,
            "GCP_REGION": self.region,
            "GCP_BUCKET": self.bucket,
            "GCP_WORKLOAD_IDENTITY_PROVIDER": self.provider_for_github,
            "GCP_CLOUDBUILD_SUBMITTER": self.accounts["submitter"],
            "GCP_CLOUDBUILD_SERVICE_ACCOUNT": self.accounts["builder"],
        }
