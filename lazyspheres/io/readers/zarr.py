"""A reader over the chunk files of a local Zarr v3 image (:mod:`lazyspheres.io.zarr_chunks`).

Boxes and voxel reads decode only the chunks they overlap, straight from their files.
Values come back stored (raw); :meth:`ZarrImageReader.scale` applies xarray's CF decoding.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from lazyspheres.dask_gather import VoxelGroups
from lazyspheres.io.readers.base import ImageReader
from lazyspheres.io.readers.lazy import reader_of
from lazyspheres.io.zarr_chunks import ZarrChunkReader

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr

    from lazyspheres.io._types import DaskToken

__all__ = ["ZarrImageReader", "chunk_source_of"]


class ZarrImageReader(ImageReader):
    """Read a local Zarr v3 image chunk file by chunk file.

    Parameters
    ----------
    chunks : ZarrChunkReader
        Decodes one whole chunk; also the ``source`` that
        :func:`~lazyspheres.dask_gather.gather_voxels` reads chunks from directly.
    """

    def __init__(self, chunks: ZarrChunkReader) -> None:
        self.chunks = chunks
        self.shape = tuple(chunks.shape)
        self.raw_dtype = np.dtype(chunks.dtype)
        self.dtype = chunks.decode_cf(np.zeros(1, dtype=chunks.dtype)).dtype
        self.location = chunks.folder
        self.time_block = int(chunks.chunk_shape[3]) if len(self.shape) == 4 else 1

    @property
    def is_scaled(self) -> bool:
        """Whether CF ``scale_factor``/``add_offset`` apply."""
        return self.chunks.is_scaled

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """Stored values as xarray's CF decoding gives them."""
        return self.chunks.decode_cf(raw).astype(self.dtype, copy=False)

    def __dask_tokenize__(self) -> DaskToken:
        return ("ZarrImageReader", self.chunks)

    def read_box(self, i: slice, j: slice, k: slice, t: slice | None = None) -> np.ndarray:
        """Raw box ``(i, j, k[, t])`` assembled from the chunks it overlaps."""
        wanted = [i, j, k] + (
            [slice(0, self.shape[3]) if t is None else t] if self.ndim == 4 else []
        )
        ranges = [np.arange(n)[s] for n, s in zip(self.shape, wanted, strict=True)]
        out = np.empty(tuple(r.size for r in ranges), dtype=self.raw_dtype)
        if out.size == 0:
            return out
        edges = self.chunks.chunk_shape
        per_axis = [np.unique(r // e) for r, e in zip(ranges, edges, strict=True)]
        for index in itertools.product(*per_axis):
            chunk = self.chunks.read(tuple(int(c) for c in index))
            inside = [(r // e) == c for r, e, c in zip(ranges, edges, index, strict=True)]
            local = np.ix_(
                *[r[m] - c * e for r, m, c, e in zip(ranges, inside, index, edges, strict=True)]
            )
            out[np.ix_(*[np.flatnonzero(m) for m in inside])] = chunk[local]
        return out

    def read_voxels(
        self, voxels: np.ndarray, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Raw ``(stop - start, n)`` values, decoding only the chunks holding ``voxels``."""
        stop = self.n_volumes if stop is None else stop
        voxels = np.asarray(voxels)
        if voxels.ndim == 1:
            voxels = np.stack(np.unravel_index(voxels, self.shape[:3], order="F"), axis=1)
        edges = self.chunks.chunk_shape
        groups = VoxelGroups(
            voxels, tuple((e,) * -(-n // e) for n, e in zip(self.shape[:3], edges, strict=False))
        )
        out = np.empty((max(0, stop - start), len(voxels)), dtype=self.raw_dtype)
        if self.ndim == 3:
            for block, rows, local in zip(
                groups.blocks, groups.positions, groups.local, strict=True
            ):
                out[0, rows] = self.chunks.read(block)[local[:, 0], local[:, 1], local[:, 2]]
            return out
        for tc in range(start // edges[3], -(-stop // edges[3])):
            t0 = max(start, tc * edges[3])
            t1 = min(stop, (tc + 1) * edges[3])
            for block, rows, local in zip(
                groups.blocks, groups.positions, groups.local, strict=True
            ):
                chunk = self.chunks.read((*block, tc))
                values = chunk[local[:, 0], local[:, 1], local[:, 2]]
                out[t0 - start : t1 - start, rows] = values[
                    :, t0 - tc * edges[3] : t1 - tc * edges[3]
                ].T
        return out


def chunk_source_of(image: xr.DataArray | da.Array) -> ZarrChunkReader | None:
    """The chunk-file decoder of an unmodified local Zarr image, for direct chunk gathers."""
    reader = reader_of(image)
    return reader.chunks if isinstance(reader, ZarrImageReader) else None
