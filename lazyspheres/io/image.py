"""Labelled lazy images: a reader or an array as an ``(i, j, k[, time])`` DataArray.

The DataArray has dims ``("i", "j", "k", "time")`` (3D images: ``("i", "j", "k")``) with
integer voxel-index coordinates, and one 0-d coordinate, :data:`NIFTI_META`, whose attrs
hold the 4×4 affine, xform codes, units, TR and the raw header. xarray keeps scalar
coordinates through ``isel``, arithmetic and reductions, and since ``i/j/k`` keep their
original voxel indices when sliced, the affine stays valid without being rewritten.

Data of a file-backed image is built over the file's reader
(:mod:`lazyspheres.io.readers`): a Dask array whose chunk tasks read their box through it,
or, with ``chunks=None``, xarray's lazily indexed backend array over the same reader.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dask.array as da
import nibabel as nib
import numpy as np
import xarray as xr
from xarray.core import indexing

import lazyspheres.io.accessor  # noqa: F401  (registers the .nifti accessor)
from lazyspheres.errors import DimensionError, ImageFormatError
from lazyspheres.io.backend import ReaderBackendArray
from lazyspheres.io.binary import BinaryStream
from lazyspheres.io.header import NiftiLayout
from lazyspheres.io.reader import NiftiFile
from lazyspheres.io.readers.base import ImageReader
from lazyspheres.io.readers.lazy import reader_dask_array
from lazyspheres.io.readers.view import view_of

if TYPE_CHECKING:
    from lazyspheres._types import Attrs
    from lazyspheres.io._types import ChunkRequest

__all__ = [
    "NIFTI_META",
    "SPATIAL_DIMS",
    "ImageSource",
    "NiftiMeta",
    "image_from_array",
    "image_from_file",
    "image_from_nibabel",
    "normalize_chunks",
    "with_dask",
]

NIFTI_META = "nifti_meta"
SPATIAL_DIMS = ("i", "j", "k")
TIME_DIM = "time"

# Default chunk target: whole volumes (NIfTI's on-disk order), ~64 MB per chunk.
_AUTO_CHUNK_BYTES = 64 * 2**20

ImageSource = str | os.PathLike[str] | BinaryStream | nib.spatialimages.SpatialImage | xr.DataArray
"""An image as the readers take it: a path or URL, an open binary file, a nibabel image or a
DataArray opened by lazyspheres."""


@dataclass(frozen=True)
class NiftiMeta:
    """What the :data:`NIFTI_META` coordinate of an image records (its attrs, via :meth:`attrs`).

    Attributes
    ----------
    affine : numpy.ndarray
        (4, 4) voxel-to-world affine.
    sform_code, qform_code : int
        NIfTI xform codes (0 when unknown).
    spatial_unit, time_unit : str
        NIfTI units ("unknown" when unknown).
    t_r : float or None
        Repetition time in seconds.
    header : str
        The raw header bytes, hex-encoded ("" when there is none).
    source : str
        Where the values come from (path, URL or "<in-memory>").
    """

    affine: np.ndarray
    sform_code: int = 0
    qform_code: int = 0
    spatial_unit: str = "unknown"
    time_unit: str = "unknown"
    t_r: float | None = None
    header: str = ""
    source: str = "<in-memory>"

    @classmethod
    def of_layout(
        cls, layout: NiftiLayout, source: str, affine: np.ndarray | None = None
    ) -> NiftiMeta:
        """The metadata of a NIfTI file's header (``affine`` overrides the header's)."""
        return cls(
            affine=layout.affine if affine is None else affine,
            sform_code=layout.sform_code,
            qform_code=layout.qform_code,
            spatial_unit=layout.spatial_unit,
            time_unit=layout.time_unit,
            t_r=layout.t_r,
            header=layout.header_bytes.hex(),
            source=source,
        )

    def attrs(self) -> Attrs:
        """The coordinate's attrs: plain JSON-friendly values (xarray keeps attrs as a dict)."""
        return {
            "affine": np.asarray(self.affine, dtype=np.float64).tolist(),
            "sform_code": int(self.sform_code),
            "qform_code": int(self.qform_code),
            "spatial_unit": self.spatial_unit,
            "time_unit": self.time_unit,
            "t_r": None if self.t_r is None else float(self.t_r),
            "header": self.header,
            "source": self.source,
        }


