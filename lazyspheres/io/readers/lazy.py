"""An image's Dask array, built over its reader, and how extraction recognises it.

:func:`reader_dask_array` wraps a reader in ``dask.array.from_array``: each chunk task is
``getter(ReaderArray(reader), box)``, so every chunk of the graph reads its box through
the reader (random access into ``.nii.gz`` when the reader has a seek-point index). Dask
fuses a later basic slice into that getter (``image.isel(time=t)`` reads one volume), and
the reader is one node of the graph that every chunk task refers to, so an image pickled
to a distributed worker carries it (and its gzip index) once.

What survives xarray and Dask operations, without registries or graph inspection: the
array returned is a :class:`ReaderDaskArray`, a ``dask.array.Array`` that also holds its
reader. Its ``__getitem__`` (xarray's ``isel``/``sel``), ``astype`` and ``rechunk``
(xarray's ``chunk``) return a ``ReaderDaskArray`` again, over a
:class:`~lazyspheres.io.readers.view.ViewReader` of the same file (or the same reader,
chunked anew), so the result keeps the file's fast routes. Other operations (arithmetic,
reductions, several index arrays) return Dask's plain ``Array``. :func:`reader_of` finds a
reader only on an array that *is* its reader's data: the type says where the data comes
from, and the name (a token of the reader and the chunks) says nothing was done to it since.
Extraction then reads the file by its fastest route (one streaming pass for ``.nii.gz``,
keeping a view's volumes and voxels), and any other array by its chunk tasks, which read
through the same reader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import dask.array as da
import numpy as np
import numpy.typing as npt
from dask.base import tokenize

from lazyspheres.io.readers.base import ImageReader, ReaderArray
from lazyspheres.io.readers.view import cast_view, view_of

if TYPE_CHECKING:
    import xarray as xr

    from lazyspheres.io._types import ChunkRequest

__all__ = ["ReaderDaskArray", "reader_dask_array", "reader_of"]


class ReaderDaskArray(da.Array):
    """A Dask array whose chunks are read by ``reader`` (see the module docstring).

    Basic and single-array indexing (what xarray's ``isel``/``sel`` ask of Dask), ``astype``
    and ``rechunk`` (xarray's ``chunk``) return a ``ReaderDaskArray`` again, over a
    :class:`~lazyspheres.io.readers.view.ViewReader` of the same base reader: the result
    keeps every fast route of the file. Dask computes the result's chunks as usual; only the
    graph is rebuilt over the view. Anything else returns Dask's plain array.
    """

    reader: ImageReader

    def __getitem__(self, index: object) -> da.Array:
        plain = super().__getitem__(index)
        if plain is self or not isinstance(plain, da.Array):
            return plain
        view = view_of(self.reader, index)
        if view is None or tuple(view.shape) != plain.shape or view.dtype != plain.dtype:
            return plain
        return reader_dask_array(view, plain.chunks, prefix=self._prefix)

    def astype(self, dtype: npt.DTypeLike, **kwargs: object) -> da.Array:
        """Dask's ``astype``, as a view that casts after reading."""
        plain = super().astype(dtype, **kwargs)  # Dask checks ``casting`` and the dtype
        if plain is self or not isinstance(plain, da.Array):
            return plain
        return reader_dask_array(
            cast_view(self.reader, plain.dtype), self.chunks, prefix=self._prefix
        )

    def rechunk(
        self,
        chunks: ChunkRequest = "auto",
        threshold: int | None = None,
        block_size_limit: int | None = None,
        balance: bool = False,
        method: Literal["tasks", "p2p"] | None = None,
    ) -> da.Array:
        """Dask's ``rechunk``, as the same reader chunked anew."""
        plain = super().rechunk(chunks, threshold, block_size_limit, balance, method)
        if plain is self or plain.chunks == self.chunks:
            return self
        # The same reader, chunked anew: each new chunk reads its own box, no 360 MB
        # intermediate chunks built from the old ones.
        return reader_dask_array(self.reader, plain.chunks, prefix=self._prefix)

    @property
    def _prefix(self) -> str:
        return self.name.rsplit("-", 1)[0]

    def __reduce__(
        self,
    ) -> tuple[Callable[[da.Array, ImageReader], ReaderDaskArray], tuple[da.Array, ImageReader]]:
        return (
            _rebuild,
            (da.Array(self.dask, self.name, self.chunks, meta=self._meta), self.reader),
        )


def _rebuild(array: da.Array, reader: ImageReader) -> ReaderDaskArray:
    out = ReaderDaskArray(array.dask, array.name, array.chunks, meta=array._meta)
    out.reader = reader
    return out


def reader_dask_array(
    reader: ImageReader, chunks: tuple[tuple[int, ...], ...], *, prefix: str = "image"
) -> ReaderDaskArray:
    """The lazy Dask array of ``reader``'s image values, chunked as ``chunks``."""
    name = f"{prefix}-{tokenize(reader, chunks)}"
    array = da.from_array(
        ReaderArray(reader),
        chunks=chunks,
        name=name,
        lock=False,
        asarray=False,
        inline_array=False,  # one graph node holds the reader (and its gzip index)
        meta=np.empty((0,) * len(reader.shape), dtype=reader.dtype),
    )
    return _rebuild(array, reader)


def reader_of(data: xr.DataArray | da.Array) -> ImageReader | None:
    """The reader of an unmodified image's data (a DataArray or its Dask array), else None."""
    if getattr(data, "chunks", None) is None:
        return None  # no Dask array (a DataArray's ``chunks`` is None then): nothing to ask
    array = getattr(data, "data", data)
    if type(array) is not ReaderDaskArray:
        return None
    reader = array.reader
    if tuple(array.shape) != tuple(reader.shape) or array.name != _name_of(array, reader):
        return None
    return reader


def _name_of(array: da.Array, reader: ImageReader) -> str:
    prefix = array.name.rsplit("-", 1)[0]
    return f"{prefix}-{tokenize(reader, array.chunks)}"
