"""Fixtures for the image tests: podman's Docker-compatible API, a local Python base image, stand-in packages.

Nothing can be pulled from the internet on CI machines, so the base image is made here from the Python
that runs the tests: its interpreter, standard library, pip and the shared libraries they load, plus
/bin/sh for RUN steps. It stands in for the TFX image in the one way the Dockerfile relies on: a
`python` with pip on PATH. It is tagged by a hash of what went in, so later sessions reuse it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / ".ci" / "install-podman.sh"
REGISTRY = "127.0.0.1:5000"
# A registry that refuses pushes and pulls without a login, served by `install-podman.sh --auth-registry`.
AUTH_REGISTRY = "127.0.0.1:5001"
# Its one login is Artifact Registry's user (oauth2accesstoken) with this password, in the place of an access
# token. A test constant, not a secret: it guards a throwaway registry on loopback.
AUTH_REGISTRY_TOKEN = "cicd-test-access-token"
# Not needed by `pip install` of a pure wheel; leaving them out keeps the base small (and X11-free).
_STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "site-packages", "__pycache__"}


@pytest.fixture(scope="session")
def docker_host() -> str:
    """DOCKER_HOST of podman's API socket, installed and started by .ci/install-podman.sh (as CI does)."""
    if shutil.which("podman") is None and os.geteuid() != 0:
        # As root (CI, a fresh machine) the script below installs podman; others must do it once themselves.
        pytest.skip(
            "podman is not installed: run `sudo .ci/install-podman.sh --registry` (CI does) to run these."
        )
    stdout = _run_install_script("--registry")
    match = re.search(r"^export DOCKER_HOST=(\S+)$", stdout, re.MULTILINE)
    assert match, f"{INSTALL_SCRIPT} printed no DOCKER_HOST line:\n{stdout}"
    return match.group(1)


@pytest.fixture(scope="session")
def auth_registry(docker_host) -> str:
    """Host of a local registry that requires a login (oauth2accesstoken / AUTH_REGISTRY_TOKEN).

    podman holds no login for it, so a push there succeeds only with the credentials the caller sends along:
    what a push to Artifact Registry relies on, made checkable without Google.
    """
    _run_install_script("--auth-registry")
    return AUTH_REGISTRY


def _run_install_script(*args: str) -> str:
    """Run .ci/install-podman.sh (idempotent: it skips what already serves) and return its stdout."""
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"{INSTALL_SCRIPT} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="session")
def docker_client(docker_host):
    """A docker SDK client on podman's API socket."""
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=600)
    yield client
    client.close()


def _ldd(binary: Path) -> set[Path]:
    """The shared libraries (and the loader) that ``binary`` loads, as the host resolves them."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False).stdout
    found = set()
    for line in out.splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            found.add(Path(match.group(1)))
    return found


class _RootfsTar:
    """A tar of host files at their host paths, keeping the symlinks on the way to each (merged /usr)."""

    def __init__(self, path: Path) -> None:
        self.tar = tarfile.open(path, "w")
        self.added: set[str] = set()

    def add(self, path: Path, arcname: str | None = None) -> None:
        # Resolve the folders (e.g. /lib -> /usr/lib) but keep the file's own symlink, then follow it.
        real = Path(os.path.realpath(path.parent)) / path.name
        name = arcname or str(real).lstrip("/")
        if name in self.added:
            return
        self.added.add(name)
        self.tar.add(real, arcname=name, recursive=False)
        if real.is_symlink() and arcname is None:
            self.add(real.parent / os.readlink(real))

    def add_tree(self, root: Path, skip: set[str]) -> None:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in skip and not d.startswith("config-")]
            for filename in filenames:
                if not filename.endswith((".pyc", ".a")):
                    self.add(Path(dirpath) / filename)

    def close(self) -> None:
        self.tar.close()


def _write_rootfs(path: Path) -> None:
    prefix = Path(os.path.realpath(sys.base_prefix))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    python = prefix / "bin" / f"python{version}"
    stdlib = Path(sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})["stdlib"])
    rootfs = _RootfsTar(path)
    for top in ("bin", "sbin", "lib", "lib64"):
        if Path("/", top).is_symlink():
            rootfs.add(Path("/", top), arcname=top)
    sh = Path("/bin/sh")
    binaries = [python, sh, Path(os.path.realpath(sh)), *sorted((stdlib / "lib-dynload").glob("*.so"))]
    binaries = [b for b in binaries if "_tkinter" not in b.name]
    for binary in binaries:
        rootfs.add(binary)
        for library in _ldd(binary):
            rootfs.add(library)
    rootfs.add_tree(stdlib, _STDLIB_SKIP)
    # pip comes from the interpreter running the tests (the venv has it even when the base Python does not).
    site = f"{str(stdlib).lstrip('/')}/site-packages"
    pip_dir = Path(importlib.util.find_spec("pip").origin).parent
    dist_info = Path(str(importlib.metadata.distribution("pip")._path))  # noqa: SLF001 - no public accessor
    for root, target in ((pip_dir, f"{site}/pip"), (dist_info, f"{site}/{dist_info.name}")):
        for file in root.rglob("*"):
            if file.is_file() and "__pycache__" not in file.parts:
                rootfs.add(file, arcname=f"{target}/{file.relative_to(root).as_posix()}")
    # `python` on PATH, as in the TFX image.
    for name in ("python", "python3"):
        info = tarfile.TarInfo(f"usr/local/bin/{name}")
        info.type, info.linkname = tarfile.SYMTYPE, str(python)
        rootfs.tar.addfile(info)
    tmp = tarfile.TarInfo("tmp")
    tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
    rootfs.tar.addfile(tmp)
    rootfs.close()


@pytest.fixture(scope="session")
def base_image(docker_client, tmp_path_factory) -> str:
    """Tag of a local image with this Python and pip on PATH, the stand-in for TFX's image."""
    key = hashlib.sha256(
        f"{sys.version}|{sys.base_prefix}|{importlib.metadata.version('pip')}".encode()
        + Path(__file__).read_bytes()
    ).hexdigest()[:12]
    tag = f"localhost/cicd-test-python-base:{sys.version_info.major}.{sys.version_info.minor}-{key}"
    if docker_client.images.list(name=tag):
        return tag
    # Bases made from an older interpreter or conftest are never used again: free their space.
    for stale in docker_client.images.list(name=tag.split(":")[0]):
        docker_client.images.remove(stale.id, force=True)
    context = tmp_path_factory.mktemp("base-context")
    _write_rootfs(context / "rootfs.tar")
    (context / "Dockerfile").write_text(
        "FROM scratch\nADD rootfs.tar /\n"
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        'CMD ["python3"]\n'
    )
    docker_client.images.build(path=str(context), tag=tag, rm=True, pull=False)
    return tag


