"""pytest-xdist scheduling for the e2e and integration sessions: named test modules stay together.

nox runs these sessions in two pytest-xdist processes (noxfile.py, XDIST). A test module whose tests share
an expensive module or session fixture (the session's pipeline runs, a module's compile or rehearsals, the
image builds on podman's registries) must run in one process, or each process makes the fixture again. Its
conftest lists such modules by group; every other test is a unit of its own and goes to whichever process
is free. Groups with the most tests are handed out first (xdist's own order), so the shared runs and the
rehearsals start at once.

xdist's own `--dist loadgroup` (the `xdist_group` mark) does not group under pytest 9.2: it renames
`item._nodeid`, which pytest no longer reads (`Node.nodeid` returns `_id`), so the tests of a group were
spread and each process made the group's fixtures again. This is xdist's documented extension point
instead: a `LoadScopeScheduling` with its own `_split_scope`, from the conftest's
`pytest_xdist_make_scheduler` hook.
"""

from __future__ import annotations

from collections.abc import Mapping


def scheduler(config, log, groups: Mapping[str, str]):
    """A scheduler that keeps the modules of each group (`path/of/test_x.py` -> group name) on one process.

    Called only under xdist (its hook), so a run without xdist needs none of it."""
    from xdist.scheduler import LoadScopeScheduling

    class Grouped(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return f"group:{groups[module]}" if module in groups else nodeid

    return Grouped(config, log)
