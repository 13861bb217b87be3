"""Array adaptors that let xarray and Dask read boxes of a NIfTI file on demand.

:class:`NiftiChunkReader` answers ``reader[i, j, k, t]`` (slices only) with scaled values;
Dask's ``from_array`` calls it once per chunk. :class:`NiftiBackendArray` exposes the same
reader through xarray's ``BackendArray`` protocol, so ``xr.open_dataset(engine="nifti")``
stays lazy through ``isel`` until values are needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xarray.backends import BackendArray
from xarray.core import indexing

from lazyspheres.io.reader import NiftiFile

__all__ = ["NiftiBackendArray", "NiftiChunkReader"]


class NiftiChunkReader:
    """Read scaled boxes of a NIfTI image by basic (slice/int) indexing.

    Parameters
    ----------
    nifti : NiftiFile
        The image to read.
    """

    def __init__(self, nifti: NiftiFile) -> None:
        self.nifti = nifti
        self.shape = nifti.layout.shape
        self.dtype = nifti.layout.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        slices, squeeze = [], []
        for axis, item in enumerate(key):
            if isinstance(item, slice):
                slices.append(item)
            else:
                index = int(item)
                index = index + self.shape[axis] if index < 0 else index
                slices.append(slice(index, index + 1))
                squeeze.append(axis)
        raw = self.nifti.read_region(*slices)
        values = self.nifti.layout.scale(raw)
        return values.squeeze(axis=tuple(squeeze)) if squeeze else values

    def __reduce__(self) -> tuple[Any, ...]:
        return (NiftiChunkReader, (self.nifti,))


class NiftiBackendArray(BackendArray):
    """xarray ``BackendArray`` over a NIfTI image (thread safe, picklable)."""

    def __init__(self, nifti: NiftiFile) -> None:
        self.reader = NiftiChunkReader(nifti)
        self.shape = self.reader.shape
        self.dtype = self.reader.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self.reader.__getitem__
        )
