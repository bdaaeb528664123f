"""Submit a compiled pipeline spec to Vertex AI Pipelines, and follow a submitted run to its end.

Built on ``google.cloud.aiplatform.PipelineJob`` (the kfp ``AIPlatformClient`` it replaced is gone). Three
behaviours of that class are handled here on purpose, without patching it:

* ``PipelineJob.submit()`` first looks up the pipeline-root bucket through google-cloud-storage (creating it
  if absent) and, if it exists, asks Resource Manager for the project number to check who owns it
  (``gcs_utils._verify_bucket_ownership``). That check is best effort: any error is logged and swallowed. We
  check the bucket ourselves first, so a wrong pipeline root fails here with a clear message instead of a
  logged traceback or a bucket created by accident. The Resource Manager lookup uses the *global*
  ``aiplatform.init`` credentials or else Application Default Credentials; this module never puts credentials
  into the global config, so where ADC is absent (tests) the lookup fails at once instead of retrying an
  unreachable endpoint for ~45 s (aiplatform offers no endpoint override for Resource Manager).
* ``PipelineJob.wait()`` polls every 5 s (module constant ``_JOB_WAIT_TIME``) and raises for a failed run; a
  run is followed here in one way only, ``wait_for_outcome``: it polls ``job.state`` every ``poll_seconds``,
  each poll bounded, and reads back what the run did whatever its end (the caller decides what a failed or
  unblessed run means).
* An ``api_endpoint`` (e.g. a local stand-in) can only be set through ``aiplatform.init``, which is process
  global; it is set only when the caller passes one, together with the REST transport the stand-in speaks.
* The create call has no retry in aiplatform (``create_pipeline_job`` is wrapped with ``default_timeout=None``
  and no default retry, aiplatform_v1 pipeline_service transports/base.py), so an unreachable endpoint fails
  at once, but a silent one would hang forever: it gets ``deadline`` seconds, and a lost connection or a
  timeout becomes one CloudUnavailable line naming the endpoint and whether the job can exist.

Every call goes through the fault boundary, cicd_release.core.faults.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.auth import credentials as auth_credentials
from google.cloud import aiplatform, storage

# Shared with the components' Model Registry uploader, which labels model versions the same way.
from cicd_components.labels import vertex_labels
from cicd_release.core.errors import MissingBucket, MissingRelease, Refused
from cicd_release.core.faults import (
    DEFAULT_DEADLINE,
    Calls,
    never_sent,
    patiently,
    reporting,
    request_options,
    storage_endpoint,
)
from cicd_release.publish.storage import parse_gs_uri

TERMINAL_STATES = frozenset(
    {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED", "PIPELINE_STATE_PAUSED"}
)
_RUN = re.compile(r"projects/([^/]+)/locations/([^/]+)/pipelineJobs/([^/]+)")


@dataclass(frozen=True)
class SubmittedJob:
    """What a caller needs to find the run again: resource name, last known state, console link."""

    resource_name: str
    state: str
    dashboard_uri: str


def _dashboard(resource_name: str) -> str:
    """The run's console URL, the one Vertex's own SDK logs, composed from the resource name."""
    match = _RUN.fullmatch(resource_name)
    if not match:
        return ""
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{match[2]}/pipelines/runs/{match[3]}"
        f"?project={match[1]}"
    )


def _endpoint(region: str) -> str:
    """Where the aiplatform client sends requests: the endpoint given to ``aiplatform.init``, or the region's."""
    return aiplatform.initializer.global_config.api_endpoint or f"{region}-aiplatform.googleapis.com"


def _summary(job: aiplatform.PipelineJob, state: str) -> SubmittedJob:
    return SubmittedJob(
        resource_name=job.resource_name, state=state, dashboard_uri=_dashboard(job.resource_name)
    )


def _check_pipeline_root(
    pipeline_root: str,
    project: str,
    credentials: auth_credentials.Credentials | None,
    client: storage.Client | None,
    deadline: float = DEFAULT_DEADLINE,
) -> None:
    """Fail early, and by name, if the pipeline-root bucket is missing (see the module docstring for why).

    Asks with object permissions only: the documented roles for the build (Storage Object Admin on the bucket)
    grant storage.objects.list but not storage.buckets.get, which `Bucket.exists()` needs (a 403 there would
    be a traceback for a bucket that is fine). Listing at most one object under the root answers the same
    question: 404 means no such bucket.
    """
    bucket, prefix = parse_gs_uri(pipeline_root)
    client = client or storage.Client(project=project, credentials=credentials)

    def no_bucket(calls: Calls, exc: BaseException) -> MissingBucket:
        return MissingBucket(
            f"Pipeline root {pipeline_root} is in bucket gs://{bucket}, which does not exist. Create it in "
            f"project {project}, in the run's region (Model Registry needs the artifacts in that region)."
        )

    def may_not_list(calls: Calls, exc: BaseException) -> Refused:
        return Refused(
            f"The identity submitting the run may not list gs://{bucket} ({getattr(exc, 'message', exc)}): "
            f"grant it roles/storage.objectAdmin on the bucket (gcloud storage buckets add-iam-policy-binding "
            f"gs://{bucket} --member=serviceAccount:SA --role=roles/storage.objectAdmin)."
        )

    with reporting(
        "Cloud Storage",
        storage_endpoint(client),
        deadline=deadline,
        retrying=True,
        on_404=no_bucket,
        on_403=may_not_list,
        rerun="Nothing was submitted; run it again.",
    ) as calls:
        calls.now("listing", pipeline_root)
        listing = client.list_blobs(
            bucket, prefix=prefix.rstrip("/") + "/", max_results=1, **request_options(deadline)
        )
        next(iter(listing), None)


