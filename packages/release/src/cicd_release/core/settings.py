"""The release chain's settings: one typed, validated object, parsed once from invoke's config (invoke.yaml,
INVOKE_CICD_* environment variables, command-line flags).

Every non-empty value is checked when the object is built, by the rule written next to its field, so a
malformed setting stops a task before any side effect; `require(...)` then says which settings a step needs.
Either way the error is one line naming the setting, what is wrong, the rule and where to set it.
Import-light on purpose (pydantic, no google.*, no TFX): tasks import this module at startup.
"""

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from cicd_components.canonical import canonical_json
from cicd_components.hyperparameters.rule import HyperparametersError, parse_hyperparameters
from cicd_pipeline import beam_mode
from cicd_pipeline.config import HYPERPARAMETER_TYPES, PIPELINE_NAME_EXPECTED, check_pipeline_name
from cicd_release.core.errors import InputError, SettingsError
from cicd_release.core.rules import rule as _rule
from cicd_release.core.rules import switch as _switch
from cicd_release.core.scale import TOGETHER, ScaleSettings
from cicd_release.core.sources import SourceSettings

# ---------------------------------------------------------------------------------------------- messages

# A setting whose name has one of these words may hold a secret: its value is never printed back.
_SECRET_WORDS = frozenset(
    {"secret", "token", "password", "passwd", "key", "apikey", "credential", "credentials"}
)


def _is_secret(name: str) -> bool:
    return not _SECRET_WORDS.isdisjoint(name.lower().split("_"))


# The settings a task also takes as a flag (`invoke build.image --image-repo ...`); the others have none.
FLAGS = {
    "image_repo": "invoke build.image --image-repo",
    "base_image": "invoke build.image --base-image",
    "github_repo": "invoke setup --github-repo",
    "github_repo_id": "invoke setup --github-repo-id",
    "github_owner_id": "invoke setup --github-owner-id",
}


def _how(name: str) -> str:
    flag = f", or `{FLAGS[name]}`" if name in FLAGS else ""
    return f"set cicd.{name} in invoke.yaml or INVOKE_CICD_{name.upper()}{flag}"


def setting_message(name: str, value: Any, wrong: str, expected: str) -> str:
    """`cicd.NAME=VALUE WRONG; expected RULE; set cicd.NAME in ...`, the value left out for a secret's name."""
    shown = " (value not shown)" if _is_secret(name) or _looks_secret(value) else f"={_clip(value)!r}"
    return f"cicd.{name}{shown} {wrong}; expected {expected}; {_how(name)}."


# The published prefixes of tokens and keys people paste: Google OAuth access tokens (ya29.), refresh tokens
# (1//) and API keys (AIza); GitHub's personal, OAuth, user-to-server, server-to-server (Actions' own
# GITHUB_TOKEN), refresh and fine-grained tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_); GitLab's personal,
# deploy, OAuth, runner, trigger and feed tokens (glpat-, gldt-, gloas-, glrt-, glptt-, glft-); AWS access key ids.
_SECRET_PREFIXES = re.compile(
    r"(?:ya29\.|1//|AIza[0-9A-Za-z_-]|gh[pousr]_[0-9A-Za-z]|github_pat_|gl(?:pat|dt|oas|rt|ptt|ft)-|A[KS]IA[0-9A-Z])"
)


def _looks_secret(value: Any) -> bool:
    """A pasted key or token must not reach a build log, whatever setting it was pasted into (anywhere in the
    value: `Bearer ghp_...` is still a token)."""
    text = str(value)
    return "\n" in text or "PRIVATE KEY" in text or "BEGIN " in text or bool(_SECRET_PREFIXES.search(text))


def _clip(value: Any, limit: int = 80) -> Any:
    text = str(value)
    return value if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


# ------------------------------------------------------------------------------------------------- rules
# Each returns what is wrong with a non-empty value, or None. Sources: Google Cloud's naming rules for
# project ids, service accounts (account id: 6-30 characters, [a-z]([-a-z0-9]*[a-z0-9])), buckets and
# Artifact Registry; google-cloud-aiplatform's PipelineJob id pattern for the pipeline name.

