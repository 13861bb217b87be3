"""The one reader seam: what every image store offers to xarray, Dask and extraction.

An :class:`ImageReader` answers two questions about an ``(X, Y, Z[, T])`` image: the stored
values of chosen voxels over a time range (:meth:`~ImageReader.read_voxels`), and the
stored values of a box (:meth:`~ImageReader.read_box`). Values come back *raw* (the stored
dtype); :meth:`~ImageReader.scale` turns them into the image's values, so extraction can
average raw integers in float64 and scale the means, as nilearn's numbers require.

Implementations: NIfTI local memmap, NIfTI byte ranges, NIfTI gzip (indexed or streamed)
in :mod:`lazyspheres.io.readers.nifti`, local Zarr chunk files in
:mod:`lazyspheres.io.readers.zarr`, any Dask array in :mod:`lazyspheres.io.readers.array`,
and a selection/cast of any of them in :mod:`lazyspheres.io.readers.view`.

Readers are small, picklable and hold no open handles, so a reader can sit in a Dask
graph and travel to any worker. :class:`ReaderArray` exposes one as a NumPy-style array
(basic indexing only) for ``dask.array.from_array`` and xarray's lazily indexed backend.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lazyspheres.io._types import DaskToken

__all__ = ["ImageReader", "ReaderArray", "as_flat_voxels", "box_bounds"]


class ImageReader(abc.ABC):
    """Raw values of a 3D/4D image, by voxels over time or by box.

    Attributes
    ----------
    shape : tuple of int
        ``(X, Y, Z)`` or ``(X, Y, Z, T)``.
    raw_dtype : numpy.dtype
        The stored dtype (what the read methods return).
    dtype : numpy.dtype
        The image's dtype once :meth:`scale` is applied.
    time_block : int
        Natural number of volumes per read (a chunk's or a 32 MB stream block's).
    location : str
        Where the data is (for messages).
    """

    shape: tuple[int, ...]
    raw_dtype: np.dtype
    dtype: np.dtype
    time_block: int
    location: str

    @property
    def ndim(self) -> int:
        """Number of dimensions (3 or 4)."""
        return len(self.shape)

    @property
    def n_volumes(self) -> int:
        """Number of volumes (1 for a 3D image)."""
        return self.shape[3] if self.ndim == 4 else 1

    @property
    def is_scaled(self) -> bool:
        """Whether :meth:`scale` changes the values (not only their dtype)."""
        return False

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """The image's values of raw stored values."""
        return raw.astype(self.dtype, copy=False)

    @abc.abstractmethod
    def read_voxels(
        self, voxels: np.ndarray, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Raw values of ``voxels`` in volumes ``start:stop``, shape ``(stop - start, n)``.

        ``voxels`` are Fortran-order flat indices within a volume, or ``(n, 3)`` ``(i, j, k)``
        indices. A 3D image has one volume (``start=0, stop=1``).
        """

    @abc.abstractmethod
    def read_box(self, i: slice, j: slice, k: slice, t: slice | None = None) -> np.ndarray:
        """Raw values of a box, axes ``(i, j, k[, t])`` (slices with positive steps)."""

    def iter_voxels(
        self, voxels: np.ndarray, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t0, raw values)`` of ``voxels`` block by block, in time order."""
        stop = self.n_volumes if stop is None else stop
        for t0 in range(start, stop, max(1, self.time_block)):
            yield t0, self.read_voxels(voxels, t0, min(stop, t0 + self.time_block))

    def __dask_tokenize__(self) -> DaskToken:
        # Dask tokenizes array sources: the location and shape say what the data is,
        # without pickling a gzip index or walking a graph.
        return (type(self).__name__, self.location, self.shape, str(self.raw_dtype))


class ReaderArray:
    """A reader as a lazily read NumPy-style array of image (scaled) values.

    Supports basic indexing (integers and slices, positive steps), which is all
    ``dask.array.from_array`` and xarray's ``BASIC`` backend indexing ask for. Dask fuses a
    later slice of a chunk into the chunk's own read, so ``image.isel(time=t)`` reads one
    volume, not the whole chunk.
    """

    def __init__(self, reader: ImageReader) -> None:
        self.reader = reader
        self.shape = tuple(reader.shape)
        self.dtype = np.dtype(reader.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: object) -> np.ndarray:
        slices, squeeze = box_bounds(key, self.shape)
        raw = self.reader.read_box(*slices)
        values = self.reader.scale(raw)
        return values.squeeze(axis=tuple(squeeze)) if squeeze else values

    def __reduce__(self) -> tuple[type[ReaderArray], tuple[ImageReader]]:
        return (ReaderArray, (self.reader,))

    def __dask_tokenize__(self) -> DaskToken:
        return ("ReaderArray", self.reader.__dask_tokenize__())


def box_bounds(key: object, shape: tuple[int, ...]) -> tuple[list[slice], list[int]]:
    """Basic-index ``key`` as one slice per axis, and the axes an integer dropped."""
    key = key if isinstance(key, tuple) else (key,)
    if any(item is Ellipsis for item in key):
        at = next(n for n, item in enumerate(key) if item is Ellipsis)
        fill = (slice(None),) * (len(shape) - len(key) + 1)
        key = key[:at] + fill + key[at + 1 :]
    key = key + (slice(None),) * (len(shape) - len(key))
    slices, squeeze = [], []
    for axis, item in enumerate(key):
        if isinstance(item, slice):
            start, stop, step = item.indices(shape[axis])
            if step < 0:
                raise IndexError("Readers take slices with positive steps only.")
            slices.append(slice(start, max(start, stop), step))
        else:
            index = int(item)
            index = index + shape[axis] if index < 0 else index
            if not 0 <= index < shape[axis]:
                raise IndexError(f"index {item} is out of bounds for axis {axis}.")
            slices.append(slice(index, index + 1))
            squeeze.append(axis)
    return slices, squeeze


def as_flat_voxels(voxels: np.ndarray, spatial_shape: tuple[int, ...]) -> np.ndarray:
    """Fortran-order flat indices of ``voxels`` (flat indices already, or ``(n, 3)``)."""
    voxels = np.asarray(voxels)
    if voxels.ndim == 2 and voxels.shape[1] == 3:
        return np.ravel_multi_index(tuple(voxels.T.astype(np.int64)), spatial_shape, order="F")
    return voxels.astype(np.int64, copy=False).ravel()
