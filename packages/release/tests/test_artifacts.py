"""Wheels and image names: named by version and content, never overwritten, never `latest`. No engine needed."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from cicd_release.artifacts.image import image_uri, prepare_context
from cicd_release.artifacts.naming import content_digest
from cicd_release.artifacts.wheels import build_wheel, package_version
from cicd_release.core.errors import BuildError, InputError, ReleaseError
from tests.support.container_engine import make_package

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
AR_REPO = "europe-west4-docker.pkg.dev/my-project/ml-images"
REGISTRY = "127.0.0.1:5000"  # a local registry, as the image tests use


@pytest.fixture
def package_factory(tmp_path):
    """Makes stand-ins of packages/components (the same names, no TFX), each in a folder of its own."""
    count = iter(range(1_000))
    return lambda **kwargs: make_package(tmp_path / f"src{next(count)}", **kwargs)


@pytest.fixture
def components_package() -> Path:
    return REPO_ROOT / "packages" / "components"


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
    with pytest.raises(BuildError, match="already exists with different content"):
        build_wheel(package, tmp_path / "dist", local_version="dirty.0f3e")


@pytest.mark.parametrize("bad", ["g1a2+b3", "dirty hash", "-start", "ünïcode"])
def test_build_wheel_rejects_bad_local_versions(package_factory, tmp_path, bad):
    with pytest.raises(BuildError, match="not a PEP 440 local version label"):
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


def test_prepare_context_holds_only_the_dockerfile_its_check_and_wheels(package_factory, tmp_path):
    wheel = build_wheel(package_factory(), tmp_path / "dist")
    context = prepare_context(tmp_path / "ctx", DOCKERFILE, [wheel])
    assert sorted(p.relative_to(context).as_posix() for p in context.rglob("*")) == [
        "Dockerfile",
        "check_requirements.py",
        "wheels",
        f"wheels/{wheel.name}",
    ]
    with pytest.raises(BuildError, match="not empty"):
        prepare_context(context, DOCKERFILE, [wheel])


def test_a_symlink_in_a_package_is_not_packed_into_its_wheel(package_factory, tmp_path):
    package = package_factory()
    secret = tmp_path / "outside.txt"
    secret.write_text("not the package's\n")
    (package / "src" / "cicd_components" / "data.txt").symlink_to(secret)
    with pytest.raises(BuildError, match="data.txt is a symlink"):
        build_wheel(package, tmp_path / "dist")
    assert not (tmp_path / "dist").exists()


def test_a_linked_module_is_not_uploaded(tmp_path):
    from cicd_release.core.settings import Settings
    from cicd_release.core.workspace import Workspace
    from cicd_release.steps import StepContext, upload_modules

    root = tmp_path / "repo"
    module_dir = root / "packages" / "trainer" / "src" / "cicd_trainer"
    (module_dir / "schema").mkdir(parents=True)
    (tmp_path / "elsewhere.py").write_text("x = 1\n")
    (module_dir / "model.py").symlink_to(tmp_path / "elsewhere.py")

    def no_storage():
        raise AssertionError("nothing may be uploaded")

    ctx = StepContext(Workspace(root), Settings(bucket="my-bucket"), config=None, storage_client=no_storage)
    with pytest.raises(ReleaseError, match="model.py is a symlink"):
        upload_modules(ctx)


# --- the image's requirements check (docker/check_requirements.py), cloud review #24 ---


def _dist(site: Path, name: str, version: str, *requires: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


@pytest.fixture
def check_requirements(tmp_path, monkeypatch):
    """The script as the image runs it, over a site folder of made-up distributions put first on sys.path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "check_requirements", DOCKERFILE.parent / "check_requirements.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return module, site


def test_requirements_check_ignores_a_conflict_outside_our_tree(check_requirements):
    module, site = check_requirements
    _dist(site, "cicd-fake-root", "1.0", "cicd-fake-dep>=2", 'cicd-fake-win; sys_platform == "win32"')
    _dist(site, "cicd-fake-dep", "2.1", "cicd-fake-leaf[extra]<3")
    _dist(site, "cicd-fake-leaf", "2.0", 'cicd-fake-extra-only; extra == "extra"')
    _dist(site, "cicd-fake-extra-only", "1.0")
    # The base's own disagreement that `pip check` would fail the whole build on:
    _dist(site, "cicd-fake-unrelated", "1.0", "cicd-fake-dep<2")
    assert module.problems(["cicd-fake-root"]) == []
    assert module.main(["/opt/cicd/wheels/cicd_fake_root-1.0-py3-none-any.whl"]) == 0


def test_requirements_check_names_each_unmet_requirement_down_the_tree(check_requirements, capsys):
    module, site = check_requirements
    _dist(site, "cicd-fake-root", "1.0", "cicd-fake-dep>=2", "cicd-fake-gone")
    _dist(site, "cicd-fake-dep", "2.1", "cicd-fake-leaf<3")
    _dist(site, "cicd-fake-leaf", "3.0")
    assert sorted(module.problems(["cicd-fake-root"])) == [
        "cicd-fake-dep 2.1 requires cicd-fake-leaf<3, but cicd-fake-leaf 3.0 is installed",
        "cicd-fake-root 1.0 requires cicd-fake-gone, which is not installed",
    ]
    assert module.main(["cicd-fake-root"]) == 1
    assert "unmet: cicd-fake-root 1.0 requires cicd-fake-gone" in capsys.readouterr().err
