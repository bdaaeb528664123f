"""A training run's request, and starting one: what `pipeline.submit`, `pipeline.retrain` and the schedules share.

A run is a released spec, the module URIs it was released with, a data snapshot, the hyperparameters, and
labels that lead back from the run (and from the model version it registers) to the commit, the package
versions, the modules and the data. `RunRequest` holds those once, so a release, a retrain and a scheduled
run are labelled the same way; `launch` submits one, follows it if asked and records it (an immutable
`releases/<pipeline>/runs/<job id>.json`, then the release record, moved from the generation it was read at).

`pipeline.retrain` needs no checkout and builds nothing: the spec and modules come from the release record,
or, before there is one, from the newest spec and modules in the bucket.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from cicd_release import storage as storage_lib
from cicd_release.errors import MissingResourceError, ReleaseError
from cicd_release.settings import Settings
from cicd_release.snapshots import LABEL_DIGEST, RunData
from cicd_release.workspace import Workspace, atomic_write

# The trainer's files a run reads, by pipeline parameter name, and their file names in the bucket.
MODULE_FILES = {
    "preprocessing_module": "preprocessing.py",
    "model_module": "model.py",
    "schema_file": "schema.pbtxt",
    "holdout_file": "holdout.csv",
}


class RunFailed(ReleaseError, RuntimeError):
    """The submitted run ended FAILED or CANCELLED: the build fails with what the run did."""


class MissingRelease(MissingResourceError):
    """Nothing released to run: no release record and no spec in the bucket (exit 3)."""


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

    def labels(self) -> dict[str, str]:
        """The run's labels: commit, package versions, the data's digest and name, and what started it."""
        return {
            "commit": self.commit[:12],
            **{f"{p}_version": v for p, v in self.versions.items()},
            **self.data.labels(),
            "trigger": self.trigger,
        }

    def model_labels(self) -> dict[str, str]:
        """What the registered model version carries: the run's labels and each module's digest."""
        modules = {f"{name}_sha": uri.rsplit("/", 2)[-2][:LABEL_DIGEST] for name, uri in self.modules.items()}
        return {**self.labels(), **modules}

    def parameters(self) -> dict[str, str]:
        """The runtime parameters of the compiled spec (cicd_pipeline.runners.vertex.RUNTIME_PARAMETERS)."""
        from cicd_components.labels import vertex_labels

        return {
            **{name: uri for name, uri in self.modules.items() if name != "holdout_file"},
            # CsvExampleGen reads a folder: the holdout's content-addressed folder holds that one file.
            **(
                {"holdout_root": self.modules["holdout_file"].rsplit("/", 1)[0]}
                if "holdout_file" in self.modules
                else {}
            ),
            "data_root": self.data.uri,
            "hyperparameters": self.hyperparameters,
            "model_labels": json.dumps(vertex_labels(self.model_labels()), sort_keys=True),
        }

    def inputs(self) -> dict[str, Any]:
        """What the release record compares: a submit whose inputs equal the last release's starts no run."""
        return {
            "spec": self.spec,
            "image": self.image,
            "modules": self.modules,
            "data_root": self.data.uri,
            "data_digest": self.data.digest,
            "hyperparameters": self.hyperparameters,
        }


def release_record(settings: Settings, client) -> tuple[dict | None, int, str]:
    """The last release's record, its generation (0: none) and its gs:// URI."""
    settings.require(["bucket"])
    uri = f"{settings.releases_prefix}/latest.json"
    data, generation = storage_lib.read_json_object(
        client, uri, deadline=float(settings.request_deadline_seconds)
    )
    return data, generation, uri


@dataclasses.dataclass(frozen=True)
class Released:
    """The code of the last release: what a retrain or a schedule runs, with the data and parameters it picks."""

    spec: str
    image: str
    modules: dict[str, str]
    hyperparameters: str
    commit: str
    versions: dict[str, str]
    source: str  # how it was found, said to the user

    def request(self, data: RunData, hyperparameters: str | None, trigger: str) -> RunRequest:
        return RunRequest(
            spec=self.spec,
            image=self.image,
            modules=dict(self.modules),
            data=data,
            hyperparameters=hyperparameters or self.hyperparameters,
            commit=self.commit,
            versions=dict(self.versions),
            trigger=trigger,
        )


