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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

import dask.array as da
import numpy as np

from lazyspheres.gather import GatherPlan, sphere_means

if TYPE_CHECKING:
    from lazyspheres.io.reader import NiftiFile

__all__ = [
    "TIME_BLOCK_BYTES",
    "VOXEL_BLOCK_BYTES",
    "Scratch",
    "array_pieces",
    "file_pieces",
    "stage_image",
]

#: A voxel block holds about this many bytes of float64 time series in pass 2 (the
#: cleaning makes a few copies of it): large enough for few reads and BLAS-sized products.
VOXEL_BLOCK_BYTES = 24 * 2**20

#: Dask/numpy images are read in time blocks of about this many bytes (whole volumes).
TIME_BLOCK_BYTES = 32 * 2**20


@dataclass
class Scratch:
    """A scratch file of ``n_time`` volumes of ``n_voxels`` voxels, voxel-block-major.

    Voxel block ``b`` owns one contiguous region; inside it, each piece of volumes
    ``t0:t1`` written by pass 1 is a voxel-major ``(n_b, t1 - t0)`` tile at element offset
    ``t0 * n_b``. Pass 1 thus writes each tile (or a run of its rows) with one call, and
    pass 2 reads a region with one call and gets voxel-major series without a transpose.
    """

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
        starts = range(0, self.n_voxels, self.block_size)
        self.bounds = [(s, min(self.n_voxels, s + self.block_size)) for s in starts]
        sizes = np.array([b - a for a, b in self.bounds], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes * self.n_time)])[:-1]
        self.offsets = self.offsets * self.dtype.itemsize
        self.pieces: list[tuple[int, int]] = []

    def write_rows(self, t0: int, rows: np.ndarray, first: int = 0) -> None:
        """Write ``rows`` = ``(b, n)`` values of volumes ``t0:t0+b``, voxels ``first:first+n``.

        All writes of one piece of volumes must have the same ``t0`` and ``b``.
        """
        n_rows = rows.shape[0]
        if not self.pieces or self.pieces[-1][0] != t0:
            self.pieces.append((t0, t0 + n_rows))
        last = first + rows.shape[1]
        item = self.dtype.itemsize
        for (start, stop), offset in zip(self.bounds, self.offsets, strict=True):
            lo, hi = max(start, first), min(stop, last)
            if lo >= hi:
                continue
            tile = np.ascontiguousarray(rows[:, lo - first : hi - first].T, dtype=self.dtype)
            position = int(offset) + (t0 * (stop - start) + (lo - start) * n_rows) * item
            _write_all(self.fd, tile.data.cast("B"), position)

    def read_block(self, index: int) -> np.ndarray:
        """The ``(n_b, n_time)`` full time series of voxel block ``index``, voxel-major."""
        start, stop = self.bounds[index]
        width = stop - start
        raw = np.empty(self.n_time * width, dtype=self.dtype)
        _read_all(self.fd, raw.data.cast("B"), int(self.offsets[index]))
        if len(self.pieces) == 1:
            return raw.reshape(width, self.n_time)
        out = np.empty((width, self.n_time), dtype=self.dtype)
        for t0, t1 in self.pieces:
            out[:, t0:t1] = raw[t0 * width : t1 * width].reshape(width, t1 - t0)
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

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
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
    pieces: Iterator[tuple[int, int, np.ndarray]],
    voxels: np.ndarray,
    plan: GatherPlan,
    scratch: Scratch,
    *,
    scale: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, int]:
    """Stream pieces of volumes into ``scratch`` and average the seeds' spheres.

    Parameters
    ----------
    pieces : iterator of (t0, first, ndarray)
        ``(b, n)`` raw values of volumes ``t0:t0+b`` and flat (Fortran order) voxels
        ``first:first+n``; in time order, and for each block of volumes, in voxel order
        (whole volumes have ``first`` 0).
    voxels : ndarray of int
        Sorted flat (Fortran) indices of the in-mask voxels, in the scratch file's order.
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
    union = plan.flat_indices("F")
    order = np.argsort(union)
    means = np.empty((scratch.n_time, plan.n_seeds), dtype=np.float64)
    n_bad = 0
    gathered = np.empty((0, union.size), dtype=scratch.dtype)
    current = -1
    for t0, first, block in pieces:
        if t0 != current:
            if current >= 0:
                n_bad += _average(gathered, current, plan, means)
            gathered = np.empty((block.shape[0], union.size), dtype=scratch.dtype)
            current = t0
        last = first + block.shape[1]
        c0, c1 = np.searchsorted(voxels, [first, last])
        values = block[:, voxels[c0:c1] - first]
        scratch.write_rows(t0, values if scale is None else scale(values), int(c0))
        u0, u1 = np.searchsorted(union[order], [first, last])
        inside = order[u0:u1]
        spheres = block[:, union[inside] - first]
        gathered[:, inside] = spheres if scale is None else scale(spheres)
    if current >= 0:
        n_bad += _average(gathered, current, plan, means)
    return means, n_bad


def _average(gathered: np.ndarray, t0: int, plan: GatherPlan, means: np.ndarray) -> int:
    block_means, bad = sphere_means(gathered, plan)
    means[t0 : t0 + gathered.shape[0]] = block_means
    return bad


def _time_block_bytes() -> int:
    return TIME_BLOCK_BYTES  # read at call time, so that tests can shrink it


def file_pieces(nifti: NiftiFile) -> Iterator[tuple[int, int, np.ndarray]]:
    """Whole-volume pieces of a NIfTI file, one streaming pass (one inflate for gzip)."""
    for t0, block in nifti.iter_volume_blocks(block_bytes=_time_block_bytes()):
        yield t0, 0, block


def array_pieces(data: np.ndarray | da.Array) -> Iterator[tuple[int, int, np.ndarray]]:
    """Pieces of an ``(i, j, k, time)`` Dask or numpy array: time blocks × slabs along k.

    A Dask array (a Zarr image) is read one chunk row along ``k`` by one chunk along time
    at a time, so that every chunk is decoded once and memory is one such slab; a numpy
    array in blocks of about :data:`TIME_BLOCK_BYTES` of whole volumes.
    """
    ni, nj, nk, n_time = (int(n) for n in data.shape)
    if isinstance(data, da.Array):
        t_edges = np.cumsum([0, *data.chunks[3]])
        k_edges = np.cumsum([0, *data.chunks[2]])
    else:
        step = max(1, _time_block_bytes() // max(1, ni * nj * nk * data.dtype.itemsize))
        t_edges = np.unique(np.append(np.arange(0, n_time, step), n_time))
        k_edges = np.array([0, nk])
    for t0, t1 in itertools.pairwise(int(t) for t in t_edges):
        for k0, k1 in itertools.pairwise(int(k) for k in k_edges):
            part = data[:, :, k0:k1, t0:t1]
            if isinstance(part, da.Array):
                part = part.compute(scheduler="synchronous")
            slab = np.asarray(part).reshape((ni * nj * (k1 - k0), t1 - t0), order="F")
            yield t0, k0 * ni * nj, np.ascontiguousarray(slab.T)
