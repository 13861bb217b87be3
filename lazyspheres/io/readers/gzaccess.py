"""Random access into ``.nii.gz`` for the gzip reader, over :mod:`lazyspheres.io.gzindex`.

The gzip reader asks four things of a :class:`~lazyspheres.io.sources.ByteSource`: an index
already stored for this version of the file (sidecar or user cache,
:mod:`lazyspheres.io.gzindex_cache`), an index built now (one parallel pass, then cached),
bytes read through an index, and a streaming pass that records the index as it goes
(opt-in, see :func:`record_while_streaming`). Where no index can exist (a user's file
object), the answers are "none" and the reader inflates from the start instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import sys
import types
from collections.abc import Callable, Iterator

from lazyspheres.io import gzindex
from lazyspheres.io.binary import BinaryStream
from lazyspheres.io.inflate import open_inflated
from lazyspheres.io.sources import ByteSource

__all__ = ["build_index", "cached_index", "read_into", "recording_stream", "why_no_index"]


def _cache() -> types.ModuleType | None:
    try:  # persistence is optional: without it indexes live with the readers only
        return importlib.import_module("lazyspheres.io.gzindex_cache")
    except ImportError:
        return None


def indexable(source: ByteSource) -> bool:
    """Whether ``source`` can have an index here (rapidgzip present, re-openable bytes)."""
    return source.compression == "gzip" and source.fileobj is None and gzindex.index_available()


def why_no_index(source: ByteSource) -> str:
    """Why ``source`` has no index, for warnings."""
    if not gzindex.index_available():
        return "rapidgzip, which builds the index, is not installed: pip install rapidgzip"
    if source.fileobj is not None:
        return "it was opened from a file object; open it from a path or URL instead"
    return "none is stored for this version of the file"


def record_while_streaming() -> bool:
    """Whether full streaming passes record the index (``LAZYSPHERES_GZINDEX_BYPRODUCT=1``).

    Off by default: recording needs rapidgzip's single-thread inflater in place of ISA-L's
    threaded one, and inside ``extract`` that pass was 1.5-2.7x slower end to end
    (:mod:`lazyspheres.io.gzindex`, measured on 2 cores), while building the index on
    demand at the first random access costs 1.2-1.4x one plain pass, once per file version
    (then cached). Re-measured under load (benchmarks/bench_byproduct.py): 1.0-1.3x with one
    thread, 1.1-1.6x with two, and a peak RSS of 430-630 MB against ISA-L's 200 MB. Turn it
    on where the CPU and memory are free and random access will follow.
    """
    return os.environ.get("LAZYSPHERES_GZINDEX_BYPRODUCT", "0").strip().lower() in {
        "1",
        "on",
        "true",
        "yes",
    }


def opener(source: ByteSource) -> Callable[[], BinaryStream]:
    """A callable opening a fresh, seekable handle on the compressed bytes."""
    if source.is_local:
        return lambda: open(source.location, "rb")
    from lazyspheres.io import remote_files

    return lambda: remote_files.open_checked(source, 4 * 2**20, "readahead", check=False)


def cached_index(source: ByteSource) -> gzindex.GzipIndex | None:
    """The stored index of this version of ``source`` (sidecar or user cache), or ``None``."""
    cache = _cache()
    if cache is None or not indexable(source):
        return None
    return cache.find_index(
        source.location, source.fingerprint, compressed_size=source.size, local=source.is_local
    )


def _store(source: ByteSource, index: gzindex.GzipIndex | None) -> None:
    cache = _cache()
    if cache is not None and index is not None:
        cache.store_cached_index(cache.cache_key(source.location, source.fingerprint), index)


def build_index(source: ByteSource) -> gzindex.GzipIndex | None:
    """Build (and cache) the index of ``source`` with one pass, or ``None`` if impossible.

    Processes that need the same index at once (the workers of a cluster on one machine)
    take turns on a lock file: the first builds and caches it, the others then find it.
    """
    if not indexable(source):
        return None
    with _building(source):
        index = cached_index(source)
        if index is None:
            index = gzindex.build_index(opener(source))
            _store(source, index)
    return index


@contextlib.contextmanager
def _building(source: ByteSource) -> Iterator[None]:
    cache = _cache()
    if sys.platform == "win32" or cache is None or not cache.cache_enabled():
        # no fcntl on Windows: each process builds its own
        yield
        return
    key = cache.cache_key(source.location, source.fingerprint)
    path = cache.cache_dir() / (hashlib.sha256(key.encode()).hexdigest() + ".lock")
    with contextlib.ExitStack() as stack:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = stack.enter_context(open(path, "a+b"))
        except OSError:  # a read-only cache: build without the lock
            handle = None
        if handle is not None:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes
        yield


def read_into(source: ByteSource, index: gzindex.GzipIndex, offset: int, out: memoryview) -> None:
    """Fill ``out`` with the decompressed bytes from ``offset``, through ``index``."""
    gzindex.read_range(opener(source), index, offset, offset + len(out), out=out)


@contextlib.contextmanager
def recording_stream(
    source: ByteSource, raw: BinaryStream
) -> Iterator[tuple[BinaryStream, Callable[[], gzindex.GzipIndex | None]]]:
    """The inflated stream of ``raw``, and a callable giving the index it recorded.

    The index exists (and is cached) only once the stream was read to its end; before
    that, or where no index can be recorded, the callable returns ``None``.
    """
    if not indexable(source) or not record_while_streaming():
        with open_inflated(raw) as stream:
            yield stream, lambda: None
        return
    with gzindex.open_indexing(raw) as stream:
        stored: list[gzindex.GzipIndex] = []

        def recorded() -> gzindex.GzipIndex | None:
            if not stored and stream.index is not None:
                _store(source, stream.index)
                stored.append(stream.index)
            return stream.index

        yield stream, recorded
