"""Data as a versioned input: content-addressed snapshots of a folder of CSV files in the bucket.

A data set is a folder in the bucket (``cicd.data_root``, default ``gs://BUCKET/data/penguins``; or
``gs://BUCKET/data/NAME`` for ``invoke data.upload --name NAME``), laid out as:

    <sha256>/<file>.csv        a snapshot: the files as uploaded, each written once (if_generation_match=0)
    manifests/<sha256>.json    its manifest (each file's sha256, bytes and rows), written last: a snapshot
                               exists when its manifest does, so a reader never meets half of one
    LATEST                     {"sha256", "uri"}: the snapshot runs train on unless told otherwise, moved only
                               from the generation it was read at (of two uploads racing, one moves it)
    dates/<YYYY-MM-DD>.json    (``--date``) the snapshot of that day, written once: the members of windows

The sha256 is over the files' names and contents, so the same files are one snapshot whatever their
timestamps, and a run's ``data_root`` parameter names exactly the data it read: a run is reproducible from
its parameters. A window of the last N dated snapshots is a snapshot too (its manifest lists the members),
copied inside Cloud Storage with each file renamed ``<date>_<name>``. Why a window is a copy and not a span
pattern: a file-based ExampleGen reads one span per execution (TFX's utils accept only a static range), and
TFX's rolling windows over spans need a resolver node that KubeflowV2DagRunner does not compile (it compiles
the latest-artifact and latest-blessed-model resolvers only), so on Vertex a window has to be an explicit
list, resolved when the run is submitted.

Nothing here reads the environment; every call takes the storage client and the deadline.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
from pathlib import Path

from cicd_components.untrusted import clip

# A snapshot's digest, and the label digest's length: the run's contract, shared with the local run's labels.
from cicd_pipeline.run_inputs import LABEL_DIGEST, folder_digest, snapshot_digest  # noqa: F401 (re-exported)
from cicd_release.core.errors import DataError, InputError, MissingData, WriteConflict
from cicd_release.core.faults import DEFAULT_DEADLINE
from cicd_release.publish.storage import (
    copy_immutable,
    list_folder,
    parse_gs_uri,
    prefix_digest,
    read_json_object,
    upload_immutable,
    write_json_object,
)

LATEST = "LATEST"
MANIFESTS = "manifests"
DATES = "dates"
MANIFEST_FORMAT = 1
# A data set's name is one folder in the bucket and a label value: lowercase letters, digits, '-' and '_'.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_SHA_PREFIX = re.compile(r"^[0-9a-f]{8,64}$")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """One snapshot of a data set: its folder, content digest, files (name, sha256, bytes, rows) and rows."""

    dataset: str
    sha256: str
    files: tuple[dict, ...]
    members: tuple[dict, ...] = ()  # a window's snapshots: ({"date", "sha256", "uri"}, ...) oldest first

    @property
    def uri(self) -> str:
        return f"{self.dataset}/{self.sha256}"

    @property
    def manifest_uri(self) -> str:
        return f"{self.dataset}/{MANIFESTS}/{self.sha256}.json"

    @property
    def name(self) -> str:
        return dataset_name(self.dataset)

    @property
    def rows(self) -> int:
        return sum(f["rows"] for f in self.files)

    def manifest(self) -> dict:
        """The manifest: the same files always give the same bytes (no timestamps, no local paths)."""
        data = {
            "format": MANIFEST_FORMAT,
            "sha256": self.sha256,
            "files": list(self.files),
            "rows": self.rows,
        }
        if self.members:
            data["members"] = list(self.members)
        return data

    @classmethod
    def from_manifest(cls, dataset: str, manifest: dict) -> Snapshot:
        return cls(dataset, manifest["sha256"], tuple(manifest["files"]), tuple(manifest.get("members", ())))


@dataclasses.dataclass(frozen=True)
class RunData:
    """What a run trains on: the ``data_root`` parameter, the digest its labels carry, and where it came from."""

    uri: str
    digest: str
    name: str
    kind: str  # "snapshot" (or a window of them), "folder" (a plain gs:// folder of CSV files) or "bigquery"
    rows: int | None = None
    files: int | None = None
    query: str = (
        ""  # kind "bigquery": the SQL the run's BigQueryExampleGen reads (cicd_release.run.bigquery_data)
    )

    def labels(self) -> dict[str, str]:
        return {"data_sha": self.digest[:LABEL_DIGEST], "data_name": self.name}

    def describe(self) -> str:
        if self.query:
            return f"{self.uri}: {self.query}"
        size = f" ({self.files} file(s), {self.rows} rows)" if self.rows is not None else ""
        return f"{self.uri}{size}"


@dataclasses.dataclass(frozen=True)
class Uploaded:
    snapshot: Snapshot
    new: bool  # the manifest was written by this upload (False: the same files were uploaded before)
    latest_moved_from: str | None  # the sha LATEST pointed at before, when this upload moved it
    latest_moved: bool
    date: str | None = None

    def lines(self) -> list[str]:
        s = self.snapshot
        said = [
            f"snapshot {s.uri} ({len(s.files)} file(s), {s.rows} rows): "
            + ("uploaded" if self.new else "already there (the same files): nothing uploaded"),
            f"manifest {s.manifest_uri}",
        ]
        if self.latest_moved:
            said.append(
                f"LATEST -> {s.sha256[:LABEL_DIGEST]} (was {(self.latest_moved_from or 'none')[:LABEL_DIGEST]})"
            )
        else:
            said.append(f"LATEST already at {s.sha256[:LABEL_DIGEST]}")
        if self.date:
            said.append(f"dated {self.date}")
        return said


def dataset_name(dataset_uri: str) -> str:
    return dataset_uri.rstrip("/").rsplit("/", 1)[-1]


def dataset_uri(bucket_uri: str, name: str) -> str:
    """``gs://BUCKET/data/NAME`` for ``--name NAME``; InputError (exit 2) for a name that is not one folder."""
    if not _NAME.match(name or ""):
        raise InputError(
            f"--name {clip(repr(name))} is not a data set name: 1-63 lowercase letters, digits, '-' or '_', a letter "
            "or digit first (it is a folder in the bucket and a label value), e.g. penguins."
        )
    return f"{bucket_uri}/data/{name}"


