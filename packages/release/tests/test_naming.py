"""Artifact names come from content: the spec from its compiled bytes (minus TFX's stamps), trees from files."""

import pytest

from cicd_release.artifacts.naming import content_digest, spec_digest, spec_name
from cicd_release.core.errors import InputError

JOB = {
    "displayName": "penguin-cicd",
    "labels": {"tfx_version": "1-16-0", "tfx_runner": "kubeflow_v2"},
    "pipelineSpec": {"sdkVersion": "tfx-1.16.0", "root": {"dag": {"tasks": {"Trainer": {"x": 1}}}}},
    "runtimeConfig": {"gcsOutputDirectory": "gs://b/pipeline_root"},
}


def test_stamped_fields_do_not_rename_the_spec():
    restamped = {
        **JOB,
        "labels": {"tfx_version": "1-16-1"},
        "pipelineSpec": {**JOB["pipelineSpec"], "sdkVersion": "tfx-1.16.1"},
    }
    assert spec_digest(restamped) == spec_digest(JOB)


def test_any_change_to_the_graph_or_config_renames_it():
    changed_task = {
        **JOB,
        "pipelineSpec": {**JOB["pipelineSpec"], "root": {"dag": {"tasks": {"Trainer": {"x": 2}}}}},
    }
    changed_root = {**JOB, "runtimeConfig": {"gcsOutputDirectory": "gs://other/pipeline_root"}}
    assert len({spec_digest(JOB), spec_digest(changed_task), spec_digest(changed_root)}) == 3


def test_key_order_does_not_matter_and_the_job_is_not_modified():
    reordered = dict(reversed(list(JOB.items())))
    assert spec_digest(reordered) == spec_digest(JOB)
    assert JOB["pipelineSpec"]["sdkVersion"] == "tfx-1.16.0", (
        "the digest strips a copy, not the caller's dict"
    )


def test_spec_name_carries_pipeline_name_version_and_digest():
    name = spec_name("penguin-cicd", "0.3.0", JOB)
    assert name == f"penguin-cicd-0.3.0-{spec_digest(JOB)[:16]}.json"


def test_content_digest_follows_bytes_and_names_not_location(tmp_path):
    for root in (tmp_path / "a", tmp_path / "b"):
        (root / "pkg" / "__pycache__").mkdir(parents=True)
        (root / "pkg" / "m.py").write_text("x = 1\n")
        (root / "pkg" / "__pycache__" / "m.cpython-310.pyc").write_bytes(b"\0")
    assert content_digest(tmp_path / "a", ["pkg"]) == content_digest(tmp_path / "b", ["pkg"])
    (tmp_path / "b" / "pkg" / "__pycache__" / "m.cpython-310.pyc").write_bytes(b"\1")
    assert content_digest(tmp_path / "a", ["pkg"]) == content_digest(tmp_path / "b", ["pkg"]), (
        "caches ignored"
    )
    (tmp_path / "b" / "pkg" / "m.py").write_text("x = 2\n")
    assert content_digest(tmp_path / "a", ["pkg"]) != content_digest(tmp_path / "b", ["pkg"])


@pytest.mark.parametrize("entry", ["missing", "../outside"])
def test_content_digest_refuses_what_is_not_in_the_tree(tmp_path, entry):
    (tmp_path / "root").mkdir()
    with pytest.raises(InputError):
        content_digest(tmp_path / "root", [entry])
