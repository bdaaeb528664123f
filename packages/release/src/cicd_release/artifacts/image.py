"""Build, tag and push the components' container image through the Docker Engine API.

The component executors run inside this image, so a components change needs a new one. The
image is named by the components version plus a digest of the inputs that make it, never ``latest``. The
docker SDK drives either a Docker engine (Cloud Build) or podman's Docker-compatible service (CI machines,
``.ci/install-podman.sh``); ``DOCKER_HOST`` picks which when no client is passed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cicd_release.core.errors import BuildError

__all__ = [
    "ACCESS_TOKEN_USER",
    "build_image",
    "image_exists",
    "image_uri",
    "prepare_context",
    "registry_auth",
]

# Docker's reference grammar: lower-case path components separated by ".", "_", "__" or dashes.
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST = re.compile(r"^[a-zA-Z0-9.-]+(?::[0-9]+)?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LOG_TAIL_LINES = 40


def image_uri(registry_host_path: str, name: str, components_version: str, digest: str) -> str:
    """Return ``REGISTRY/NAME:<components version>-<digest[:12]>``, e.g.
    ``europe-west4-docker.pkg.dev/my-project/my-repo/cicd-components:0.1.0-3f2a9c0b1d4e``.
    """
    registry = registry_host_path.strip().rstrip("/")
    host, _, repo_path = registry.partition("/")
    example = "REGION-docker.pkg.dev/PROJECT/REPOSITORY"
    if (
        "://" in registry
        or not host
        or not repo_path
        or not _HOST.match(host)
        or ("." not in host and ":" not in host)
    ):
        raise ValueError(
            f"registry {registry_host_path!r} is not HOST/PATH: use an Artifact Registry path like {example}."
        )
    if host == "gcr.io" or host.endswith(".gcr.io"):
        raise ValueError(
            f"registry {registry_host_path!r} is Container Registry, which is retired: use {example}."
        )
    components = repo_path.split("/")
    if host.endswith("-docker.pkg.dev") and len(components) != 2:
        raise ValueError(f"registry {registry_host_path!r}: an Artifact Registry path is exactly {example}.")
    for component in [*components, name]:
        if not _PATH_COMPONENT.match(component):
            raise ValueError(
                f"{component!r} (in {registry}/{name}) is not a valid image path component: "
                "use lower-case letters, digits and single '.', '_' or '-' separators."
            )
    if "latest" in (name, components_version) or components_version.startswith("latest"):
        raise ValueError("'latest' names nothing: images are named by the components version and a digest.")
    if "+" in components_version:
        raise ValueError(
            f"components version {components_version!r} has a local part; tags cannot hold '+'. "
            "Pass the static version (e.g. 0.1.0): the digest already names the content."
        )
    digest = digest.removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{12,}", digest):
        raise ValueError(
            f"digest {digest!r} is not a hex sha256 (at least 12 characters): use naming.content_digest()."
        )
    tag = f"{components_version}-{digest[:12]}"
    if not _TAG.match(tag):
        raise ValueError(
            f"components version {components_version!r} makes the invalid tag {tag!r}: use e.g. 0.1.0."
        )
    return f"{registry}/{name}:{tag}"


def prepare_context(
    out_dir: str | os.PathLike[str], dockerfile: str | os.PathLike[str], wheels: Iterable[Any]
) -> Path:
    """Assemble a build context holding only ``Dockerfile``, the Python scripts beside it (the image's own
    build checks, such as ``check_requirements.py``) and ``wheels/*.whl``; return its folder.

    A context made of the repository would send everything in it (local credentials, data, caches) to the
    builder, where one careless COPY puts it in the image. This context holds nothing else.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BuildError(
            f"{out_dir} is not empty: pass a new or empty folder so no stale file joins the image."
        )
    wheels = [Path(w) for w in wheels]
    if not wheels:
        raise BuildError("no wheels given: build the components wheel first (release.wheels.build_wheel).")
    for wheel in wheels:
        if wheel.suffix != ".whl" or not wheel.is_file():
            raise BuildError(f"{wheel} is not a wheel file: pass the .whl paths build_wheel returned.")
    if not Path(dockerfile).is_file():
        raise BuildError(f"{dockerfile} does not exist: pass the path of docker/Dockerfile.")
    (out_dir / "wheels").mkdir(parents=True)
    shutil.copyfile(dockerfile, out_dir / "Dockerfile")
    for script in sorted(Path(dockerfile).parent.glob("*.py")):
        shutil.copyfile(script, out_dir / script.name)
    for wheel in wheels:
        shutil.copyfile(wheel, out_dir / "wheels" / wheel.name)
    return out_dir


def _split_tag(reference: str) -> tuple[str, str]:
    # The last ":" after the last "/" separates the tag; a ":" before it is a registry port.
    repository, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        raise BuildError(f"image reference {reference!r} has no tag: name it REPOSITORY:TAG (never latest).")
    if tag == "latest":
        raise BuildError(f"image reference {reference!r} uses 'latest': tag it with image_uri() instead.")
    return repository, tag


def _tail(lines: list[str]) -> str:
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def build_image(
    *,
    context_dir: str | os.PathLike[str],
    dockerfile: str | os.PathLike[str] = "Dockerfile",
    tag: str,
    extra_tags: Iterable[str] = (),
    build_args: Mapping[str, str] | None = None,
    push: bool = False,
    client: Any = None,
    timeout: float = 3600,
    auth_config: Mapping[str, str] | Callable[[str], Mapping[str, str] | None] | None = None,
) -> dict[str, Any]:
    """Build ``context_dir`` with ``dockerfile``, tag it ``tag`` and ``extra_tags``, and push them if asked.

    ``auth_config`` (``{"username", "password"}``, or a function of the image reference returning one, such
    as ``registry_auth``) goes with the pull of a missing base (build arg ``BASE_IMAGE``) and with each push,
    so neither depends on the engine's or the build machine's credential file. A function is asked right
    before each pull and push: an access token fetched before a long build can expire before its push.

    Returns ``{"id", "tags", "pushed": {tag: registry digest or None}, "log": [lines]}``. Any failure
    raises BuildError naming the step, with the end of the build or push log.
    """
    import docker  # Imported here so the rest of the release chain loads without the SDK.

    tags = [tag, *extra_tags]
    for reference in tags:
        _split_tag(reference)
    context_dir = Path(context_dir).resolve()
    if not context_dir.is_dir():
        raise BuildError(f"build context {context_dir} is not a folder: make it with prepare_context().")
    dockerfile_path = Path(dockerfile)
    if not dockerfile_path.is_absolute():
        dockerfile_path = context_dir / dockerfile_path
    dockerfile_path = dockerfile_path.resolve()
    if not dockerfile_path.is_file():
        raise BuildError(f"Dockerfile {dockerfile_path} does not exist.")
    # The engine wants the Dockerfile relative to the context; the SDK ships one from elsewhere itself.
    dockerfile_arg = (
        dockerfile_path.relative_to(context_dir).as_posix()
        if dockerfile_path.is_relative_to(context_dir)
        else str(dockerfile_path)
    )
    if client is None:
        # DOCKER_HOST selects the engine: podman's socket in CI, Docker's in Cloud Build.
        client = docker.from_env(timeout=int(timeout))
    api = client.api
    auth_for = auth_config if callable(auth_config) else (lambda _reference: auth_config)

    base = (build_args or {}).get("BASE_IMAGE")
    if base:
        _pull_if_missing(client, base, auth_for, docker.errors)
    log: list[str] = []
    image_id = None
    try:
        stream = api.build(
            path=str(context_dir),
            dockerfile=dockerfile_arg,
            tag=tag,
            buildargs=dict(build_args or {}),
            rm=True,
            forcerm=True,
            # The base was pulled above when missing, with our credentials: the engine's own pull would
            # carry only the build machine's docker config (docker-py's build takes no auth_config).
            pull=False,
            decode=True,
            timeout=int(timeout),
        )
        for chunk in stream:
            if "stream" in chunk:
                log.extend(chunk["stream"].rstrip("\n").splitlines())
            if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                raise BuildError(
                    f"building {tag} from {dockerfile_path} failed: {message.strip()}\n"
                    f"--- last lines of the build log ---\n{_tail(log)}"
                )
    except docker.errors.APIError as exc:
        raise BuildError(
            f"building {tag} from {dockerfile_path}: the engine refused the build: {exc.explanation or exc}\n"
            f"--- last lines of the build log ---\n{_tail(log)}"
        ) from exc
    except docker.errors.DockerException as exc:
        raise BuildError(f"building {tag}: cannot talk to the engine ({exc}); is DOCKER_HOST right?") from exc

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound as exc:
        raise BuildError(f"the build of {tag} ended without an image:\n{_tail(log)}") from exc
    image_id = image.id or image_id
    for reference in tags[1:]:
        repository, ref_tag = _split_tag(reference)
        if not api.tag(image_id, repository, ref_tag):
            raise BuildError(f"tagging {image_id} as {reference} failed.")

    pushed: dict[str, str | None] = {}
    if push:
        for reference in tags:
            pushed[reference] = _push(api, reference, docker.errors, auth_for(reference))
    return {"id": image_id, "tags": tags, "pushed": pushed, "log": log}


def _pull_if_missing(client: Any, base: str, auth_for: Callable[[str], Any], errors: Any) -> None:
    """Pull the base image when the engine lacks it, sending ``auth_for(base)`` (docker-py 7: ``pull``
    takes an ``auth_config``, ``build`` does not)."""
    try:
        client.images.get(base)
        return
    except errors.ImageNotFound:
        pass
    except errors.APIError:
        pass  # a reference the engine cannot look up locally: let the pull answer
    auth = auth_for(base)
    fix = (
        "Check that it exists (mirrored into your Artifact Registry, by digest) and that the build's identity "
        "may read it (roles/artifactregistry.reader)."
    )
    try:
        # The engine answers 200 and reports a failed pull inside the stream: read every chunk.
        for chunk in client.api.pull(
            base, auth_config=dict(auth) if auth else None, stream=True, decode=True
        ):
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                raise BuildError(f"pulling the base image {base} failed: {message.strip()}. {fix}")
    except errors.APIError as exc:
        raise BuildError(f"pulling the base image {base}: {exc.explanation or exc}. {fix}") from exc


def _push(api: Any, reference: str, errors: Any, auth_config: Mapping[str, str] | None = None) -> str | None:
    """Push one tag; return the registry digest the engine reported (None if it reported none)."""
    repository, tag = _split_tag(reference)
    log: list[str] = []
    digest = None
    try:
        for chunk in api.push(
            repository,
            tag=tag,
            stream=True,
            decode=True,
            auth_config=dict(auth_config) if auth_config else None,
        ):
            status = chunk.get("status") or chunk.get("stream") or ""
            if status:
                log.append(status.rstrip("\n"))
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = aux["Digest"]
            elif digest is None and (match := re.search(r"digest: (sha256:[0-9a-f]{64})", status)):
                digest = match.group(1)
            # The engine answers 200 and reports a failed push inside the stream: read every chunk.
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                raise BuildError(
                    f"pushing {reference} failed: {message.strip()}\n"
                    "Check that the registry exists and this machine is logged in to it "
                    f"(gcloud auth configure-docker HOST).\n--- last lines of the push log ---\n{_tail(log)}"
                )
    except errors.APIError as exc:
        raise BuildError(f"pushing {reference}: the engine refused: {exc.explanation or exc}") from exc
    return digest


# ------------------------------------------------------------------------------------------- the registry

# What a registry may answer for a tag: Docker and OCI manifests and indexes (multi-platform images).
_MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
# Artifact Registry (and Container Registry before it) takes a Google OAuth access token as the password of
# the user "oauth2accesstoken" (https://cloud.google.com/artifact-registry/docs/docker/authentication).
ACCESS_TOKEN_USER = "oauth2accesstoken"


def registry_auth(reference: str, credentials: Any = None) -> dict[str, str] | None:
    """The ``auth_config`` for pushing ``reference``: a Google access token for Artifact Registry hosts.

    Passed with each push, it does not depend on Cloud Build's docker config file covering the host, nor on
    a credential helper (``docker-credential-gcr``) the build image does not have. ``credentials`` default to
    Application Default Credentials (the build's service account on Cloud Build). Other hosts (a local
    registry) get None: the engine's own configuration applies.
    """
    host = reference.split("/", 1)[0]
    if credentials is None and not host.endswith("-docker.pkg.dev"):
        return None
    return {"username": ACCESS_TOKEN_USER, "password": _access_token(credentials)}


def _access_token(credentials: Any = None) -> str:
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.requests

    try:
        if credentials is None:
            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        if not credentials.valid:
            credentials.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.GoogleAuthError as exc:
        raise BuildError(
            f"No Google credentials to talk to Artifact Registry ({exc}): on Cloud Build the build's service "
            "account provides them; elsewhere run `gcloud auth application-default login`."
        ) from exc
    return credentials.token


def image_exists(reference: str, auth_config: Mapping[str, str] | None = None, timeout: float = 30) -> bool:
    """Whether the registry holds ``reference`` (``HOST/REPO:TAG``), asked over the registry's HTTP API v2.

    Follows the registry token protocol (a 401 naming a Bearer realm: fetch a token there with the basic
    credentials of ``auth_config``, ask again). A refusal is an BuildError naming the role to grant.
    """
    import base64
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    repository, tag = _split_tag(reference)
    host, _, name = repository.partition("/")
    local = host.split(":")[0] in ("localhost", "127.0.0.1")
    url = f"{'http' if local else 'https'}://{host}/v2/{name}/manifests/{tag}"
    basic = None
    if auth_config:
        pair = f"{auth_config['username']}:{auth_config['password']}".encode()
        basic = "Basic " + base64.b64encode(pair).decode()

    def head(authorization: str | None) -> int:
        request = urllib.request.Request(url, method="HEAD", headers={"Accept": ", ".join(_MANIFEST_TYPES)})
        if authorization:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            if exc.code == 401 and authorization is None:
                challenge = exc.headers.get("WWW-Authenticate", "")
                if challenge.lower().startswith("bearer ") and basic:
                    try:
                        token = _bearer(challenge, basic, timeout)
                    except (
                        urllib.error.HTTPError
                    ) as token_exc:  # the token endpoint refused these credentials
                        return token_exc.code
                    except (urllib.error.URLError, OSError, ValueError, KeyError) as token_exc:
                        raise BuildError(
                            f"Cannot get a token from the registry {host}: {token_exc}."
                        ) from token_exc
                    return head(token)
                if challenge.lower().startswith("basic") and basic:
                    return head(basic)
            return exc.code
        except (urllib.error.URLError, OSError) as exc:
            raise BuildError(f"Cannot reach the registry {host} to look for {reference}: {exc}.") from exc

    def _bearer(challenge: str, basic_header: str, timeout_: float) -> str:
        # key="value" pairs; a quoted value may hold commas (scope="repository:x:pull,push").
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge[len("Bearer ") :]))
        query = urllib.parse.urlencode({k: v for k, v in fields.items() if k in ("service", "scope")})
        request = urllib.request.Request(
            f"{fields['realm']}?{query}", headers={"Authorization": basic_header}
        )
        with urllib.request.urlopen(request, timeout=timeout_) as response:
            body = json.loads(response.read())
        return f"Bearer {body.get('token') or body.get('access_token')}"

    status = head(None)
    if status == 200:
        return True
    if status == 404:
        return False
    if status in (401, 403):
        raise BuildError(
            f"The registry {host} refused to say whether {reference} exists (HTTP {status}): the build's "
            "identity needs roles/artifactregistry.reader (writer, to push) on the repository."
        )
    raise BuildError(f"The registry {host} answered HTTP {status} for {reference}.")
