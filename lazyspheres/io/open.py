"""``open_nifti``: a NIfTI image as a lazy, labelled ``xarray.DataArray``.

The returned array has dims ``("i", "j", "k", "time")`` (3D images: ``("i", "j", "k")``)
with integer voxel-index coordinates, and one 0-d coordinate, :data:`NIFTI_META`, whose
attrs hold the 4×4 affine, xform codes, units, TR and the raw header. xarray keeps scalar
coordinates through ``isel``, arithmetic and reductions, and since ``i/j/k`` keep their
original voxel indices when sliced, the affine stays valid without being rewritten.

Only the header is read when opening. The data is read when values are needed, and then
only the chunks needed.
"""

from __future__ import annotations

import collections
import os
import threading
from typing import IO, Any

import dask.array as da
import nibabel as nib
import numpy as np
import xarray as xr
from dask.base import tokenize
from xarray.core import indexing

import lazyspheres.io.accessor  # noqa: F401  (registers the .nifti accessor)
from lazyspheres.errors import DimensionError, ImageFormatError
from lazyspheres.io.backend import NiftiBackendArray, NiftiChunkReader
from lazyspheres.io.reader import NiftiFile

__all__ = ["NIFTI_META", "SPATIAL_DIMS", "ImageSource", "nifti_file_of", "open_nifti"]

NIFTI_META = "nifti_meta"
SPATIAL_DIMS = ("i", "j", "k")
TIME_DIM = "time"

# Default chunk target: whole volumes (NIfTI's on-disk order), ~64 MB per chunk.
_AUTO_CHUNK_BYTES = 64 * 2**20

ImageSource = str | os.PathLike | IO[bytes] | nib.spatialimages.SpatialImage | xr.DataArray

# Dask array name -> the file it reads, unsliced. Extraction uses it to replace chunk reads
# by one streaming pass (gzip) or a direct voxel gather (uncompressed). Names are tokens of
# (location, fingerprint, chunks), so reopening the same file finds the same entry.
_REGISTRY: collections.OrderedDict[str, NiftiFile] = collections.OrderedDict()
_REGISTRY_LOCK = threading.Lock()
_REGISTRY_SIZE = 4096


def open_nifti(
    source: ImageSource,
    *,
    chunks: Any = "auto",
    storage_options: dict[str, Any] | None = None,
    name: str | None = None,
) -> xr.DataArray:
    """Open a 3D or 4D NIfTI image as a lazy, labelled DataArray.

    Parameters
    ----------
    source : str, os.PathLike, file object, nibabel image or DataArray
        A local path, an fsspec URL (``s3://``, ``gs://``, ``https://``, ``memory://``,
        ``file://``), an open binary file object, or a nibabel image. A DataArray already
        opened by lazyspheres is returned unchanged. A ``*.zarr`` path/URL (or a zarr
        Group/Store) is read as a Zarr image written by :func:`lazyspheres.to_zarr_image`.
    chunks : "auto", dict, tuple, int or None, default "auto"
        Dask chunking. ``"auto"`` keeps whole volumes per chunk (the on-disk order) with
        about 64 MB per chunk. A dict maps dim names to chunk sizes (others stay "auto").
        ``None`` returns a lazily indexed array without Dask.
    storage_options : dict, optional
        fsspec options for URLs (``{"anon": True}``, endpoint, credentials ...).
    name : str, optional
        Name of the DataArray (default: the file name).

    Returns
    -------
    xarray.DataArray
        Values as nibabel's ``np.asanyarray(img.dataobj)`` gives them (scaling applied
        lazily, stored dtype otherwise).

    Raises
    ------
    FileNotFoundError
        Missing file (message contains "File not found").
    ImageFormatError
        Not a NIfTI file, unsupported dtype, or an empty image ("The image is empty").
    DimensionError
        Not a 3D or 4D image.
    TruncatedImageError
        An uncompressed file shorter than its header says.

    Examples
    --------
    >>> import lazyspheres as ls
    >>> img = ls.open_nifti("bold.nii.gz")  # doctest: +SKIP
    >>> img.dims  # doctest: +SKIP
    ('i', 'j', 'k', 'time')
    >>> img.nifti.affine  # doctest: +SKIP
    """
    if isinstance(source, xr.DataArray):
        if NIFTI_META not in source.coords:
            raise ImageFormatError(
                "This DataArray was not opened by lazyspheres: it has no "
                f"'{NIFTI_META}' coordinate holding the affine. Open the file with "
                "lazyspheres.open_nifti(path), or build one with "
                "lazyspheres.io.open.image_from_array(data, affine)."
            )
        return source
    if isinstance(source, nib.spatialimages.SpatialImage):
        return _from_nibabel(source, chunks=chunks, name=name)
    from lazyspheres.io.zarr_image import is_zarr_source, open_zarr_image  # no import cycle

    if is_zarr_source(source):  # a *.zarr path/URL, zarr Group or Store: to_zarr_image's layout
        return open_zarr_image(source, chunks=chunks, storage_options=storage_options, name=name)
    nifti = NiftiFile.open(source, storage_options)
    return image_from_file(nifti, chunks=chunks, name=name)


