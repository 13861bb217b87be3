"""Write a local file so that readers see the old content or the new, never a part of it."""

from __future__ import annotations

import os
import pathlib
import tempfile

__all__ = ["write_atomically"]


def write_atomically(path: str | os.PathLike[str], blob: bytes) -> None:
    """Write ``blob`` at ``path`` through a temporary file beside it, then rename.

    The folder is created if needed. On failure the temporary file is removed and ``path``
    keeps its old content (if any).
    """
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(blob)
        os.replace(temporary, target)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