def submit_pipeline_job(
    *,
    template_path: str,
    project: str,
    region: str,
    pipeline_root: str,
    display_name: str,
    job_id: str,
    parameter_values: Mapping[str, Any] | None,
    labels: Mapping[str, Any] | None,
    service_account: str | None,
    enable_caching: bool | None = True,
    api_endpoint: str | None = None,
    credentials: auth_credentials.Credentials | None = None,
    storage_client: storage.Client | None = None,
    deadline: float = DEFAULT_DEADLINE,
) -> SubmittedJob:
    """Create a Vertex AI pipeline run from a compiled spec (local path or gs:// URI) and return its summary.

    ``enable_caching=None`` keeps each task's compile-time cache setting; True/False overrides every task.
    ``labels`` go through vertex_labels. ``api_endpoint`` points the client at another Vertex endpoint (a
    regional one, or a local stand-in over REST). ``deadline`` bounds the bucket check's retries and the create
    request (cicd.request_deadline_seconds). ``wait_for_outcome`` follows the run.
    """
    vertex_ready_labels = vertex_labels(labels or {})  # before anything remote: a bad key is the caller's fix
    _check_pipeline_root(pipeline_root, project, credentials, storage_client, deadline)
    if api_endpoint:
        aiplatform.init(api_endpoint=api_endpoint, api_transport="rest")

    def no_template(calls: Calls | None, exc: BaseException) -> MissingRelease:
        return MissingRelease(
            f"Pipeline template {template_path} not found ({exc}): compile the pipeline or fix the path."
        )

    try:
        # A gs:// template is read here, by aiplatform's own storage client.
        with reporting(
            "Cloud Storage",
            storage_endpoint(storage_client) if storage_client else "storage.googleapis.com",
            deadline=deadline,
            on_404=no_template,
        ) as calls:
            calls.now("read", template_path)
            job = aiplatform.PipelineJob(
                display_name=display_name,
                template_path=template_path,
                job_id=job_id,
                pipeline_root=pipeline_root,
                parameter_values=dict(parameter_values or {}),
                enable_caching=enable_caching,
                labels=vertex_ready_labels,
                project=project,
                location=region,
                credentials=credentials,
            )
    except FileNotFoundError as exc:
        raise no_template(None, exc) from exc
    except (KeyError, ValueError) as exc:  # aiplatform refuses before sending
        raise Refused(
            f"Cannot build pipeline job {job_id!r} from template {template_path}: {exc}. Check that the file "
            f"is a compiled pipeline spec and that parameter_values names only its pipeline parameters."
        ) from exc

    def created(exc: BaseException) -> str:
        if never_sent(exc):
            return "Nothing was created."
        return f"The job may exist if the request got through: look for {job_id} before submitting again."

    with reporting(
        "Vertex AI",
        api_endpoint or _endpoint(region),
        deadline=deadline,
        verb="did not answer",
        rerun=created,
        setting="cicd.api_endpoint (and cicd.region)",
    ) as calls:
        calls.now(
            "create",
            f"pipeline job {job_id!r} (template {template_path}, project {project}, region {region})",
        )
        job.submit(service_account=service_account, create_request_timeout=deadline)
    return _summary(job, job.gca_resource.state.name)


def wait_for_outcome(
    resource_name: str,
    *,
    poll_seconds: float = 30,
    credentials: auth_credentials.Credentials | None = None,
    request_deadline: float = DEFAULT_DEADLINE,
    follow_seconds: float | None = None,
):
    """Follows a submitted run to its end and reads back what it did (cicd_release.run.outcome.RunOutcome).

    With ``follow_seconds``, the follow ends after that long even if the run goes on, and the outcome read
    then says it still runs (``RunOutcome.finished`` is False): a build step must end before its own timeout
    kills it, which would fail the build while the run may still succeed.

    Never raises for a run that ended badly: the caller decides (the build fails on a failed run and passes,
    saying so, on a model that was not blessed). Each request about the run is bounded and, when Vertex does
    not answer, asked again; failing for ``request_deadline`` seconds is one CloudUnavailable line saying the
    run goes on.
    """
    from cicd_release.run.outcome import outcome_from_resource

    match = _RUN.fullmatch(resource_name)
    with reporting(
        "Vertex AI",
        _endpoint(match[2] if match else "us-central1"),
        deadline=request_deadline,
        verb="stopped answering",
        retrying=True,
        rerun=f"The run goes on without this build: follow it at {_dashboard(resource_name) or resource_name}.",
        setting="cicd.api_endpoint",
    ) as calls:
        calls.now("polls", resource_name)
        job = patiently(
            lambda: aiplatform.PipelineJob.get(resource_name, credentials=credentials),
            deadline=request_deadline,
            pause=poll_seconds,
        )
        # `job.state` asks Vertex (a GET of the job) every time it is read.
        give_up = None if follow_seconds is None else time.monotonic() + follow_seconds
        while (
            patiently(lambda: job.state.name, deadline=request_deadline, pause=poll_seconds)
            not in TERMINAL_STATES
        ):
            if give_up is not None and time.monotonic() + poll_seconds > give_up:
                break
            time.sleep(poll_seconds)
    return outcome_from_resource(job.gca_resource, _dashboard(resource_name))