def image_from_file(
    nifti: NiftiFile,
    *,
    chunks: ChunkRequest = "auto",
    name: str | None = None,
    affine: np.ndarray | None = None,
) -> xr.DataArray:
    """Build the lazy DataArray of an opened :class:`NiftiFile`, over its reader."""
    layout = nifti.layout
    dims = _dims(len(layout.shape))
    reader = nifti.reader
    data: indexing.LazilyIndexedArray | da.Array
    if chunks is None:
        data = indexing.LazilyIndexedArray(ReaderBackendArray(reader))
    else:
        normalized = normalize_chunks(chunks, dims, layout.shape, layout.dtype)
        data = reader_dask_array(reader, normalized, prefix="open_nifti")
    if name is None:
        name = os.path.basename(nifti.source.location.rstrip("/")) or None
    meta = NiftiMeta.of_layout(layout, nifti.source.location, affine)
    return _labelled(data, dims, layout.shape, meta.attrs(), name)


def with_dask(image: xr.DataArray) -> xr.DataArray:
    """``image`` with Dask data, its values never read all at once.

    A lazily indexed image (``chunks=None``, or ``xr.open_dataarray`` without ``chunks``)
    is chunked in whole volumes of ~64 MB, read chunk by chunk through its backend. Dask
    and in-memory images are returned as they are.
    """
    if image.chunks is not None or image._in_memory:  # xarray's own "is it loaded" test
        return image
    reader = _backend_view(image)
    if reader is not None:  # our backend array: a Dask array over the (viewed) reader
        chunks = normalize_chunks("auto", image.dims, image.shape, image.dtype)
        return image.copy(data=reader_dask_array(reader, chunks, prefix="open_nifti"))
    if TIME_DIM not in image.dims:
        return image.chunk()
    volume_bytes = image.size // image.sizes[TIME_DIM] * image.dtype.itemsize
    return image.chunk({TIME_DIM: max(1, _AUTO_CHUNK_BYTES // max(1, volume_bytes))})


def _backend_view(image: xr.DataArray) -> ImageReader | None:
    """The reader seen by a lazily indexed image over :class:`ReaderBackendArray`, or None.

    ``xr.open_dataarray(path, engine="nifti")`` and its ``isel``/``sel`` results hold the
    backend array under xarray's wrappers, with the selection as the wrapper's key.
    """
    data = image.variable._data
    while isinstance(data, (indexing.MemoryCachedArray, indexing.CopyOnWriteArray)):
        data = data.array
    if type(data) is not indexing.LazilyIndexedArray:  # (a transpose is another wrapper)
        return None
    if not isinstance(data.array, ReaderBackendArray) or image.dims[:3] != SPATIAL_DIMS:
        return None
    view = view_of(data.array.reader.reader, data.key.tuple)
    return view if view is not None and tuple(view.shape) == image.shape else None


def image_from_array(
    data: np.ndarray | da.Array,
    affine: np.ndarray,
    *,
    t_r: float | None = None,
    chunks: ChunkRequest = None,
    name: str | None = None,
    header: nib.spatialimages.SpatialHeader | None = None,
) -> xr.DataArray:
    """Label an in-memory (numpy or dask) 3D/4D array with its affine.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
        ``(X, Y, Z)`` or ``(X, Y, Z, T)`` values.
    affine : numpy.ndarray
        (4, 4) voxel-to-world affine.
    t_r : float, optional
        Repetition time in seconds.
    chunks : optional
        Chunk a numpy array with Dask (same meaning as in :func:`open_nifti`).
    name : str, optional
        Name of the DataArray.
    header : nibabel header, optional
        Header to keep (codes, units).
    """
    shape = _checked_shape(tuple(np.shape(data)), where="array")
    dims = _dims(len(shape))
    data = data.reshape(shape) if tuple(np.shape(data)) != shape else data
    if chunks is not None and not isinstance(data, da.Array):
        data = np.asarray(data)
        data = da.from_array(data, chunks=normalize_chunks(chunks, dims, shape, data.dtype))
    sform_code = qform_code = 0
    spatial_unit, time_unit = "unknown", "unknown"
    header_hex = ""
    if isinstance(header, nib.Nifti1Header):  # NIfTI-2 headers derive from it
        sform_code = int(header["sform_code"])
        qform_code = int(header["qform_code"])
        spatial_unit, time_unit = header.get_xyzt_units()
    if isinstance(header, nib.wrapstruct.WrapStruct):
        header_hex = header.binaryblock.hex()
    meta = NiftiMeta(
        affine=np.asarray(affine),
        sform_code=sform_code,
        qform_code=qform_code,
        spatial_unit=spatial_unit,
        time_unit=time_unit,
        t_r=t_r,
        header=header_hex,
    )
    return _labelled(data, dims, shape, meta.attrs(), name)


def image_from_nibabel(
    img: nib.spatialimages.SpatialImage, *, chunks: ChunkRequest = "auto", name: str | None = None
) -> xr.DataArray:
    """A nibabel image as a lazy DataArray: read from its file when it has one."""
    filename = img.get_filename()
    proxy = getattr(img, "dataobj", None)
    from_file = (
        filename is not None
        and not img.in_memory
        and isinstance(proxy, nib.arrayproxy.ArrayProxy)
        and os.path.isfile(filename)
    )
    if from_file and filename is not None:
        nifti = NiftiFile.open(filename)
        if nifti.layout.shape == _checked_shape(img.shape, where=filename):
            return image_from_file(nifti, chunks=chunks, name=name, affine=img.affine)
    t_r = None
    header = img.header
    if len(img.shape) >= 4 and hasattr(header, "get_zooms"):
        zooms = header.get_zooms()
        if len(zooms) > 3 and zooms[3] > 0:
            t_r = float(zooms[3])
    data = np.asanyarray(img.dataobj)
    name = name or (os.path.basename(filename) if filename else None)
    return image_from_array(data, img.affine, t_r=t_r, chunks=chunks, name=name, header=header)


def _checked_shape(shape: tuple[int, ...], *, where: str) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    while len(shape) > 4 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (3, 4):
        raise DimensionError(len(shape), 4, f"{where} has shape {shape}.")
    if 0 in shape:
        raise ImageFormatError(f"The image is empty. {where} has shape {shape}.")
    return shape


def _dims(ndim: int) -> tuple[str, ...]:
    return SPATIAL_DIMS + ((TIME_DIM,) if ndim == 4 else ())


def normalize_chunks(
    chunks: ChunkRequest, dims: tuple[Hashable, ...], shape: tuple[int, ...], dtype: np.dtype
) -> tuple[tuple[int, ...], ...]:
    """Dask chunks of an image: ``"auto"`` is whole volumes of ~64 MB; dicts name dims."""
    auto = list(shape)
    if len(shape) == 4:
        volume_bytes = int(np.prod(shape[:3])) * np.dtype(dtype).itemsize
        auto[3] = int(max(1, min(shape[3], _AUTO_CHUNK_BYTES // max(1, volume_bytes))))
    if chunks == "auto" or chunks == {}:
        wanted: object = tuple(auto)
    elif isinstance(chunks, dict):
        unknown = set(chunks) - set(dims) - {TIME_DIM}  # "time" on a 3D image: no-op
        if unknown:
            raise ValueError(
                f"chunks names unknown dimension(s) {sorted(unknown)}; dims are {dims}."
            )
        wanted = tuple(
            auto[axis] if chunks.get(dim) in (None, "auto") else chunks[dim]
            for axis, dim in enumerate(dims)
        )
    else:
        wanted = chunks
    return da.core.normalize_chunks(wanted, shape=shape, dtype=dtype)


def _labelled(
    data: indexing.LazilyIndexedArray | np.ndarray | da.Array,
    dims: tuple[str, ...],
    shape: tuple[int, ...],
    meta: Attrs,
    name: str | None,
) -> xr.DataArray:
    coords: dict[str, tuple[object, ...]] = {
        dim: (dim, np.arange(n)) for dim, n in zip(SPATIAL_DIMS, shape[:3], strict=True)
    }
    if len(shape) == 4:
        t_r = meta["t_r"]
        if t_r:
            coords[TIME_DIM] = (TIME_DIM, np.arange(shape[3]) * float(t_r), {"units": "s"})
        else:
            coords[TIME_DIM] = (TIME_DIM, np.arange(shape[3]), {"units": "volume index"})
    coords[NIFTI_META] = ((), 0, meta)
    variable = xr.Variable(dims, data)
    return xr.DataArray(variable, coords=coords, name=name)