_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
# Google Cloud's regions are GEOGRAPHY-DIRECTION<n>: europe-west4, europe-west12, us-central1, me-central2.
_REGION = re.compile(
    r"^(?:africa|asia|australia|europe|me|northamerica|southamerica|us)"
    r"-(?:central|east|west|north|south|northeast|northwest|southeast|southwest)[0-9]{1,2}$"
)
_SERVICE_ACCOUNT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@(?P<project>[^@]+)\.iam\.gserviceaccount\.com$")
# Artifact Registry: LOCATION-docker.pkg.dev/PROJECT/REPOSITORY, LOCATION a region or a multi-region.
_AR_REPO = re.compile(
    r"^(?:[a-z]+-[a-z]+[0-9]{1,2}|us|europe|asia)-docker\.pkg\.dev/(?P<project>[^/]+)/(?P<repo>[^/]+)$"
)
# A local registry for tests and development: only on this machine, never a remote host without TLS checks.
_LOCAL_REPO = re.compile(r"^(?:localhost|127\.0\.0\.1):[0-9]{1,5}/(?P<project>[^/]+)/(?P<repo>[^/]+)$")
_AR_REPO_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_IMAGE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,126}[a-z0-9])?$")
# A data set is a folder (data/NAME/, gs://BUCKET/data/NAME/) and a label value: snapshots.dataset_uri's rule.
_DATASET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_DOCKER_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _matches(pattern: re.Pattern, wrong: str) -> Callable[[str], str | None]:
    return lambda value: None if pattern.match(value) else wrong


def _beam_mode(value: str) -> str | None:
    try:
        beam_mode.parse(value)
    except beam_mode.BeamModeError:
        return "is not a Beam mode"
    return None


def _project(value: str) -> str | None:
    if _PROJECT.match(value):
        return None
    if not 6 <= len(value) <= 30:
        return f"is {len(value)} characters long"
    return "is not a project id (lowercase letters, digits, '-'; a letter first; no '-' last)"


def _bucket(value: str) -> str | None:
    if value.startswith("gs://"):
        return "starts with gs://"
    if "/" in value:
        return "has a '/' (a bucket name has no folders)"
    if not re.fullmatch(r"[a-z0-9._-]+", value):
        return "has a character other than lowercase letters, digits, '-', '_' and '.'"
    if not (value[0].isalnum() and value[-1].isalnum()):
        return "does not start and end with a letter or digit"
    components = value.split(".")
    if len(value) < 3 or len(value) > (222 if len(components) > 1 else 63):
        return f"is {len(value)} characters long"
    if any(not 1 <= len(part) <= 63 for part in components):
        return "has an empty or longer than 63 characters dot-separated part"
    try:
        ipaddress.ip_address(value)
        return "is an IP address"
    except ValueError:
        pass
    if value.startswith("goog") or "google" in value:
        return "starts with 'goog' or has 'google' (reserved by Google)"
    return None


def _service_account(value: str) -> str | None:
    match = _SERVICE_ACCOUNT.match(value)
    if match is None or _project(match["project"]):
        return "is not a service account e-mail of a project"
    return None


def _image_repo(value: str) -> str | None:
    if "://" in value:
        return "has a scheme (drop https://)"
    if value.split("/")[0].endswith("gcr.io"):
        return "is a Container Registry path (gcr.io), which Google retired in favour of Artifact Registry"
    match = _AR_REPO.match(value) or _LOCAL_REPO.match(value)
    if match is None:
        return "is not an Artifact Registry Docker repository path"
    if _project(match["project"]):
        return f"names {match['project']!r}, which is not a project id"
    if not _AR_REPO_NAME.match(match["repo"]):
        return f"names the repository {match['repo']!r} (lowercase letters, digits, '-'; a letter first)"
    return None


# GitHub: an owner (user or organization) of 1-39 letters, digits or single '-' (not first or last), a
# repository name of 1-100 letters, digits, '-', '_' or '.' (GitHub refuses "." and ".." as names).
_GITHUB_REPO = re.compile(
    r"^(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})/(?P<repo>[A-Za-z0-9._-]{1,100})$"
)


