"""Where `invoke init` writes a project, and the writing: the same places the shipped penguins' files live, so
the release chain treats them alike (module files and schema under the trainer package: a trainer change;
data/<name>/: a data change; invoke.yaml: a shared build input). An existing file is replaced only when asked
(`force`); the repository's history keeps the example (`git diff` shows every change)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from cicd_pipeline.datacheck import DataReport, check_data_root, check_file
from cicd_pipeline.init import render
from cicd_pipeline.init.project import InitError, Project


@dataclasses.dataclass(frozen=True)
class Layout:
    """The checkout's paths init writes: `trainer` maps the pipeline parameter names (preprocessing_module,
    model_module, schema_file, holdout_file) to the trainer's files."""

    root: Path
    trainer: dict[str, Path]

    def data_folder(self, name: str) -> Path:
        return self.root / "data" / name

    @property
    def invoke_yaml(self) -> Path:
        return self.root / "invoke.yaml"

    @property
    def trainer_tests(self) -> Path:
        """The trainer package's tests: packages/trainer/tests beside src/cicd_trainer/."""
        return self.trainer["model_module"].parents[2] / "tests"

    def replaced_tests(self) -> list[Path]:
        """The trainer's other test files (the penguins' as shipped): they test the files init replaces."""
        keep = {"conftest.py", "test_module_files.py"}
        return sorted(p for p in self.trainer_tests.glob("test_*.py") if p.name not in keep)


def check_source(source: Path) -> DataReport:
    """The data check's rules on a CSV file or a folder of them (every problem as file:line)."""
    if source.is_dir():
        return check_data_root(source)
    if not source.is_file():
        return DataReport(
            0, 0, (f"{source}: no such file or folder: pass --data with a CSV file or a folder.",)
        )
    if source.suffix.lower() != ".csv":
        return DataReport(0, 0, (f"{source}: not a .csv file: pass a CSV file (or a folder of them).",))
    problems, _, rows = check_file(source, source.name, None)
    return DataReport(1, rows, tuple(problems), ((source.name, rows),))


def files_for(project: Project, layout: Layout) -> dict[Path, str]:
    """Every file init writes for `project`, with its text."""
    folder = layout.data_folder(project.name)
    modules = render.module_texts(project)
    tests = render.test_texts(project)
    existing = layout.invoke_yaml.read_text() if layout.invoke_yaml.exists() else None
    return {
        layout.trainer_tests / "conftest.py": tests["conftest.py"],
        layout.trainer_tests / "test_module_files.py": tests["test_module_files.py"],
        folder / f"{project.name}.csv": render.csv_text(project.header, project.train_rows),
        layout.trainer["holdout_file"]: render.csv_text(project.header, project.holdout_rows),
        layout.trainer["schema_file"]: render.schema_text(project),
        layout.trainer["preprocessing_module"]: modules["preprocessing.py"],
        layout.trainer["model_module"]: modules["model.py"],
        layout.invoke_yaml: render.invoke_yaml(existing, project),
    }


def check_targets(files: dict[Path, str], source: Path, layout: Layout, name: str) -> list[Path]:
    """The files that exist with other content (what `force` replaces); InitError for what init never does:
    write over its own input, or leave other CSV files in the data folder, where CsvExampleGen reads them all."""
    folder = layout.data_folder(name)
    resolved = source.resolve()
    if resolved == folder.resolve() or folder.resolve() in resolved.parents:
        raise InitError(
            f"--data {source} is inside {folder.relative_to(layout.root)}, where init writes the training rows "
            "(the holdout taken out): pass the original file, kept outside data/."
        )
    ours = {p.resolve() for p in files}
    others = sorted(p.name for p in folder.glob("*") if p.resolve() not in ours) if folder.is_dir() else []
    if others:
        raise InitError(
            f"{folder.relative_to(layout.root)}/ holds other files ({', '.join(others[:3])}), which CsvExampleGen "
            "would read too: move them out, or pass another --name."
        )
    changed = [p for p, text in files.items() if p.exists() and p.read_text(encoding="utf-8") != text]
    return changed + layout.replaced_tests()


def write(files: dict[Path, str], remove: list[Path] = ()) -> None:
    """Each file written whole (a temporary file renamed over it); `remove` deleted."""
    for path in remove:
        path.unlink()
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def describe(project: Project, files: dict[Path, str], layout: Layout, removed: list[Path] = ()) -> list[str]:
    """What init found, decided and wrote, and the next command: the lines the task prints."""
    total = len(project.train_rows) + len(project.holdout_rows)
    lines = [
        f"{project.name}: {total} rows, {len(project.header)} columns; label {project.label!r}, "
        f"task {project.task} ({project.task_why})",
        "columns:",
    ]
    width = max(len(c) for c in project.header)
    for name in project.header:
        column = project.columns[name]
        if name == project.label:
            use = f"label: {len(project.classes)} classes" if project.task == "classification" else "label"
        elif name in project.numeric:
            use = "feature: missing values imputed with the mean, then z-scored"
        elif name in project.categorical:
            use = f"feature: {column.distinct} values through a vocabulary"
        else:
            use = "left out (below)"
        lines.append(f"  {name:<{width}}  {column.kind:<6}  {use}")
    if project.findings:
        lines.append("findings:")
        lines += [f"  {f.line()}" for f in project.findings]
    what = {
        layout.data_folder(project.name) / f"{project.name}.csv": f"{len(project.train_rows)} training rows",
        layout.trainer[
            "holdout_file"
        ]: f"{len(project.holdout_rows)} rows of fixed holdout ({project.holdout_why})",
        layout.trainer["schema_file"]: "the curated schema (types, domains, ranges, drift comparators)",
        layout.trainer["preprocessing_module"]: "preprocessing_fn",
        layout.trainer["model_module"]: f"run_fn: a small Keras {project.task} network",
        layout.trainer_tests / "conftest.py": "the trainer's test fixtures, on the holdout's rows",
        layout.trainer_tests
        / "test_module_files.py": "tests of the module files (`invoke run --watch` runs them)",
        layout.invoke_yaml: (
            f"training: ({project.metric} threshold {project.threshold:g}), cicd.pipeline_name "
            f"{project.pipeline_name}, cicd.dataset {project.name}"
        ),
    }
    lines.append("wrote:")
    shown = max(len(str(p.relative_to(layout.root))) for p in files)
    lines += [f"  {str(p.relative_to(layout.root)):<{shown}}  {what[p]}" for p in files]
    if removed:
        lines.append("removed (they tested the files replaced):")
        lines += [f"  {p.relative_to(layout.root)}" for p in removed]
    lines += [
        "next: invoke run    (the whole pipeline on this data; `git diff` shows every change init made, and "
        "docs/your-data.md what to edit next)",
    ]
    return lines