def released(settings: Settings, client, record: dict | None = None) -> Released:
    """The released spec and modules: from the release record, or, before the first record, the newest spec
    and the newest upload of each module file in the bucket. MissingRelease when there is no spec at all."""
    if record is None:
        record, _, _ = release_record(settings, client)
    if record:
        inputs = record["inputs"]
        return Released(
            spec=inputs["spec"],
            image=inputs["image"],
            modules=dict(inputs["modules"]),
            hyperparameters=inputs["hyperparameters"],
            commit=record["commit"],
            versions=dict(record.get("versions", {})),
            source=f"release {record['commit'][:12]} (the release record)",
        )
    return _newest_in_bucket(settings, client)


def _newest_in_bucket(settings: Settings, client) -> Released:
    deadline = float(settings.request_deadline_seconds)
    bucket, _ = storage_lib.parse_gs_uri(settings.bucket_uri)
    specs = _newest(client, bucket, "specs/", deadline, lambda n: n.startswith(f"{settings.pipeline_name}-"))
    if not specs:
        raise MissingRelease(
            f"Nothing released to run: no release record at {settings.releases_prefix}/latest.json and no spec "
            f"{settings.pipeline_name}-*.json under {settings.specs_prefix}/. Release once first: "
            "`invoke ci --base ''` (or push to the release branch)."
        )
    spec_name = max(specs, key=lambda n: specs[n][0])
    spec_uri = f"{settings.specs_prefix}/{spec_name}"
    modules = _newest(client, bucket, "modules/", deadline, lambda n: n in MODULE_FILES.values())
    missing = [f for f in MODULE_FILES.values() if f not in modules]
    if missing:
        raise MissingRelease(
            f"No uploaded {', '.join(missing)} under {settings.modules_prefix}/ to run the spec {spec_uri} with: "
            "run `invoke modules.upload` (or release once)."
        )
    job = json.loads(client.bucket(bucket).blob(f"specs/{spec_name}").download_as_bytes())
    executors = job.get("pipelineSpec", {}).get("deploymentSpec", {}).get("executors", {})
    images = sorted({e.get("container", {}).get("image", "") for e in executors.values()} - {""})
    return Released(
        spec=spec_uri,
        image=images[0] if images else "",
        modules={p: f"gs://{bucket}/{modules[f][1]}" for p, f in MODULE_FILES.items()},
        hyperparameters="{}",
        commit="unreleased",
        versions={},
        source=f"the newest spec {spec_name} and modules in the bucket (no release record yet)",
    )


def _newest(client, bucket: str, prefix: str, deadline: float, keep: Callable[[str], bool]) -> dict:
    """{file name: (time created, object name)} of the newest object of each file name under ``prefix``."""
    found: dict[str, tuple[Any, str]] = {}
    with storage_lib.reporting_faults(client, deadline, "Run it again once storage answers.") as progress:
        progress.now("listing", f"gs://{bucket}/{prefix}", bucket_404=True)
        for blob in client.list_blobs(bucket, prefix=prefix, **storage_lib.request_options(deadline)):
            name = PurePosixPath(blob.name).name
            if keep(name) and (name not in found or blob.time_created > found[name][0]):
                found[name] = (blob.time_created, blob.name)
    return found


