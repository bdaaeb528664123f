"""The direction of dependence: the pipeline knows nothing of how it ships, and shipping stays light.

`cicd_pipeline` imports nothing from `cicd_release`; `cicd_release` reaches TFX only in the compile step,
which runs in a process of its own, so every other step (and every task's start) stays fast.
"""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import cicd_release

ROOT = Path(__file__).resolve().parents[3]


def imported_modules(source: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_pipeline_package_imports_nothing_of_the_release_package():
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            n for n in imported_modules(path) if n.split(".")[0] == "cicd_release"
        )
        for path in (ROOT / "packages" / "pipeline" / "src").rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_no_release_module_pulls_in_tfx_when_imported():
    modules = [f"cicd_release.{m.name}" for m in pkgutil.iter_modules(cicd_release.__path__)]
    assert "cicd_release.steps" in modules and "cicd_release.submit" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tfx', 'tensorflow', 'apache_beam')))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
