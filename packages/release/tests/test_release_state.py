"""The release record as a value: what is stored round-trips, a skipped submit moves it to the new commit,
and a release build's base is refused unless it is one a build may diff against."""

import pytest

from cicd_release.core.errors import InputError
from cicd_release.plan.release_state import RELEASE_BASE, ReleaseRecord, check_build_base

URI = "gs://my-project-ml/releases/penguin-cicd/latest.json"
STORED = {
    "commit": "a" * 40,
    "released_at": "2026-11-27T10:00:00Z",
    "versions": {"pipeline": "0.3.0"},
    "inputs": {"spec": "gs://b/specs/s.json", "image": "repo/img:1", "modules": {}, "hyperparameters": "{}"},
    "run": {"resource_name": "projects/p/locations/r/pipelineJobs/j"},
    "parameters": {"data_root": "gs://b/data/penguins/0"},
    "trigger": "release",
}


def test_a_stored_record_reads_back_as_it_was_written():
    record = ReleaseRecord.from_json(STORED, 7, URI)
    assert (record.exists, record.generation, record.uri, record.commit) == (True, 7, URI, "a" * 40)
    assert record.to_json() == STORED


def test_no_record_yet_is_generation_0_at_its_uri():
    record = ReleaseRecord.from_json(None, 0, URI)
    assert not record.exists and record.generation == 0 and record.uri == URI


def test_a_commit_released_by_the_same_run_moves_the_record_and_keeps_the_runs_commit():
    moved = ReleaseRecord.from_json(STORED, 7, URI).released_by_same_run("b" * 40)
    assert moved.commit == "b" * 40 and moved.run_commit == "a" * 40
    assert moved.inputs == STORED["inputs"] and moved.run == STORED["run"]
    again = moved.released_by_same_run("c" * 40)
    assert again.run_commit == "a" * 40, "still the commit whose run it was"
    assert again.to_json()["run_commit"] == "a" * 40


@pytest.mark.parametrize("base", ["", RELEASE_BASE, "0123456789abcdef0123456789abcdef01234567"])
def test_a_release_build_diffs_from_the_release_a_full_sha_or_nothing(base):
    assert check_build_base(base) == base


@pytest.mark.parametrize("base", ["main", "x,_PYTHON_IMAGE=evil:1", "0123456", "A" * 40])
def test_any_other_base_is_refused_naming_it(base):
    with pytest.raises(InputError, match="--base"):
        check_build_base(base)
