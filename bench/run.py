"""The local loop's benchmark: `invoke run` against the plain TFX penguin pipeline (bench/plain_penguin.py),
side by side, in turns, on a copy of this checkout (edits never touch the repository).

    python bench/run.py [--repeats N] [--cases cold,nochange,model,preprocessing,watch] [--write]

Cases, each run by both in turn (ours, plain, ours, plain, ...), a new edit before each pair:
- cold: an empty state folder (`invoke run --fresh`);
- nochange: again, nothing changed (after one uncounted run each, so the plain one's Evaluator has its baseline);
- model: a comment line appended to the trainer's model.py;
- preprocessing: a comment line appended to preprocessing.py;
- watch (ours only): `invoke run --watch` resident, model.py saved, seconds until the verdict is printed.

Whole-command wall and CPU seconds come from the operating system (wait4); the pipeline's own wall time is
what each run prints. Medians are quoted, with min-max; ratios are ours/plain, pair by pair. `--write`
replaces the table in docs/performance.md. Needs the repository's venv (the lock and the packages installed).
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = Path("packages/trainer/src/cicd_trainer/model.py")
PREPROCESSING = Path("packages/trainer/src/cicd_trainer/preprocessing.py")
CASES = ("cold", "nochange", "model", "preprocessing", "watch")
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
PIPELINE_WALL = re.compile(r"(?:wall time of the pipeline|pipeline wall): ([0-9.]+) s")


def checkout_copy(work: Path) -> Path:
    """The tasks, packages, data and settings of this checkout in `work`: the benchmark's edits go there."""
    copy = work / "checkout"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".cicd")
    for folder in ("tasks", "packages", "data", "bench"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=skip)
    # The settings: training.label above all (a run without one stops: nothing says what to predict).
    shutil.copy2(ROOT / "invoke.yaml", copy / "invoke.yaml")
    return copy


def environment(copy: Path) -> dict[str, str]:
    """The copy's own package sources first: the benchmark measures this checkout, whatever is installed."""
    sources = [str(copy / "packages" / p / "src") for p in ("release", "pipeline", "components")]
    path = os.pathsep.join([*sources, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"}


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """Runs `command`; its wall and CPU seconds (itself and its children, from wait4) and the pipeline wall."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} exited {code}:\n{output[-3000:]}")
    match = PIPELINE_WALL.search(output)
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        # A run that found nothing changed runs no pipeline at all.
        "pipeline": float(match.group(1)) if match else 0.0,
    }


def append_line(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"{line}\n")


def watch_case(copy: Path, env: dict[str, str], state: Path, repeats: int) -> list[float]:
    """Seconds from a save of model.py to the printed verdict, with `invoke run --watch` resident."""
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "run", "--watch", "--root", str(state)],
        cwd=copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # Ctrl-C's signal ends it below; a shell's background job would otherwise hand it down ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seconds = []

    def read_until(marker: str) -> str:
        for line in process.stdout:
            print(f"    | {line.rstrip()}", flush=True)
            if marker in line:
                return line
        raise SystemExit(f"`invoke run --watch` ended before printing {marker!r}")

    try:
        read_until("waiting for a save")
        for i in range(repeats):
            time.sleep(1.0)
            saved = time.monotonic()
            append_line(copy / MODEL, f"# bench: watch edit {i} {time.time()}")
            read_until("edit to verdict:")
            seconds.append(time.monotonic() - saved)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return seconds


def run_cases(cases: list[str], repeats: int, work: Path) -> dict:
    copy = checkout_copy(work)
    env = environment(copy)
    ours_state, plain_state = work / "ours", work / "plain"
    ours = [sys.executable, "-m", "invoke", "run", "--root", str(ours_state)]
    plain = [
        sys.executable,
        str(copy / "bench" / "plain_penguin.py"),
        "--root",
        str(plain_state),
        "--checkout",
        str(copy),
    ]
    results: dict[str, dict[str, list[dict]]] = {}
    for case in cases:
        print(f"== {case}", flush=True)
        if case == "watch":
            results[case] = {"ours": [{"wall": s} for s in watch_case(copy, env, ours_state, repeats)]}
            continue
        if (
            case == "nochange"
        ):  # one uncounted run each: the plain Evaluator re-runs once with its new baseline
            timed(ours, copy, env)
            timed(plain, copy, env)
        results[case] = {"ours": [], "plain": []}
        for i in range(repeats):
            if case == "model":
                append_line(copy / MODEL, f"# bench: model edit {i} {time.time()}")
            elif case == "preprocessing":
                append_line(copy / PREPROCESSING, f"# bench: preprocessing edit {i} {time.time()}")
            fresh = ["--fresh"] if case == "cold" else []
            for name, command in (("ours", ours), ("plain", plain)):
                figures = timed(command + fresh, copy, env)
                results[case][name].append(figures)
                print(f"   {name:<5} {json.dumps({k: round(v, 1) for k, v in figures.items()})}", flush=True)
    return results


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    return f"{median:.1f}" if len(values) == 1 else f"{median:.1f} ({min(values):.1f}–{max(values):.1f})"


def table(results: dict, repeats: int) -> str:
    lines = [
        "| case | ours: whole command, s | ours: pipeline, s | plain TFX: whole command, s "
        "| plain TFX: pipeline, s | ours/plain (whole, pipeline) |",
        "|---|---|---|---|---|---|",
    ]
    for case, runs in results.items():
        ours, plain = runs.get("ours", []), runs.get("plain", [])
        ratio = "-"
        if plain:
            whole = statistics.median(o["wall"] / p["wall"] for o, p in zip(ours, plain, strict=True))
            pipes = [o["pipeline"] / p["pipeline"] for o, p in zip(ours, plain, strict=True) if p["pipeline"]]
            ratio = f"{whole:.2f}, {statistics.median(pipes):.2f}" if pipes else f"{whole:.2f}, -"
        lines.append(
            f"| {case} | {spread([r['wall'] for r in ours])} | {spread([r['pipeline'] for r in ours if 'pipeline' in r])} "
            f"| {spread([r['wall'] for r in plain])} | {spread([r['pipeline'] for r in plain])} | {ratio} |"
        )
    cpu = f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    lines += ["", f"Medians (min–max) of {repeats} runs each, in turns; {cpu}; {time.strftime('%Y-%m-%d')}."]
    return "\n".join(lines)


def write_doc(text: str, begin: str = BEGIN, end_marker: str = END) -> None:
    """Replaces what docs/performance.md holds between two markers (this benchmark's, by default)."""
    doc = DOC.read_text()
    start, end = doc.index(begin) + len(begin), doc.index(end_marker)
    DOC.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="counted runs of each command per case")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--write", action="store_true", help=f"replace the table in {DOC.relative_to(ROOT)}")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    with tempfile.TemporaryDirectory(prefix="cicd-bench-") as work:
        results = run_cases(cases, args.repeats, Path(work))
    text = table(results, args.repeats)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.write:
        write_doc(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
