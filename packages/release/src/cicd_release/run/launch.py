"""Starting a training run: its request, the submit, and the record of what it did.

A run is a released spec, the module URIs it was released with, a data snapshot, the hyperparameters, and
labels that lead back from the run (and from the model version it registers) to the commit, the package
versions, the modules and the data. `RunRequest` holds those once, so a release, a retrain and a scheduled
run are labelled the same way; `launch` submits one, follows it if asked and has release_state record it (an
immutable `releases/<pipeline>/runs/<job id>.json`, then the release record, moved from the generation it was
read at).

`pipeline.retrain` needs no checkout and builds nothing: the spec and modules are what release_state says
was released (the record, or before there is one the newest spec and modules in the bucket).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from typing import Any

from cicd_pipeline import run_inputs
from cicd_pipeline.bigquery_source import input_config
from cicd_release.core.errors import MissingRelease, RunFailed
from cicd_release.core.settings import Settings
from cicd_release.core.workspace import Workspace
from cicd_release.plan import release_state
from cicd_release.plan.release_state import ReleaseRecord, now
from cicd_release.publish import storage as storage_lib
from cicd_release.publish.snapshots import RunData


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """Everything a run consumes, and who started it (`trigger`: release, retrain or schedule)."""

    spec: str
    image: str
    modules: dict[str, str]
    data: RunData
    hyperparameters: str
    commit: str
    versions: dict[str, str]
    trigger: str
    dirty: bool = (
        False  # made from uncommitted changes (--allow-dirty): the commit label says `<sha12>-dirty`
    )

    def labels(self) -> dict[str, str]:
        """The run's labels: commit (`-dirty` when the tree had uncommitted changes), package versions, the
        data's digest and name, and what started it."""
        return {
            "commit": self.commit[:12] + ("-dirty" if self.dirty else ""),
            **{f"{p}_version": v for p, v in self.versions.items()},
            **self.data.labels(),
            "trigger": self.trigger,
        }

    def model_labels(self) -> dict[str, str]:
        """What the registered model version carries: the run's labels, and what a local run's model carries
        (run_inputs.model_labels; each module's digest is its upload's folder, modules/<sha256>/<name>)."""
        digests = {name: uri.rsplit("/", 2)[-2] for name, uri in self.modules.items()}
        return {**self.labels(), **run_inputs.model_labels(digests, self.data.digest, self.versions)}

    def parameters(self) -> dict[str, str]:
        """The runtime parameters of the compiled spec (cicd_pipeline.run_inputs.RUNTIME_PARAMETERS)."""
        from cicd_components.labels import vertex_labels

        labels = json.dumps(vertex_labels(self.model_labels()), sort_keys=True)
        # A BigQuery source's spec takes the query (as the ExampleGen's input_config) in place of a folder.
        bigquery_input = input_config(self.data.query) if self.data.query else None
        return run_inputs.runtime_parameters(
            self.modules, self.data.uri, self.hyperparameters, labels, bigquery_input=bigquery_input
        )

    def inputs(self) -> dict[str, Any]:
        """What the release record compares: a submit whose inputs equal the last release's starts no run."""
        return {
            "spec": self.spec,
            "image": self.image,
            "modules": self.modules,
            "data_root": self.data.uri,
            "data_digest": self.data.digest,
            **({"data_query": self.data.query} if self.data.query else {}),
            "hyperparameters": self.hyperparameters,
        }


def job_id(pipeline_name: str, commit: str) -> str:
    """`<pipeline>-<commit12>-<UTC time>-<8 random hex>`: two runs of one commit in one second (a retrain and
    a schedule move, two builds) get two ids. Vertex's rule for job ids: lowercase letters, digits and '-', at
    most 128 characters (a pipeline name of at most 50 leaves 87)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return f"{pipeline_name}-{commit[:12]}-{stamp}-{secrets.token_hex(4)}"


def credentials(settings: Settings):
    """Anonymous credentials only when the settings say so (a local stand-in); otherwise the caller's own."""
    if not settings.anonymous_credentials:
        return None
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()


