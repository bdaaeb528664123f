"""Writing a file whole or not at all: the one atomic write of every package (the release chain's too).

A temporary file of a unique name (mkstemp) in the target's folder, then `os.replace`: a reader sees the old
file or the new one, never half of one, and two writers of the same file never share a temporary file (with
a fixed `.<name>.tmp`, one writer's replace took the other's half-written file, and the other's failed).
"""

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes its file private (0600); the written file gets the mode a plain open() would give it. Read
# once, at import: setting the umask to read it is process-wide.
_MODE = 0o666 & ~_umask()


def atomic_write(path: Path, data: bytes | str) -> Path:
    """Writes `path` through a temporary file in the same folder (made if missing); returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
