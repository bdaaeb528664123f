"""Proves that what the given distributions need, all the way down, is installed at a version they accept.

Run in the image after our wheels are installed: `python check_requirements.py /opt/cicd/wheels/*.whl` (a
wheel's file name gives its distribution's name; plain names work too). It walks
the requirements of the named distributions (their markers evaluated here, extras followed where asked) and
of everything they reach, and exits 1 listing each one that is missing or at a version outside its range.

Not `pip check`: that judges the whole environment, and TFX's base image (a deep-learning image plus TFX)
ships packages that disagree with each other but that nothing of ours imports; one such pair would fail every
build (tensorflow/tfx#6864 reports one in the 1.15 image). Only the tree our executors load is ours to prove.
Standard library only, plus `packaging` (pip's vendored copy when the image has no other).
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pragma: no cover - images without packaging still have pip's copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name


def problems(roots: list[str]) -> list[str]:
    """Each unmet requirement in the trees of ``roots``, as 'who requires what, but found what'."""
    found: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(root), frozenset(), "(asked for)") for root in roots]
    while todo:
        name, extras, wanted_by = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            found.append(f"{wanted_by} requires {name}, which is not installed")
            continue
        who = f"{dist.metadata['Name']} {dist.version}"
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker and not any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            ):
                continue
            dependency = canonicalize_name(requirement.name)
            try:
                version = metadata.version(dependency)
            except metadata.PackageNotFoundError:
                found.append(f"{who} requires {requirement}, which is not installed")
                continue
            if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
                found.append(f"{who} requires {requirement}, but {dependency} {version} is installed")
                continue
            todo.append((dependency, frozenset(requirement.extras), who))
    return found


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: check_requirements.py WHEEL_OR_DISTRIBUTION [...]", file=sys.stderr)
        return 2
    # A wheel's file name starts with its distribution's name (PEP 427: NAME-VERSION-...whl).
    roots = [arg.rsplit("/", 1)[-1].split("-", 1)[0] if arg.endswith(".whl") else arg for arg in argv]
    unmet = problems(roots)
    for line in unmet:
        print(f"unmet: {line}", file=sys.stderr)
    if unmet:
        return 1
    print(f"requirements of {', '.join(roots)} met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
