"""Random access into a gzip stream through a seek-point index (``.nii.gz`` volumes in O(1)).

A gzip member is one DEFLATE stream: to reach decompressed byte ``n`` one must inflate from a
point where the decoder state is known. A seek-point index stores such points (the
compressed position, to the bit, of a deflate block boundary, its decompressed offset, and
the 32 KiB window of history the next blocks may refer to), as zran, indexed_gzip and
rapidgzip do. With it, bytes ``[start, stop)`` cost O(stop - start + one spacing).

Engine: rapidgzip (a well-kept library, chosen over indexed_gzip and over a hand-written
index). Measured with benchmarks/bench_gzindex.py on the MNI 2 mm float32 runs (2 shared
cores, see benchmarks/README.md):

* it builds an index on demand in parallel (1.2-1.4x one plain ISA-L pass), which
  indexed_gzip cannot (its zlib-based single pass took 18 s where ISA-L took 4.8 s);
* its gztool export stores windows compressed: 0.018 % of the file (indexed_gzip's format
  keeps raw 32 KiB windows, 2.7 % at rapidgzip's spacing);
* one volume is read in 0.03-0.04 s at any t of T=1200 (only the seek points around the
  range are imported: :mod:`lazyspheres.io.gzindex_gztool`);
* it reads through any Python file object (``seek``/``read``), so an fsspec file turns the
  index into range requests for a remote file.

Its sequential pass can record the index as a by-product (:func:`open_indexing`). Measured
inside ``extract`` (benchmarks/bench_byproduct.py, 2 cores, MNI 2 mm runs), no
configuration of rapidgzip 0.16 is both as fast as ISA-L's pass (within 10 %) and within
400 MB:

* rapidgzip keeps up to 16 decoded chunks cached (its sequential-access detection misses
  chunks it split into seek points), plus its prefetches: its memory grows with the chunk
  size (~3.5x its compressed size here, times ~17) and the threads, e.g. +320-400 MB with
  2 threads and 4 MiB chunks, the only parallel setting near ISA-L's time;
* with one thread and 2 MiB chunks (:data:`RECORD_SPACING`) it stays near +120 MB, flat in
  T, but decodes in the caller's thread: :class:`~lazyspheres.io.readahead.ReadAhead`
  moves that into a helper thread (as ISA-L's threaded reader does), and it still costs
  1.3-1.5x ISA-L's CPU (seek points, checksums, copies), 1.2x and more in wall time.

So the by-product is recorded by ISA-L itself (:mod:`lazyspheres.io.gzindex_isal`): the
streaming pass drives ISA-L's inflater through ctypes and, every 16 MiB of output, copies
its decoder state (one plain C struct holding the bit buffer, Huffman tables and the last
32 KiB of output) as a checkpoint, a :class:`CheckpointIndex`. That costs a few % of the
plain ISA-L pass, the index is ~0.3 % of the file, and it is on by default for local files
(``LAZYSPHERES_GZINDEX_BYPRODUCT=0`` turns it off; see
:func:`lazyspheres.io.readers.gzaccess.record_while_streaming`). rapidgzip's recording pass
(:func:`open_indexing`) remains, opt-in, for remote files and where that engine is
unavailable (no python-isal, or its self-test failed); the first random access without an
index builds one on demand with rapidgzip (:func:`build_index`, in parallel); both kinds
are stored alike (:mod:`.gzindex_cache`) and read through :func:`read_range`.

The standard library cannot build an index (``zlib`` has no ``Z_BLOCK`` flush to stop at a
deflate block boundary), so without rapidgzip reads fall back to inflating from byte 0 and
warn once (:class:`~lazyspheres.errors.LazySpheresWarning`).

Public API (stable; the reader seam builds on it):

* :class:`GzipIndex` — immutable, picklable; ``to_bytes`` / ``from_bytes``;
* :class:`CheckpointIndex` — the same duties, for ISA-L checkpoints; :data:`SeekIndex`
  names either, :func:`load_index` reads either;
* :func:`build_index` — on demand, in parallel;
* :func:`open_indexing` — a sequential inflated stream that records the index on the way;
* :func:`read_range` and :func:`open_indexed` — random access;
* :func:`observe_reads` — a hook reporting where each range read started inflating;
* persistence lives in :mod:`lazyspheres.io.gzindex_cache`.

Typical use by a reader (``source`` a :class:`~lazyspheres.io.sources.ByteSource`)::

    from lazyspheres.io import gzindex, gzindex_cache

    index = gzindex_cache.find_index(
        source.location, source.fingerprint, compressed_size=source.size,
        local=source.is_local,
    )
    if index is None:
        index = gzindex.build_index(source.open)
        gzindex_cache.store_cached_index(
            gzindex_cache.cache_key(source.location, source.fingerprint), index
        )
    data = gzindex.read_range(source.open, index, start, stop)  # in any task, any process
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import operator
import os
import struct
import threading
import warnings
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lazyspheres.errors import LazySpheresWarning
from lazyspheres.io import gzindex_isal
from lazyspheres.io.binary import BinaryStream, skip_then_fill
from lazyspheres.io.gzindex_gztool import GztoolLayout, parse_layout, sub_index
from lazyspheres.io.gzindex_isal import (
    CheckpointIndex,
    IndexedAtEnd,
    compressed_size,
    pack_framed,
    require_size,
    unpack_framed,
)
from lazyspheres.io.readahead import ReadAhead

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "RECORD_SPACING",
    "CheckpointIndex",
    "GzipIndex",
    "IndexingInflater",
    "RangeRead",
    "SeekIndex",
    "build_index",
    "index_available",
    "load_index",
    "observe_reads",
    "open_indexed",
    "open_indexing",
    "read_range",
]

OpenRaw = Callable[[], BinaryStream]
#: Seek-point spacing (rapidgzip chunk size, compressed bytes) of a recording pass: its memory
#: grows with it (see above); at 2 MiB the index is ~0.03 % of an MNI 2 mm float32 run.
RECORD_SPACING = 2 * 2**20
_MAGIC = b"LSGZIDX1"
_FORMAT = "rapidgzip-gztool"
_FALLBACK_WARNED = threading.Event()


def index_available() -> bool:
    """Whether a seek-point index can be built and used here (rapidgzip is installed)."""
    return importlib.util.find_spec("rapidgzip") is not None


@dataclass(frozen=True)
class GzipIndex:
    """Seek points of one gzip file, as exported by rapidgzip.

    Attributes
    ----------
    data : bytes
        The index in rapidgzip's gztool format (bit offsets, compressed 32 KiB windows).
    points : tuple of (int, int)
        ``(compressed bit offset, decompressed byte offset)`` of each seek point, ascending.
    uncompressed_size : int
        Decompressed size of the whole file (all members).
    compressed_size : int
        Size of the compressed file the index was built from (checked before use).
    """

    data: bytes
    points: tuple[tuple[int, int], ...]
    uncompressed_size: int
    compressed_size: int

    @property
    def nbytes(self) -> int:
        """Size of the index itself, in bytes."""
        return len(self.data) + 16 * len(self.points)

    @functools.cached_property
    def layout(self) -> GztoolLayout:
        """Where each seek point lies in :attr:`data` (parsed once, on first use)."""
        return parse_layout(self.data)

    def seek_point(self, offset: int) -> tuple[int, int]:
        """The last seek point at or before decompressed ``offset``: (bit offset, offset)."""
        at = bisect_right(self.points, offset, key=operator.itemgetter(1)) - 1
        return self.points[at] if at >= 0 else (0, 0)

    def to_bytes(self) -> bytes:
        """Serialise (magic, JSON metadata, seek points, rapidgzip's index)."""
        meta = {
            "format": _FORMAT,
            "uncompressed_size": self.uncompressed_size,
            "compressed_size": self.compressed_size,
            "points": len(self.points),
            "data": len(self.data),
        }
        table = struct.pack(f"<{2 * len(self.points)}Q", *(v for p in self.points for v in p))
        return pack_framed(_MAGIC, meta, table + self.data)

    @classmethod
    def from_bytes(cls, blob: bytes) -> GzipIndex:
        """Read an index written by :meth:`to_bytes`.

        Raises
        ------
        ValueError
            The bytes are not a complete lazyspheres gzip index of a known format.
        """
        meta, start = unpack_framed(blob, _MAGIC, _FORMAT, "gzip index")
        try:
            count = int(meta["points"])
            values = struct.unpack_from(f"<{2 * count}Q", blob, start)
            start += 16 * count
            data = bytes(blob[start:])
            if len(data) != int(meta["data"]):
                raise ValueError(f"gzip index data has {len(data)} bytes, expected {meta['data']}")
            points = tuple(zip(values[0::2], values[1::2], strict=True))
            index = cls(data, points, int(meta["uncompressed_size"]), int(meta["compressed_size"]))
            index.layout  # noqa: B018  (validates the rapidgzip part, and keeps it parsed)
            return index
        except (struct.error, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a lazyspheres gzip index: {error}") from error


#: Either kind of index: rapidgzip's seek points, or checkpoints of ISA-L's inflater
#: (:mod:`lazyspheres.io.gzindex_isal`, recorded by a streaming pass).
SeekIndex = GzipIndex | CheckpointIndex


def load_index(blob: bytes) -> SeekIndex:
    """Read either kind of index from the bytes its ``to_bytes`` wrote.

    Raises
    ------
    ValueError
        Not an index, or a checkpoint index this process cannot use (stale: recorded by
        another python-isal).
    """
    if bytes(blob[: len(_MAGIC)]) == _MAGIC:
        return GzipIndex.from_bytes(blob)
    return CheckpointIndex.from_bytes(blob)


class _Rapidgzip(BinaryStream, Protocol):
    """What is used of a ``rapidgzip.RapidgzipFile`` (the package ships no type hints)."""

    def export_index(self, file: io.BytesIO, index_format: int, /) -> None: ...

    def import_index(self, file: io.BytesIO, /) -> None: ...

    def block_offsets(self) -> dict[int, int]: ...

    def size(self) -> int: ...

    def __enter__(self) -> _Rapidgzip: ...


def _export(reader: _Rapidgzip, compressed_size: int) -> GzipIndex:
    import rapidgzip

    sink = io.BytesIO()
    reader.export_index(sink, rapidgzip.IndexFormat.GZTOOL)
    points = tuple(sorted((int(b), int(d)) for b, d in reader.block_offsets().items()))
    return GzipIndex(sink.getvalue(), points, int(reader.size()), compressed_size)


def _rapidgzip_file(raw: BinaryStream, threads: int, spacing: int | None = None) -> _Rapidgzip:
    import rapidgzip

    chunk_size = int(spacing) if spacing else 4 * 2**20  # rapidgzip's default
    reader: _Rapidgzip = rapidgzip.RapidgzipFile(raw, max(1, threads), chunk_size=chunk_size)
    return reader


def build_index(
    open_raw: OpenRaw, *, spacing: int | None = None, threads: int | None = None
) -> GzipIndex:
    """Build the seek-point index of a gzip file by inflating it once (in parallel).

    Parameters
    ----------
    open_raw : callable
        Returns a fresh, seekable binary file object of the compressed bytes (a local file
        or an fsspec file); it is closed here.
    spacing : int, optional
        rapidgzip's chunk size in compressed bytes (default 4 MiB); seek points are at
        least this dense.
    threads : int, optional
        Inflate threads (default: the number of CPUs, at most 8).

    Raises
    ------
    ImportError
        rapidgzip is not installed (``pip install rapidgzip``).
    """
    if not index_available():
        raise ImportError(
            "Building a gzip index needs rapidgzip: `pip install rapidgzip` (a lazyspheres "
            "dependency), or convert the image to .nii or Zarr."
        )
    threads = threads or min(os.cpu_count() or 1, 8)
    with contextlib.closing(open_raw()) as raw:
        size = compressed_size(raw)
        with _rapidgzip_file(raw, threads, spacing) as reader:
            reader.seek(0, os.SEEK_END)
            return _export(reader, size)


class IndexingInflater(IndexedAtEnd[GzipIndex]):
    """A sequential inflated stream that records a :class:`GzipIndex` as it goes.

    Read it like any binary stream; once it has been read to the end, :attr:`index` holds
    the index (``None`` before, or when the source cannot seek or rapidgzip is missing:
    then the stream is a plain inflater from :func:`lazyspheres.io.inflate.open_inflated`).
    With one thread, rapidgzip decodes in the calling thread, so a
    :class:`~lazyspheres.io.readahead.ReadAhead` helper reads it ahead: decoding overlaps
    with what the caller does with the bytes.
    """

    def __init__(
        self,
        raw: BinaryStream,
        *,
        threads: int = 1,
        spacing: int | None = RECORD_SPACING,
        on_index: Callable[[GzipIndex], None] | None = None,
    ) -> None:
        super().__init__(on_index)
        seekable = bool(getattr(raw, "seekable", lambda: False)())
        self._decoder: _Rapidgzip | None = None
        if seekable and index_available():
            self._size: int | None = compressed_size(raw)
            self._decoder = _rapidgzip_file(raw, threads, spacing)
            # one thread decodes in the caller's thread: read ahead in a helper instead
            self._reader = ReadAhead(self._decoder) if threads == 1 else self._decoder
        else:
            from lazyspheres.io.inflate import open_inflated

            self._size = None
            self._reader = open_inflated(raw)

    def _finish(self) -> GzipIndex | None:
        decoder, size = self._decoder, self._size
        return _export(decoder, size) if decoder and size else None

    def close(self) -> None:
        """Close the inflater (not ``raw``, which belongs to the caller)."""
        closed = self.closed
        super().close()
        if not closed and self._decoder is not None:
            self._decoder.close()


def open_indexing(
    raw: BinaryStream,
    *,
    threads: int = 1,
    spacing: int | None = RECORD_SPACING,
    on_index: Callable[[GzipIndex], None] | None = None,
) -> IndexingInflater:
    """Open ``raw`` (compressed, at position 0) for one sequential pass that records the index.

    One thread (decoding in a read-ahead helper) and :data:`RECORD_SPACING` keep rapidgzip's
    memory bounded (+~120 MB, flat in the file's length); more threads or a wider spacing
    are faster on more cores but cache more decoded chunks (see the module docstring).
    ``on_index`` is called with the index when the stream has been read to its end (e.g.
    to cache it).
    """
    return IndexingInflater(raw, threads=threads, spacing=spacing, on_index=on_index)


@dataclass(frozen=True)
class RangeRead:
    """What one :func:`read_range` did: the range, and where it started inflating.

    ``inflate_from`` is the decompressed offset of the seek point used (0 when reading
    without an index); ``inflated`` the decompressed bytes produced to serve the range.
    """

    start: int
    stop: int
    inflate_from: int
    inflated: int


_OBSERVERS: list[Callable[[RangeRead], None]] = []
_OBSERVERS_LOCK = threading.Lock()


@contextlib.contextmanager
def observe_reads() -> Iterator[list[RangeRead]]:
    """Collect a :class:`RangeRead` for every range read (all threads) inside the block.

    Tests use it to prove a read did not inflate from the start of the file.
    """
    seen: list[RangeRead] = []
    with _OBSERVERS_LOCK:
        _OBSERVERS.append(seen.append)
    try:
        yield seen
    finally:
        with _OBSERVERS_LOCK:
            _OBSERVERS.remove(seen.append)


def _report(read: RangeRead) -> None:
    with _OBSERVERS_LOCK:
        observers = list(_OBSERVERS)
    for observer in observers:
        observer(read)


def open_indexed(
    raw: BinaryStream,
    index: GzipIndex,
    *,
    threads: int = 1,
    span: tuple[int, int] | None = None,
) -> BinaryStream:
    """A seekable inflated view of ``raw`` through ``index`` (``seek``, ``read``, ``readinto``).

    The caller closes it (before closing ``raw``).

    Parameters
    ----------
    raw : binary file object
        The compressed bytes (seekable).
    index : GzipIndex
        Its index.
    threads : int
        rapidgzip's inflate threads.
    span : (int, int), optional
        When only decompressed bytes ``[start, stop)`` will be read, import just the seek
        points around them (instant, where the whole index takes ~0.1 s at 1000 points).

    Raises
    ------
    ValueError
        The index belongs to another file (its compressed size differs).
    """
    require_size(raw, index.compressed_size)
    data = index.data if span is None else sub_index(index.data, index.layout, *span)
    reader = _rapidgzip_file(raw, threads)
    reader.import_index(io.BytesIO(data))
    return reader


def read_range(
    open_raw: OpenRaw,
    index: SeekIndex | None,
    start: int,
    stop: int,
    out: WriteableBuffer | None = None,
) -> bytes | memoryview:
    """Decompressed bytes ``[start, stop)`` of a gzip file, from the nearest seek point.

    Parameters
    ----------
    open_raw : callable
        Returns a fresh binary file object of the compressed bytes (closed here). Calls
        from several threads are safe: each opens its own handle.
    index : GzipIndex, CheckpointIndex or None
        The file's index. ``None`` (or no rapidgzip for a :class:`GzipIndex`, or another
        python-isal than the one that recorded a :class:`CheckpointIndex`) inflates from
        byte 0, with a :class:`~lazyspheres.errors.LazySpheresWarning` the first time.
    start, stop : int
        Decompressed byte range, ``0 <= start <= stop``.
    out : writable buffer, optional
        Filled in place (``stop - start`` bytes) and returned as a memoryview.

    Raises
    ------
    ValueError
        Bad range, or a range past the end of the decompressed data.
    EOFError
        Without an index, the data ended before ``stop``.
    """
    if not 0 <= start <= stop:
        raise ValueError(f"Bad decompressed byte range [{start}, {stop}).")
    length = stop - start
    target = memoryview(out).cast("B") if out is not None else memoryview(bytearray(length))
    if len(target) != length:
        raise ValueError(f"out has {len(target)} bytes, the range [{start}, {stop}) {length}.")
    if index is not None and stop > index.uncompressed_size:
        raise ValueError(
            f"Range [{start}, {stop}) ends past the decompressed size {index.uncompressed_size}."
        )
    if length == 0:
        return target if out is not None else b""
    if isinstance(index, CheckpointIndex) and index.usable:
        inflate_from = gzindex_isal.read_into(open_raw, index, start, target)
    elif isinstance(index, GzipIndex) and index_available():
        inflate_from = index.seek_point(start)[1]
        with (
            contextlib.closing(open_raw()) as raw,
            open_indexed(raw, index, span=(start, stop)) as reader,
        ):
            reader.seek(start)
            skip_then_fill(reader.readinto, start, start, target)
    else:
        inflate_from = 0
        _warn_sequential(index)
        _read_sequential(open_raw, start, target)
    _report(RangeRead(start, stop, inflate_from, stop - inflate_from))
    return target if out is not None else target.tobytes()


def _read_sequential(open_raw: OpenRaw, start: int, target: memoryview) -> None:
    from lazyspheres.io.inflate import open_inflated

    with contextlib.closing(open_raw()) as raw, open_inflated(raw, engine="zlib") as stream:
        skip_then_fill(stream.readinto, 0, start, target)


def _warn_sequential(index: SeekIndex | None) -> None:
    if _FALLBACK_WARNED.is_set():
        return
    _FALLBACK_WARNED.set()
    if index is None:
        why = "it has no seek-point index"
    elif isinstance(index, CheckpointIndex):
        why = f"its index was recorded by {index.engine}, not usable with this python-isal"
    else:
        why = "rapidgzip is not installed"
    warnings.warn(
        f"Reading a range of a .nii.gz from its start, because {why}: each such read "
        "inflates everything before it. Install rapidgzip (`pip install rapidgzip`) so "
        "lazyspheres can index the file, or convert it to .nii or Zarr.",
        LazySpheresWarning,
        stacklevel=3,
    )
