"""The one exit-code table (cicd_release.core.errors.EXIT_CODES): every code has its classes, every class its code,
and what the docs print is the table."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

from cicd_release.core import errors

ROOT = Path(__file__).resolve().parents[3]
RELEASE_SOURCES = ROOT / "packages" / "release" / "src" / "cicd_release"


def _error_classes() -> set[type[errors.ReleaseError]]:
    return {
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, errors.ReleaseError)
    }


def test_every_code_but_0_has_a_class_and_every_class_sits_under_its_own_code():
    codes = [entry.code for entry in errors.EXIT_CODES]
    assert codes == sorted(set(codes)) and codes[0] == 0
    for entry in errors.EXIT_CODES:
        assert bool(entry.errors) == (entry.code != 0), entry
        for error in entry.errors:
            assert error.exit_code == entry.code, (
                f"{error.__name__} exits {error.exit_code}, listed under {entry.code}"
            )


def test_every_error_class_is_in_the_table_once():
    listed = [error for entry in errors.EXIT_CODES for error in entry.errors]
    assert len(listed) == len(set(listed))
    assert set(listed) == _error_classes()


def test_the_release_package_defines_its_errors_in_errors_py_only():
    exceptions = {"Exception", "BaseException", *(error.__name__ for error in _error_classes())}
    elsewhere = []
    for path in sorted(RELEASE_SOURCES.rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            bases = [getattr(b, "id", getattr(b, "attr", "")) for b in getattr(node, "bases", ())]
            if isinstance(node, ast.ClassDef) and exceptions & set(bases):
                elsewhere.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert elsewhere == [], "error classes belong in cicd_release/core/errors.py"


def test_the_local_run_exits_by_the_same_table():
    """`invoke run` (cicd_pipeline.local_session) imports nothing from this package: its codes are held here."""
    from cicd_pipeline import local_session

    assert local_session.OK == errors.EXIT_CODES[0].code
    assert local_session.FAILED == errors.ReleaseError.exit_code
    assert local_session.BAD_INPUT == errors.InputError.exit_code
    assert local_session.BAD_DATA == errors.DataError.exit_code
    assert local_session.NOT_BLESSED == errors.NotBlessed.exit_code


def test_the_docs_print_the_table():
    text = (ROOT / "docs" / "reliability.md").read_text()
    assert errors.markdown_table() in text, (
        "docs/reliability.md's exit-code table is not cicd_release.core.errors.EXIT_CODES: paste the output of "
        "`python -m cicd_release.core.errors` over it"
    )


def test_the_module_prints_the_table_and_imports_nothing_heavy():
    script = (
        "import runpy, sys; before = set(sys.modules); "
        "runpy.run_module('cicd_release.core.errors', run_name='__main__'); "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('google', 'tensorflow', 'tfx'))), "
        "file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout == errors.markdown_table()
    assert result.stderr.strip() == "[]"
