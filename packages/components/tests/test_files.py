"""The one atomic write, and the one canonical JSON spelling: what every package's files and names rest on."""

import os
import stat
import threading

from cicd_components.canonical import canonical_json
from cicd_components.files import atomic_write


def test_concurrent_writers_never_share_a_temporary_file(tmp_path):
    target = tmp_path / "last-run.json"
    errors = []

    def write(n):
        try:
            for i in range(200):
                atomic_write(target, f'{{"writer": {n}, "i": {i}}}\n')
        except OSError as err:  # a fixed "<file>.tmp" name failed here
            errors.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and target.read_text().startswith('{"writer": ')
    assert not list(tmp_path.glob(".last-run.json.*")), "no temporary file is left behind"


def test_a_write_makes_its_folder_replaces_the_file_whole_and_keeps_a_plain_files_mode(tmp_path):
    target = tmp_path / "reports" / "run.html"
    assert atomic_write(target, b"first") == target
    atomic_write(target, "second")
    assert target.read_text() == "second"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask, "not mkstemp's private 0600"


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "registry.json"
    atomic_write(target, "old")
    try:
        atomic_write(target, object())  # not bytes nor str: the write itself fails
    except TypeError:
        pass
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["registry.json"]


def test_the_two_canonical_spellings_are_pinned():
    # Compact names compiled specs (their digests); spaced is how hyperparameters travel and are compared.
    # Changing either renames specs or re-runs releases: these bytes are a contract.
    data = {"b": [1, 2], "a": {"y": 0.5, "x": "s"}}
    assert canonical_json(data, spaced=False) == '{"a":{"x":"s","y":0.5},"b":[1,2]}'
    assert canonical_json(data, spaced=True) == '{"a": {"x": "s", "y": 0.5}, "b": [1, 2]}'
