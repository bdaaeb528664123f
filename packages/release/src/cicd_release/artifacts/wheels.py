"""Build a package's wheel, named by its static version plus, optionally, a PEP 440 local version.

Artifacts are immutable (see DESIGN.md): two different contents must never share a file name. The static
version in ``pyproject.toml`` only moves on a release, so a CI build appends a local version made from the
commit (``g1a2b3c4``) or from a content hash (``dirty.<hash>``): ``cicd_components-0.1.0+g1a2b3c4-...whl``.
The repository is never modified: the wheel is built from a temporary copy whose version line is rewritten.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from cicd_release.core.errors import BuildError

__all__ = ["BuildError", "build_wheel", "package_version"]

# A PEP 440 local version label: alphanumerics separated by ".", "-" or "_" (normalized to ".").
_LOCAL_VERSION = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$", re.IGNORECASE)
_TABLE_HEADER = re.compile(r"^\s*\[\s*([^\]\s]+)\s*\]\s*(?:#.*)?$")
# Only one-line basic or literal strings: that is how every static version (and backend) here is written.
_KEY_LINE = r"""^(?P<head>\s*{key}\s*=\s*)(?P<q>["'])(?P<value>[^"'\n]+)(?P=q)(?P<tail>.*)$"""
# PEP 517's fallback when a pyproject.toml names no backend.
_DEFAULT_BACKEND = "setuptools.build_meta:__legacy__"
# Runs one PEP 517 hook in a fresh interpreter (a backend may leave state behind in the caller's).
_BUILD_HOOK = (
    "import importlib, sys; module, _, obj = sys.argv[1].partition(':')\n"
    "backend = importlib.import_module(module)\n"
    "for attr in filter(None, obj.split('.')): backend = getattr(backend, attr)\n"
    "print(backend.build_wheel(sys.argv[2]))"
)
# Left behind by earlier builds; copying them would leak stale modules into the wheel.
_SKIP_ON_COPY = shutil.ignore_patterns(
    "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", ".nox", ".venv", ".ruff_cache"
)
_SKIP_NAMES = {"build", "dist", "__pycache__", ".pytest_cache", ".nox", ".venv", ".ruff_cache"}
# Fixed zip timestamps make the same sources give the same bytes, so a rebuild can be told from a change.
_DEFAULT_SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip file can store.


def _find_key(text: str, table: str, key: str) -> tuple[int, re.Match[str]] | None:
    """Return (line index, match) of ``key = "..."`` inside ``[table]``, or None."""
    pattern = re.compile(_KEY_LINE.format(key=re.escape(key)))
    in_table = False
    for index, line in enumerate(text.splitlines()):
        header = _TABLE_HEADER.match(line)
        if header:
            in_table = header.group(1) == table
        elif in_table and (match := pattern.match(line)):
            return index, match
    return None


def _find_version_line(text: str, pyproject: Path) -> tuple[int, re.Match[str]]:
    # Python 3.10 has no tomllib and tomli is not a declared dependency: this small reader covers the
    # keys we need, and says plainly when a file is written in a form it does not read.
    found = _find_key(text, "project", "version")
    if found is None:
        raise BuildError(
            f'{pyproject}: no static `version = "X.Y.Z"` line in its [project] table. Each package keeps '
            'its own static version (not `dynamic = ["version"]`): add one, e.g. version = "0.1.0".'
        )
    return found


def package_version(package_dir: str | os.PathLike[str]) -> str:
    """Return the static ``[project] version`` from ``package_dir/pyproject.toml``."""
    pyproject = Path(package_dir) / "pyproject.toml"
    if not pyproject.is_file():
        raise BuildError(
            f"{pyproject} does not exist: pass the folder of a package (e.g. packages/components)."
        )
    _, match = _find_version_line(pyproject.read_text(encoding="utf-8"), pyproject)
    return match.group("value").strip()


def _normalized_local_version(local_version: str) -> str:
    if not _LOCAL_VERSION.match(local_version):
        raise BuildError(
            f"local_version {local_version!r} is not a PEP 440 local version label: use letters, digits and "
            "dots only, e.g. 'g1a2b3c4' (from a commit) or 'dirty.0f3e9a1b' (from a content hash)."
        )
    return re.sub(r"[-_]", ".", local_version.lower())


def _rewrite_version(pyproject: Path, new_version: str) -> None:
    text = pyproject.read_text(encoding="utf-8")
    index, match = _find_version_line(text, pyproject)
    lines = text.splitlines(keepends=True)
    newline = lines[index][len(lines[index].rstrip("\r\n")) :]
    q = match.group("q")
    lines[index] = f"{match.group('head')}{q}{new_version}{q}{match.group('tail')}{newline}"
    pyproject.write_text("".join(lines), encoding="utf-8")


def _wheel_metadata_version(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        for line in archive.read(name).decode("utf-8").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    raise BuildError(f"{wheel}: its METADATA has no Version field; the build backend misbehaved.")


def build_wheel(
    package_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    local_version: str | None = None,
    *,
    timeout: float = 300,
) -> Path:
    """Build the wheel of ``package_dir`` into ``out_dir`` and return its path.

    With ``local_version``, the wheel's version is ``<static version>+<local_version>``. The wheel is built
    by the package's build backend as installed in this interpreter: no index is consulted, so the build
    works offline and in a couple of seconds. An existing wheel of the same name is kept if it has
    the same bytes (a rebuild), and is an error otherwise (artifacts are never overwritten).
    """
    package_dir = Path(package_dir).resolve()
    out_dir = Path(out_dir)
    version = package_version(package_dir)
    if local_version:
        if "+" in version:
            raise BuildError(
                f"{package_dir}/pyproject.toml: its version {version!r} already has a local part."
            )
        version = f"{version}+{_normalized_local_version(local_version)}"
    pyproject_text = (package_dir / "pyproject.toml").read_text(encoding="utf-8")
    backend_line = _find_key(pyproject_text, "build-system", "build-backend")
    backend = backend_line[1].group("value") if backend_line else _DEFAULT_BACKEND
    # The backend installed here builds the wheel (no isolated env, so no index and no download): the
    # direct PEP 517 call takes ~2 s where `pip wheel --no-build-isolation` takes ~7 s.
    if importlib.util.find_spec(backend.split(":")[0].split(".")[0]) is None:
        raise BuildError(
            f"{package_dir}/pyproject.toml builds with {backend!r}, not installed in {sys.executable}. "
            "Install it (setuptools is in requirements/lock.txt) or use the project's venv."
        )

    links = [p for p in package_dir.rglob("*") if p.is_symlink() and not _SKIP_NAMES.intersection(p.parts)]
    if links:
        raise BuildError(
            f"{links[0]} is a symlink (to {os.path.realpath(links[0])}): a wheel holds only the package's own "
            "files. Replace the link with the file."
        )
    with tempfile.TemporaryDirectory(prefix="cicd-wheel-") as tmp:
        source = Path(tmp) / "src" / package_dir.name
        shutil.copytree(package_dir, source, ignore=_SKIP_ON_COPY, symlinks=True)
        if local_version:
            _rewrite_version(source / "pyproject.toml", version)
        wheel_dir = Path(tmp) / "wheels"
        wheel_dir.mkdir()
        epoch = os.environ.get("SOURCE_DATE_EPOCH", _DEFAULT_SOURCE_DATE_EPOCH)
        cmd = [sys.executable, "-c", _BUILD_HOOK, backend, str(wheel_dir)]
        try:
            result = subprocess.run(
                cmd,
                cwd=source,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"building the wheel of {package_dir} took over {timeout} s; stopped.") from exc
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise BuildError(
                f"building the wheel of {package_dir} with {backend} failed "
                f"(exit {result.returncode}):\n{tail}"
            )
        built = sorted(wheel_dir.glob("*.whl"))
        if len(built) != 1:
            raise BuildError(
                f"expected one wheel from {package_dir}, the backend made {[p.name for p in built]}."
            )
        metadata_version = _wheel_metadata_version(built[0])
        if metadata_version != version:
            raise BuildError(
                f"{built[0].name}: METADATA says version {metadata_version}, expected {version}. "
                f"Is the version in {package_dir}/pyproject.toml static (not computed by the build backend)?"
            )

        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / built[0].name
        if target.exists():
            if target.read_bytes() != built[0].read_bytes():
                raise BuildError(
                    f"{target} already exists with different content: artifacts are never overwritten. Build "
                    "with a local version that names the content (e.g. the commit), or remove the stale file."
                )
            return target
        shutil.move(str(built[0]), target)
        return target
