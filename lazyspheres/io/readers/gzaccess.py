"""Random access into ``.nii.gz`` for the gzip reader, over :mod:`lazyspheres.io.gzindex`.

The gzip reader asks four things of a :class:`~lazyspheres.io.sources.ByteSource`: an index
already stored for this version of the file (sidecar or user cache,
:mod:`lazyspheres.io.gzindex_cache`), an index built now (one parallel pass, then cached),
bytes read through an index, and a streaming pass that records the index as it goes
(:func:`record_while_streaming`). Where no index can exist (a user's file object), the
answers are "none" and the reader inflates from the start instead.

Two engines record: checkpoints of ISA-L's own inflater (:mod:`lazyspheres.io.gzindex_isal`,
as fast as the plain ISA-L pass, so on by default for local files where it is available)
and rapidgzip's sequential pass (:func:`lazyspheres.io.gzindex.open_indexing`, opt-in, used
for remote files and where the ISA-L engine is unavailable). On-demand builds are
rapidgzip's (in parallel).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import sys
import types
from collections.abc import Callable, Iterator

from lazyspheres.io import gzindex, gzindex_isal
from lazyspheres.io.binary import BinaryStream
from lazyspheres.io.inflate import choose_engine, open_inflated
from lazyspheres.io.sources import ByteSource

__all__ = ["build_index", "cached_index", "read_into", "recording_stream", "why_no_index"]


def _cache() -> types.ModuleType | None:
    try:  # persistence is optional: without it indexes live with the readers only
        return importlib.import_module("lazyspheres.io.gzindex_cache")
    except ImportError:
        return None


def indexable(source: ByteSource) -> bool:
    """Whether ``source`` can have an index here (an engine present, re-openable bytes)."""
    return (
        source.compression == "gzip"
        and source.fileobj is None
        and (gzindex.index_available() or _checkpoints(source))
    )


def _checkpoints(source: ByteSource) -> bool:
    """Whether streaming passes over ``source`` record ISA-L checkpoints.

    Local files only, and only where ISA-L is the inflater the pass would use anyway
    (``LAZYSPHERES_INFLATE=zlib`` still measures and uses zlib).
    """
    if not source.is_local or not gzindex_isal.available():
        return False
    try:
        return choose_engine(seekable=True) == "isal"
    except (ImportError, ValueError):
        return False


def why_no_index(source: ByteSource) -> str:
    """Why ``source`` has no index, for warnings."""
    if not (gzindex.index_available() or _checkpoints(source)):
        return "rapidgzip, which builds the index, is not installed: pip install rapidgzip"
    if source.fileobj is not None:
        return "it was opened from a file object; open it from a path or URL instead"
    if not gzindex.index_available():
        return (
            "none is stored for this version of the file, and without rapidgzip it is only "
            "recorded by a full pass (an extract of the whole run): pip install rapidgzip"
        )
    return "none is stored for this version of the file"


#: Whether full streaming passes over local files record ISA-L checkpoints when
#: ``LAZYSPHERES_GZINDEX_BYPRODUCT`` is unset (see :func:`record_while_streaming`).
RECORD_BY_DEFAULT = True


def record_while_streaming(source: ByteSource | None = None) -> bool:
    """Whether full streaming passes record the index (``LAZYSPHERES_GZINDEX_BYPRODUCT``).

    ``1``/``on``/``true``/``yes`` turn it on, any other value off. Unset, passes over a
    local file record checkpoints of ISA-L's inflater when that engine is available
    (:mod:`lazyspheres.io.gzindex_isal`) and :data:`RECORD_BY_DEFAULT` is true: recording
    costs a few % of ISA-L's pass, the index ~0.3 % of the file, memory stays flat in T
    (benchmarks/bench_byproduct.py). Remote files, or a machine without that engine,
    record only when asked to: rapidgzip's recording pass costs 1.3-1.5x ISA-L's CPU
    (:mod:`lazyspheres.io.gzindex`), and building the index on demand at the first random
    access costs 1.2-1.4x one plain pass, once per file version (then cached).
    """
    value = os.environ.get("LAZYSPHERES_GZINDEX_BYPRODUCT", "").strip().lower()
    if not value:
        return RECORD_BY_DEFAULT and source is not None and _checkpoints(source)
    return value in {"1", "on", "true", "yes"}


def opener(source: ByteSource) -> Callable[[], BinaryStream]:
    """A callable opening a fresh, seekable handle on the compressed bytes."""
    if source.is_local:
        return lambda: open(source.location, "rb")
    from lazyspheres.io import remote_files

    return lambda: remote_files.open_checked(source, 4 * 2**20, "readahead", check=False)


def cached_index(source: ByteSource) -> gzindex.SeekIndex | None:
    """The stored index of this version of ``source`` (sidecar or user cache), or ``None``."""
    cache = _cache()
    if cache is None or not indexable(source):
        return None
    return cache.find_index(
        source.location, source.fingerprint, compressed_size=source.size, local=source.is_local
    )


def _store(source: ByteSource, index: gzindex.SeekIndex | None) -> None:
    cache = _cache()
    if cache is not None and index is not None:
        cache.store_cached_index(cache.cache_key(source.location, source.fingerprint), index)


def build_index(source: ByteSource) -> gzindex.SeekIndex | None:
    """Build (and cache) the index of ``source`` with one pass, or ``None`` if impossible.

    Processes that need the same index at once (the workers of a cluster on one machine)
    take turns on a lock file: the first builds and caches it, the others then find it.
    """
    if not indexable(source) or not gzindex.index_available():
        return None  # (an ISA-L checkpoint index is only recorded by a streaming pass)
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


def read_into(source: ByteSource, index: gzindex.SeekIndex, offset: int, out: memoryview) -> None:
    """Fill ``out`` with the decompressed bytes from ``offset``, through ``index``."""
    gzindex.read_range(opener(source), index, offset, offset + len(out), out=out)


@contextlib.contextmanager
def recording_stream(
    source: ByteSource, raw: BinaryStream
) -> Iterator[tuple[BinaryStream, Callable[[], gzindex.SeekIndex | None]]]:
    """The inflated stream of ``raw``, and a callable giving the index it recorded.

    The index exists (and is cached) only once the stream was read to its end; before
    that, or where no index can be recorded, the callable returns ``None``.
    """
    if not indexable(source) or not record_while_streaming(source):
        with open_inflated(raw) as stream:
            yield stream, lambda: None
        return
    recorder: gzindex_isal.RecordingInflater | gzindex.IndexingInflater
    if _checkpoints(source):
        recorder = gzindex_isal.open_recording(raw)
    else:
        recorder = gzindex.open_indexing(raw)
    with recorder as stream:
        stored: list[gzindex.SeekIndex] = []

        def recorded() -> gzindex.SeekIndex | None:
            if not stored and stream.index is not None:
                _store(source, stream.index)
                stored.append(stream.index)
            return stream.index

        yield stream, recorded