def job_id(pipeline_name: str, commit: str) -> str:
    """`<pipeline>-<commit12>-<UTC time>`: Vertex's rule for job ids (lowercase letters, digits, '-')."""
    return f"{pipeline_name}-{commit[:12]}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
    last: dict | None,
    generation: int,
    record_uri: str,
    wait: bool = False,
    poll_seconds: float = 30,
    ws: Workspace | None = None,
    move_record: bool = True,
) -> list[str]:
    """Submits the run, follows it when ``wait``, and records it: one immutable record per run, then (with
    ``move_record``) the release record, which moves only for a run that succeeded (or was not followed) and
    only from the generation read before (of two builds, one wins). Returns the lines to print."""
    from cicd_release.submit import submit_pipeline_job  # google-cloud-aiplatform: slow to import

    deadline = float(settings.request_deadline_seconds)
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
        wait=False,
        api_endpoint=settings.api_endpoint or None,
        credentials=credentials(settings),
        storage_client=client,
        deadline=deadline,
    )
    lines = [json.dumps(dataclasses.asdict(job), indent=2), f"data: {request.data.describe()}"]
    record = {
        "commit": request.commit,
        "released_at": now(),
        "versions": request.versions,
        "inputs": request.inputs(),
        "run": dataclasses.asdict(job),
        "parameters": request.parameters(),
        "trigger": request.trigger,
    }
    if ws is not None:
        ws.write_json(ws.job_file, record)
    outcome = None
    if wait:
        from cicd_release.outcome import format_outcome, markdown_outcome
        from cicd_release.submit import wait_for_outcome

        outcome = wait_for_outcome(
            job.resource_name,
            poll_seconds=poll_seconds,
            credentials=credentials(settings),
            request_deadline=float(settings.request_deadline_seconds),
        )
        record["run"] = {**record["run"], "state": outcome.state}
        record["outcome"] = {
            "verdict": outcome.verdict,
            "metrics": outcome.metrics,
            "version": outcome.registered_version,
        }
        text = markdown_outcome(outcome, request.commit)
        summary = atomic_write(ws.outcome_file, text) if ws is not None else _temporary(text)
        # Where the GitHub job finds it (.github/workflows/release.yml): one object per run, never replaced.
        storage_lib.upload_immutable(
            client,
            summary,
            f"{settings.releases_prefix}/summaries/{request.commit}/{job_name}.md",
            deadline=deadline,
        )
        lines.append(format_outcome(outcome))
    storage_lib.write_json_object(
        client,
        f"{settings.releases_prefix}/runs/{job_name}.json",
        record,
        if_generation_match=0,
        deadline=deadline,
    )
    if outcome is not None and not outcome.succeeded:
        raise RunFailed(
            f"The Vertex run {job.resource_name} ended {outcome.state}: {outcome.error or 'no message'}. "
            f"The release record stays at {last['commit'][:12] if last else 'none'}; the next build retries. "
            f"Details: {outcome.dashboard_uri}\n" + format_outcome(outcome)
        )
    if move_record:
        storage_lib.write_json_object(
            client, record_uri, record, if_generation_match=generation, deadline=deadline
        )
    return lines


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
    the last N dated snapshots. The release record moves to the run (same commit, new inputs), so a later
    submit of the same data starts nothing; with no record yet it stays absent (the first release writes it).
    """
    from cicd_release import snapshots

    settings.require(["project", "region", "bucket", "service_account"])
    deadline = float(settings.request_deadline_seconds)
    last, generation, record_uri = release_record(settings, client)
    code = released(settings, client, last)
    if not storage_lib.blob_exists(client, code.spec, deadline=deadline):
        raise MissingRelease(
            f"The released spec {code.spec} is not in the bucket (deleted?): release again (`invoke ci`)."
        )
    run_data = snapshots.resolve(client, settings.resolved_data_root, data, window=window, deadline=deadline)
    request = code.request(run_data, hyperparameters, "retrain")
    said = [f"retrain: the code of {code.source}", f"spec: {code.spec}"]
    return said + launch(
        settings,
        client,
        request,
        last=last,
        generation=generation,
        record_uri=record_uri,
        wait=wait,
        poll_seconds=poll_seconds,
        move_record=last is not None,
    )


def _temporary(text: str) -> Path:
    """A run started off a checkout (a retrain) still leaves its summary in the bucket, through a temp file."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="cicd-outcome-"))
    return atomic_write(folder / "outcome.md", text)
