"""A reader over any Dask (or NumPy) array of shape ``(X, Y, Z[, T])``.

It lets code written against :class:`~lazyspheres.io.readers.base.ImageReader` read images
that were computed, concatenated or built by hand. Reads compute the needed part of the
array with the synchronous scheduler (they usually run inside another task already).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dask
import dask.array as da
import numpy as np

from lazyspheres.dask_gather import gather_voxels
from lazyspheres.io.readers.base import ImageReader

if TYPE_CHECKING:
    from lazyspheres.io._types import DaskToken

__all__ = ["ArrayReader"]

# Volumes per read when iterating: about 64 MB of MNI 2 mm float32 volumes.
_DEFAULT_TIME_BLOCK = 16


class ArrayReader(ImageReader):
    """Read an ``(X, Y, Z[, T])`` Dask or NumPy array as an image (values are not scaled).

    Parameters
    ----------
    array : dask.array.Array or numpy.ndarray
        The image values.
    location : str
        A name for messages.
    """

    def __init__(self, array: da.Array | np.ndarray, location: str = "<array>") -> None:
        self.array = array if isinstance(array, da.Array) else np.asarray(array)
        self.shape = tuple(int(n) for n in self.array.shape)
        self.raw_dtype = self.dtype = np.dtype(self.array.dtype)
        self.location = location
        chunks = getattr(self.array, "chunks", None)
        self.time_block = int(chunks[3][0]) if chunks and len(chunks) == 4 else _DEFAULT_TIME_BLOCK

    def __dask_tokenize__(self) -> DaskToken:
        return ("ArrayReader", dask.base.tokenize(self.array))

    def read_voxels(
        self, voxels: np.ndarray, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """``(stop - start, n)`` values of ``voxels`` (flat F-order indices or ``(n, 3)``)."""
        stop = self.n_volumes if stop is None else stop
        voxels = np.asarray(voxels)
        if voxels.ndim == 1:
            voxels = np.stack(np.unravel_index(voxels, self.shape[:3], order="F"), axis=1)
        data = self.array if self.ndim == 4 else self.array[..., None]
        data = data[..., start:stop]
        if not isinstance(data, da.Array):
            return np.ascontiguousarray(data[voxels[:, 0], voxels[:, 1], voxels[:, 2]].T)
        gathered = gather_voxels(data, voxels)
        (values,) = dask.compute(gathered, scheduler="synchronous")
        return np.ascontiguousarray(np.asarray(values).T)

    def read_box(self, i: slice, j: slice, k: slice, t: slice | None = None) -> np.ndarray:
        """Values of a box, axes ``(i, j, k[, t])``."""
        key = (i, j, k) if self.ndim == 3 else (i, j, k, slice(None) if t is None else t)
        box = self.array[key]
        if isinstance(box, da.Array):
            (box,) = dask.compute(box, scheduler="synchronous")
        return np.asarray(box)