# GitHub's ids of users, organizations and repositories: positive integers, never reused.
_GITHUB_ID = re.compile(r"^[1-9][0-9]{0,19}$")


def _github_repo(value: str) -> str | None:
    match = _GITHUB_REPO.match(value)
    if match is None:
        return "is not OWNER/REPOSITORY"
    if match["repo"] in (".", ".."):
        return "names the repository '.' or '..'"
    return None


def _api_endpoint_url(value: str) -> str | None:
    """http(s)://HOST[:PORT] with no path; plain http only on this machine (a stand-in), never over a network."""
    match = re.fullmatch(
        r"(?P<scheme>https?)://(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?/?", value
    )
    if match is None:
        return "is not http(s)://HOST[:PORT] (no path)"
    if match["scheme"] == "http" and match["host"] not in ("127.0.0.1", "localhost", "[::1]"):
        return "is plain http to another machine (credentials would travel unencrypted)"
    return None


def _api_host(value: str) -> str | None:
    """An API endpoint as the Google clients take it: HOST[:PORT] (https), or a URL by the endpoint rule above,
    so plain http goes only to this machine (a stand-in), never with a token over a network."""
    if "://" in value:
        return _api_endpoint_url(value)
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?", value):
        return "is not HOST[:PORT] or http(s)://HOST[:PORT]"
    return None


def _data_root(value: str) -> str | None:
    if not value.startswith("gs://"):
        return "is not a gs:// folder"
    bucket = value.removeprefix("gs://").split("/")[0]
    if _bucket(bucket):
        return f"names the bucket {bucket!r}, which {_bucket(bucket)}"
    return None


# Docker's reference grammar (distribution/reference): an optional registry HOST[:PORT]/, then path
# components of lowercase letters and digits joined by '.', '_', '__' or dashes. Nothing else (no ',' or '='
# that would add a Cloud Build substitution where the image is passed as one).
_REGISTRY_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?/)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_PATH = re.compile(rf"^{_REGISTRY_HOST}{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")


def _pinned_image(value: str) -> str | None:
    if any(c.isspace() for c in value):
        return "has a space"
    name, at, digest = value.partition("@")
    path, colon, tag = name.rpartition(":")
    if not _IMAGE_PATH.match(path if colon and "/" not in tag else name):
        return "is not an image path (a registry HOST[:PORT]/, then lowercase letters, digits, '.', '_', '-', '/')"
    if at:
        return None if _DIGEST.match(digest) else "has a digest that is not sha256:<64 hex digits>"
    repository, colon, tag = name.rpartition(":")
    # A ":" before the last "/" is a registry port, not a tag.
    if not colon or "/" in tag or not repository:
        return "has no tag (it would mean :latest, which moves)"
    if tag == "latest":
        return "uses the latest tag, which moves"
    if not _DOCKER_TAG.match(tag):
        return f"has the tag {tag!r}, which is not a valid Docker tag"
    return None


def _digest_pinned(value: str) -> str | None:
    """An image by digest: a tag can be moved to other bytes, and the components image names its base."""
    wrong = _pinned_image(value)
    if wrong:
        return wrong
    if "@" not in value:
        return "is pinned by a tag, which can be moved; pin the digest (NAME@sha256:...)"
    return None


# Seconds a storage or Vertex call keeps retrying before the step fails: long enough to ride out a brief 503 or
# 429 storm, short enough that an unreachable endpoint fails a build in well under a minute. At most 10 minutes,
# google-resumable-media's own ceiling on an upload's retries (common.MAX_CUMULATIVE_RETRY).
DEADLINE_DEFAULT, DEADLINE_MAX = 30.0, 600.0


