"""The texts `invoke init` writes for a Project: the CSV files, the curated schema, the module files (from the
templates beside this file, through string.Template) and the training config block of invoke.yaml."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import string
from importlib import resources

from cicd_pipeline.config import module_config
from cicd_pipeline.init.columns import Column
from cicd_pipeline.init.project import Project

# A numeric feature's histogram may move by at most this Jensen-Shannon divergence, a class share (of the label
# or a text feature) by at most this L-infinity distance, from the data that trained the blessed model: only
# gross shifts stop a run (the penguins' schema uses the same).
JS_DIVERGENCE = 0.3
INFINITY_NORM = 0.25
# A feature may be missing in this much more of the rows than in the data init read before the gate stops.
PRESENCE_SLACK = 0.05
# A text feature with at most this many values gets a domain in the schema; up to this share of the rows may
# then hold a value outside it (the vocabulary's out-of-vocabulary bucket takes them).
DOMAIN_VALUES = 50
MIN_DOMAIN_MASS = 0.95


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _template(name: str) -> string.Template:
    return string.Template(resources.files("cicd_pipeline.init").joinpath("templates", name).read_text())


def _tuple(names) -> str:
    """A tuple of strings as ruff formats it (the repository's lint checks the files init writes)."""
    quoted = [json.dumps(n, ensure_ascii=False) for n in names]
    if len(quoted) <= 1:
        return f"({quoted[0]},)" if quoted else "()"
    return "(\n" + "".join(f"    {q},\n" for q in quoted) + ")"


def _dict(values: dict) -> str:
    return (
        "{\n"
        + "".join(f"    {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n" for k, v in values.items())
        + "}"
    )


def module_texts(project: Project) -> dict[str, str]:
    """preprocessing.py and model.py for the project's features."""
    fields = {
        "name": project.name,
        "source": project.source or "the data",
        "numeric": _tuple(project.numeric),
        "categorical": _tuple(project.categorical),
        "left_out": ", ".join(project.left_out) or "none",
    }
    return {
        "preprocessing.py": _template("preprocessing.py.tmpl").substitute(fields),
        "model.py": _template("model.py.tmpl").substitute(fields),
    }


def test_texts(project: Project) -> dict[str, str]:
    """The trainer's tests for the module files: conftest.py and test_module_files.py, on the holdout's rows."""
    fields = {"name": project.name, "custom_config": _dict(module_config(project.label, project.task))}
    return {
        "conftest.py": _template("conftest.py.tmpl").substitute(fields),
        "test_module_files.py": _template("test_module_files.py.tmpl").substitute(fields),
    }


def _outward(value: float, down: bool, step: float) -> float:
    rounded = (math.floor if down else math.ceil)(value / step) * step
    return float(f"{rounded:.10g}")


def value_range(column: Column) -> tuple[float, float]:
    """The values seen, widened by half their span each way (not below 0 for a column never negative): new data
    a little outside passes, a unit changed or a sign lost stops the run."""
    low, high = min(column.values), max(column.values)
    margin = (high - low) / 2 or abs(high) / 2 or 1.0
    lo, hi = low - margin, high + margin
    if low >= 0 and lo < 0:
        lo = 0.0
    if column.kind == "int":
        return math.floor(lo), math.ceil(hi)
    step = 10 ** (math.floor(math.log10(max(hi - lo, 1e-12))) - 2)
    return _outward(lo, True, step), _outward(hi, False, step)


def _number(value) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.10g}"


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _feature(project: Project, column: Column) -> list[str]:
    name = column.name
    is_label = name == project.label
    used = is_label or name in project.numeric or name in project.categorical
    lines = ["feature {", f"  name: {_string(name)}"]
    if not is_label:
        lines.append(
            "  # CsvExampleGen writes an empty cell as a feature with no value: at most one value, possibly none."
        )
        lines.append("  value_count {\n    max: 1\n  }")
    kind = {"int": "INT", "float": "FLOAT", "string": "BYTES"}[column.kind]
    lines.append(f"  type: {kind}")
    if not used:
        lines.insert(
            1, "  # Left out of the model by `invoke init` (see its findings): only its type is checked."
        )
        lines += ["  presence {\n    min_count: 0\n  }", "}"]
        return lines
    if column.numeric:
        lo, hi = value_range(column)
        domain = "int_domain" if column.kind == "int" else "float_domain"
        lines.append(f"  {domain} {{\n    min: {_number(lo)}\n    max: {_number(hi)}\n  }}")
    elif is_label or column.distinct <= DOMAIN_VALUES:
        lines.append(f"  domain: {_string(name)}")
        if not is_label:
            lines.append(f"  distribution_constraints {{\n    min_domain_mass: {MIN_DOMAIN_MASS}\n  }}")
    if is_label:
        lines.append("  presence {\n    min_fraction: 1.0\n    min_count: 1\n  }")
    else:
        floor = max(0.0, math.floor((column.present_share - PRESENCE_SLACK) * 100 + 1e-9) / 100)
        lines.append(f"  presence {{\n    min_fraction: {floor:g}\n    min_count: 1\n  }}")
    if column.kind == "string":
        lines.append(
            f"  drift_comparator {{\n    infinity_norm {{\n      threshold: {INFINITY_NORM}\n    }}\n  }}"
        )
    else:
        lines.append(
            f"  drift_comparator {{\n    jensen_shannon_divergence {{\n      threshold: {JS_DIVERGENCE}\n    }}\n  }}"
        )
    if is_label:
        lines.append("  shape {\n    dim {\n      size: 1\n    }\n  }")
    lines.append("}")
    return lines


