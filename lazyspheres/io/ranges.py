"""Byte-range plans for gathering voxels from an uncompressed NIfTI: pure numpy, no I/O.

An object store answers each request after a fixed latency (tens of milliseconds), so asking
for every run of sphere voxels separately (thousands per volume) would be hopeless. The plan
here turns the voxels wanted in one volume into contiguous *runs*, coalesces runs whose gaps
are smaller than ``max_gap`` into byte ranges no longer than ``max_block`` (fetching a short
gap costs less than another request), repeats that pattern for each volume of a time block,
and coalesces again across volumes. :func:`gather_values` then picks the wanted values out
of the fetched bytes.

Merging is done by :func:`fsspec.utils.merge_offset_ranges` (the same greedy rule fsspec uses
for Parquet reads), once on the per-volume pattern and once on the block's few ranges, so its
Python loop never sees more than a few thousand ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fsspec.utils import merge_offset_ranges

__all__ = [
    "RangePlan",
    "gather_values",
    "merge_ranges",
    "split_ranges",
    "volume_offsets",
    "voxel_runs",
]


def volume_offsets(vox_offset: int, volume_bytes: int, t0: int, t1: int) -> np.ndarray:
    """Byte offsets of volumes ``t0:t1`` in a NIfTI file (int64): the one place they are made."""
    return vox_offset + np.arange(t0, t1, dtype=np.int64) * volume_bytes


def voxel_runs(flat_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split flat voxel indices into contiguous runs ``[start, stop)`` (element units).

    Parameters
    ----------
    flat_indices : numpy.ndarray
        Flat (Fortran-order) voxel indices within one volume, in any order, repeats allowed.

    Returns
    -------
    starts, stops : numpy.ndarray
        Sorted int64 run bounds.
    """
    unique = np.unique(np.asarray(flat_indices, dtype=np.int64))
    if unique.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    starts = unique[np.concatenate(([0], breaks))]
    stops = unique[np.concatenate((breaks - 1, [unique.size - 1]))] + 1
    return starts, stops


