"""xarray's lazily indexed backend array over an image reader (``chunks=None``).

:class:`ReaderBackendArray` exposes a :class:`~lazyspheres.io.readers.base.ImageReader`
through xarray's ``BackendArray`` protocol, so ``open_nifti(..., chunks=None)`` and
``xr.open_dataarray(path, engine="nifti")`` stay lazy through ``isel`` until values are
needed, and then read the selected box through the same reader that Dask chunk tasks use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from xarray.backends import BackendArray
from xarray.core import indexing

from lazyspheres.io.readers.base import ImageReader, ReaderArray

if TYPE_CHECKING:
    from lazyspheres.io._types import DaskToken

__all__ = ["NiftiBackendArray", "NiftiChunkReader", "ReaderBackendArray"]

# Former names, kept for code that counts reads by patching them.
NiftiChunkReader = ReaderArray


class ReaderBackendArray(BackendArray):
    """xarray ``BackendArray`` over an image reader (thread safe, picklable)."""

    def __init__(self, reader: ImageReader) -> None:
        self.reader = ReaderArray(reader)
        self.shape = self.reader.shape
        self.dtype = self.reader.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self.reader.__getitem__
        )

    def __dask_tokenize__(self) -> DaskToken:
        # xarray tokenizes the backend array when asked to chunk it: say what it reads.
        return ("ReaderBackendArray", self.reader.__dask_tokenize__())


NiftiBackendArray = ReaderBackendArray
