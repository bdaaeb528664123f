"""A pytest plugin that writes each test's CPU, its own process's and every process under it, to a JSON-lines file.

    PYTHONPATH=bench CPU_PER_TEST=/tmp/cpu.jsonl pytest tests/e2e -n 2 -p cpu_per_test
    python bench/cpu_per_test.py /tmp/cpu.jsonl          # by module, most first

Around each test (setup, call and teardown: a fixture's cost lands on the first test that asks for it) it sums,
through psutil, the user and system time of the test process and of every live process under it, with what each
had already reaped: warm servers and their forks, `invoke` subprocesses, TFX's task processes. What a process
started by nobody under the test costs (podman's service, the GCS emulator) is not counted. Linux only.
docs/performance.md, "The suite", says what it measured.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from pathlib import Path

import psutil


def _cpu(process: psutil.Process) -> float:
    """Seconds of CPU of one process: its own user and system time, and its reaped children's."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0  # gone while listed
    return times.user + times.system + times.children_user + times.children_system


def tree_cpu() -> float:
    """Seconds of CPU of this process and every live process under it, reaped children included (psutil walks
    the tree, as bench/sizes.py does for its peak memory)."""
    root = psutil.Process()
    return sum(_cpu(p) for p in [root, *root.children(recursive=True)])


try:
    import pytest
except ImportError:  # the summary below needs no pytest
    pytest = None

if pytest is not None:

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        cpu, wall = tree_cpu(), time.monotonic()
        yield
        row = {
            "test": item.nodeid,
            "cpu": round(tree_cpu() - cpu, 2),
            "wall": round(time.monotonic() - wall, 2),
            "worker": os.environ.get("PYTEST_XDIST_WORKER", ""),
        }
        with open(os.environ.get("CPU_PER_TEST", "cpu-per-test.jsonl"), "a") as out:
            out.write(json.dumps(row) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/cpu_per_test.py FILE.jsonl", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in Path(argv[0]).read_text().splitlines() if line]
    by_module = collections.Counter()
    for row in rows:
        by_module[row["test"].split("::")[0]] += row["cpu"]
    print(f"{sum(by_module.values()):8.1f} s of CPU in {len(rows)} tests")
    for module, cpu in by_module.most_common():
        print(f"{cpu:8.1f}  {module}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