def merge_ranges(
    starts: np.ndarray, ends: np.ndarray, max_gap: int, max_block: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Coalesce byte ranges (fsspec's greedy rule): gaps up to ``max_gap``, up to ``max_block``."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.size == 0:
        return starts, ends
    _, merged_starts, merged_ends = merge_offset_ranges(
        [""] * starts.size,
        starts.tolist(),
        ends.tolist(),
        max_gap=max_gap,
        max_block=max_block,
        sort=True,
    )
    return np.asarray(merged_starts, dtype=np.int64), np.asarray(merged_ends, dtype=np.int64)


@dataclass(frozen=True)
class RangePlan:
    """Byte ranges covering a fixed set of voxels in every volume of a NIfTI data block.

    Build it with :meth:`from_voxels`; ask :meth:`block` for the coalesced ranges of volumes
    ``t0`` to ``t1``.

    Attributes
    ----------
    volume_starts, volume_ends : numpy.ndarray
        Coalesced byte ranges within one volume (relative to the volume's first byte).
    volume_bytes : int
        Bytes of one stored volume.
    vox_offset : int
        Byte offset of the first voxel in the file.
    max_gap, max_block : int
        Coalescing rule: ranges separated by at most ``max_gap`` bytes are merged, as long
        as the merged range stays within ``max_block`` bytes.
    """

    volume_starts: np.ndarray
    volume_ends: np.ndarray
    volume_bytes: int
    vox_offset: int
    max_gap: int
    max_block: int

    @classmethod
    def from_voxels(
        cls,
        flat_indices: np.ndarray,
        *,
        itemsize: int,
        volume_voxels: int,
        vox_offset: int,
        max_gap: int,
        max_block: int,
    ) -> RangePlan:
        """Plan the ranges holding ``flat_indices`` (Fortran-order indices in a volume)."""
        if max_block < itemsize or max_gap < 0:
            raise ValueError(
                f"max_block ({max_block}) must hold one value and max_gap ({max_gap}) must "
                "be non-negative."
            )
        starts, stops = voxel_runs(flat_indices)
        if starts.size and (starts[0] < 0 or stops[-1] > volume_voxels):
            raise IndexError(
                f"voxel indices span [{starts[0]}, {stops[-1]}) outside a volume of "
                f"{volume_voxels} voxels."
            )
        # A run longer than max_block is cut into pieces first, so every request is bounded
        # (pieces hold whole values: max_block rounded down to the item size).
        first, last = split_ranges(
            starts * itemsize, stops * itemsize, max(itemsize, max_block - max_block % itemsize)
        )
        volume_starts, volume_ends = merge_ranges(first, last, max_gap, max_block)
        return cls(
            volume_starts=volume_starts,
            volume_ends=volume_ends,
            volume_bytes=volume_voxels * itemsize,
            vox_offset=vox_offset,
            max_gap=max_gap,
            max_block=max_block,
        )

    @property
    def bytes_per_volume(self) -> int:
        """Bytes fetched per volume before merging across volumes."""
        return int((self.volume_ends - self.volume_starts).sum())

    def block(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        """Absolute, sorted, coalesced byte ranges ``[start, end)`` for volumes ``t0:t1``."""
        if t1 <= t0 or self.volume_starts.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        origins = volume_offsets(self.vox_offset, self.volume_bytes, t0, t1)
        starts = (origins[:, None] + self.volume_starts[None, :]).ravel()
        ends = (origins[:, None] + self.volume_ends[None, :]).ravel()
        return merge_ranges(starts, ends, self.max_gap, self.max_block)


def split_ranges(
    starts: np.ndarray, ends: np.ndarray, max_block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ranges ``[start, end)`` into consecutive pieces of at most ``max_block`` bytes."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    pieces = np.maximum(1, -(-(ends - starts) // max_block))
    first = np.repeat(starts, pieces) + _ramp(pieces) * max_block
    last = np.minimum(first + max_block, np.repeat(ends, pieces))
    return first, last


def _ramp(counts: np.ndarray) -> np.ndarray:
    """``[0, 1, ..., c0-1, 0, 1, ..., c1-1, ...]`` for ``counts = [c0, c1, ...]``."""
    total = int(counts.sum())
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - offsets


def gather_values(
    buffers: list[bytes],
    starts: np.ndarray,
    positions: np.ndarray,
    dtype: np.dtype,
) -> np.ndarray:
    """Pick values out of fetched byte ranges.

    Parameters
    ----------
    buffers : list of bytes
        Contents of the ranges starting at ``starts`` (sorted, non-overlapping).
    starts : numpy.ndarray
        Absolute byte offset of each buffer.
    positions : numpy.ndarray
        Absolute byte offsets of the wanted values (any shape); each must lie inside one
        buffer, at a whole number of items from the buffer's start.
    dtype : numpy.dtype
        Stored dtype (with byte order).

    Returns
    -------
    numpy.ndarray
        Values of shape ``positions.shape``.
    """
    itemsize = np.dtype(dtype).itemsize
    lengths = np.fromiter((len(b) for b in buffers), dtype=np.int64, count=len(buffers))
    flat = np.asarray(positions, dtype=np.int64).ravel()
    where = np.searchsorted(starts, flat, side="right") - 1
    if flat.size and (where.min() < 0 or np.any(flat + itemsize > starts[where] + lengths[where])):
        raise ValueError("A wanted value lies outside the fetched byte ranges.")
    # Pick from each buffer in place (joining them first would copy every fetched byte).
    order = np.argsort(where, kind="stable")
    bounds = np.searchsorted(where[order], np.arange(len(buffers) + 1))
    out = np.empty(flat.size, dtype=dtype)
    for index, buffer in enumerate(buffers):
        chosen = order[bounds[index] : bounds[index + 1]]
        if chosen.size == 0:
            continue
        within = flat[chosen] - starts[index]
        if np.any(within % itemsize):
            raise ValueError("A wanted value is not a whole number of items into its range.")
        values = np.frombuffer(buffer, dtype=dtype, count=len(buffer) // itemsize)
        out[chosen] = values[within // itemsize]
    return out.reshape(np.shape(positions))