def parse_date(text: str, today: datetime.date | None = None) -> str:
    """``YYYY-MM-DD`` (or ``today``, in UTC) as the date a snapshot is filed under; InputError if not a date."""
    if text == "today":
        return (today or datetime.datetime.now(datetime.timezone.utc).date()).isoformat()
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except (TypeError, ValueError):
        raise InputError(
            f"--date {clip(repr(text))} is not a date: write it as YYYY-MM-DD (or today)."
        ) from None


def local_snapshot(dataset: str, source: Path, schema_file: Path) -> Snapshot:
    """The snapshot ``source`` would make, after the data check; DataError (exit 4) naming each bad line."""
    from cicd_pipeline.datacheck import check_data_root  # pure Python: no TFX

    report = check_data_root(source, schema_file)
    if not report.ok:
        raise DataError(
            f"{report.format()}\nNothing was uploaded. Fix the files above (`invoke data.check --data-root "
            f"{source}` checks them again in seconds) and upload again."
        )
    rows = dict(report.rows_by_file)
    files = []
    for name in sorted(rows):
        with (source / name).open("rb") as data:  # in chunks: a data file may be larger than memory
            digest = hashlib.file_digest(data, "sha256") if hasattr(hashlib, "file_digest") else _sha256(data)
        size = (source / name).stat().st_size
        files.append({"name": name, "sha256": digest.hexdigest(), "bytes": size, "rows": rows[name]})
    return Snapshot(dataset, snapshot_digest(files), tuple(files))


def _sha256(stream, chunk: int = 1 << 20):
    """hashlib.file_digest for Python 3.10 (it arrived in 3.11)."""
    digest = hashlib.sha256()
    while block := stream.read(chunk):
        digest.update(block)
    return digest


def upload_snapshot(
    client,
    dataset: str,
    source: Path,
    schema_file: Path,
    *,
    date: str | None = None,
    deadline: float = DEFAULT_DEADLINE,
) -> Uploaded:
    """Checks ``source``, uploads it as a snapshot of ``dataset`` (files, then the manifest), files it under
    ``date`` if given, and moves LATEST to it. Running it again with the same files writes nothing new."""
    snapshot = local_snapshot(dataset, source, schema_file)
    _refuse_a_plain_folder(client, dataset, deadline)
    done: list[str] = []
    for entry in snapshot.files:
        uri = f"{snapshot.uri}/{entry['name']}"
        # Each file is its own upload: a fault names the earlier ones as written, not "nothing was written".
        upload_immutable(client, source / entry["name"], uri, deadline=deadline, written=tuple(done))
        done.append(uri)
    new = _write_manifest(client, snapshot, deadline)
    if date:
        _file_under_date(client, snapshot, date, deadline)
    before, moved = move_latest(client, snapshot, deadline=deadline)
    return Uploaded(snapshot, new, before, moved, date)


