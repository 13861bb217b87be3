"""Time-major to voxel-major staging of the in-mask voxels, through a scratch file.

A 4D image is stored time-major (a volume after another; a gzip stream can only be read
that way), but cleaning filters each voxel's *whole* time series. :func:`stage_image` makes
one streaming pass over the volumes, and writes the in-mask voxels of each block of volumes
into a private scratch file laid out voxel-block-major: block ``b`` of voxels occupies one
contiguous ``(T, n_b)`` region, so that :meth:`Scratch.read_block` later gets a voxel block's
full time series in one read. The sphere means of the seeds come from the same pass.

Why a plain file and not a temporary Zarr array: the staging is private, uncompressed and
read back exactly once per block, so chunk metadata, codecs and an array library add work
and nothing else. ``os.pwrite``/``os.pread`` at computed offsets keep memory to one block
of volumes (pass 1) or one voxel block (pass 2); the file is never memory-mapped, because
mapped pages count in the process's RSS.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np

from lazyspheres.gather import GatherPlan, sphere_means

__all__ = ["VOXEL_BLOCK_BYTES", "Scratch", "array_volume_blocks", "stage_image"]

#: A voxel block holds about this many bytes of float64 time series in pass 2 (the
#: cleaning makes a few copies of it): large enough for few reads and BLAS-sized products.
VOXEL_BLOCK_BYTES = 24 * 2**20

#: Dask/numpy images are read in time blocks of about this many bytes (whole volumes).
TIME_BLOCK_BYTES = 32 * 2**20


@dataclass
class Scratch:
    """A voxel-block-major scratch file of ``n_time`` volumes of ``n_voxels`` voxels."""

    n_time: int
    n_voxels: int
    dtype: np.dtype
    block_size: int
    directory: str | None = None
    fd: int = field(init=False, default=-1)
    path: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.dtype = np.dtype(self.dtype)
        handle, self.path = tempfile.mkstemp(prefix="lazyspheres-s2v-", dir=self.directory)
        self.fd = handle
        starts = np.arange(0, self.n_voxels, self.block_size)
        self.bounds = [(int(s), int(min(self.n_voxels, s + self.block_size))) for s in starts]
        sizes = np.array([b - a for a, b in self.bounds], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes * self.n_time)])[:-1]
        self.offsets = self.offsets * self.dtype.itemsize

    def write_rows(self, t0: int, rows: np.ndarray) -> None:
        """Write ``rows`` = ``(b, n_voxels)`` values of volumes ``t0:t0+b``."""
        rows = np.asarray(rows, dtype=self.dtype)
        for (start, stop), offset in zip(self.bounds, self.offsets, strict=True):
            piece = np.ascontiguousarray(rows[:, start:stop])
            position = int(offset) + t0 * (stop - start) * self.dtype.itemsize
            _write_all(self.fd, memoryview(piece).cast("B"), position)

    def read_block(self, index: int) -> np.ndarray:
        """The ``(n_time, n_b)`` full time series of voxel block ``index``."""
        start, stop = self.bounds[index]
        out = np.empty((self.n_time, stop - start), dtype=self.dtype)
        _read_all(self.fd, memoryview(out).cast("B"), int(self.offsets[index]))
        return out

    def close(self) -> None:
        """Close and delete the file."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            with _ignore_missing():
                os.unlink(self.path)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ignore_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, value: Any, tb: Any) -> bool:
        return kind is not None and issubclass(kind, FileNotFoundError)


def _write_all(fd: int, data: memoryview, position: int) -> None:
    while len(data):
        written = os.pwrite(fd, data, position)
        data, position = data[written:], position + written


def _read_all(fd: int, out: memoryview, position: int) -> None:
    while len(out):
        got = os.preadv(fd, [out], position)
        if got == 0:
            raise OSError("The seed-to-voxel scratch file is shorter than expected.")
        out, position = out[got:], position + got


def stage_image(
    blocks: Iterator[tuple[int, np.ndarray]],
    voxels: np.ndarray,
    plan: GatherPlan,
    scratch: Scratch,
    *,
    scale: Any = None,
) -> tuple[np.ndarray, int]:
    """Stream blocks of volumes into ``scratch`` and average the seeds' spheres.

    Parameters
    ----------
    blocks : iterator of (t0, ndarray)
        ``(b, n_volume_voxels)`` raw volumes in time order, voxels in NIfTI (Fortran) order.
    voxels : ndarray of int
        Flat (Fortran) indices of the in-mask voxels, in the scratch file's order.
    plan : GatherPlan
        The seeds' spheres.
    scratch : Scratch
        Where the in-mask voxels go.
    scale : callable, optional
        Raw stored values -> image values (NIfTI scaling).

    Returns
    -------
    means : ndarray, shape (T, n_seeds)
        float64 sphere means (non-finite voxel values count as 0, nilearn's rule).
    n_nonfinite : int
        How many non-finite sphere voxel values were met.
    """
    sphere_index = plan.flat_indices("F")
    means = np.empty((scratch.n_time, plan.n_seeds), dtype=np.float64)
    n_bad = 0
    for t0, block in blocks:
        values = block[:, voxels]
        scratch.write_rows(t0, values if scale is None else scale(values))
        block_means, bad = sphere_means(block[:, sphere_index], plan, scale=scale)
        means[t0 : t0 + block.shape[0]] = block_means
        n_bad += bad
    return means, n_bad


def array_volume_blocks(data: Any) -> Iterator[tuple[int, np.ndarray]]:
    """``(t0, (b, V))`` Fortran-order volume blocks of an ``(i, j, k, time)`` array.

    Blocks follow the array's time chunks (Dask) or :data:`TIME_BLOCK_BYTES` (numpy), so a
    Zarr image chunked along time is read once; one chunked only along space is read
    whole per time chunk (rechunk it along time first for bounded memory).
    """
    n_time = data.shape[3]
    n_voxels = int(np.prod(data.shape[:3]))
    if hasattr(data, "chunks") and data.chunks is not None and hasattr(data, "dask"):
        edges = np.concatenate([[0], np.cumsum(data.chunks[3])]).astype(int)
    else:
        step = max(1, TIME_BLOCK_BYTES // max(1, n_voxels * data.dtype.itemsize))
        edges = np.unique(np.concatenate([np.arange(0, n_time, step), [n_time]]))
    for t0, t1 in itertools.pairwise(edges):
        part = data[:, :, :, int(t0) : int(t1)]
        if hasattr(part, "dask"):
            with dask.config.set(scheduler="synchronous"):
                part = part.compute()
        volumes = np.asarray(part).reshape((n_voxels, int(t1 - t0)), order="F")
        yield int(t0), np.ascontiguousarray(volumes.T)
