"""Which Beam DirectRunner mode a local run uses: in memory (one process) or multi-processing (N workers).

In memory has no start-up cost and wins on small data: the penguin pipeline ran in about half the time of
multi_processing on 2 cores (docs/platform.md). Each Beam step then runs in one process while the other
cores idle, so on large data the fixed cost of starting workers pays for itself (issue 18: at 2.77 million
rows the in-memory run took 598 s against plain TFX's 440 s with multi-processing). ``auto`` picks by the
size of the training CSV files; ``in_memory``, ``multi_processing`` or ``multi_processing:N`` choose
explicitly (`invoke run --beam`, or `cicd.local_beam` / INVOKE_CICD_LOCAL_BEAM).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

# CSV bytes from which `auto` runs Beam with one worker per core. Estimated from issue 18's figures (2 cores):
# in memory ~0.21 ms a row past a fixed 16 s, multi-processing ~0.13 ms a row past a fixed cost about 75 s
# higher; the lines cross near 0.9 million penguin rows, about 26 MB of CSV (277,000 rows are 7.9 MB).
# docs/performance.md says what was measured and what is an estimate.
MULTI_PROCESSING_FROM_BYTES = 25_000_000

MODES = ("auto", "in_memory", "multi_processing")
_SPELLING = re.compile(r"(auto|in_memory|multi_processing)(?::([1-9][0-9]{0,2}))?")
HELP = (
    "auto (by the size of the data), in_memory, multi_processing or multi_processing:N "
    "(N worker processes; one per core if not given)"
)


class BeamModeError(ValueError):
    """A mode that is not one of MODES: the message names it and the spellings."""


@dataclasses.dataclass(frozen=True)
class BeamMode:
    """The DirectRunner's mode, its workers, and why (printed with the run)."""

    mode: str  # "in_memory" or "multi_processing"
    workers: int
    why: str

    @property
    def args(self) -> tuple[str, ...]:
        return (f"--direct_running_mode={self.mode}", f"--direct_num_workers={self.workers}")

    def line(self) -> str:
        what = (
            "in memory, one process"
            if self.mode == "in_memory"
            else f"multi-processing, {self.workers} workers"
        )
        return f"Beam: {what} ({self.why})"


def parse(value: str | None) -> tuple[str, int | None]:
    """``(mode, workers)`` from a setting's text; None or "" is auto."""
    match = _SPELLING.fullmatch((value or "auto").strip())
    if not match or (match.group(2) and match.group(1) != "multi_processing"):
        raise BeamModeError(f"Beam mode {value!r} is not one of: {HELP}.")
    return match.group(1), int(match.group(2)) if match.group(2) else None


def data_bytes(data_root: Path) -> int:
    """The size of the CSV files a run reads (what CsvExampleGen reads: the data folder's *.csv)."""
    return sum(p.stat().st_size for p in Path(data_root).glob("*.csv") if p.is_file())


def choose(
    setting: str | None,
    data_root: Path,
    cores: int | None = None,
    threshold: int = MULTI_PROCESSING_FROM_BYTES,
) -> BeamMode:
    """The mode for a run over ``data_root``: the setting's, or by the data's size (from ``threshold`` bytes
    of CSV, one worker per core) when it says auto."""
    mode, workers = parse(setting)
    cores = cores or os.cpu_count() or 1
    if mode == "in_memory":
        return BeamMode("in_memory", 1, "set")
    if mode == "multi_processing":
        return BeamMode("multi_processing", workers or cores, "set")
    size = data_bytes(data_root)
    megabytes = f"{size / 1e6:.1f} MB of CSV"
    if size >= threshold and cores > 1:
        return BeamMode("multi_processing", cores, f"auto: {megabytes}, from {threshold / 1e6:g} MB")
    return BeamMode("in_memory", 1, f"auto: {megabytes}, under {threshold / 1e6:g} MB")
