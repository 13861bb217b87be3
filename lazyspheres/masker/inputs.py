"""Niimg-like inputs of the masker, opened lazily as labelled DataArrays.

The masker accepts what nilearn 0.12.1's ``check_niimg`` accepts — nibabel images, paths
(``str``/``PathLike``, ``~`` expanded, glob patterns expanded to sorted lists), and lists
(or other iterables) of 3D images, which are concatenated along time — plus images opened by
:func:`lazyspheres.open_nifti` (DataArrays) and fsspec URLs (``s3://…``, ``https://…``).

Opening reads headers only. Nothing here reads voxel data, except for in-memory inputs
which are already in memory. Errors carry nilearn's exception types and key phrases.
"""

from __future__ import annotations

import collections.abc
import glob
import os
from dataclasses import dataclass

import dask
import dask.array as da
import nibabel as nib
import numpy as np
import scipy.sparse
import xarray as xr

from lazyspheres._types import UserInput
from lazyspheres.errors import DimensionError, ImageFormatError, LazySpheresError
from lazyspheres.io.header import parse_header_bytes
from lazyspheres.io.open import NIFTI_META, image_from_array, image_from_file, open_nifti
from lazyspheres.io.reader import NiftiFile
from lazyspheres.masker._types import DtypeParam

__all__ = [
    "ImageNotFoundError",
    "Images",
    "NiimgTypeError",
    "check_dtype",
    "open_images",
    "target_dtype",
]

_NIIMG_TYPE = "input should be a NiftiLike object or an iterable of NiftiLike object. Got: "
_ITERABLE_TYPE = "iterable inputs should contain NiftiLike objects or iterables. Got: "
_DOC_LINK = "See https://nilearn.github.io/stable/manipulating_images/input_output.html."


class ImageNotFoundError(LazySpheresError, ValueError, FileNotFoundError):
    """An image path or glob pattern matches no file (nilearn raises ValueError)."""


class NiimgTypeError(LazySpheresError, TypeError):
    """The input is not an image, a path, or an iterable of those."""


@dataclass(frozen=True)
class Images:
    """An opened input.

    Attributes
    ----------
    image : xarray.DataArray
        Lazy image with dims ``(i, j, k, time)`` (``(i, j, k)`` for a single 3D image).
    ndim : int
        3 if the user gave one 3D image (its signals are squeezed to 1D), else 4.
    """

    image: xr.DataArray
    ndim: int


def open_images(imgs: UserInput) -> Images:
    """Open a niimg-like input lazily (headers only).

    Parameters
    ----------
    imgs : nibabel image, str, os.PathLike, DataArray or iterable of those
        What nilearn's maskers accept, plus lazyspheres DataArrays and URLs.

    Returns
    -------
    Images

    Raises
    ------
    TypeError
        Not an image ("input should be a NiftiLike object or an iterable of NiftiLike
        object"), an iterable holding something else ("iterable inputs should contain
        NiftiLike objects or iterables"), or an empty list ("Cannot concatenate empty
        objects").
    ValueError
        A missing file ("File not found"), a glob without match ("No files matching the
        entered niimg expression"), an empty image ("The image is empty"), images of a list
        on different grids ("Field of view of image #i is different from reference FOV").
    DimensionError
        Not 3D/4D, or a list of 4D images ("Input data has incompatible dimensionality").
    """
    opened = _open_any(imgs)
    if isinstance(opened, list):
        return Images(_concatenate(opened, imgs), 4)
    ndim = 4 if "time" in opened.dims else 3
    return Images(opened, ndim)


def check_dtype(dtype: UserInput) -> None:
    """Validate the masker's ``dtype`` parameter (None, "auto" or a numeric numpy dtype).

    Raises
    ------
    TypeError
        Not a dtype, a boolean dtype (nibabel cannot store it: nilearn 0.12.1 fails at
        transform with 'data dtype "<class 'bool'>" not supported'), or not numeric.
    """
    if dtype is None or (isinstance(dtype, str) and dtype == "auto"):
        return
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise DtypeError(f"'dtype' {dtype!r} is not a numpy dtype: {error}.") from error
    if resolved.kind == "b":
        raise DtypeError(
            f"data dtype \"{dtype}\" not supported: 'dtype' cannot be bool. Use a numeric "
            "dtype such as 'float32', 'float64' or 'auto'."
        )
    if resolved.kind not in "iuf":
        raise DtypeError(
            f"'dtype' must be None, 'auto' or a real numeric dtype (integer or float); got "
            f"{dtype!r} ({resolved})."
        )


