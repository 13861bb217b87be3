"""``smoothing_fwhm``: validation, per-axis Gaussian widths and the working dtype.

These are nilearn 0.12.1's rules (``image.smooth_array`` as the masker calls it):

* ``None`` disables smoothing. Anything else, even a zero or negative width, makes the image
  a float image with non-finite values set to 0 before any filtering;
* a scalar ``0`` (int or float) warns "The parameter 'fwhm' for smoothing is specified as 0.
  Setting it to None (no smoothing will be performed)";
* a number or a sequence of one or three numbers (``None`` entries count as 0) gives per-axis
  widths ``σ = fwhm / (sqrt(8 ln 2) · ‖column of affine[:3, :3]‖)``; axes with ``σ ≤ 0``
  (or NaN) are not filtered;
* ``"fast"`` is nilearn's cheap 6-neighbour stencil;
* the working dtype is float64 for float64, 8-byte integer and scaled images, float32
  otherwise. Unsigned integers are smoothed in floating point too, a documented difference
  from 0.12.1, which filters them in place in their own dtype and so truncates after each
  axis pass (SPEC §3.5).
"""

from __future__ import annotations

import numbers
import warnings
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from lazyspheres._types import UserInput

__all__ = [
    "FAST",
    "FWHM_TO_SIGMA",
    "Fwhm",
    "check_fwhm",
    "kernel_halo",
    "smoothing_dtype",
    "smoothing_sigmas",
]

FAST = "fast"
#: FWHM of a Gaussian over its standard deviation, sqrt(8 ln 2), as nilearn computes it.
FWHM_TO_SIGMA = np.sqrt(8 * np.log(2))
#: scipy.ndimage.gaussian_filter1d's default truncation, in standard deviations.
TRUNCATE = 4.0

Fwhm = float | int | list | tuple | np.ndarray | Literal["fast"] | None


def check_fwhm(fwhm: UserInput, *, name: str = "smoothing_fwhm") -> np.ndarray | str | None:
    """Validate a smoothing width, emitting nilearn's zero-width warning.

    Parameters
    ----------
    fwhm : None, number, sequence of 1 or 3 numbers/None, or "fast"
        Full width at half maximum in mm.
    name : str
        Parameter name for error messages.

    Returns
    -------
    None, "fast" or numpy.ndarray
        ``None`` when no smoothing was asked for; otherwise ``"fast"`` or the float64
        per-axis widths (length 1 or 3). A scalar 0 returns an empty array: the image is
        still converted to float with non-finite values zeroed, but nothing is filtered.

    Raises
    ------
    TypeError
        A string other than "fast", or a non-numeric value.
    ValueError
        A sequence whose length is not 1 or 3.
    OverflowError
        An infinite width (scipy cannot build an infinitely wide kernel).
    """
    if fwhm is None:
        return None
    if isinstance(fwhm, str):
        if fwhm == FAST:
            return FAST
        raise TypeError(
            f"'{name}' must be a number, a sequence of 3 numbers, 'fast' or None; got the "
            f"string {fwhm!r}."
        )
    if isinstance(fwhm, (int, float)) and fwhm == 0:
        warnings.warn(
            f"The parameter 'fwhm' for smoothing is specified as {fwhm}. Setting it to None "
            "(no smoothing will be performed)",
            UserWarning,
            stacklevel=3,
        )
        return np.zeros(0)
    items = np.asarray([fwhm], dtype=object).ravel()
    if items.size not in (1, 3):
        raise ValueError(
            f"'{name}' must be one width or one per spatial axis (3); got {items.size} "
            f"values: {fwhm!r}."
        )
    values = []
    for item in items:
        if item is None:
            values.append(0.0)
        elif isinstance(item, (numbers.Real, np.bool_)):
            values.append(float(item))
        else:
            raise TypeError(
                f"'{name}' must be a number, a sequence of 3 numbers (or None), 'fast' or "
                f"None; got {fwhm!r} (an item of type {type(item).__name__})."
            )
    widths = np.asarray(values, dtype=np.float64)
    if np.isinf(widths).any():
        raise OverflowError(f"'{name}' must be finite; got {fwhm!r}.")
    return widths


def smoothing_sigmas(affine: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Per-axis Gaussian standard deviations, in voxels (nilearn's formula, same rounding).

    Parameters
    ----------
    affine : numpy.ndarray
        (4, 4) or (3, 3) voxel-to-world affine; only ``affine[:3, :3]`` is used.
    widths : numpy.ndarray
        FWHM in mm, length 1 (all axes) or 3; empty for "no smoothing".

    Returns
    -------
    numpy.ndarray
        ``(3,)`` float64; entries ``<= 0`` or NaN mean "do not filter this axis".
    """
    if widths.size == 0:
        return np.zeros(3)
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    voxel_size = np.sqrt(np.sum(linear**2, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.broadcast_to(widths / (FWHM_TO_SIGMA * voxel_size), (3,)).copy()


def kernel_halo(sigma: float) -> int:
    """Half-width of scipy's Gaussian kernel for ``sigma`` (``int(4σ + 0.5)``)."""
    return int(TRUNCATE * float(sigma) + 0.5)


def smoothing_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype images are smoothed in (and sphere signals of smoothed images have).

    float64 stays float64; 8-byte integers become float64; every other integer type
    (signed or unsigned, the latter being lazyspheres' documented difference) and float32
    become float32. Other float widths are smoothed in float32 or float64, whichever holds
    them exactly.
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "iub":
        return np.dtype(np.float64 if dtype.itemsize == 8 else np.float32)
    if dtype.kind == "f":
        return np.dtype(np.float32 if dtype.itemsize <= 4 else np.float64)
    raise TypeError(f"Cannot smooth an image of dtype {dtype}; expected integers or floats.")