def move_latest(client, snapshot: Snapshot, *, deadline: float = DEFAULT_DEADLINE) -> tuple[str | None, bool]:
    """Points LATEST at ``snapshot`` from the generation it was read at; (the sha it was at, whether it moved)."""
    uri = f"{snapshot.dataset}/{LATEST}"
    current, generation = read_json_object(client, uri, deadline=deadline)
    before = current.get("sha256") if current else None
    if before == snapshot.sha256:
        return before, False
    try:
        write_json_object(
            client,
            uri,
            {"sha256": snapshot.sha256, "uri": snapshot.uri},
            if_generation_match=generation,
            deadline=deadline,
        )
    except WriteConflict:
        raise WriteConflict(
            f"{uri} moved while this upload ran (another upload won). The snapshot {snapshot.uri} is complete "
            "but LATEST does not point at it; run the upload again to move LATEST to it."
        ) from None
    return before, True


def read_snapshot(
    client, dataset: str, sha_or_prefix: str, *, deadline: float = DEFAULT_DEADLINE
) -> Snapshot:
    """The snapshot named by its sha256 (or a prefix of 8 or more hex digits that names one)."""
    if not _SHA_PREFIX.match(sha_or_prefix):
        raise InputError(
            f"--data {clip(repr(sha_or_prefix))} names no snapshot: give `latest`, a snapshot's sha256 (or its first 8+ "
            "hex digits), or its gs:// URI."
        )
    sha = sha_or_prefix
    if not _SHA.match(sha):
        names, _ = list_folder(client, f"{dataset}/{MANIFESTS}", deadline=deadline)
        found = sorted(n.removesuffix(".json") for n in names if n.startswith(sha) and n.endswith(".json"))
        if len(found) > 1:
            raise InputError(
                f"--data {sha} names {len(found)} snapshots of {dataset} ({', '.join(f[:16] for f in found)}): "
                "give more of the sha256."
            )
        sha = found[0] if found else sha
    manifest, _ = read_json_object(client, f"{dataset}/{MANIFESTS}/{sha}.json", deadline=deadline)
    if manifest is None:
        raise MissingData(
            f"No snapshot {sha_or_prefix} in {dataset} (no manifest for it under {dataset}/{MANIFESTS}/): "
            "upload it with `invoke data.upload`, or pick a snapshot whose manifest is there."
        )
    return Snapshot.from_manifest(dataset, manifest)


def read_latest(client, dataset: str, *, deadline: float = DEFAULT_DEADLINE) -> Snapshot | None:
    """The snapshot LATEST points at, or None when the data set has no LATEST."""
    pointer, _ = read_json_object(client, f"{dataset}/{LATEST}", deadline=deadline)
    if pointer is None:
        return None
    return read_snapshot(client, dataset, pointer["sha256"], deadline=deadline)


def resolve(
    client,
    dataset: str,
    selector: str | None = None,
    *,
    window: int | None = None,
    deadline: float = DEFAULT_DEADLINE,
) -> RunData:
    """What a run trains on: ``latest`` (the default), a snapshot's sha256 or prefix, a gs:// snapshot or
    LATEST URI, or (``window=N``) the last N dated snapshots. MissingData (exit 3) when there is none.

    A data set without LATEST and without snapshots may still be a plain folder of CSV files (how runs read
    their data before snapshots): it is used as it is, named by the digest of its objects.
    """
    if window is not None:
        if selector not in (None, "latest"):
            raise InputError("Give --data or --window, not both: a window picks its snapshots itself.")
        return _as_run_data(materialize_window(client, dataset, window, deadline=deadline))
    if selector and selector.startswith("gs://"):
        parse_gs_uri(selector)
        dataset, _, last = selector.rstrip("/").rpartition("/")
        if last == LATEST:
            selector = None
        elif _SHA.match(last):
            selector = last
        else:
            return _plain_folder(client, selector.rstrip("/"), deadline)
    if selector in (None, "latest"):
        latest = read_latest(client, dataset, deadline=deadline)
        if latest is not None:
            return _as_run_data(latest)
        return _plain_folder(client, dataset, deadline)
    return _as_run_data(read_snapshot(client, dataset, selector, deadline=deadline))