class DtypeError(LazySpheresError, nib.spatialimages.HeaderDataError, TypeError):
    """The ``dtype`` parameter cannot be an image dtype (nilearn: nibabel HeaderDataError)."""


def target_dtype(image_dtype: np.dtype, dtype: DtypeParam) -> np.dtype:
    """The dtype an image is converted to on load, as nilearn's ``dtype`` parameter does.

    ``None`` keeps the image's dtype; ``"auto"`` gives int32 for integer images and float32
    otherwise; anything else is that dtype.
    """
    image_dtype = np.dtype(image_dtype)
    if dtype is None:
        return image_dtype
    if isinstance(dtype, str) and dtype == "auto":
        return np.dtype(np.int32) if image_dtype.kind in "iu" else np.dtype(np.float32)
    return np.dtype(dtype)


# ---------------------------------------------------------------------------- opening
def _open_any(imgs: UserInput) -> xr.DataArray | list[UserInput]:
    """One image as a DataArray, or a list of items to concatenate."""
    if isinstance(imgs, xr.DataArray):
        return _checked_dataarray(open_nifti(imgs))
    if isinstance(imgs, nib.spatialimages.SpatialImage):
        _check_nibabel_shape(imgs.shape, "The image")
        if isinstance(imgs.dataobj, np.ndarray):
            # Already in memory: keep numpy (Dask's from_array would copy the whole array);
            # the extraction then gathers the sphere voxels in place.
            return open_nifti(imgs, chunks=None)
        return open_nifti(imgs)
    if isinstance(imgs, str | os.PathLike):
        return _open_path(imgs)
    if scipy.sparse.issparse(imgs):
        raise NiimgTypeError(
            f"{_ITERABLE_TYPE}{imgs.dtype.name}. A scipy sparse {type(imgs).__name__} (shape "
            f"{imgs.shape}) is not an image: sparse input is not supported. Give a NIfTI "
            "image (nibabel.Nifti1Image(array, affine)) or a path."
        )
    if isinstance(imgs, np.ndarray):
        raise NiimgTypeError(
            f"{_ITERABLE_TYPE}{imgs.dtype.name}. A numpy array (shape {imgs.shape}) is not an "
            "image: it has no affine. Wrap it with nibabel.Nifti1Image(array, affine)."
        )
    if isinstance(imgs, collections.abc.Iterable) and not isinstance(imgs, bytes | dict):
        items = list(imgs)
        for item in items:
            if not (
                isinstance(item, str | os.PathLike | nib.spatialimages.SpatialImage)
                or hasattr(item, "__iter__")
            ):
                raise NiimgTypeError(f"{_ITERABLE_TYPE}{type(item).__name__}")
        if not items:
            raise NiimgTypeError("Cannot concatenate empty objects: the list of images is empty.")
        return items
    raise NiimgTypeError(f"{_NIIMG_TYPE}{type(imgs).__name__}")


def _open_path(path: str | os.PathLike) -> xr.DataArray | list[str]:
    text = os.fspath(path)
    if "://" in text and not text.startswith("file://"):
        return open_nifti(text)  # a URL: fsspec resolves it (no globbing, no local checks)
    expanded = os.path.expanduser(text)
    if glob.has_magic(text):
        matches = sorted(glob.glob(expanded))
        if not matches:
            raise ImageNotFoundError(
                f"No files matching the entered niimg expression: '{text}'. Check the "
                "pattern, or escape the wildcard characters if they are part of a file name."
            )
        return matches
    if not os.path.isfile(expanded.removeprefix("file://")):
        raise ImageNotFoundError(f"File not found: '{text}'")
    nifti = NiftiFile.open(expanded)
    # The layout drops trailing unit dimensions; nilearn refuses 5D files even then.
    header = parse_header_bytes(nifti.layout.header_bytes, where=text)
    _check_nibabel_shape(tuple(int(n) for n in header.get_data_shape()), f"'{text}'")
    return image_from_file(nifti)


