"""The components image: a real build/run/push through podman's Docker API (naming and wheels, which need no
engine, are tested in packages/release/tests/test_artifacts.py).

Builds run against podman (`.ci/install-podman.sh`) from a local stand-in base image (see conftest.py),
since CI machines cannot pull TFX's image. The Dockerfile under test is the repository's own.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.request
import uuid
from pathlib import Path

import pytest
from google.oauth2.credentials import Credentials

from cicd_release.artifacts.image import (
    build_image,
    image_exists,
    image_uri,
    prepare_context,
    registry_auth,
)
from cicd_release.artifacts.naming import content_digest
from cicd_release.artifacts.wheels import build_wheel
from cicd_release.core.errors import BuildError
from tests.support.container_engine import AUTH_REGISTRY_TOKEN

REPO_ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "127.0.0.1:5000"  # served by `.ci/install-podman.sh --registry`
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
AR_REPO = "europe-west4-docker.pkg.dev/my-project/ml-images"


# --- real builds through podman's Docker API --------------------------------------------------------------


@pytest.fixture
def context_with_wheel(package_factory, tmp_path):
    wheel = build_wheel(package_factory(), tmp_path / "dist", local_version="g1a2b3c4")
    return prepare_context(tmp_path / "ctx", DOCKERFILE, [wheel]), wheel


def test_image_has_the_components_installed(docker_client, base_image, context_with_wheel, image_cleanup):
    context, wheel = context_with_wheel
    tag = "localhost/cicd-components-test:0.1.0-installed"
    image_cleanup.append(tag)

    result = build_image(
        context_dir=context,
        tag=tag,
        client=docker_client,
        build_args={
            "BASE_IMAGE": base_image,
            "COMPONENTS_VERSION": "0.1.0+g1a2b3c4",
            "GIT_COMMIT": "1a2b3c4d",
        },
    )

    labels = docker_client.images.get(tag).labels
    assert labels["org.opencontainers.image.version"] == "0.1.0+g1a2b3c4"
    assert labels["org.opencontainers.image.revision"] == "1a2b3c4d"
    assert labels["org.opencontainers.image.base.name"] == base_image
    # Installed, not just copied: the interpreter imports it and pip's metadata has the local version.
    out = docker_client.containers.run(
        result["id"],
        remove=True,
        command=[
            "python",
            "-c",
            "import importlib.metadata as m, cicd_components as c; "
            "print(m.version('cicd-components'), c.__file__)",
        ],
    ).decode()
    assert out.split()[0] == "0.1.0+g1a2b3c4"
    assert "site-packages/cicd_components/__init__.py" in out
    assert (
        f"/opt/cicd/wheels/{wheel.name}"
        in docker_client.containers.run(
            result["id"], ["python", "-c", "import glob; print(glob.glob('/opt/cicd/wheels/*'))"], remove=True
        ).decode()
    )


def test_a_requirement_the_base_lacks_fails_the_build(docker_client, base_image, package_factory, tmp_path):
    # The real components need TFX: a base without it must fail here, not when Vertex runs an executor.
    wheel = build_wheel(package_factory(dependencies=("tfx>=1.16,<1.17",)), tmp_path / "dist")
    context = prepare_context(tmp_path / "ctx", DOCKERFILE, [wheel])
    with pytest.raises(BuildError) as failure:
        build_image(
            context_dir=context,
            tag="localhost/cicd-components-test:unmet",
            client=docker_client,
            build_args={"BASE_IMAGE": base_image},
        )
    assert "tfx" in str(failure.value)
    assert "last lines of the build log" in str(failure.value)


def test_a_conflict_among_the_bases_own_packages_does_not_fail_the_build(
    docker_client, base_image, context_with_wheel, image_cleanup, tmp_path
):
    """TFX's base ships packages that disagree with each other (tensorflow/tfx#6864); only our tree is ours.

    `pip check` over the whole image failed every build on such a base (cloud review #24).
    """
    base = tmp_path / "base"
    info = base / "site" / "unrelated_tool-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: unrelated-tool\nVersion: 1.0\nRequires-Dist: not-installed-anywhere>=1\n"
    )
    site = (
        docker_client.containers.run(
            base_image,
            ["python3", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            remove=True,
        )
        .decode()
        .strip()
    )
    (base / "Dockerfile").write_text(f"FROM {base_image}\nCOPY site/ {site}/\n")
    conflicted = f"localhost/cicd-test-conflicted-base:{uuid.uuid4().hex[:12]}"
    docker_client.images.build(path=str(base), tag=conflicted, rm=True, pull=False)
    context, _ = context_with_wheel
    tag = "localhost/cicd-components-test:0.1.0-conflicted-base"
    image_cleanup.extend([tag, conflicted])

    result = build_image(
        context_dir=context, tag=tag, client=docker_client, build_args={"BASE_IMAGE": conflicted}
    )

    assert any("requirements of cicd_components met" in line for line in result["log"])


def test_a_bad_dockerfile_reports_the_log_tail(docker_client, base_image, tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo marker-before-failure\nRUN python -c 'raise SystemExit(3)'\n"
    )
    with pytest.raises(BuildError) as failure:
        build_image(context_dir=context, tag="localhost/cicd-components-test:bad", client=docker_client)
    message = str(failure.value)
    assert "building localhost/cicd-components-test:bad" in message
    assert "marker-before-failure" in message  # the log tail shows what ran before the failure


def test_build_refuses_latest(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(BuildError, match="latest"):
        build_image(context_dir=tmp_path, tag="localhost/x:latest", client=object())


def test_push_to_a_local_registry(docker_client, base_image, context_with_wheel, image_cleanup):
    context, _ = context_with_wheel
    digest = content_digest(context, ["wheels", "Dockerfile"])
    uri = image_uri(f"{REGISTRY}/cicd", "cicd-components-test", "0.1.0", digest)
    commit_tag = f"{REGISTRY}/cicd/cicd-components-test:1a2b3c4d"
    image_cleanup.extend([uri, commit_tag])

    result = build_image(
        context_dir=context,
        tag=uri,
        extra_tags=[commit_tag],
        push=True,
        client=docker_client,
        build_args={"BASE_IMAGE": base_image},
    )

    assert set(result["pushed"]) == {uri, commit_tag}
    with urllib.request.urlopen(
        f"http://{REGISTRY}/v2/cicd/cicd-components-test/tags/list", timeout=10
    ) as resp:
        tags = json.load(resp)["tags"]
    assert {uri.rsplit(":", 1)[1], "1a2b3c4d"} <= set(tags)
    # The digest the engine reports is the one the registry serves: what a pipeline spec can pin.
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/cicd/cicd-components-test/manifests/1a2b3c4d",
        method="HEAD",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert result["pushed"][commit_tag] == resp.headers["Docker-Content-Digest"]


def test_push_failure_is_reported(docker_client, base_image, context_with_wheel, image_cleanup):
    context, _ = context_with_wheel
    tag = "127.0.0.1:1/cicd/cicd-components-test:0.1.0-nowhere"  # nothing listens on port 1
    image_cleanup.append(tag)
    with pytest.raises(BuildError, match="pushing 127.0.0.1:1/cicd/cicd-components-test:0.1.0-nowhere"):
        build_image(
            context_dir=context,
            tag=tag,
            push=True,
            client=docker_client,
            build_args={"BASE_IMAGE": base_image},
        )


# --- a registry that requires a login (`.ci/install-podman.sh --auth-registry`) ---------------------------


@pytest.fixture
def token_auth(auth_registry):
    """The auth_config registry_auth() makes from Google credentials holding the auth registry's token."""
    auth = registry_auth(f"{auth_registry}/cicd/x:t", credentials=Credentials(token=AUTH_REGISTRY_TOKEN))
    assert auth == {"username": "oauth2accesstoken", "password": AUTH_REGISTRY_TOKEN}
    return auth


def test_push_without_a_login_is_refused(
    docker_client, base_image, context_with_wheel, image_cleanup, auth_registry
):
    # podman has no login for this registry (no auth.json or docker config on CI machines): it must refuse.
    context, _ = context_with_wheel
    tag = f"{auth_registry}/cicd/cicd-components-test:0.1.0-nologin"
    image_cleanup.append(tag)
    with pytest.raises(BuildError) as failure:
        build_image(
            context_dir=context,
            tag=tag,
            push=True,
            client=docker_client,
            build_args={"BASE_IMAGE": base_image},
        )
    message = str(failure.value)
    assert f"pushing {tag}" in message
    assert "unauthorized" in message.lower() or "authentication required" in message.lower()


def test_push_with_registry_auth_reaches_a_registry_that_requires_a_login(
    docker_client, base_image, context_with_wheel, image_cleanup, auth_registry, token_auth
):
    context, _ = context_with_wheel
    digest = content_digest(context, ["wheels", "Dockerfile"])
    uri = image_uri(f"{auth_registry}/cicd", "cicd-components-test", "0.1.0", digest)
    # The registry outlives the test: a tag new to it shows this push, not an earlier one, put it there.
    fresh_tag = f"{auth_registry}/cicd/cicd-components-test:{uuid.uuid4().hex[:12]}"
    image_cleanup.extend([uri, fresh_tag])
    assert image_exists(fresh_tag, token_auth) is False

    result = build_image(
        context_dir=context,
        tag=uri,
        extra_tags=[fresh_tag],
        push=True,
        client=docker_client,
        build_args={"BASE_IMAGE": base_image},
        auth_config=token_auth,
    )

    assert set(result["pushed"]) == {uri, fresh_tag}
    assert image_exists(uri, token_auth) is True
    assert image_exists(fresh_tag, token_auth) is True
    # The registry answers nothing without the login, and image_exists says which role is missing.
    with pytest.raises(BuildError, match="roles/artifactregistry.reader"):
        image_exists(fresh_tag)
    # The digest the engine reports is the one the registry serves for the tag.
    login = base64.b64encode(f"oauth2accesstoken:{AUTH_REGISTRY_TOKEN}".encode()).decode()
    request = urllib.request.Request(
        f"http://{auth_registry}/v2/cicd/cicd-components-test/manifests/{fresh_tag.rsplit(':', 1)[1]}",
        method="HEAD",
        headers={
            "Authorization": f"Basic {login}",
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert result["pushed"][fresh_tag] == resp.headers["Docker-Content-Digest"]


def test_image_exists_is_false_for_a_tag_never_pushed(auth_registry, token_auth):
    never = f"{auth_registry}/cicd/cicd-components-test:never-{uuid.uuid4().hex[:12]}"
    assert image_exists(never, token_auth) is False


def _push_base_to(docker_client, base_image: str, registry: str, auth: dict) -> str:
    """The test base, pushed to ``registry`` under a new tag and removed from the engine: only a pull finds it."""
    repository = f"{registry}/cicd-test/base"
    tag = uuid.uuid4().hex[:12]
    docker_client.api.tag(base_image, repository, tag)
    for chunk in docker_client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth):
        assert "error" not in chunk, chunk
    docker_client.images.remove(f"{repository}:{tag}", force=False)
    return f"{repository}:{tag}"


def test_a_base_behind_a_login_is_pulled_with_the_credentials_given(
    docker_client, base_image, context_with_wheel, image_cleanup, auth_registry, token_auth
):
    """The engine's own pull during a build carries only the machine's docker config (cloud review #27)."""
    base = _push_base_to(docker_client, base_image, auth_registry, token_auth)
    context, _ = context_with_wheel
    tag = "localhost/cicd-components-test:0.1.0-private-base"
    image_cleanup.extend([tag, base])

    result = build_image(
        context_dir=context,
        tag=tag,
        client=docker_client,
        build_args={"BASE_IMAGE": base},
        auth_config=token_auth,
    )

    assert docker_client.images.get(tag).id == result["id"]


def test_a_private_base_without_credentials_fails_in_one_line_naming_it(
    docker_client, base_image, context_with_wheel, image_cleanup, auth_registry, token_auth
):
    base = _push_base_to(docker_client, base_image, auth_registry, token_auth)
    context, _ = context_with_wheel
    image_cleanup.append(base)
    with pytest.raises(
        BuildError, match=rf"pulling the base image {re.escape(base)}.*artifactregistry\.reader"
    ):
        build_image(
            context_dir=context,
            tag="localhost/cicd-components-test:0.1.0-no-login",
            client=docker_client,
            build_args={"BASE_IMAGE": base},
        )


def test_the_push_token_is_fetched_after_the_build_not_before(
    docker_client, base_image, context_with_wheel, image_cleanup, auth_registry
):
    """An access token fetched before a long build can expire before the push (cloud review #28).

    The stand-in token source hands out a token the registry refuses (an expired one) until the image exists:
    a push succeeds only if its credentials were asked for after the build.
    """
    context, _ = context_with_wheel
    tag = f"{auth_registry}/cicd/cicd-components-test:{uuid.uuid4().hex[:12]}"
    image_cleanup.append(tag)
    asked: list[tuple[str, bool]] = []

    def tokens(reference: str) -> dict[str, str]:
        built = bool(docker_client.images.list(name=tag))
        asked.append((reference, built))
        password = AUTH_REGISTRY_TOKEN if built else "expired-token"
        return {"username": "oauth2accesstoken", "password": password}

    result = build_image(
        context_dir=context,
        tag=tag,
        push=True,
        client=docker_client,
        build_args={"BASE_IMAGE": base_image},
        auth_config=tokens,
    )

    assert asked == [(tag, True)]
    assert result["pushed"][tag]
