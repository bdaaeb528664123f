"""Hand-off files are bound to the checkout: a step refuses one made from other files than those on disk."""

import hashlib

import pytest

from cicd_release.errors import ReleaseError
from cicd_release.steps import TRAINER_FILES, current_modules, released_modules
from cicd_release.workspace import Workspace, atomic_write


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
    assert current_modules(ws) == uploaded(ws)


def test_a_module_edited_after_its_upload_is_refused(ws):
    ws.write_json(ws.modules_file, uploaded(ws))
    model = ws.root / TRAINER_FILES["model_module"]
    model.write_text(model.read_text() + "# edited after the upload\n")
    with pytest.raises(ReleaseError, match="run `invoke modules.upload` again"):
        current_modules(ws)


def test_a_data_only_build_runs_the_released_modules_while_they_are_the_files_on_disk(ws):
    record = {"inputs": {"modules": uploaded(ws)}}
    assert released_modules(ws, record) == uploaded(ws)
    model = ws.root / TRAINER_FILES["model_module"]
    model.write_text(model.read_text() + "# a trainer change the plan did not see\n")
    with pytest.raises(ReleaseError, match="not the file the last release uploaded.*modules.upload"):
        released_modules(ws, record)
    with pytest.raises(ReleaseError, match="no release record"):
        released_modules(ws, None)


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
