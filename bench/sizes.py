"""The data-size case of the benchmark: both pipelines, cold, on the shipped data made 100, 1,000, 10,000 times
larger, with wall time and peak memory; a table and a plot (docs/performance-sizes.png).

    python bench/sizes.py [--rows 277,27700,277000,2770000] [--beam auto] [--write]

Each larger set is the shipped rows copied over and over, every numeric value moved by up to 1 % at random
(seeded; whole numbers stay whole), so the statistics stay those of the penguins and no two rows are the same. Peak memory is the
largest sum of the resident memory of the command and all its processes (Beam's workers included), sampled
every half second. `--write` replaces the sizes table in docs/performance.md and redraws the plot.
"""

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import DOC, PIPELINE_WALL, ROOT, checkout_copy, environment, write_doc  # noqa: E402

SHIPPED = ROOT / "data" / "penguins"
PLOT = ROOT / "docs" / "performance-sizes.png"
BEGIN, END = "<!-- bench-sizes:begin -->", "<!-- bench-sizes:end -->"
SIZES = (277, 27_700, 277_000, 2_770_000)


def grown(rows: int, out: Path, seed: int = 18) -> Path:
    """`out`/data.csv: the shipped rows repeated up to `rows`, numbers jittered by up to 1 %."""
    (source,) = sorted(SHIPPED.glob("*.csv"))
    with source.open(newline="") as handle:
        reader = csv.reader(handle)
        header, shipped = next(reader), list(reader)
    numeric = [all(_number(r[i]) for r in shipped if r[i]) for i in range(len(header))]
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "data.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for n in range(rows):
            row = shipped[n % len(shipped)]
            if n >= len(shipped):
                row = [_jitter(v, rng) if numeric[i] and v else v for i, v in enumerate(row)]
            writer.writerow(row)
    return out


def _jitter(value: str, rng: random.Random) -> str:
    """`value` moved by up to 1 %; a whole number stays whole (the schema's INT columns)."""
    moved = float(value) * (1 + rng.uniform(-0.01, 0.01))
    return str(round(moved)) if value.lstrip("-").isdigit() else f"{moved:.4g}"


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def measured(command: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """Wall seconds, peak resident bytes of the whole process tree, and the pipeline's own wall time."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(process.pid)
        while not done.wait(0.5):
            try:
                tree = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], sum(_rss(p) for p in tree))
            except psutil.NoSuchProcess:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read().decode(errors="replace")
    code = process.wait()
    done.set()
    sampler.join()
    wall = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"{' '.join(command)} exited {code}:\n{output[-3000:]}")
    match = PIPELINE_WALL.search(output)
    beam = next((line.strip() for line in output.splitlines() if line.strip().startswith("Beam:")), "")
    return {
        "wall": wall,
        "peak_mb": peak[0] / 1e6,
        "pipeline": float(match.group(1)) if match else 0.0,
        "beam": beam,
    }


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def run_sizes(sizes: list[int], beam: str, work: Path, keep: Path | None = None) -> list[dict]:
    copy = checkout_copy(work)
    env = environment(copy)
    results = []
    for rows in sizes:
        data = grown(rows, work / f"data-{rows}") if rows != 277 else SHIPPED
        ours = [
            sys.executable,
            "-m",
            "invoke",
            "run",
            "--fresh",
            "--root",
            str(work / "ours"),
            "--data-root",
            str(data),
        ]
        ours += ["--beam", beam] if beam else []
        plain = [sys.executable, str(copy / "bench" / "plain_penguin.py"), "--root", str(work / "plain")]
        plain += ["--checkout", str(copy), "--data-root", str(data), "--fresh"]
        load = os.getloadavg()[0]
        figures = {"rows": rows, "load": load}
        for name, command in (("ours", ours), ("plain", plain)):
            figures[name] = measured(command, copy, env)
            print(f"   {rows:>9} {name:<5} {figures[name]}", flush=True)
        results.append(figures)
        if keep:  # each size as it is measured: a long run stopped half-way keeps what it measured
            keep.write_text(json.dumps(results, indent=2))
    return results


def table(results: list[dict]) -> str:
    lines = [
        "| rows | ours: whole command, s | ours: peak memory, MB | ours: Beam | plain TFX: whole command, s "
        "| plain TFX: peak memory, MB | ours/plain | load (1 min) before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ours, plain = r["ours"], r["plain"]
        lines.append(
            f"| {r['rows']:,} | {ours['wall']:.1f} | {ours['peak_mb']:.0f} | {ours['beam'].removeprefix('Beam: ')} "
            f"| {plain['wall']:.1f} | {plain['peak_mb']:.0f} | {ours['wall'] / plain['wall']:.2f} | {r['load']:.1f} |"
        )
    lines += ["", f"One cold run each, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}."]
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    """Wall time against rows, log-log, both pipelines (Pillow: already in the lock, no plotting library)."""
    import math

    from PIL import Image, ImageDraw

    width, height, margin = 640, 400, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    rows = [r["rows"] for r in results]
    seconds = [r[n]["wall"] for r in results for n in ("ours", "plain")]
    x0, x1 = math.log10(min(rows)), math.log10(max(rows)) or 1
    y0, y1 = math.log10(min(seconds) / 1.5), math.log10(max(seconds) * 1.5)

    def at(x: float, y: float) -> tuple[float, float]:
        fx = (math.log10(x) - x0) / ((x1 - x0) or 1)
        fy = (math.log10(y) - y0) / (y1 - y0)
        return margin + fx * (width - 2 * margin), height - margin - fy * (height - 2 * margin)

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    for r in rows:
        x, _ = at(r, 10**y0)
        draw.line([x, height - margin, x, height - margin + 5], fill="black")
        draw.text((x - 20, height - margin + 8), f"{r:,}", fill="black")
    for s in (10, 30, 100, 300, 1000):
        if y0 <= math.log10(s) <= y1:
            _, y = at(10**x0, s)
            draw.line([margin - 5, y, margin, y], fill="black")
            draw.text((margin - 35, y - 6), f"{s} s", fill="black")
    for name, colour in (("ours", "blue"), ("plain", "red")):
        points = [at(r["rows"], r[name]["wall"]) for r in results]
        draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    draw.text((margin, 20), "cold run, whole command (s) against rows, 2 cores", fill="black")
    draw.text((width - margin - 150, 20), "blue: this project", fill="blue")
    draw.text((width - margin - 150, 34), "red: plain TFX", fill="red")
    draw.text((width // 2 - 10, height - 25), "rows", fill="black")
    image.save(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(map(str, SIZES)), help="comma-separated row counts")
    parser.add_argument("--beam", default="", help="our Beam mode (invoke run --beam); default: auto")
    parser.add_argument(
        "--write", action="store_true", help=f"replace the sizes table in {DOC.name}, redraw the plot"
    )
    parser.add_argument("--json", type=Path, help="write the figures here, after each size")
    parser.add_argument(
        "--from-json", type=Path, help="measure nothing: the table (and plot) of these figures"
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(r.replace("_", "")) for r in args.rows.split(",") if r)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        with tempfile.TemporaryDirectory(prefix="cicd-bench-sizes-") as work:
            results = run_sizes(sizes, args.beam, Path(work), args.json)
    text = table(results)
    print(text)
    if args.write:
        write_doc(text, BEGIN, END)
        plot(results, PLOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
