"""`invoke init`'s decisions: from a table and a label column to a project (features, the task, the holdout,
the judge's threshold, the data gate's minimums), each decision with the reason a user reads.

Nothing here writes a file (`render` makes the texts, `write` puts them on disk) and nothing imports TFX: the
decisions are plain Python over the CSV text, tested without a pipeline.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from collections import Counter
from pathlib import Path

from cicd_pipeline.config import PIPELINE_NAME_RULE, TASKS
from cicd_pipeline.init.columns import Column, Finding, infer, infer_task, left_out, transformed_name

# Every fifth complete row goes to the holdout (of each class, for a classification; along the label's
# order, for a regression): a fifth of the data, spread over the classes or the label's range like the rest.
HOLDOUT_EVERY = 5
# What the data gate asks by default (TrainingConfig): lowered, and said, when the data cannot give it.
MIN_EXAMPLES_PER_SPLIT = 20
MIN_EXAMPLES_PER_CLASS = 5
# How far a classifier must beat always answering the most common class, and a regression always answering
# the mean (whose RMSE is the label's standard deviation), to be blessed.
ACCURACY_MARGIN = 0.05
RMSE_SHARE = 0.95
# A data set name is a folder (data/NAME/, gs://BUCKET/data/NAME/) and the start of the pipeline's name
# (NAME-cicd, at most 50 characters, starting with a letter).
NAME_RULE = re.compile(r"^[a-z][a-z0-9-]{0,44}$")
NAME_EXPECTED = "1-45 lowercase letters, digits or '-', starting with a letter, e.g. iris"


class InitError(ValueError):
    """The data or the flags cannot make a project: one line naming the input and the fix."""


@dataclasses.dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    files: tuple[Path, ...]


def read_table(source: Path) -> Table:
    """The rows of a CSV file, or of every CSV file of a folder (one header, as the data check made sure)."""
    files = tuple(sorted(source.glob("*.csv"))) if source.is_dir() else (source,)
    header: list[str] = []
    rows: list[list[str]] = []
    for path in files:
        parsed = [r for r in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")) if r]
        header, body = parsed[0], parsed[1:]
        rows += body
    return Table([h.strip() for h in header], rows, files)


def default_name(source: Path) -> str:
    """A data set name from the file (or folder) name: `Iris Data.csv` -> iris-data."""
    stem = source.stem if source.is_file() else source.name
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")


def check_name(name: str) -> str:
    if not NAME_RULE.match(name) or not PIPELINE_NAME_RULE.match(f"{name}-cicd"):
        raise InitError(f"--name {name!r} is not a data set name: {NAME_EXPECTED}; pass --name NAME.")
    return name


@dataclasses.dataclass(frozen=True)
class Project:
    """Everything init decided for one data set."""

    name: str
    source: str  # how the data was named on the command line, for the generated files' headers
    header: list[str]
    columns: dict[str, Column]
    label: str
    task: str
    task_why: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    findings: tuple[Finding, ...]
    train_rows: list[list[str]]
    holdout_rows: list[list[str]]
    holdout_why: str
    classes: tuple[str, ...]  # the label's classes (classification), most common first
    threshold: float
    threshold_why: str
    min_examples_per_split: int
    min_examples_per_class: int

    @property
    def pipeline_name(self) -> str:
        return f"{self.name}-cicd"

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == "classification" else "rmse"

    @property
    def left_out(self) -> tuple[str, ...]:
        used = {self.label, *self.numeric, *self.categorical}
        return tuple(c for c in self.header if c not in used)


def _normalized(columns: dict[str, Column], header: list[str], row: list[str]) -> list[str]:
    """A row as init writes it: numbers stripped, missing-value tokens as empty cells, and a whole number in a
    column of decimals written as a decimal (CsvExampleGen infers a type per file: a holdout whose values of a
    decimal column happen to be whole would be read as integers, which the model does not parse)."""
    out = []
    for name, cell in zip(header, row, strict=True):
        column = columns[name]
        if column.numeric:
            cell = cell.strip()
            if not _present(column, cell):
                cell = ""
            elif column.kind == "float" and re.fullmatch(r"[+-]?\d+", cell):
                cell += ".0"
        out.append(cell)
    return out


def _present(column: Column, cell: str) -> bool:
    """Whether a cell holds a value (in a column of numbers, a missing-value token holds none)."""
    cell = cell.strip()
    return cell != "" and (not column.numeric or bool(re.match(r"^[+-]?(\d|\.\d)", cell)))


def _label_value(column: Column, cell: str):
    cell = cell.strip()
    if not _present(column, cell):
        return None
    if column.kind == "int":
        return int(cell)
    if column.kind == "float":
        return float(cell)
    return cell


def analyse(table: Table, label: str, task: str | None = None, name: str = "", source: str = "") -> Project:
    """The project for `table` with `label` as the column to predict; InitError when it cannot be made."""
    header = table.header
    if len(set(header)) != len(header):
        twice = sorted(h for h, n in Counter(header).items() if n > 1)
        raise InitError(f"columns {twice} appear twice in the header: give each column its own name.")
    if label not in header:
        raise InitError(
            f"--label {label!r} is not a column of the data; its columns are {', '.join(header)}."
        )
    if task is not None and task not in TASKS:
        raise InitError(f"--task {task!r} is not a task: pass {' or '.join(TASKS)}.")
    index = header.index(label)
    findings: list[Finding] = []
    unlabelled = [r for r in table.rows if r[index].strip() == ""]
    rows = [r for r in table.rows if r[index].strip() != ""]
    columns = {h: infer(h, [r[i] for r in rows]) for i, h in enumerate(header)}
    target = columns[label]
    if not rows:
        raise InitError(f"--label {label!r} is empty in every row: there is nothing to learn from.")
    if unlabelled:
        findings.append(
            Finding(
                label,
                f"empty in {len(unlabelled)} row(s)",
                "those rows left out (a row without a label teaches nothing)",
            )
        )
    task, task_why = _task(target, task)
    if target.numeric and target.tokens:
        raise InitError(
            f"label {label}: {target.tokens} cell(s) hold a missing-value token such as NA: remove those rows "
            "or write the label in every row."
        )
    _check_label(target, task, len(rows))
    features = [h for h in header if h != label]
    numeric, categorical = [], []
    for name_ in features:
        column = columns[name_]
        why = left_out(column)
        if why:
            findings.append(why)
            continue
        (numeric if column.numeric else categorical).append(name_)
        if column.tokens:
            findings.append(
                Finding(
                    name_,
                    f"{column.tokens} cell(s) hold a missing-value token (NA, ?, ...)",
                    "written as empty cells, which the model imputes (CsvExampleGen reads only an empty "
                    "cell as missing)",
                )
            )
    if not numeric and not categorical:
        raise InitError(
            f"no column is left to learn {label!r} from (see the lines above): add feature columns to the data."
        )
    names = Counter(transformed_name(f) for f in (*numeric, *categorical))
    clash = sorted(f for f in (*numeric, *categorical) if names[transformed_name(f)] > 1)
    if clash:
        raise InitError(f"columns {clash} differ only in characters a model input cannot hold: rename them.")
    used = [(header.index(c), columns[c]) for c in (label, *numeric, *categorical)]
    complete = [i for i, r in enumerate(rows) if all(_present(column, r[j]) for j, column in used)]
    values = [_label_value(target, r[index]) for r in rows]
    if task == "classification":
        counts = Counter(str(v) for v in values)
        holdout, too_few = _stratified_holdout(complete, [str(v) for v in values])
        for cls in too_few:
            findings.append(
                Finding(
                    label,
                    f"class {cls!r} has {counts[cls]} row(s), too few for the holdout (every "
                    f"{_ordinal(HOLDOUT_EVERY)} complete row of a class goes there)",
                    "it is not in the holdout, so the judge does not score it there; add rows of it",
                )
            )
        holdout_why = f"every {_ordinal(HOLDOUT_EVERY)} complete row of each class"
        classes = tuple(c for c, _ in counts.most_common())
    else:
        ordered = sorted(complete, key=lambda i: values[i])
        holdout = set(ordered[HOLDOUT_EVERY - 1 :: HOLDOUT_EVERY])
        holdout_why = (
            f"every {_ordinal(HOLDOUT_EVERY)} complete row in the label's order, over its whole range"
        )
        classes = ()
    normal = [_normalized(columns, header, r) for r in rows]
    train_rows = [r for i, r in enumerate(normal) if i not in holdout]
    holdout_rows = [r for i, r in enumerate(normal) if i in holdout]
    train_values = [v for i, v in enumerate(values) if i not in holdout]
    threshold, threshold_why = _threshold(task, train_values)
    per_split, per_class = _minimums(task, train_values, findings, label)
    return Project(
        name=check_name(name),
        source=source,
        header=header,
        columns=columns,
        label=label,
        task=task,
        task_why=task_why,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        findings=tuple(findings),
        train_rows=train_rows,
        holdout_rows=holdout_rows,
        holdout_why=holdout_why,
        classes=classes,
        threshold=threshold,
        threshold_why=threshold_why,
        min_examples_per_split=per_split,
        min_examples_per_class=per_class,
    )


def _check_label(target: Column, task: str, rows: int) -> None:
    """A label init cannot learn stops it: one class, one value, or text for a regression."""
    if task == "classification" and target.distinct < 2:
        raise InitError(
            f"label {target.name!r} has one class ({target.values[0]!r} in {rows} rows): a classifier needs two "
            "or more; add rows of the other classes."
        )
    if task == "regression" and not target.numeric:
        raise InitError(
            f"label {target.name!r} holds text (e.g. {target.values[0]!r}): a regression predicts a number; "
            "pass --task classification."
        )
    if task == "regression" and target.distinct < 2:
        raise InitError(
            f"label {target.name!r} has one value ({target.values[0]!r}): there is nothing to predict."
        )


def _ordinal(n: int) -> str:
    return {2: "second", 3: "third", 4: "fourth", 5: "fifth"}.get(n, f"{n}th")


def _task(target: Column, asked: str | None) -> tuple[str, str]:
    inferred, why = infer_task(target)
    if asked is None:
        other = "regression" if inferred == "classification" else "classification"
        return inferred, f"{why}; --task {other} to change"
    if asked == "classification" and target.kind == "float":
        raise InitError(
            f"label {target.name!r} holds decimal numbers ({target.distinct} distinct): a classifier needs "
            "classes; pass --task regression."
        )
    return asked, "--task"


def _stratified_holdout(complete: list[int], classes: list[str]) -> tuple[set[int], list[str]]:
    """Every HOLDOUT_EVERY-th complete row of each class, in file order; and the classes too small for one."""
    by_class: dict[str, list[int]] = {}
    for i in complete:
        by_class.setdefault(classes[i], []).append(i)
    holdout: set[int] = set()
    for members in by_class.values():
        holdout.update(members[HOLDOUT_EVERY - 1 :: HOLDOUT_EVERY])
    too_few = sorted(c for c in set(classes) if len(by_class.get(c, [])) < HOLDOUT_EVERY)
    return holdout, too_few


def _threshold(task: str, values: list) -> tuple[float, str]:
    if task == "classification":
        counts = Counter(str(v) for v in values)
        top, n = counts.most_common(1)[0]
        share = n / len(values)
        threshold = min(0.99, math.ceil((share + ACCURACY_MARGIN) * 100 - 1e-9) / 100)
        return threshold, (
            f"always answering the most common class ({top}) scores {share:.2f}: a model must beat it by "
            f"{ACCURACY_MARGIN:.2f}"
        )
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    threshold = float(f"{RMSE_SHARE * std:.4g}")
    return threshold, (
        f"always answering the mean ({mean:.4g}) scores an RMSE of {std:.4g}, the label's standard deviation: a "
        f"model must do at least {1 - RMSE_SHARE:.0%} better"
    )


def _minimums(task: str, values: list, findings: list[Finding], label: str) -> tuple[int, int]:
    """The data gate's minimums this data can meet: CsvExampleGen puts about a third of the rows in eval."""
    per_split = min(MIN_EXAMPLES_PER_SPLIT, max(1, len(values) // 6))
    if per_split < MIN_EXAMPLES_PER_SPLIT:
        findings.append(
            Finding(
                "(rows)",
                f"{len(values)} training rows: the eval split gets about {len(values) // 3}",
                f"training.min_examples_per_split set to {per_split} (default {MIN_EXAMPLES_PER_SPLIT}); "
                "add rows, then remove the setting",
            )
        )
    per_class = MIN_EXAMPLES_PER_CLASS
    if task == "classification":
        counts = Counter(str(v) for v in values)
        smallest, n = min(counts.items(), key=lambda item: (item[1], item[0]))
        per_class = min(MIN_EXAMPLES_PER_CLASS, n // 6)
        if per_class < MIN_EXAMPLES_PER_CLASS:
            findings.append(
                Finding(
                    label,
                    f"class {smallest!r} has {n} training row(s): the eval split gets about {n // 3}",
                    f"training.min_examples_per_class set to {per_class} (default {MIN_EXAMPLES_PER_CLASS}"
                    + ("; the data gate then counts no class" if per_class == 0 else "")
                    + "); add rows of it",
                )
            )
    return per_split, per_class
