"""The release chain's settings: one typed object, filled from invoke's config (invoke.yaml, INVOKE_CICD_*
environment variables, command-line flags). A missing or malformed setting stops a task before any side
effect, naming the setting and how to set it.
"""

import dataclasses
import re
from collections.abc import Iterable, Mapping

from cicd_pipeline.release.errors import ReleaseError

_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_SERVICE_ACCOUNT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class SettingsError(ReleaseError, ValueError):
    """A setting is missing or malformed: the message names it and how to set it."""


def _how(name: str) -> str:
    return (
        f"set `cicd.{name}` in invoke.yaml, or INVOKE_CICD_{name.upper()}, or pass --{name.replace('_', '-')}"
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    project: str = ""
    region: str = ""
    bucket: str = ""  # gs://BUCKET holds modules, specs, the pipeline root and pushed models
    image_repo: str = ""  # REGION-docker.pkg.dev/PROJECT/REPOSITORY (Artifact Registry)
    image_name: str = "cicd-components"
    base_image: str = "gcr.io/tfx-oss-public/tfx:1.16.0"
    service_account: str = ""
    pipeline_name: str = "penguin-cicd"
    data_root: str = ""  # gs:// folder of the training CSVs; default gs://BUCKET/data/penguins
    serving_image: str = ""  # serving container recorded in Vertex AI Model Registry
    api_endpoint: str = ""  # only to point the Vertex client elsewhere (a regional endpoint, a stand-in)

    @classmethod
    def from_config(cls, config: Mapping) -> "Settings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise SettingsError(
                f"Unknown setting(s) cicd.{', cicd.'.join(unknown)}; known: {', '.join(sorted(known))}."
            )
        return cls(**{k: "" if v is None else str(v) for k, v in config.items()})

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
    def registry(self) -> str:
        return f"vertex:projects/{self.project}/locations/{self.region}"

    @property
    def resolved_data_root(self) -> str:
        return self.data_root or f"{self.bucket_uri}/data/penguins"

    def require(self, names: Iterable[str]) -> "Settings":
        """Checks that each named setting is present and well formed; returns self for chaining."""
        checks = {
            "project": (_PROJECT, "a Google Cloud project id such as my-project-123"),
            "region": (_REGION, "a region such as europe-west4"),
            "bucket": (_BUCKET, "a bucket name without gs://, such as my-project-ml"),
            "service_account": (_SERVICE_ACCOUNT, "NAME@PROJECT.iam.gserviceaccount.com"),
            "pipeline_name": (_NAME, "lowercase letters, digits and '-'"),
            "image_name": (_NAME, "lowercase letters, digits and '-'"),
        }
        for name in names:
            value = getattr(self, name)
            if not value:
                raise SettingsError(f"Setting cicd.{name} is missing: {_how(name)}.")
            pattern, expected = checks.get(name, (None, ""))
            if pattern is not None and not pattern.match(value):
                raise SettingsError(
                    f"Setting cicd.{name}={value!r} is malformed: expected {expected}; {_how(name)}."
                )
            if name == "image_repo" and (
                value.startswith("gcr.io") or "://" in value or value.count("/") != 2
            ):
                raise SettingsError(
                    f"Setting cicd.image_repo={value!r} is malformed: expected an Artifact Registry path "
                    f"REGION-docker.pkg.dev/PROJECT/REPOSITORY; {_how(name)}."
                )
            if name == "data_root" and not value.startswith("gs://"):
                raise SettingsError(f"Setting cicd.data_root={value!r} must be a gs:// folder; {_how(name)}.")
        return self