def _deadline_seconds(value: Any) -> float:
    """Seconds from YAML (a number) or text ("30", "2.5"); empty means the default. 0 < value <= 600."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEADLINE_DEFAULT
    try:
        seconds = float("nan") if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if seconds != seconds:  # not a number ("nan" included)
        wrong = "is not a number of seconds"
    elif seconds <= 0:
        wrong = "is not more than 0 seconds"
    elif seconds > DEADLINE_MAX:
        wrong = f"is more than {DEADLINE_MAX:g} seconds"
    else:
        return seconds
    raise PydanticCustomError("cicd_setting", "{wrong}", {"wrong": wrong})


_PINNED = (
    "an image pinned by a tag other than latest or by @sha256:<digest>, e.g. gcr.io/tfx-oss-public/tfx:1.16.0"
)


# ------------------------------------------------------------------------------------------------ model


# The switches that move work off this machine (Dataflow, Vertex AI Training) live in cicd_release/core/scale.py, the
# data source switch (CSV snapshots or a BigQuery table) in cicd_release/core/sources.py.
class Settings(ScaleSettings, SourceSettings):
    """Where and as what the pipeline ships. Build it with `from_config`; empty means "not set"."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    project: Annotated[str, _rule(_project)] = Field(
        "",
        description="a Google Cloud project id of 6-30 lowercase letters, digits or '-', e.g. my-project-123",
    )
    region: Annotated[str, _rule(_matches(_REGION, "is not a region"))] = Field(
        "", description="a Google Cloud region such as europe-west4 or us-central1"
    )
    # gs://BUCKET holds modules, specs, the pipeline root, releases and pushed models.
    bucket: Annotated[str, _rule(_bucket)] = Field(
        "",
        description="a bucket name without gs:// or '/': 3-63 lowercase letters, digits, '-', '_' or '.' "
        "(up to 222 with dots, 63 per part), a letter or digit at each end, not an IP address, no goog prefix nor google",
    )
    image_repo: Annotated[str, _rule(_image_repo)] = Field(
        "",
        description="an Artifact Registry Docker repository REGION-docker.pkg.dev/PROJECT/REPOSITORY, e.g. "
        "europe-west4-docker.pkg.dev/my-project-123/training (or localhost:PORT/PROJECT/REPOSITORY, a local "
        "registry)",
    )
    image_name: Annotated[str, _rule(_matches(_IMAGE_NAME, "is not an image name"))] = Field(
        "cicd-components",
        description="an image name of lowercase letters, digits and '-', e.g. cicd-components",
    )
    # The TFX image the components image builds on, pinned by digest: the image's tag names its inputs, and a
    # base that moved under the same tag would make two images with one name. gcr.io (Container Registry) is
    # retired: mirror gcr.io/tfx-oss-public/tfx:1.16.0 into your Artifact Registry (docs/release-chain.md).
    base_image: Annotated[str, _rule(_digest_pinned)] = Field(
        "",
        description="the TFX base image by digest, e.g. "
        "europe-west4-docker.pkg.dev/my-project/mirror/tfx@sha256:<64 hex digits>",
    )
    service_account: Annotated[str, _rule(_service_account)] = Field(
        "", description="a service account e-mail NAME@PROJECT.iam.gserviceaccount.com"
    )
    # The name of the pipeline, its runs (job id: <name>-<sha12>-<YYYYmmddHHMMSS>-<8 hex>) and its bucket folders.
    pipeline_name: Annotated[str, _rule(check_pipeline_name)] = Field(
        "penguin-cicd", description=PIPELINE_NAME_EXPECTED
    )
    # The training data set: data/<dataset>/ in the checkout, gs://BUCKET/data/<dataset>/ in the bucket.
    dataset: Annotated[str, _rule(_matches(_DATASET, "is not a data set name"))] = Field(
        "penguins",
        description="1-63 lowercase letters, digits, '-' or '_', a letter or digit first, e.g. penguins",
    )
    # The local run's Beam DirectRunner mode (`invoke run --beam` wins); empty or auto: by the data's size.
    local_beam: Annotated[str, _rule(_beam_mode)] = Field("", description=beam_mode.HELP)
    data_root: Annotated[str, _rule(_data_root)] = Field(
        "",
        description="a gs://BUCKET/FOLDER holding the data set's snapshots and LATEST "
        "(default gs://BUCKET/data/<dataset>)",
    )
    # The serving container recorded in Vertex AI Model Registry. Google lists its prebuilt ones as :latest:
    # pin the digest instead, so a registered model names what it was tested with.
    serving_image: Annotated[str, _rule(_pinned_image)] = Field("", description=_PINNED)
    # The GitHub repository whose pushes release: `invoke setup` binds the Workload Identity provider to it
    # alone (an attribute condition), and `invoke doctor` checks that binding.
    github_repo: Annotated[str, _rule(_github_repo)] = Field(
        "", description="a GitHub repository OWNER/REPOSITORY, e.g. my-org/penguin-training"
    )
    # Its numeric ids, which the Workload Identity condition and binding use: a deleted repository's or
    # organization's name can be claimed again by anyone, an id is never reused (google-github-actions/auth's
    # security considerations).
    github_repo_id: Annotated[str, _rule(_matches(_GITHUB_ID, "is not a GitHub id (a number)"))] = Field(
        "",
        description="GitHub's numeric id of cicd.github_repo, e.g. 260064828 "
        "(`gh api repos/OWNER/REPOSITORY --jq .id` prints it)",
    )
    github_owner_id: Annotated[str, _rule(_matches(_GITHUB_ID, "is not a GitHub id (a number)"))] = Field(
        "",
        description="GitHub's numeric id of cicd.github_repo's owner, e.g. 1342004 "
        "(`gh api repos/OWNER/REPOSITORY --jq .owner.id` prints it)",
    )
    # Only for local stand-ins: every Google API `invoke setup` and `invoke doctor` call (Service Usage, Resource
    # Manager, IAM, Artifact Registry, Cloud Storage) at one address. Empty: each API's own Google endpoint.
    cloud_api_endpoint: Annotated[str, _rule(_api_endpoint_url)] = Field(
        "", description="http://127.0.0.1:PORT of a local stand-in (or https://HOST), with no path"
    )
    # Only for a local stand-in: the BigQuery reads of the chain (the table's state for the data digest, with
    # cicd.source=bigquery). Empty: bigquery.googleapis.com. The compiled spec's own reads are Google's.
    bigquery_api_endpoint: Annotated[str, _rule(_api_endpoint_url)] = Field(
        "", description="http://127.0.0.1:PORT of a local stand-in (or https://HOST), with no path"
    )
    # Only to point the Vertex client elsewhere (a regional endpoint, a stand-in). Plain http only to this
    # machine: the client sends the caller's token with every request.
    api_endpoint: Annotated[str, _rule(_api_host)] = Field(
        "",
        description="a Vertex AI API endpoint HOST[:PORT], e.g. europe-west4-aiplatform.googleapis.com (or "
        "http://127.0.0.1:PORT of a local stand-in)",
    )
    # How long each storage or Vertex call retries 429/5xx answers and lost connections, and the longest one
    # request may wait; then the step fails in one line naming the endpoint and what was written. An upload
    # may take longer as long as each of its chunks gets through within it (a stall, not a slow line, fails).
    request_deadline_seconds: Annotated[float, BeforeValidator(_deadline_seconds)] = Field(
        DEADLINE_DEFAULT,
        description=f"a number of seconds more than 0 and at most {DEADLINE_MAX:g}, e.g. 30 (the default)",
    )
    # Explicit switch for local stand-ins (GCS emulator, Vertex stand-in): no Google credentials are looked up.
    anonymous_credentials: Annotated[bool, BeforeValidator(_switch)] = Field(
        False, description="true or false (also 1 or 0)"
    )

    def __init__(self, /, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise _settings_error(type(self), err) from None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Settings":
        """The settings from invoke's `cicd` config (YAML values, environment text, flags); SettingsError if bad."""
        known = cls.model_fields
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise SettingsError(
                f"Unknown setting(s) cicd.{', cicd.'.join(unknown)}; known settings: {', '.join(known)}; "
                "rename or remove it in invoke.yaml or its INVOKE_CICD_* variable."
            )
        values = {
            name: value if known[name].annotation is bool else ("" if value is None else str(value))
            for name, value in config.items()
        }
        return cls(**values)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every setting and its default: what tasks declare so invoke.yaml and INVOKE_CICD_* can set them.

        Text settings declare their text default; the others (a switch, a number) declare None. invoke casts an
        INVOKE_* variable by the type of the value declared for it: a bool default would make "false" true and a
        float default would make "abc" a ValueError traceback. Declared as None, the variable's text reaches the
        field's rule here, which says what is wrong in one line; the field's own default fills in "not set"."""
        return {
            name: field.default if isinstance(field.default, str) else None
            for name, field in cls.model_fields.items()
        }

    def require(self, names: Iterable[str]) -> "Settings":
        """Checks that each named setting is set (non-empty); returns self for chaining. SettingsError if not."""
        for name in names:
            if name not in type(self).model_fields:
                raise ValueError(
                    f"require() got {name!r}, which is not a setting."
                )  # a bug, not a user's mistake
            if not getattr(self, name):
                expected = type(self).model_fields[name].description
                raise SettingsError(f"cicd.{name} is missing; expected {expected}; {_how(name)}.")
        return self

    @property
    def switches(self) -> frozenset[str]:
        """Every switch that is on, by the names desired.py's `when` uses: scale-out and source."""
        return ScaleSettings.switches.fget(self) | self.source_switches

    @property
    def bucket_uri(self) -> str:
        return f"gs://{self.bucket}"

    @property
    def pipeline_root(self) -> str:
        return f"{self.bucket_uri}/pipeline_root"

    @property
    def serving_model_dir(self) -> str:
        return f"{self.bucket_uri}/serving_model/{self.pipeline_name}"

    @property
    def modules_prefix(self) -> str:
        return f"{self.bucket_uri}/modules"

    @property
    def specs_prefix(self) -> str:
        return f"{self.bucket_uri}/specs"

    @property
    def releases_prefix(self) -> str:
        return f"{self.bucket_uri}/releases/{self.pipeline_name}"

    @property
    def registry(self) -> str:
        return f"vertex:projects/{self.project}/locations/{self.region}"

    @property
    def resolved_data_root(self) -> str:
        return self.data_root or f"{self.bucket_uri}/data/{self.dataset}"


def _settings_error(cls: type[Settings], err: ValidationError) -> SettingsError:
    """pydantic's report, as the one-line SettingsError of its first problem (the others show on the next try)."""
    first = err.errors(include_url=False)[0]
    if first["type"] == TOGETHER:  # a rule over two fields (scale.py, sources.py): its message is whole
        return SettingsError(first["ctx"]["message"])
    name = str(first["loc"][0]) if first["loc"] else "?"
    if first["type"] == "extra_forbidden":
        return SettingsError(
            f"Unknown setting cicd.{name}; known settings: {', '.join(cls.model_fields)}; "
            "rename or remove it in invoke.yaml or its INVOKE_CICD_* variable."
        )
    wrong = first["ctx"]["wrong"] if first["type"] == "cicd_setting" else f"is not valid ({first['msg']})"
    expected = cls.model_fields[name].description if name in cls.model_fields else "a known setting"
    return SettingsError(setting_message(name, first["input"], wrong, expected))


def check_as(setting: str, value: str, name: str, expected: str | None = None) -> str:
    """A value that is not itself a setting but is of the same kind (the account Cloud Build runs as, the image
    its steps run in), checked by `setting`'s rule; SettingsError naming `name` when it is empty or breaks it."""
    field = Settings.model_fields[setting]
    expected = expected or field.description
    if not value:
        raise SettingsError(f"{name} is missing; expected {expected}.")
    try:
        TypeAdapter(Annotated[(field.annotation, *field.metadata)]).validate_python(value)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        wrong = first["ctx"]["wrong"] if first["type"] == "cicd_setting" else f"is not valid ({first['msg']})"
        shown = " (value not shown)" if _looks_secret(value) else f"={_clip(value)!r}"
        raise SettingsError(f"{name}{shown} {wrong}; expected {expected}.") from None
    return value


def parse_run_hyperparameters(text: str) -> str:
    """A run's hyperparameter overrides (`pipeline.submit --hyperparameters`) as canonical JSON.

    The same rule and table as TrainingConfig and the HyperparametersGen executor; InputError (exit 2) if bad.
    """
    try:
        values = parse_hyperparameters(text, HYPERPARAMETER_TYPES)
    except HyperparametersError as err:
        raise InputError(f"--hyperparameters: {err}") from None
    # Spaced: the spelling the release record holds and compares (cicd_components.canonical).
    return canonical_json(values, spaced=True)
