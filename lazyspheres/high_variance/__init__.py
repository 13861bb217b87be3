"""High-variance confounds (nilearn's ``high_variance_confounds``), computed out of core.

:func:`high_variance_confounds` gives nilearn 0.12.1's ``image.high_variance_confounds``
(all voxels of the raw image, no mask, before any smoothing; linear detrend; voxels above
the ``100 - percentile`` percentile of their detrended mean of squares; eigenvectors of
``S Sᵀ / T`` with the largest eigenvalues) as a lazy ``(T, n_confounds)`` array, reading the
image in blocks: memory is bounded by the stream block, a row-store budget and the ``T × T``
matrix, never by the image.

Precision. nilearn computes in the image's float dtype: float32 for float32 and ≤ 4-byte
integer images (sklearn's ``as_float_array``), float64 otherwise. We always compute in
float64 and return nilearn's dtype. For float64 images the two agree to rounding. For
float32/int images nilearn's own float32 rounding (~1e-6 relative in each voxel's variance)
can move a voxel lying that close to the threshold across it, and its float32 eigenvectors
carry ~1e-6 relative error; the difference to ours is of that size, and equal to nilearn
computing in float64 (``dtype="float64"``) to rounding. Eigenvector signs are LAPACK's, as
in nilearn; compare projectors or cleaned signals, which do not depend on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dask.array as da
import numpy as np
import xarray as xr

from lazyspheres.errors import DimensionError
from lazyspheres.high_variance.moments import (
    check_hv_params,
    confounds_dtype,
    effective_detrend,
)
from lazyspheres.high_variance.reads import (
    Settings,
    confounds_from_dask,
    confounds_from_file,
    confounds_from_numpy,
)
from lazyspheres.io.image import ImageSource, with_dask
from lazyspheres.io.open import open_nifti
from lazyspheres.io.reader import NiftiFile
from lazyspheres.io.readers.lazy import reader_of
from lazyspheres.io.readers.nifti import NiftiReader

if TYPE_CHECKING:
    from lazyspheres._types import StorageOptions

__all__ = ["high_variance_confounds"]


def high_variance_confounds(
    img: ImageSource | list[ImageSource] | tuple[ImageSource, ...],
    n_confounds: int = 5,
    percentile: float = 2.0,
    detrend: bool = True,
    *,
    storage_options: StorageOptions | None = None,
) -> da.Array | np.ndarray:
    """Confounds from the image's highest-variance voxels, as nilearn computes them.

    Parameters
    ----------
    img : path, URL, file object, nibabel image, DataArray, or list of 3D images
        A 4D image (anything :func:`lazyspheres.open_nifti` accepts), or 3D images taken as
        the volumes of one run. All its voxels are used, as stored (no mask, no smoothing).
    n_confounds : int, default 5
        Number of confounds (at most the number of volumes are returned).
    percentile : float, default 2.0
        Keep the voxels whose detrended mean of squares exceeds this upper percentile.
    detrend : bool, default True
        Remove each voxel's mean and linear trend first (skipped, with nilearn's warning,
        for a single volume).
    storage_options : dict, optional
        fsspec options when ``img`` is a URL.

    Returns
    -------
    dask.array.Array or numpy.ndarray
        ``(T, min(n_confounds, T))``: lazy (Dask) for files and Dask-backed images,
        computed (NumPy) for NumPy-backed DataArrays. dtype float32 for float32 and
        ≤ 4-byte integer images, float64 otherwise (nilearn's). Nothing is read before
        the result is computed; a ``.nii.gz`` is inflated twice, in one task.

    Raises
    ------
    DimensionError
        A 3D image ("Input data has incompatible dimensionality ... 4D").
    TypeError, ValueError
        Bad parameters (``'detrend' should be of type '<class 'bool'>'``; "Percentiles
        must be in the range [0, 100]").

    Examples
    --------
    >>> import lazyspheres as ls
    >>> from lazyspheres.high_variance import high_variance_confounds
    >>> hv = high_variance_confounds("bold.nii.gz")  # doctest: +SKIP
    >>> signals = ls.extract("bold.nii.gz", "power2011", 5)  # doctest: +SKIP
    >>> ls.clean(signals, confounds=[hv], detrend=True)  # doctest: +SKIP
    """
    check_hv_params(n_confounds, percentile, detrend)
    image = _open_run(img, storage_options)
    n_volumes = image.sizes["time"]
    settings = Settings(
        n_confounds,
        percentile,
        effective_detrend(detrend, n_volumes),
        confounds_dtype(image.dtype),
    )
    reader = reader_of(image)
    if isinstance(reader, NiftiReader):
        return confounds_from_file(NiftiFile.of_reader(reader), settings)
    data = with_dask(image).data
    if isinstance(data, da.Array):
        return confounds_from_dask(data, settings)
    return confounds_from_numpy(np.asarray(data), settings)


def _open_run(
    img: ImageSource | list[ImageSource] | tuple[ImageSource, ...],
    storage_options: StorageOptions | None,
) -> xr.DataArray:
    """The 4D image ``(i, j, k, time)``; a list of 3D images is stacked along time."""
    if isinstance(img, (list, tuple)):
        if len(img) == 0:
            raise TypeError("Cannot concatenate empty objects: the list of images is empty.")
        volumes = [open_nifti(item, storage_options=storage_options) for item in img]
        for position, volume in enumerate(volumes):
            if "time" in volume.dims:
                raise DimensionError(
                    5, 4, f"Item {position} of the list is a 4D image; give 3D images."
                )
            if volume.nifti.spatial_shape != volumes[0].nifti.spatial_shape:
                raise ValueError(
                    f"Item {position} of the list has shape {volume.nifti.spatial_shape} "
                    f"but item 0 has {volumes[0].nifti.spatial_shape}: the volumes of a run "
                    "must share one grid."
                )
        stacked = [v.transpose("i", "j", "k").drop_vars(["i", "j", "k"]) for v in volumes]
        image = xr.concat(stacked, dim="time", coords="minimal", compat="override")
        return image.transpose("i", "j", "k", "time")
    image = open_nifti(img, storage_options=storage_options)
    if "time" not in image.dims:
        raise DimensionError(
            3, 4, "High-variance confounds need a 4D image (or a list of 3D images)."
        )
    extra = [d for d in image.dims if d not in ("i", "j", "k", "time")]
    if extra:
        raise DimensionError(
            image.ndim, 4, f"The image has extra dims {extra}; select one value of each."
        )
    return image.transpose("i", "j", "k", "time")
