"""Hand-off files are bound to the checkout: a step refuses one made from other files than those on disk."""

import hashlib

import pytest

from cicd_pipeline.run_inputs import TRAINER_FILES
from cicd_release.core.errors import HandOffMissing, MissingRelease, ReleaseError
from cicd_release.core.workspace import (
    Workspace,
    atomic_write,
    current_modules,
    released_modules,
    spec_for_run,
)


@pytest.fixture
def ws(tmp_path):
    for path in TRAINER_FILES.values():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(f"# {path}\n")
    return Workspace(tmp_path)


def uploaded(ws):
    def uri(path):
        digest = hashlib.sha256((ws.root / path).read_bytes()).hexdigest()
        return f"gs://b/modules/{digest}/{path.rsplit('/', 1)[1]}"

    return {name: uri(path) for name, path in TRAINER_FILES.items()}


def test_the_uploaded_modules_are_used_while_they_are_the_files_on_disk(ws):
    ws.write_json(ws.modules_file, uploaded(ws))
    assert current_modules(ws, TRAINER_FILES) == uploaded(ws)


def test_a_module_edited_after_its_upload_is_refused(ws):
    ws.write_json(ws.modules_file, uploaded(ws))
    model = ws.root / TRAINER_FILES["model_module"]
    model.write_text(model.read_text() + "# edited after the upload\n")
    with pytest.raises(ReleaseError, match="run `invoke modules.upload` again"):
        current_modules(ws, TRAINER_FILES)


def test_a_data_only_build_runs_the_released_modules_while_they_are_the_files_on_disk(ws):
    released = uploaded(ws)  # the release record's inputs.modules
    assert released_modules(ws, TRAINER_FILES, released) == uploaded(ws)
    model = ws.root / TRAINER_FILES["model_module"]
    model.write_text(model.read_text() + "# a trainer change the plan did not see\n")
    with pytest.raises(ReleaseError, match="not the file the last release uploaded.*modules.upload"):
        released_modules(ws, TRAINER_FILES, released)
    with pytest.raises(ReleaseError, match="no release record"):
        released_modules(ws, TRAINER_FILES, None)


MADE_FROM = {"sources": "0" * 64, "config": {}, "settings": {}}


def test_the_spec_compiled_here_is_run_while_it_was_made_from_this_checkout(ws):
    spec = {"name": "s.json", "uri": "gs://b/specs/s.json", "image": "i", "made_from": MADE_FROM}
    ws.write_json(ws.spec_file, spec)
    assert spec_for_run(ws, MADE_FROM, None, "gs://b/releases/p/latest.json") == spec
    with pytest.raises(ReleaseError, match="pipeline.compile --upload` again"):
        spec_for_run(ws, {**MADE_FROM, "sources": "1" * 64}, None, "gs://b/releases/p/latest.json")
    ws.write_json(ws.spec_file, {**spec, "uri": None})
    with pytest.raises(ReleaseError, match="was not uploaded"):
        spec_for_run(ws, MADE_FROM, None, "gs://b/releases/p/latest.json")


def test_without_a_compile_the_last_release_spec_is_run_and_without_a_release_none(ws):
    released = {"spec": "gs://b/specs/old.json", "image": "repo/img:1", "modules": {}}
    assert spec_for_run(ws, MADE_FROM, released, "u") == {
        "uri": "gs://b/specs/old.json",
        "image": "repo/img:1",
    }
    with pytest.raises(MissingRelease, match="no release record at gs://b/r.json"):
        spec_for_run(ws, MADE_FROM, None, "gs://b/r.json")


def test_concurrent_writers_never_share_a_temporary_file(tmp_path):
    import threading

    target = tmp_path / "plan.json"
    errors = []

    def write(n):
        try:
            for i in range(200):
                atomic_write(target, f'{{"writer": {n}, "i": {i}}}\n')
        except OSError as err:  # the old fixed "<file>.tmp" name failed here
            errors.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and target.read_text().startswith('{"writer": ')
    assert not list(tmp_path.glob(".plan.json.*")), "no temporary file is left behind"


DAMAGE = {
    "not-json": b"{",
    "not-an-object": b"[]",
    "cut-short": b'{"head": "',
    "deep": b"[" * 20_000 + b"]" * 20_000,
    "huge-integer": b'{"n": ' + b"9" * 5_000 + b"}",
    "not-utf-8": b'{"a": "\xff"}',
    "too-large": b'{"a": "' + b"x" * (9 << 20) + b'"}',
}
WRONG_SHAPES = {
    "plan.json": [
        {"head": "abc", "steps": [], "workflow": "full"},
        {"head": "a" * 40, "steps": "modules.upload", "workflow": "full"},
        {"head": "a" * 40, "steps": ["deploy"], "workflow": "full"},
        {"head": "a" * 40, "steps": [], "workflow": "everything"},
        {"head": "a" * 40, "steps": [], "workflow": "full", "reasons": [1]},
    ],
    "modules.json": [{"model_module": 5}, {"model_module": "https://evil.example/model.py"}],
    "spec.json": [
        {"name": "s.json", "image": "i", "local": "l", "made_from": {}, "uri": "https://x"},
        {"name": "s.json", "image": "i", "local": "l", "made_from": "x"},
        {"name": "s.json", "image": 3, "local": "l", "made_from": {}},
    ],
    "wheels.json": [{"components": ["a.whl"]}],
}


@pytest.mark.parametrize("name", ["plan.json", "modules.json", "spec.json", "wheels.json"])
@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_hand_off_file_is_one_line_naming_it_and_its_maker(ws, name, damage):
    path = ws.out / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(DAMAGE[damage])
    with pytest.raises(HandOffMissing) as caught:
        ws.read_json(path, "make it")
    message = str(caught.value)
    assert message.startswith(f"{path} is not what `invoke make it` writes (") and "\n" not in message
    assert len(message) < 400 and message.endswith("run `invoke make it` again to remake it.")


@pytest.mark.parametrize(
    ("name", "data"), [(name, data) for name, shapes in WRONG_SHAPES.items() for data in shapes]
)
def test_a_hand_off_file_of_the_wrong_shape_is_refused_before_a_step_indexes_into_it(ws, name, data):
    path = ws.write_json(ws.out / name, data)
    with pytest.raises(HandOffMissing, match="run `invoke x` again"):
        ws.read_json(path, "x")


def test_what_the_steps_write_is_what_they_read(ws):
    plan = {
        "base": None,
        "head": "a" * 40,
        "workflow": "full",
        "steps": ["test"],
        "changed_files": [],
        "changed_packages": [],
        "reasons": ["r"],
    }
    assert ws.read_json(ws.write_json(ws.plan_file, plan), "plan") == plan
    spec = {"name": "s.json", "uri": None, "image": "i", "local": "l", "made_from": {}}
    assert ws.read_json(ws.write_json(ws.spec_file, spec), "pipeline.compile") == spec