def materialize_window(client, dataset: str, days: int, *, deadline: float = DEFAULT_DEADLINE) -> Snapshot:
    """The last ``days`` dated snapshots as one snapshot: their files copied (inside Cloud Storage, once)
    as ``<date>_<name>``; its manifest lists the members. The same members give the same window."""
    if not isinstance(days, int) or days < 1:
        raise InputError(f"--window {days!r} must be a whole number of snapshots, 1 or more.")
    names, _ = list_folder(client, f"{dataset}/{DATES}", deadline=deadline)
    dates = sorted(n.removesuffix(".json") for n in names if n.endswith(".json"))[-days:]
    if not dates:
        raise MissingData(
            f"No dated snapshot in {dataset} ({dataset}/{DATES}/ is empty): upload with "
            "`invoke data.upload --date today` (or --date YYYY-MM-DD) first."
        )
    members, files, sources = [], [], {}
    for day in dates:
        entry, _ = read_json_object(client, f"{dataset}/{DATES}/{day}.json", deadline=deadline)
        member = read_snapshot(client, dataset, entry["sha256"], deadline=deadline)
        members.append({"date": day, "sha256": member.sha256, "uri": member.uri})
        for f in member.files:
            name = f"{day}_{f['name']}"
            files.append({**f, "name": name})
            sources[name] = f"{member.uri}/{f['name']}"
    window = Snapshot(dataset, snapshot_digest(files), tuple(files), tuple(members))
    for name, source in sources.items():
        copy_immutable(client, source, f"{window.uri}/{name}", deadline=deadline)
    _write_manifest(client, window, deadline)
    return window


# ------------------------------------------------------------------------------------------------ helpers


def _as_run_data(snapshot: Snapshot) -> RunData:
    return RunData(
        snapshot.uri, snapshot.sha256, snapshot.name, "snapshot", snapshot.rows, len(snapshot.files)
    )


def _plain_folder(client, folder: str, deadline: float) -> RunData:
    """A gs:// folder of CSV files that is no snapshot; MissingData when it holds no file or only snapshots."""
    names, folders = list_folder(client, folder, deadline=deadline)
    if MANIFESTS in folders:
        raise MissingData(
            f"{folder} holds snapshots but no {LATEST} pointer (an upload stopped before moving it): run "
            "`invoke data.upload` again, or pass --data with a snapshot's sha256."
        )
    if not names:
        raise MissingData(
            f"No data under {folder}: upload the training CSV files as a snapshot with `invoke data.upload` "
            "(--source DIR for another folder than data/penguins) or set cicd.data_root."
        )
    digest, count = prefix_digest(client, folder, deadline=deadline)
    return RunData(folder, digest, dataset_name(folder), "folder", None, count)


def _refuse_a_plain_folder(client, dataset: str, deadline: float) -> None:
    """Snapshots go into their own folders: CsvExampleGen, given a folder of loose files and snapshot folders,
    would fail on the folders. So a data set holding loose files (the layout before snapshots) is refused."""
    names, _ = list_folder(client, dataset, deadline=deadline)
    loose = [n for n in names if n != LATEST]
    if loose:
        raise InputError(
            f"{dataset} holds files directly ({', '.join(loose[:3])}{', ...' if len(loose) > 3 else ''}), "
            "the layout before snapshots; a snapshot beside them would break runs that read that folder. "
            "Upload under another name (--name), or move those files away first."
        )


def _write_manifest(client, snapshot: Snapshot, deadline: float) -> bool:
    """Writes the manifest once; True when this call wrote it. A manifest already there for the same files
    (even one written by another version of this code) is the same snapshot and is kept."""
    existing, _ = read_json_object(client, snapshot.manifest_uri, deadline=deadline)
    if existing is None:
        try:
            write_json_object(
                client, snapshot.manifest_uri, snapshot.manifest(), if_generation_match=0, deadline=deadline
            )
            return True
        except WriteConflict:  # another upload of the same files wrote it first
            existing, _ = read_json_object(client, snapshot.manifest_uri, deadline=deadline)
    if existing is None or snapshot_digest(existing.get("files", ())) != snapshot.sha256:
        raise InputError(
            f"{snapshot.manifest_uri} exists and does not describe the files of snapshot {snapshot.sha256}: "
            "something else wrote it. Remove it on purpose, then upload again."
        )
    return False


def _file_under_date(client, snapshot: Snapshot, date: str, deadline: float) -> None:
    uri = f"{snapshot.dataset}/{DATES}/{date}.json"
    record = {"sha256": snapshot.sha256, "uri": snapshot.uri}
    try:
        write_json_object(client, uri, record, if_generation_match=0, deadline=deadline)
    except WriteConflict:
        existing, _ = read_json_object(client, uri, deadline=deadline)
        if not existing or existing.get("sha256") != snapshot.sha256:
            raise InputError(
                f"--date {date}: {uri} already names snapshot {(existing or {}).get('sha256', '?')[:16]}, and a "
                "date names one snapshot. Upload that day's files together as one folder, or give another "
                "--date. (The snapshot itself is uploaded; LATEST was not moved.)"
            ) from None