def _check_nibabel_shape(shape: tuple[int, ...], where: str) -> None:
    """Apply nilearn's rules: 3D or 4D only (a 5D image is refused even with one 5th entry)."""
    if len(shape) not in (3, 4):
        raise DimensionError(len(shape), 4, f"{where} has shape {tuple(shape)}. {_DOC_LINK}")
    if 0 in shape:
        raise ImageFormatError(f"The image is empty. {where} has shape {tuple(shape)}.")


def _checked_dataarray(image: xr.DataArray) -> xr.DataArray:
    missing = [dim for dim in ("i", "j", "k") if dim not in image.dims]
    extra = [dim for dim in image.dims if dim not in ("i", "j", "k", "time")]
    if missing or extra:
        raise DimensionError(
            image.ndim,
            4,
            f"The DataArray has dims {image.dims}; an image needs dims (i, j, k) or "
            "(i, j, k, time), as lazyspheres.open_nifti returns.",
        )
    if 0 in image.shape:
        raise ImageFormatError(f"The image is empty. The DataArray has shape {image.shape}.")
    order = ("i", "j", "k", *(("time",) if "time" in image.dims else ()))
    return image.transpose(*order)


# ---------------------------------------------------------------------------- lists
def _as_volume(item: UserInput, index: int) -> xr.DataArray:
    """One item of a list, as a 3D image (a 4D image with one volume is squeezed)."""
    opened = _open_any(item)
    if isinstance(opened, list):
        # A nested list or a glob inside a list is a 4D image: the list is then 5D.
        raise _list_of_4d(f"Item #{index} of the list is itself a list of images.")
    if "time" in opened.dims:
        if opened.sizes["time"] != 1:
            raise _list_of_4d(
                f"Item #{index} of the list is a 4D image with {opened.sizes['time']} volumes."
            )
        opened = opened.isel(time=0)
    return opened


def _list_of_4d(detail: str) -> DimensionError:
    error = DimensionError(5, 4)
    error.args = (
        "Input data has incompatible dimensionality: Expected dimension is 4D and you "
        f"provided a list of 4D images (5D). {detail} Give a list of 3D images, or "
        f"transform each 4D image separately. {_DOC_LINK}",
    )
    return error


def _concatenate(items: list[UserInput], original: UserInput) -> xr.DataArray:
    """Stack a list of 3D images along time, lazily (each stays a separate Dask chunk)."""
    volumes = [_as_volume(item, index) for index, item in enumerate(items)]
    reference = volumes[0]
    ref_affine = reference.nifti.grid_affine
    ref_shape = reference.nifti.spatial_shape
    for index, volume in enumerate(volumes[1:], start=1):
        affine = volume.nifti.grid_affine
        shape = volume.nifti.spatial_shape
        if shape != ref_shape or not np.allclose(affine, ref_affine):
            raise ImageFormatError(
                f"Field of view of image #{index} is different from reference FOV.\n"
                f"Reference affine:\n{ref_affine!r}\nImage affine:\n{affine!r}\n"
                f"Reference shape:\n{ref_shape!r}\nImage shape:\n{shape!r}\n"
                "All images of a list must share one grid (shape and affine)."
            )
    arrays = [_dask_data(volume) for volume in volumes]
    dtype = np.result_type(*(array.dtype for array in arrays))
    stacked = da.stack([array.astype(dtype, copy=False) for array in arrays], axis=-1)
    meta = reference.coords[NIFTI_META].attrs
    name = None if not isinstance(original, str | os.PathLike) else os.fspath(original)
    return image_from_array(stacked, ref_affine, t_r=None, name=name or meta.get("source"))


def _dask_data(volume: xr.DataArray) -> da.Array:
    data = volume.data
    if isinstance(data, da.Array):
        return data
    # An in-memory volume, wrapped without a copy (da.from_array copies numpy arrays).
    array = np.asarray(data)
    task = dask.delayed(_identity, pure=True)(array)
    return da.from_delayed(task, shape=array.shape, dtype=array.dtype)


def _identity(array: np.ndarray) -> np.ndarray:
    return array