def launch(
    settings: Settings,
    client,
    request: RunRequest,
    *,
    last: ReleaseRecord,
    wait: bool = False,
    poll_seconds: float = 30,
    follow_seconds: float | None = None,
    ws: Workspace | None = None,
    move_record: bool = True,
) -> list[str]:
    """Submits the run, follows it when ``wait``, and records it (release_state.record_run): one immutable
    record per run, then (with ``move_record``) the release record, which moves only for a run that succeeded
    (or was not followed) and only from the generation `last` was read at. Returns the lines to print."""
    from cicd_release.run.submit import submit_pipeline_job  # google-cloud-aiplatform: slow to import

    job_name = job_id(settings.pipeline_name, request.commit)
    job = submit_pipeline_job(
        template_path=request.spec,
        project=settings.project,
        region=settings.region,
        pipeline_root=settings.pipeline_root,
        display_name=settings.pipeline_name,
        job_id=job_name,
        parameter_values=request.parameters(),
        labels=request.labels(),
        service_account=settings.service_account,
        # None keeps each task's compiled cache setting: TFX compiles the baseline resolver uncached on
        # purpose, and True would cache it too, freezing the baseline the no-regression gate compares with.
        enable_caching=None,
        api_endpoint=settings.api_endpoint or None,
        credentials=credentials(settings),
        storage_client=client,
        deadline=float(settings.request_deadline_seconds),
    )
    lines = [json.dumps(dataclasses.asdict(job), indent=2), f"data: {request.data.describe()}"]
    record = ReleaseRecord(
        uri=last.uri,
        commit=request.commit,
        released_at=now(),
        versions=request.versions,
        inputs=request.inputs(),
        run=dataclasses.asdict(job),
        parameters=request.parameters(),
        trigger=request.trigger,
        dirty=request.dirty,
    )
    if ws is not None:
        ws.write_json(ws.job_file, record.to_json())  # the build log's audit line, before the wait
    outcome = summary = None
    if wait:
        from cicd_release.run.outcome import format_outcome, markdown_outcome
        from cicd_release.run.submit import wait_for_outcome

        outcome = wait_for_outcome(
            job.resource_name,
            poll_seconds=poll_seconds,
            credentials=credentials(settings),
            request_deadline=float(settings.request_deadline_seconds),
            follow_seconds=follow_seconds,
        )
        record = dataclasses.replace(
            record,
            run={**record.run, "state": outcome.state},
            outcome={
                "verdict": outcome.verdict,
                "metrics": outcome.metrics,
                "version": outcome.registered_version,
            },
        )
        summary = markdown_outcome(outcome, request.commit)
        lines.append(format_outcome(outcome))
    # A run the follow left while it still ran is recorded as released, like one that was not followed: the
    # next build must not submit the same inputs again (its outcome is on its page and in Vertex's records).
    failed = outcome is not None and outcome.finished and not outcome.succeeded
    if outcome is not None and not outcome.finished:
        lines.append(
            f"The build stops following after {follow_seconds:.0f} s; the run goes on: {outcome.dashboard_uri}"
        )
    release_state.record_run(
        settings,
        client,
        last,
        record,
        summary=summary,
        summary_name=job_name,
        ws=ws,
        run_name=job_name,
        move=move_record and not failed,
    )
    if failed:
        raise RunFailed(
            f"The Vertex run {job.resource_name} ended {outcome.state}: {outcome.error or 'no message'}. "
            f"The release record stays at {last.commit[:12] if last.exists else 'none'}; the next build "
            f"retries. Details: {outcome.dashboard_uri}\n" + format_outcome(outcome)
        )
    return lines


def resolve_data(
    settings: Settings, client, data: str | None = None, *, window: int | None = None
) -> RunData:
    """What a run reads: CSV snapshots in the bucket (snapshots.resolve) or, with cicd.source=bigquery, the
    table's query and the digest of it and the table's state (bigquery_data.resolve)."""
    if settings.on_bigquery:
        from cicd_release.run import bigquery_data  # google-cloud-bigquery: only a BigQuery source imports it

        return bigquery_data.resolve(settings, data, window=window)
    from cicd_release.publish import snapshots

    deadline = float(settings.request_deadline_seconds)
    return snapshots.resolve(client, settings.resolved_data_root, data, window=window, deadline=deadline)


def retrain(
    settings: Settings,
    client,
    *,
    data: str | None = None,
    window: int | None = None,
    hyperparameters: str | None = None,
    wait: bool = False,
    poll_seconds: float = 30,
) -> list[str]:
    """A run of the released spec and modules on other data or hyperparameters: no checkout, no build.

    ``data``: ``latest`` (default), a snapshot's sha256 (or 8+ hex digits of it) or gs:// URI; ``window``:
    the last N dated snapshots (cicd.source=bigquery: the last N days of the table, ending today, UTC). The
    release record moves to the run (same commit, new inputs), so a later
    submit of the same data starts nothing; with no record yet it stays absent (the first release writes it).
    The task checked the settings it needs (the step table's, steps.RUN_SETTINGS).
    """
    deadline = float(settings.request_deadline_seconds)
    last = release_state.read_record(settings, client)
    code = release_state.released(settings, client, last)
    if not storage_lib.blob_exists(client, code.spec, deadline=deadline):
        raise MissingRelease(
            f"The released spec {code.spec} is not in the bucket (deleted?): release again (`invoke ci`)."
        )
    run_data = resolve_data(settings, client, data, window=window)
    request = code.request(run_data, hyperparameters, "retrain")
    said = [f"retrain: the code of {code.source}", f"spec: {code.spec}"]
    return said + launch(
        settings,
        client,
        request,
        last=last,
        wait=wait,
        poll_seconds=poll_seconds,
        move_record=last.exists,
    )
