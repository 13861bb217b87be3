"""Masks: resampling to the image grid and the rules that turn values into a boolean mask.

Pure numpy/scipy. The behaviour is nilearn 0.12.1's for ``NiftiSpheresMasker`` masks, with one
deliberate difference: a mask translated by a whole number of voxels is always placed where its
affine says. (nilearn 0.12.1 takes a crop-and-paste shortcut for such masks that shifts the mask
when its nonzero box starts before the image's first voxel; every other case is equal.)
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.ndimage

from lazyspheres.errors import DimensionError

__all__ = ["binarize_fit_mask", "binarize_mask_values", "resample_mask_to_grid"]

_NON_FINITE_WARNING = "Non-finite values detected. These values will be replaced with zeros."
_RESAMPLE_NON_FINITE_WARNING = (
    "NaNs or infinite values are present in the data passed to resample. This is a bad thing "
    "as they make resampling ill-defined and much slower."
)


def _as_3d(data: npt.ArrayLike, context: str) -> np.ndarray:
    """Return ``data`` as a 3D array; a 4D array with one volume is squeezed (as nilearn)."""
    arr = np.asarray(data)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise DimensionError(
            arr.ndim,
            3,
            f"{context} must be a 3D array (or 4D with a single volume); got shape {arr.shape}.",
        )
    return arr


def resample_mask_to_grid(
    mask_data: npt.ArrayLike,
    mask_affine: npt.ArrayLike,
    target_affine: npt.ArrayLike,
    target_shape: tuple[int, int, int],
) -> np.ndarray:
    """Resample a mask to an image grid with nearest-neighbour interpolation.

    Parameters
    ----------
    mask_data : array-like
        3D mask values (a 4D array with a single volume is accepted), of any dtype; the values
        are resampled, not binarised (see :func:`binarize_mask_values`).
    mask_affine : array-like of shape (4, 4)
        Voxel-to-world affine of the mask.
    target_affine : array-like of shape (4, 4)
        Voxel-to-world affine of the image grid.
    target_shape : tuple of 3 int
        Spatial shape of the image grid.

    Returns
    -------
    numpy.ndarray
        ``target_shape`` array of the mask's dtype (native byte order; ``bool`` stays bool).
        If the shapes are equal and the affines ``numpy.allclose`` (rtol 1e-5, atol 1e-8),
        the input array itself is returned: a nearly equal affine is *not* corrected, as in
        nilearn. Otherwise voxel ``v`` of the result takes the mask value at
        ``inv(mask_affine) @ target_affine @ v`` (``scipy.ndimage.affine_transform``,
        ``order=0``), and 0 outside the mask's field of view. Samples of non-finite mask
        values are NaN.

    Raises
    ------
    DimensionError
        If the mask is not 3D.
    ValueError
        If the mask lies entirely before the image grid on some axis (nilearn's
        "The field of view given by the target affine does not contain any of the data").

    Warns
    -----
    RuntimeWarning
        When a float mask that needs resampling contains NaN or infinite values (nilearn's
        warning text).

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((4, 4, 4), dtype=np.uint8)
    >>> mask[1, 1, 1] = 1
    >>> shifted = np.eye(4)
    >>> shifted[:3, 3] = -1.0  # the mask grid starts one voxel earlier on every axis
    >>> np.argwhere(resample_mask_to_grid(mask, shifted, np.eye(4), (4, 4, 4))).tolist()
    [[0, 0, 0]]
    """
    data = _as_3d(mask_data, "mask")
    source_affine = np.asarray(mask_affine, dtype=np.float64)
    target = np.asarray(target_affine, dtype=np.float64)
    shape = tuple(int(s) for s in target_shape)
    if len(shape) != 3:
        raise ValueError(f"target_shape must have 3 entries; got {target_shape!r}.")
    if data.shape == shape and np.allclose(target, source_affine):
        return data

    # Bounding box of the mask in target voxel space: nilearn refuses a mask lying entirely
    # on the negative side of some axis (it does not check the positive side).
    to_target = np.linalg.inv(target).dot(source_affine)
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, data.shape[0] - 1) for j in (0, data.shape[1] - 1)
         for k in (0, data.shape[2] - 1)]
    ).T  # fmt: skip
    upper = np.dot(to_target, corners)[:3].max(axis=1)
    if (upper < 0).any():
        raise ValueError(
            "The field of view given by the target affine does not contain any of the data: "
            f"the mask (shape {data.shape}) lies entirely before the first voxel of the image "
            f"grid along axis {int(np.flatnonzero(upper < 0)[0])}. Check the mask's affine."
        )

    if np.all(target == source_affine):
        transform = np.eye(4)  # exactly the same grid: avoid inverse round-off
    else:
        transform = np.dot(scipy.linalg.inv(source_affine), target)
    matrix, offset = transform[:3, :3], transform[:3, 3]
    # A diagonal matrix goes through scipy's zoom/shift path (as in nilearn); the general
    # path can round differently at exact half-voxel positions.
    if np.all(np.diag(np.diag(matrix)) == matrix):
        matrix = np.diag(matrix)

    is_bool = data.dtype == bool
    values = data.view(np.uint8) if is_bool else data
    if not values.dtype.isnative:
        values = values.astype(values.dtype.newbyteorder("="))
    non_finite = None
    if values.dtype.kind in "fc":
        non_finite = ~np.isfinite(values)
        if non_finite.any():
            warnings.warn(_RESAMPLE_NON_FINITE_WARNING, RuntimeWarning, stacklevel=2)
            values = np.where(non_finite, 0, values)
        else:
            non_finite = None

    out = np.zeros(shape, dtype=values.dtype, order="F")
    scipy.ndimage.affine_transform(
        values, matrix, offset=offset, output_shape=shape, output=out, order=0, cval=0
    )
    if non_finite is not None:
        hit = scipy.ndimage.affine_transform(
            non_finite.view(np.uint8), matrix, offset=offset, output_shape=shape, order=0
        )
        out[hit.astype(bool)] = np.nan
    return out.astype(bool) if is_bool else out


def _replace_non_finite(values: np.ndarray) -> np.ndarray:
    """Copy of ``values`` with NaN/inf set to 0, warning like nilearn when there are any."""
    if values.dtype.kind in "fc":
        bad = ~np.isfinite(values)
        if bad.any():
            warnings.warn(_NON_FINITE_WARNING, UserWarning, stacklevel=3)
            values = values.copy()
            values[bad] = 0
    return values


def binarize_mask_values(data: npt.ArrayLike, *, context: str = "mask_img") -> np.ndarray:
    """Validate mask values and return the boolean mask (nilearn's ``load_mask_img`` rules).

    Parameters
    ----------
    data : array-like
        3D mask values on the image grid (for example from :func:`resample_mask_to_grid`).
    context : str, default="mask_img"
        What the mask is, for error messages (for example a file name).

    Returns
    -------
    numpy.ndarray
        Boolean array, True where the (finite) value is nonzero. The input is not modified.

    Raises
    ------
    ValueError
        If the mask has more than two distinct values ("Given mask is not made of 2 values:
        [...]. Cannot interpret as true or false."), two values none of which is 0
        ("Background of the mask must be represented with 0. Given mask contains: [...]."),
        or no nonzero value ("The mask is invalid as it is empty: it masks all data.").
        A single nonzero value everywhere is a valid all-true mask.

    Warns
    -----
    UserWarning
        "Non-finite values detected. These values will be replaced with zeros." when the
        mask holds NaN or infinite values (they count as 0).
    """
    values = _replace_non_finite(np.asarray(data))
    distinct = np.unique(values)
    if distinct.size == 1 and distinct[0] == 0:
        raise ValueError(
            "The mask is invalid as it is empty: it masks all data. "
            f"({context} of shape {values.shape} has no nonzero voxel; check that it covers "
            "the image.)"
        )
    if distinct.size == 2 and 0 not in distinct:
        raise ValueError(
            "Background of the mask must be represented with 0. "
            f"Given mask contains: {distinct}. ({context}: use 0 outside the region of "
            "interest and one nonzero value inside.)"
        )
    if distinct.size > 2:
        raise ValueError(
            f"Given mask is not made of 2 values: {distinct}. "
            f"Cannot interpret as true or false. ({context} has {distinct.size} distinct "
            "values; binarise it, for example with `mask > 0`.)"
        )
    return values != 0


def binarize_fit_mask(data: npt.ArrayLike, *, context: str = "mask_img") -> np.ndarray:
    """Boolean mask a masker stores at fit (its ``mask_img_``): nonzero in every volume.

    Parameters
    ----------
    data : array-like
        3D or 4D mask values in the mask's own grid.
    context : str, default="mask_img"
        What the mask is, for error messages.

    Returns
    -------
    numpy.ndarray
        3D boolean array: True where the finite value is nonzero in all volumes (a 3D mask is
        one volume). Unlike :func:`binarize_mask_values` any number of distinct values is
        accepted, as nilearn does at fit.

    Raises
    ------
    DimensionError
        If the data is not 3D or 4D.
    ValueError
        If no voxel is nonzero in all volumes ("The mask is invalid as it is empty: it masks
        all data.").

    Warns
    -----
    UserWarning
        "Non-finite values detected. These values will be replaced with zeros."
    """
    values = np.asarray(data)
    if values.ndim not in (3, 4):
        raise DimensionError(
            values.ndim, 4 if values.ndim > 4 else 3, f"{context} must be a 3D or 4D array."
        )
    values = _replace_non_finite(values)
    mask = values.astype(bool)
    if mask.ndim == 4:
        mask = np.asarray(mask.all(axis=3))
    if not mask.any():
        raise ValueError(
            "The mask is invalid as it is empty: it masks all data. "
            f"({context} of shape {values.shape} has no voxel that is nonzero in every volume.)"
        )
    return mask
