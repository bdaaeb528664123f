"""The local run's Beam mode: by the data's size unless set, and said in one line."""

from pathlib import Path

import pytest

from cicd_pipeline import beam_mode
from cicd_pipeline.runners.local import LOCAL_SWITCHES


def _data(tmp_path: Path, size: int) -> Path:
    (tmp_path / "part.csv").write_bytes(b"a,b\n" + b"1,2\n" * ((size - 4) // 4))
    (tmp_path / "notes.txt").write_bytes(b"x" * 10_000)  # not read by CsvExampleGen: not counted
    return tmp_path


def test_auto_runs_small_data_in_memory_and_large_data_on_every_core(tmp_path: Path) -> None:
    data = _data(tmp_path, 4_000)

    small = beam_mode.choose(None, data, cores=2, threshold=5_000)
    large = beam_mode.choose("auto", data, cores=2, threshold=4_000)

    assert small.args == ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    assert large.args == ("--direct_running_mode=multi_processing", "--direct_num_workers=2")
    assert large.line() == "Beam: multi-processing, 2 workers (auto: 0.0 MB of CSV, from 0.004 MB)"


def test_one_core_stays_in_memory_whatever_the_size(tmp_path: Path) -> None:
    assert beam_mode.choose("", _data(tmp_path, 4_000), cores=1, threshold=1).mode == "in_memory"


@pytest.mark.parametrize(
    ("setting", "mode", "workers"),
    [
        ("in_memory", "in_memory", 1),
        ("multi_processing", "multi_processing", 2),
        ("multi_processing:3", "multi_processing", 3),
    ],
)
def test_a_set_mode_wins_over_the_size(tmp_path: Path, setting: str, mode: str, workers: int) -> None:
    chosen = beam_mode.choose(setting, _data(tmp_path, 400), cores=2, threshold=1)

    assert (chosen.mode, chosen.workers) == (mode, workers)
    assert chosen.line().endswith("(set)")


@pytest.mark.parametrize("setting", ["fast", "in_memory:2", "multi_processing:0", "multi_processing:x"])
def test_a_mode_that_is_no_mode_is_named_with_the_spellings(tmp_path: Path, setting: str) -> None:
    with pytest.raises(beam_mode.BeamModeError) as raised:
        beam_mode.choose(setting, tmp_path)

    assert repr(setting) in str(raised.value) and "multi_processing:N" in str(raised.value)


def test_the_local_switches_carry_no_mode_of_their_own() -> None:
    """The mode's two arguments come from beam_mode alone: no second --direct_running_mode to contradict it."""
    assert not any(a.startswith("--direct_") for a in LOCAL_SWITCHES)
