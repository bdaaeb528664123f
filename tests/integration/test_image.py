"""The components image: wheel naming, image naming, and a real build/run/push through podman's Docker API.

Builds run against podman (`.ci/install-podman.sh`) from a local stand-in base image (see conftest.py),
since CI machines cannot pull TFX's image. The Dockerfile under test is the repository's own.
"""

from __future__ import annotations

import json
import urllib.request
import zipfile
from pathlib import Path

import pytest

from cicd_release.errors import InputError
from cicd_release.image import (
    ImageBuildError,
    build_image,
    image_uri,
    prepare_context,
)
from cicd_release.naming import content_digest
from cicd_release.wheels import WheelBuildError, build_wheel, package_version

REPO_ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "127.0.0.1:5000"  # served by `.ci/install-podman.sh --registry`
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
AR_REPO = "europe-west4-docker.pkg.dev/my-project/ml-images"


def _metadata_version(wheel) -> str:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return next(
            line.split(":", 1)[1].strip()
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Version:")
        )


# --- wheels ----------------------------------------------------------------------------------------------


def _tree(folder: Path) -> set[str]:
    # Caches that other test runs may write meanwhile are not what this test is about.
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if "__pycache__" not in p.parts}


def test_build_wheel_with_local_version_names_the_content(components_package, tmp_path):
    version = package_version(components_package)
    pyproject_before = (components_package / "pyproject.toml").read_bytes()
    tree_before = _tree(components_package)

    wheel = build_wheel(components_package, tmp_path / "dist", local_version="g1a2b3c4")

    assert wheel.name == f"cicd_components-{version}+g1a2b3c4-py3-none-any.whl"
    assert _metadata_version(wheel) == f"{version}+g1a2b3c4"
    # The package folder is left as it was: version line untouched, no build/, dist/ or egg-info added.
    assert (components_package / "pyproject.toml").read_bytes() == pyproject_before
    assert _tree(components_package) == tree_before


def test_build_wheel_never_overwrites_different_content(package_factory, tmp_path):
    package = package_factory()
    first = build_wheel(package, tmp_path / "dist", local_version="dirty.0f3e")
    # Same sources again: reproducible bytes, so the existing file is simply reused.
    assert build_wheel(package, tmp_path / "dist", local_version="dirty.0f3e") == first

    (package / "src" / "cicd_components" / "__init__.py").write_text('"""Changed."""\n')
    with pytest.raises(WheelBuildError, match="already exists with different content"):
        build_wheel(package, tmp_path / "dist", local_version="dirty.0f3e")


@pytest.mark.parametrize("bad", ["g1a2+b3", "dirty hash", "-start", "ünïcode"])
def test_build_wheel_rejects_bad_local_versions(package_factory, tmp_path, bad):
    with pytest.raises(WheelBuildError, match="not a PEP 440 local version label"):
        build_wheel(package_factory(), tmp_path / "dist", local_version=bad)


# --- names and digests -----------------------------------------------------------------------------------


def test_image_uri_is_version_plus_digest():
    digest = "3f2a9c0b1d4e" + "0" * 52
    assert (
        image_uri(AR_REPO, "cicd-components", "0.1.0", digest)
        == f"{AR_REPO}/cicd-components:0.1.0-3f2a9c0b1d4e"
    )
    assert image_uri(f"{REGISTRY}/cicd", "comp", "0.1.0", f"sha256:{digest}").endswith(
        "/cicd/comp:0.1.0-3f2a9c0b1d4e"
    )


@pytest.mark.parametrize(
    ("registry", "name", "version", "message"),
    [
        (AR_REPO, "cicd-components", "latest", "latest"),
        (AR_REPO, "latest", "0.1.0", "latest"),
        (AR_REPO, "cicd-components", "0.1.0+g1a2b3c4", "static version"),
        (
            "europe-west4-docker.pkg.dev/my-project",
            "c",
            "0.1.0",
            "exactly REGION-docker.pkg.dev/PROJECT/REPOSITORY",
        ),
        ("europe-west4-docker.pkg.dev/p/r/extra", "c", "0.1.0", "exactly"),
        ("gcr.io/my-project", "c", "0.1.0", "Container Registry, which is retired"),
        ("https://europe-west4-docker.pkg.dev/p/r", "c", "0.1.0", "not HOST/PATH"),
        ("my-repo", "c", "0.1.0", "not HOST/PATH"),
        ("europe-west4-docker.pkg.dev/My_Project/r", "c", "0.1.0", "not a valid image path component"),
    ],
)
def test_image_uri_rejects(registry, name, version, message):
    with pytest.raises(ValueError, match=message):
        image_uri(registry, name, version, "a" * 64)


def test_image_uri_rejects_a_non_digest():
    with pytest.raises(ValueError, match="not a hex sha256"):
        image_uri(AR_REPO, "c", "0.1.0", "main")


def test_content_digest_follows_sources_not_build_leftovers(package_factory):
    package = package_factory()
    root, inputs = package.parent, [package.name, "components/pyproject.toml"]
    digest = content_digest(root, inputs)
    for leftover in (
        "src/cicd_components/__pycache__/x.cpython-310.pyc",
        "build/lib/x.py",
        "x.egg-info/PKG-INFO",
    ):
        (package / leftover).parent.mkdir(parents=True, exist_ok=True)
        (package / leftover).write_text("noise")
    assert content_digest(root, inputs) == digest
    (package / "src" / "cicd_components" / "extra.py").write_text("")
    assert content_digest(root, inputs) != digest
    with pytest.raises(InputError, match="does not exist"):
        content_digest(root, ["components/missing"])


def test_prepare_context_holds_only_the_dockerfile_and_wheels(package_factory, tmp_path):
    wheel = build_wheel(package_factory(), tmp_path / "dist")
    context = prepare_context(tmp_path / "ctx", DOCKERFILE, [wheel])
    assert sorted(p.relative_to(context).as_posix() for p in context.rglob("*")) == [
        "Dockerfile",
        "wheels",
        f"wheels/{wheel.name}",
    ]
    with pytest.raises(ImageBuildError, match="not empty"):
        prepare_context(context, DOCKERFILE, [wheel])


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
    with pytest.raises(ImageBuildError) as failure:
        build_image(
            context_dir=context,
            tag="localhost/cicd-components-test:unmet",
            client=docker_client,
            build_args={"BASE_IMAGE": base_image},
        )
    assert "tfx" in str(failure.value)
    assert "last lines of the build log" in str(failure.value)


def test_a_bad_dockerfile_reports_the_log_tail(docker_client, base_image, tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo marker-before-failure\nRUN python -c 'raise SystemExit(3)'\n"
    )
    with pytest.raises(ImageBuildError) as failure:
        build_image(context_dir=context, tag="localhost/cicd-components-test:bad", client=docker_client)
    message = str(failure.value)
    assert "building localhost/cicd-components-test:bad" in message
    assert "marker-before-failure" in message  # the log tail shows what ran before the failure


def test_build_refuses_latest(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(ImageBuildError, match="latest"):
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
    with pytest.raises(ImageBuildError, match="pushing 127.0.0.1:1/cicd/cicd-components-test:0.1.0-nowhere"):
        build_image(
            context_dir=context,
            tag=tag,
            push=True,
            client=docker_client,
            build_args={"BASE_IMAGE": base_image},
        )
