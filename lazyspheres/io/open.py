"""``open_nifti``: a NIfTI (or Zarr) image as a lazy, labelled ``xarray.DataArray``.

Which kind of source is which is decided here; the DataArray itself is built by
:mod:`lazyspheres.io.image` (layout of the array, its coordinates and ``nifti_meta``) over
the source's reader (:mod:`lazyspheres.io.readers`).

Only the header is read when opening. The data is read when values are needed, and then
only the chunks needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import nibabel as nib
import xarray as xr

from lazyspheres.errors import ImageFormatError
from lazyspheres.io.image import (
    NIFTI_META,
    SPATIAL_DIMS,
    ImageSource,
    image_from_array,
    image_from_file,
    image_from_nibabel,
)
from lazyspheres.io.reader import NiftiFile
from lazyspheres.io.zarr_image import is_zarr_source, open_zarr_image

if TYPE_CHECKING:
    from lazyspheres._types import StorageOptions
    from lazyspheres.io._types import ChunkRequest

__all__ = [
    "NIFTI_META",
    "SPATIAL_DIMS",
    "ImageSource",
    "image_from_array",
    "image_from_file",
    "open_nifti",
]


def open_nifti(
    source: ImageSource,
    *,
    chunks: ChunkRequest = "auto",
    storage_options: StorageOptions | None = None,
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
                "lazyspheres.io.image.image_from_array(data, affine)."
            )
        return source
    if isinstance(source, nib.spatialimages.SpatialImage):
        return image_from_nibabel(source, chunks=chunks, name=name)
    if is_zarr_source(source):  # a *.zarr path/URL, zarr Group or Store: to_zarr_image's layout
        if isinstance(chunks, tuple):  # xarray chunks a Zarr store by dimension names only
            raise ValueError(
                f"chunks of a Zarr image are 'auto', an int, a dict of dims or None; got {chunks}."
            )
        return open_zarr_image(source, chunks=chunks, storage_options=storage_options, name=name)
    nifti = NiftiFile.open(source, storage_options)
    return image_from_file(nifti, chunks=chunks, name=name)