def schema_text(project: Project) -> str:
    """The curated schema (text proto), every decision commented: the contract the data must meet."""
    label = project.columns[project.label]
    what = (
        f"limited to the {len(project.classes)} classes seen"
        if label.kind == "string"
        else "within a range around the values seen"
    )
    lines = [
        f"# Curated schema of the {project.name} data set, written by `invoke init` from {project.source or 'the data'}",
        f"# ({len(project.train_rows) + len(project.holdout_rows)} rows); edit it, it is yours (a push releases it with the trainer).",
        f"# - {project.label} (the label) is required in every row and {what};",
        "# - each number must lie in a range: the values seen, widened by half their span each way (edit it to",
        "#   the physically plausible range); a value outside is an anomaly that stops the run before training;",
        f"# - each feature may be missing in at most {PRESENCE_SLACK:.0%} more of the rows than in that data;",
        f"# - a text feature with at most {DOMAIN_VALUES} values lists them; up to {1 - MIN_DOMAIN_MASS:.0%} of the rows may hold others;",
        "# - drift comparators: the data gate compares new training data with the data that trained the blessed",
        f"#   model: class shares may move by at most {INFINITY_NORM} (L-infinity), each number's histogram by a",
        f"#   Jensen-Shannon divergence of at most {JS_DIVERGENCE}.",
    ]
    for name in project.header:
        lines += _feature(project, project.columns[name])
    for name in project.header:
        column = project.columns[name]
        if column.kind != "string" or name not in (project.label, *project.categorical):
            continue
        if name != project.label and column.distinct > DOMAIN_VALUES:
            continue
        values = project.classes if name == project.label else sorted(set(column.values))
        lines.append("string_domain {")
        lines.append(f"  name: {_string(name)}")
        lines += [f"  value: {_string(v)}" for v in sorted(values)]
        lines.append("}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ invoke.yaml

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def yaml_scalar(value) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return _number(value)
    if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value, ensure_ascii=False)


def training_block(project: Project) -> str:
    """The `training:` block of invoke.yaml for the project, each decision with its reason."""
    metric = (
        "accuracy (higher is better) at least this"
        if project.task == "classification"
        else "RMSE (lower is better, in the label's units) at most this"
    )
    threshold_key = "accuracy_threshold" if project.task == "classification" else "rmse_threshold"
    lines = [
        "training:",
        f"  # Written by `invoke init` from {project.source or 'the data'}: what is trained, and how the judge decides.",
        f"  model_name: {yaml_scalar(project.name)}",
        f"  label: {yaml_scalar(project.label)}",
        f"  task: {project.task}",
        f"  # The judge: {metric} on the eval split and on the holdout;",
        f"  # {project.threshold_why}.",
        f"  {threshold_key}: {yaml_scalar(project.threshold)}",
    ]
    if project.min_examples_per_split != 20:
        lines += [
            "  # The data gate's minimums, lowered to what this data can give (see init's findings).",
            f"  min_examples_per_split: {project.min_examples_per_split}",
        ]
    if project.task == "classification" and project.min_examples_per_class != 5:
        lines.append(f"  min_examples_per_class: {project.min_examples_per_class}")
    return "\n".join(lines) + "\n"


def _blocks(text: str) -> list[tuple[str | None, list[str]]]:
    """invoke.yaml's lines grouped by top-level key (None: comments and blank lines before the first key)."""
    blocks: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:", line)
        if match:
            blocks.append((match.group(1), [line]))
        else:
            blocks[-1][1].append(line)
    return blocks


def _set_keys(lines: list[str], values: dict[str, str]) -> list[str]:
    """A top-level block's lines with `values` set on its second-level keys (replaced, or added at its end)."""
    out, seen = [], set()
    for line in lines:
        match = re.match(r"^(\s+)([A-Za-z_][\w-]*)\s*:", line)
        if match and match.group(2) in values:
            out.append(f"{match.group(1)}{match.group(2)}: {values[match.group(2)]}")
            seen.add(match.group(2))
        else:
            out.append(line)
    end = len(out)
    while end > 1 and not out[end - 1].strip():
        end -= 1
    added = [f"  {key}: {value}" for key, value in values.items() if key not in seen]
    return out[:end] + added + out[end:]


def invoke_yaml(existing: str | None, project: Project) -> str:
    """invoke.yaml with the project's training: block and cicd.pipeline_name / cicd.dataset; every other line
    (cloud settings, comments) kept as it was."""
    cicd = {"pipeline_name": project.pipeline_name, "dataset": project.name}
    blocks = _blocks(existing or "")
    keys = [key for key, _ in blocks]
    if "cicd" not in keys:
        blocks.append(("cicd", ["cicd:"]))
    training = training_block(project).rstrip("\n").splitlines()
    out: list[str] = []
    for key, lines in blocks:
        if key == "cicd":
            out += _set_keys(lines, cicd)
        elif key == "training":
            trailing = []
            while lines and not lines[-1].strip():
                trailing.append(lines.pop())
            out += training + trailing
        else:
            out += lines
    if "training" not in keys:
        if out and out[-1].strip():
            out.append("")
        out += training
    return "\n".join(out).lstrip("\n") + "\n"
