"""The direction of dependence: the pipeline knows nothing of how it ships, and shipping stays light.

`cicd_pipeline` imports nothing from `cicd_release`. `cicd_release` imports only the pipeline's TFX-free
modules (the run's contract and config, the data check, the rehearsal's launcher, the comparison); TFX itself
runs only in processes of their own (the compile step's `python -m cicd_pipeline.runners.vertex`, the
rehearsal's tasks, `invoke compare`'s two runs), so every other step (and every task's start) stays fast.
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
    # Every module in every layer folder: walk_packages, because iter_modules would list only the folders.
    modules = [m.name for m in pkgutil.walk_packages(cicd_release.__path__, "cicd_release.") if not m.ispkg]
    assert "cicd_release.steps" in modules and "cicd_release.run.submit" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tfx', 'tensorflow', 'apache_beam')))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def pipeline_modules_imported_by_release() -> set[str]:
    """Every cicd_pipeline module a release module imports, at the top or inside a function."""
    names = set()
    for path in (ROOT / "packages" / "release" / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "cicd_pipeline":
                names.update(f"cicd_pipeline.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cicd_pipeline."):
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names if a.name.split(".")[0] == "cicd_pipeline")
    return names


def test_the_release_package_reaches_the_pipeline_only_through_tfx_free_modules():
    """Also the imports inside functions (the rehearsal's, the compare's), which the test above never runs:
    the pipeline's TFX is reached only in a process of its own, never by an import from this package."""
    modules = sorted(pipeline_modules_imported_by_release())
    assert "cicd_pipeline.run_inputs" in modules and "cicd_pipeline.rehearsal.session" in modules
    assert "cicd_pipeline.runners.vertex" not in modules  # the compile: a subprocess (artifacts/compile.py)
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tfx', 'tensorflow', 'apache_beam')))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_local_run_takes_nothing_from_the_release_chain(tmp_path):
    """`invoke run` is the pipeline's own: the task module imports nothing of cicd_release, and running it up
    to the pipeline itself (inputs, data check, labels, the last run's stamp, the log) loads no cicd_release
    module beyond the settings model that invoke's task collection is configured from for every task, and
    nothing of google-cloud-storage. (The pipeline run then is cicd_pipeline's and cicd_components' code,
    which the test above and the package split keep free of the release package.)"""
    task_imports = imported_modules(ROOT / "tasks" / "local.py")
    assert not [n for n in task_imports if n.split(".")[0] == "cicd_release"]
    script = (
        "import sys\n"
        "import tasks\n"  # what invoke loads for any task: the collection and its settings' defaults
        "release = lambda: {m for m in sys.modules if m.split('.')[0] == 'cicd_release'}\n"
        "loaded = release()\n"
        "from invoke import Program\n"
        "from cicd_pipeline import local_session\n"
        "def pipeline(*args, **kwargs):\n"
        "    print('added:', sorted(release() - loaded), 'google.cloud.storage' in sys.modules)\n"
        "    raise local_session.RunStopped('stopped where the pipeline would start', 1)\n"
        "local_session.run_once = pipeline\n"
        # No bundled namespace: invoke finds tasks/ and the committed invoke.yaml beside it, as the CLI does.
        f"Program().run(['invoke', 'run', '--root', {str(tmp_path)!r}], exit=False)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert "data check: " in result.stdout, result.stdout + result.stderr
    assert "added: [] False" in result.stdout, result.stdout + result.stderr
