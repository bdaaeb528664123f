"""The rehearsal beside the local run: `invoke pipeline.rehearse` of the compiled Vertex spec against
`invoke run`, each from an empty state, in turns, on a copy of this checkout.

    python bench/rehearsal.py [--repeats N] [--write]

The spec is compiled once, as `pipeline.compile` compiles it for a bucket and a project (gs:// pipeline root and
serving folder, the Vertex Model Registry, a pinned image), from the copy's training config (invoke.yaml's
training: block). The rehearsal runs each task's container command in this environment (`--runner local`: the
tasks of a Vertex spec need the components image otherwise), each as a process of its own; `invoke run` runs
the same pipeline with TFX's LocalDagRunner in one process. Whole-command wall and CPU seconds from wait4;
medians (min-max) and the ratio rehearsal/run pair by pair. `--write` replaces the table in docs/performance.md
between the rehearsal markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import DOC, ROOT, checkout_copy, environment, spread, timed, write_doc  # noqa: E402

BEGIN, END = "<!-- rehearsal:begin -->", "<!-- rehearsal:end -->"
BUCKET = "bench-bucket"

COMPILE = """
import json, sys, yaml
from pathlib import Path
from cicd_pipeline.config import TrainingConfig
from cicd_pipeline.runners.vertex import compile_vertex_spec
from tasks._common import training_values

settings = yaml.safe_load(Path("invoke.yaml").read_text())
config = TrainingConfig(**training_values(settings.get("training") or {}),
                        pipeline_name=settings["cicd"]["pipeline_name"])
job = compile_vertex_spec(
    config=config,
    pipeline_root="gs://BUCKET/pipeline_root",
    serving_model_dir=f"gs://BUCKET/serving_model/{config.pipeline_name}",
    registry="vertex:projects/p/locations/europe-west4",
    image="europe-west4-docker.pkg.dev/p/training/cicd-components:0.0.0-000000000000",
    serving_image="europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15@sha256:" + "0" * 64,
)
Path(sys.argv[1]).write_text(json.dumps(job, indent=2, sort_keys=True))
""".replace("BUCKET", BUCKET)


def measure(repeats: int, work: Path) -> dict[str, list[dict]]:
    copy = checkout_copy(work)
    env = {**environment(copy), "PYTHONPATH": os.pathsep.join([str(copy), environment(copy)["PYTHONPATH"]])}
    spec = work / "spec.json"
    subprocess.run([sys.executable, "-c", COMPILE, str(spec)], cwd=copy, env=env, check=True)
    commands = {
        "run": [sys.executable, "-m", "invoke", "run", "--fresh", "--root", str(work / "run")],
        "rehearsal": [
            sys.executable,
            "-m",
            "invoke",
            "pipeline.rehearse",
            "--spec",
            str(spec),
            "--runner",
            "local",
            "--fresh",
            "--root",
            str(work / "rehearsal"),
        ],
    }
    results: dict[str, list[dict]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            figures = timed(command, copy, env)
            results[name].append(figures)
            print(f"   {name:<9} {json.dumps({k: round(v, 1) for k, v in figures.items()})}", flush=True)
    return results


def table(results: dict[str, list[dict]], repeats: int) -> str:
    run, rehearsal = results["run"], results["rehearsal"]
    ratios = [r["wall"] / o["wall"] for r, o in zip(rehearsal, run, strict=True)]
    lines = [
        "| from an empty state | whole command, s | CPU, s |",
        "|---|---|---|",
        f"| `invoke run` | {spread([r['wall'] for r in run])} | {spread([r['cpu'] for r in run])} |",
        f"| `invoke pipeline.rehearse --runner local` | {spread([r['wall'] for r in rehearsal])} "
        f"| {spread([r['cpu'] for r in rehearsal])} |",
        "",
        f"Rehearsal/run, pair by pair: {statistics.median(ratios):.2f} (median of {repeats}). "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d')}.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="counted runs of each command")
    parser.add_argument("--write", action="store_true", help=f"replace the table in {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cicd-bench-rehearsal-") as work:
        results = measure(args.repeats, Path(work))
    text = table(results, args.repeats)
    print(text)
    if args.write:
        write_doc(text, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
