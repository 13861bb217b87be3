"""Reading NIfTI bytes from fsspec URLs (``s3://``, ``gs://``, ``https://``, ``memory://`` ...).

Three access patterns, each sized for object stores (tens of milliseconds per request,
hundreds of MB/s per connection):

probe
    The gzip magic and the header are read through a file opened with a small block
    (:data:`PROBE_BLOCK_BYTES`), so opening an image costs two small GETs, not the 50 MB
    read-ahead block s3fs would fetch by default.
stream
    A ``.nii.gz`` is inflated in one sequential pass (:func:`open_stream`) over blocks of
    :data:`STREAM_BLOCK_BYTES` fetched by helper threads :data:`STREAM_PREFETCH` at a time
    ahead of the inflater: each byte fetched once, in large GETs, nothing written to disk
    and at most ``STREAM_PREFETCH + 1`` blocks in memory. For a local copy instead, chain
    fsspec's cache: ``"simplecache::s3://bucket/bold.nii.gz"``.
ranges
    For an uncompressed ``.nii``, the sphere voxels' byte ranges are planned and coalesced
    by :class:`~lazyspheres.io.ranges.RangePlan` and fetched with ``fs.cat_ranges``, which
    async filesystems (s3fs, gcsfs, HTTP) run concurrently; per time block of about
    :data:`RANGE_BLOCK_BYTES` fetched bytes, so memory stays flat as runs get longer.

Consistency: every source carries the fingerprint (size and ETag, generation or mtime)
taken when it was opened. Streams re-check it when they open (s3fs then pins the ETag with
``If-Match`` on every GET); range reads re-check it after each block. A mismatch, or an
object that vanished, raises :class:`~lazyspheres.errors.SourceChangedError`.

Errors from the filesystem are translated into messages naming the URL and the fix
(:func:`translated_errors`). On top of the filesystems' own retries (s3fs/botocore: 503s
and connection errors; gcsfs: 5xx and 429; fsspec's HTTP filesystem: none), every range
read goes through :func:`lazyspheres.io.remote_retry.read_ranges`, which fetches again,
with backoff, the ranges that failed transiently or came back short (a body reset or cut
short mid-way), and after its retries raises :class:`~lazyspheres.errors.RemoteReadError`
naming the object, the bytes and the fault.

The knobs are module constants read at call time (so tests and benchmarks can vary them),
each overridable by an environment variable ``LAZYSPHERES_<NAME>`` (:func:`setting`).
Errors are translated by :mod:`lazyspheres.io.remote_errors`; the file objects live in
:mod:`lazyspheres.io.remote_files`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from lazyspheres.errors import RemoteReadError, TruncatedImageError
from lazyspheres.io import remote_files
from lazyspheres.io.ranges import (
    RangePlan,
    gather_values,
    merge_ranges,
    split_ranges,
    volume_offsets,
)
from lazyspheres.io.remote_errors import translated_errors
from lazyspheres.io.remote_fs import (
    check_fingerprint,
    ensure_unchanged,
    filesystem,
    fingerprint,
    stat,
)
from lazyspheres.io.remote_retry import read_ranges

if TYPE_CHECKING:
    from lazyspheres.io.header import NiftiLayout
    from lazyspheres.io.sources import ByteSource

__all__ = [
    "PROBE_BLOCK_BYTES",
    "RANGE_BLOCK_BYTES",
    "RANGE_MAX_BLOCK",
    "RANGE_MAX_GAP",
    "STREAM_BLOCK_BYTES",
    "STREAM_PREFETCH",
    "check_fingerprint",
    "ensure_unchanged",
    "fetch_ranges",
    "filesystem",
    "fingerprint",
    "iter_gathered",
    "open_probe",
    "open_stream",
    "read_volumes",
    "setting",
    "stat",
    "translated_errors",
]

# Block of the file used to read the magic number and the header.
PROBE_BLOCK_BYTES = 64 * 2**10
# Streaming reads of .nii.gz: request size, and how many requests run ahead of the inflater
# (several, because one connection to an object store is slower than one core inflating).
STREAM_BLOCK_BYTES = 16 * 2**20  # half the requests of 8 MiB, no slower (benchmarks/README)
STREAM_PREFETCH = 4
# Range reads of .nii: a gap shorter than this is fetched rather than paying one more
# request (about what a connection transfers during one request's latency)...
RANGE_MAX_GAP = 2 * 2**20
# ...and no request is longer than this, so a block's requests run concurrently.
RANGE_MAX_BLOCK = 8 * 2**20
# Bytes fetched per time block (memory in use, and the unit between consistency checks).
RANGE_BLOCK_BYTES = 64 * 2**20


def setting(name: str) -> int:
    """A knob: ``$LAZYSPHERES_<NAME>`` if set (bytes or a count), else this module's value.

    For example ``LAZYSPHERES_RANGE_MAX_GAP=65536`` trades more requests for fewer bytes
    (where egress is billed), ``LAZYSPHERES_STREAM_PREFETCH=8`` keeps more requests in
    flight on a fast link.
    """
    text = os.environ.get(f"LAZYSPHERES_{name}")
    if text:
        try:
            return int(text)
        except ValueError:
            raise ValueError(
                f"LAZYSPHERES_{name}={text!r} is not an integer number of bytes or requests."
            ) from None
    return int(globals()[name])


# ---------------------------------------------------------------------------- file objects
def open_probe(source: ByteSource) -> io.RawIOBase:
    """Open a URL for small reads at its start (magic number, header).

    Reads are ranged GETs of at least :data:`PROBE_BLOCK_BYTES` through fsspec's read-ahead
    cache; with the size known from opening, no further HEAD request is made.
    """
    block = setting("PROBE_BLOCK_BYTES")
    if source.size is None:
        return remote_files.open_checked(source, block, "readahead", check=False)
    return remote_files.probe_reader(source, block)


def open_stream(source: ByteSource) -> io.RawIOBase:
    """Open a URL for one sequential pass, checking its fingerprint.

    The returned reader fetches blocks of :data:`STREAM_BLOCK_BYTES` ahead of the reader,
    :data:`STREAM_PREFETCH` at a time, so the network keeps busy while the inflater works.
    """
    block = setting("STREAM_BLOCK_BYTES")
    checked = remote_files.open_checked(source, block, "none", check=True)
    return remote_files.prefetch_reader(checked, source, block, setting("STREAM_PREFETCH"))


# ---------------------------------------------------------------------------- ranges
def fetch_ranges(source: ByteSource, starts: np.ndarray, ends: np.ndarray) -> list[bytes]:
    """Fetch byte ranges ``[start, end)`` of a URL (concurrently on async filesystems).

    Raises
    ------
    SourceChangedError
        The object changed or vanished since it was opened.
    TruncatedImageError
        The object is shorter than the ranges (and did not change).
    """
    if len(starts) == 0:
        return []
    fs, path = filesystem(source.location, source.storage_options)

    def fetch(first: list[int], last: list[int]) -> list[bytes | BaseException]:
        return fs.cat_ranges([path] * len(first), first, last, on_error="return")

    with translated_errors(source.location, source.storage_options, opened=True):
        try:
            buffers = read_ranges(
                fetch,
                np.asarray(starts).tolist(),
                np.asarray(ends).tolist(),
                location=source.location,
                size=source.size,
            )
        except RemoteReadError:
            ensure_unchanged(source)  # a replaced object is a change, not a network fault
            raise
    lengths = np.fromiter((len(b) for b in buffers), dtype=np.int64, count=len(buffers))
    short = np.flatnonzero(lengths != np.asarray(ends) - np.asarray(starts))
    if short.size:
        ensure_unchanged(source)  # a replaced object is a change, not a truncation
        first = int(short[0])
        raise TruncatedImageError(
            f"{source.location}: bytes {int(starts[first])}-{int(ends[first])} were asked but "
            f"only {int(lengths[first])} came back: the object ends at byte "
            f"{int(starts[first]) + int(lengths[first])}. The file is truncated; upload it again."
        )
    return buffers


def iter_gathered(
    source: ByteSource, layout: NiftiLayout, flat_indices: np.ndarray, start: int, stop: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t0, values)`` raw values of voxels ``flat_indices``, by coalesced ranges.

    The ranges of each time block are fetched together (the next block while the current
    one is used), and the fingerprint is checked after each block.
    """
    itemsize = layout.raw_dtype.itemsize
    flat = np.asarray(flat_indices, dtype=np.int64)
    plan = RangePlan.from_voxels(
        flat,
        itemsize=itemsize,
        volume_voxels=layout.volume_voxels,
        vox_offset=layout.vox_offset,
        max_gap=setting("RANGE_MAX_GAP"),
        max_block=setting("RANGE_MAX_BLOCK"),
    )
    per_block = max(1, setting("RANGE_BLOCK_BYTES") // max(1, plan.bytes_per_volume))
    within = flat * itemsize
    blocks = [(t0, min(stop, t0 + per_block)) for t0 in range(start, stop, per_block)]

    def fetch(t0: int, t1: int) -> tuple[np.ndarray, list[bytes]]:
        starts, ends = plan.block(t0, t1)
        return starts, fetch_ranges(source, starts, ends)

    # The next block is fetched while this one is checked, gathered and consumed.
    if not blocks:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(fetch, *blocks[0])
        for index, (t0, t1) in enumerate(blocks):
            starts, buffers = pending.result()
            if index + 1 < len(blocks):
                pending = pool.submit(fetch, *blocks[index + 1])
            ensure_unchanged(source)
            origins = volume_offsets(layout.vox_offset, layout.volume_bytes, t0, t1)
            positions = origins[:, None] + within[None, :]
            yield t0, gather_values(buffers, starts, positions, layout.raw_dtype)


def read_volumes(
    source: ByteSource,
    layout: NiftiLayout,
    t0: int,
    t1: int,
    first_voxel: int = 0,
    stop_voxel: int | None = None,
) -> np.ndarray:
    """Raw values of voxels ``first_voxel:stop_voxel`` (flat, F order) of volumes ``t0:t1``.

    Returns an array of shape ``(t1 - t0, stop_voxel - first_voxel)``; a z-slab of whole
    slices is one contiguous range per volume, fetched in pieces of at most
    :data:`RANGE_MAX_BLOCK` bytes, concurrently.
    """
    stop_voxel = layout.volume_voxels if stop_voxel is None else stop_voxel
    itemsize = layout.raw_dtype.itemsize
    origins = volume_offsets(layout.vox_offset, layout.volume_bytes, t0, t1)
    # Adjacent slabs (whole volumes) make one range, then cut into concurrent pieces.
    starts, ends = merge_ranges(
        origins + first_voxel * itemsize, origins + stop_voxel * itemsize, max_gap=0
    )
    starts, ends = split_ranges(starts, ends, setting("RANGE_MAX_BLOCK"))
    buffers = fetch_ranges(source, starts, ends)
    ensure_unchanged(source)
    joined = bytearray().join(buffers)  # writable: the caller owns the block
    values = np.frombuffer(joined, dtype=layout.raw_dtype)
    return values.reshape(t1 - t0, stop_voxel - first_voxel)