def make_package(root: Path, *, version: str = "0.1.0", dependencies: tuple[str, ...] = ()) -> Path:
    """Write a tiny stand-in of ``cicd-components`` (same dist and import names) under ``root``."""
    package = root / "components"
    (package / "src" / "cicd_components").mkdir(parents=True)
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "cicd-components"
            version = "{version}"  # static, as in every package of this repository
            requires-python = ">=3.10"
            dependencies = [{deps}]

            [tool.setuptools.packages.find]
            where = ["src"]
            """
        )
    )
    (package / "src" / "cicd_components" / "__init__.py").write_text(
        '"""Stand-in for the custom components."""\n'
    )
    return package


@pytest.fixture
def package_factory(tmp_path):
    """Makes stand-ins of packages/components; the real one needs TFX, which the test base lacks."""
    count = iter(range(1_000))
    return lambda **kwargs: make_package(tmp_path / f"src{next(count)}", **kwargs)


@pytest.fixture
def components_package(tmp_path) -> Path:
    """packages/components if it is ready (has a pyproject.toml), else the stand-in."""
    real = REPO_ROOT / "packages" / "components"
    return real if (real / "pyproject.toml").is_file() else make_package(tmp_path / "src")


@pytest.fixture
def image_cleanup(docker_client):
    """Collects image references made by a test and removes them afterwards (the base image stays cached)."""
    references: list[str] = []
    yield references
    for reference in references:
        try:
            docker_client.images.remove(reference, force=True)
        except Exception:  # noqa: BLE001 - cleanup must not hide the test's own result
            pass


def _stand_in_dist_info(site: Path, name: str, version: str) -> None:
    """An installed-distribution record (metadata only) that pip's resolver counts as `name==version`."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist_info / "INSTALLER").write_text("cicd-test-stand-in\n")
    (dist_info / "RECORD").write_text("")


@pytest.fixture(scope="session")
def tfx_like_base_image(docker_client, base_image, tmp_path_factory) -> str:
    """The local base plus records of the distributions the real TFX image carries that our components need.

    The TFX image cannot be pulled here. The Dockerfile installs the components wheel with --no-index, so
    pip must find `tfx` and `google-cloud-aiplatform` installed: this base records them (at the versions of
    the lock) without their code, which no test runs inside the image.
    """
    requirements = {
        "tfx": importlib.metadata.version("tfx"),
        "google-cloud-aiplatform": importlib.metadata.version("google-cloud-aiplatform"),
    }
    key = hashlib.sha256(f"{base_image}|{sorted(requirements.items())}".encode()).hexdigest()[:12]
    tag = f"localhost/cicd-test-tfx-like-base:{key}"
    if docker_client.images.list(name=tag):
        return tag
    context = tmp_path_factory.mktemp("tfx-like-base")
    prefix = Path(os.path.realpath(sys.base_prefix))
    stdlib = Path(sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})["stdlib"])
    for name, version in requirements.items():
        _stand_in_dist_info(context / "site", name, version)
    (context / "Dockerfile").write_text(f"FROM {base_image}\nCOPY site/ {stdlib}/site-packages/\n")
    docker_client.images.build(path=str(context), tag=tag, rm=True, pull=False)
    return tag


@pytest.fixture(scope="session")
def pinned_tfx_like_base_image(docker_client, tfx_like_base_image) -> str:
    """The TFX-like base as a user gives it: mirrored into a registry and named by digest (REPO@sha256:...).

    The chain refuses a base pinned only by a tag; podman pulls this reference from the local registry.
    """
    repository = f"{REGISTRY}/cicd-test/tfx-like-base"
    tag = tfx_like_base_image.rsplit(":", 1)[1]
    docker_client.api.tag(tfx_like_base_image, repository, tag)
    digest = None
    for chunk in docker_client.api.push(repository, tag=tag, stream=True, decode=True):
        if "error" in chunk:
            pytest.fail(f"pushing the test base to {repository}:{tag} failed: {chunk['error']}")
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            digest = aux["Digest"]
        elif digest is None and (match := re.search(r"(sha256:[0-9a-f]{64})", chunk.get("status", ""))):
            digest = match.group(1)
    if digest is None:  # podman does not always stream the digest: ask the registry
        request = urllib.request.Request(
            f"http://{REGISTRY}/v2/cicd-test/tfx-like-base/manifests/{tag}",
            method="HEAD",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json, "
                "application/vnd.docker.distribution.manifest.v2+json"
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            digest = response.headers["Docker-Content-Digest"]
    return f"{repository}@{digest}"