def image_from_file(
    nifti: NiftiFile,
    *,
    chunks: Any = "auto",
    name: str | None = None,
    affine: np.ndarray | None = None,
) -> xr.DataArray:
    """Build the lazy DataArray of an opened :class:`NiftiFile`."""
    layout = nifti.layout
    dims = _dims(len(layout.shape))
    if chunks is None:
        data: Any = indexing.LazilyIndexedArray(NiftiBackendArray(nifti))
    else:
        normalized = _normalize_chunks(chunks, dims, layout.shape, layout.dtype)
        token = tokenize(nifti.source.location, nifti.source.fingerprint, normalized)
        array_name = f"open_nifti-{token}"
        data = da.from_array(
            NiftiChunkReader(nifti),
            chunks=normalized,
            name=array_name,
            lock=False,
            asarray=True,
            meta=np.empty((0,) * len(dims), dtype=layout.dtype),
        )
        _register(array_name, nifti)
    if name is None:
        name = os.path.basename(nifti.source.location.rstrip("/")) or None
    meta = {
        "affine": (layout.affine if affine is None else affine).tolist(),
        "sform_code": layout.sform_code,
        "qform_code": layout.qform_code,
        "spatial_unit": layout.spatial_unit,
        "time_unit": layout.time_unit,
        "t_r": layout.t_r,
        "header": layout.header_bytes.hex(),
        "source": nifti.source.location,
    }
    return _labelled(data, dims, layout.shape, meta, name)


def image_from_array(
    data: Any,
    affine: np.ndarray,
    *,
    t_r: float | None = None,
    chunks: Any = None,
    name: str | None = None,
    header: nib.Nifti1Header | None = None,
) -> xr.DataArray:
    """Label an in-memory (numpy or dask) 3D/4D array with its affine.

    Parameters
    ----------
    data : array-like
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
        data = da.from_array(data, chunks=_normalize_chunks(chunks, dims, shape, data.dtype))
    sform_code = qform_code = 0
    spatial_unit, time_unit = "unknown", "unknown"
    header_hex = ""
    if header is not None:
        sform_code = int(header["sform_code"]) if "sform_code" in header else 0
        qform_code = int(header["qform_code"]) if "qform_code" in header else 0
        if hasattr(header, "get_xyzt_units"):
            spatial_unit, time_unit = header.get_xyzt_units()
        header_hex = header.binaryblock.hex() if hasattr(header, "binaryblock") else ""
    meta = {
        "affine": np.asarray(affine, dtype=np.float64).tolist(),
        "sform_code": sform_code,
        "qform_code": qform_code,
        "spatial_unit": spatial_unit,
        "time_unit": time_unit,
        "t_r": None if t_r is None else float(t_r),
        "header": header_hex,
        "source": "<in-memory>",
    }
    return _labelled(data, dims, shape, meta, name)


def nifti_file_of(image: xr.DataArray) -> NiftiFile | None:
    """Return the file an unmodified, unsliced opened image reads from, else ``None``.

    Recognises arrays made by :func:`open_nifti` (by their Dask name) and arrays that
    ``xr.open_dataarray(..., engine="nifti", chunks=...)`` built over our backend (by
    their two-layer graph, whose source layer wraps an unsliced backend array).
    """
    data = image.data
    if not isinstance(data, da.Array):
        return None
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(data.name)
    return found if found is not None else _xarray_backend_file(data)


def _xarray_backend_file(data: da.Array) -> NiftiFile | None:
    layers = data.dask.layers
    source = layers.get(f"original-{data.name}")
    if len(layers) != 2 or source is None:
        return None
    values = list(dict(source).values())
    if len(values) != 1:
        return None
    wrapped = getattr(values[0], "value", values[0])  # a DataNode in recent Dask
    for _ in range(10):  # adapters: implicit->explicit, copy-on-write, lazily indexed ...
        if isinstance(wrapped, NiftiBackendArray):
            return wrapped.reader.nifti if wrapped.shape == data.shape else None
        if tuple(getattr(wrapped, "shape", data.shape)) != data.shape:
            return None  # a sliced view: not the whole file
        wrapped = getattr(wrapped, "array", None)
        if wrapped is None:
            return None
    return None


# ---------------------------------------------------------------------------- helpers
def _from_nibabel(img: nib.spatialimages.SpatialImage, *, chunks: Any, name: str | None):
    filename = img.get_filename()
    proxy = getattr(img, "dataobj", None)
    from_file = (
        filename is not None
        and not img.in_memory
        and isinstance(proxy, nib.arrayproxy.ArrayProxy)
        and os.path.isfile(filename)
    )
    if from_file:
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


def _normalize_chunks(
    chunks: Any, dims: tuple[str, ...], shape: tuple[int, ...], dtype: np.dtype
) -> tuple[tuple[int, ...], ...]:
    auto = list(shape)
    if len(shape) == 4:
        volume_bytes = int(np.prod(shape[:3])) * np.dtype(dtype).itemsize
        auto[3] = int(max(1, min(shape[3], _AUTO_CHUNK_BYTES // max(1, volume_bytes))))
    if chunks == "auto" or chunks == {}:
        wanted: Any = tuple(auto)
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
    data: Any,
    dims: tuple[str, ...],
    shape: tuple[int, ...],
    meta: dict[str, Any],
    name: str | None,
) -> xr.DataArray:
    coords: dict[str, Any] = {
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


def _register(array_name: str, nifti: NiftiFile) -> None:
    with _REGISTRY_LOCK:
        _REGISTRY[array_name] = nifti
        _REGISTRY.move_to_end(array_name)
        while len(_REGISTRY) > _REGISTRY_SIZE:
            _REGISTRY.popitem(last=False)
