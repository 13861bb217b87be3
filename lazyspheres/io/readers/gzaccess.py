"""Random access into ``.nii.gz`` for the gzip reader: the seek-point index, or nothing.

A thin adapter over :mod:`lazyspheres.io.gzindex` (the index itself: deflate block
boundaries with their 32 KiB windows, built by a streaming pass, kept in a user cache keyed
by the file's fingerprint). The gzip reader only asks four things: an index already known
for this file, an index built now, bytes read through an index, and a streaming pass that
records the index as it goes. Where the index module is missing or cannot serve a source,
the answers are "none" and the reader falls back to inflating from the start.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from lazyspheres.io.inflate import open_inflated, read_exactly
from lazyspheres.io.sources import ByteSource

__all__ = ["build_index", "cached_index", "read_into", "recording_stream", "why_no_index"]


def _module() -> Any:
    try:
        return importlib.import_module("lazyspheres.io.gzindex")
    except ImportError:
        return None


def why_no_index(source: ByteSource) -> str:
    """Why ``source`` has no index, for warnings."""
    if _module() is None:
        return "this lazyspheres has no gzip index support"
    if source.fileobj is not None:
        return "it was opened from a file object, which is neither cached nor re-openable"
    return "none was cached for it and it could not be built here"


def cached_index(source: ByteSource) -> Any:
    """The index of ``source`` from the user cache, or ``None``."""
    module = _module()
    if module is None or source.fileobj is not None:
        return None
    load = getattr(module, "cached_index", None) or getattr(module, "load_cached_index", None)
    return None if load is None else load(source)


def build_index(source: ByteSource) -> Any:
    """Build (and cache) the index of ``source`` with one pass, or ``None`` if not possible."""
    module = _module()
    if module is None or source.fileobj is not None:
        return None
    return module.build_index(source)


def read_into(source: ByteSource, index: Any, offset: int, buffer: memoryview) -> None:
    """Fill ``buffer`` with the decompressed bytes from ``offset``, through ``index``."""
    module = _module()
    if hasattr(module, "read_range"):
        data = module.read_range(source, index, offset, len(buffer))
        if len(data) != len(buffer):
            raise EOFError(f"expected {len(buffer)} bytes at {offset}, got {len(data)}")
        buffer[:] = data
        return
    with module.open_indexed(source, index) as stream:
        stream.seek(offset)
        read_exactly(stream, buffer, where=source.location, offset=offset)


@contextlib.contextmanager
def recording_stream(
    source: ByteSource, raw: IO[bytes]
) -> Iterator[tuple[IO[bytes], Callable[[], Any]]]:
    """The inflated stream of ``raw``, and a callable giving the index it recorded.

    The index is complete (and saved in the user cache) only if the caller read the
    stream to its end; the callable then returns it, else ``None``.
    """
    module = _module()
    opener = None if module is None else getattr(module, "indexing_stream", None)
    if opener is None or source.fileobj is not None:
        with open_inflated(raw) as stream:
            yield stream, lambda: None
        return
    with opener(source, raw) as stream:
        yield stream, lambda: getattr(stream, "index", None)
