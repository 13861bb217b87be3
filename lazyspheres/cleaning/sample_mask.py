"""Validation of ``sample_mask`` (which volumes to keep), with nilearn 0.12.1's rules.

Accepted forms, as in nilearn: a 1-D ndarray of indices or booleans (one run), or a list /
tuple of such masks, one per run. ``clean`` works on a single run, so a list must hold exactly
one mask (``[[1, 2, 4]]``); a flat list such as ``[1, 2, 4]`` is rejected like nilearn does.
Boolean masks become the indices of their ``True`` entries (their length is not checked
against the number of volumes, as in nilearn). Indices are cast to int32.

Differences (documented, tested in ``tests/test_cleaning_errors.py``):

- an index equal to the number of volumes is rejected here with an IndexError that keeps
  both nilearn's wording and numpy's "out of bounds" phrase (nilearn fails later, in numpy);
- a mask with more than one dimension is rejected (nilearn returns a 3-D array);
- the caller's array is never modified (nilearn shifts a user int32 index array in place
  when ``extrapolate=False``).
"""

from __future__ import annotations

import numpy as np

from lazyspheres._types import IntArray, UserInput
from lazyspheres.cleaning._kinds import is_dataarray, is_series
from lazyspheres.cleaning.exceptions import (
    CleaningIndexError,
    CleaningTypeError,
    CleaningValueError,
)

__all__ = ["sanitize_sample_mask"]


def _as_run_masks(sample_mask: object) -> list[UserInput]:
    """Split ``sample_mask`` into per-run masks, or raise nilearn's TypeError."""
    if not isinstance(sample_mask, (list, tuple, np.ndarray)):
        # pandas Series / xarray DataArray carry an ndarray: treat them as one.
        if is_series(sample_mask) or is_dataarray(sample_mask):
            sample_mask = sample_mask.to_numpy()
        else:
            raise CleaningTypeError(f"sample_mask has an unhandled type: {sample_mask.__class__}")
    if isinstance(sample_mask, np.ndarray):
        return [sample_mask]
    return list(sample_mask)


def _run_mask_to_indices(mask: UserInput) -> IntArray:
    """Convert one run's mask (booleans or indices) to an int32 index array."""
    if (isinstance(mask, np.ndarray) and mask.ndim == 0) or np.isscalar(mask):
        raise CleaningTypeError(
            f"'{type(mask).__name__}' object is not iterable: each run's sample_mask must be "
            "a sequence of indices or booleans. Pass a numpy array (np.array([1, 2, 4])) or "
            "a list with one mask per run ([[1, 2, 4]])."
        )
    if all(type(item) is bool or type(item) is np.bool_ for item in mask):
        mask = np.flatnonzero(np.asarray(mask, dtype=bool))
    values = np.asarray(mask)
    if values.ndim != 1:
        raise CleaningValueError(
            f"sample_mask must be one-dimensional per run; got an array of shape {values.shape}."
        )
    if values.dtype.kind not in "biuf":
        raise CleaningTypeError(
            f"sample_mask must contain integer indices or booleans; got dtype {values.dtype}."
        )
    if values.size == 0:
        raise CleaningValueError(
            "sample_mask keeps no volume (zero-size array to reduction operation minimum "
            "which has no identity): at least one volume must be kept."
        )
    if values.min() < 0:
        raise CleaningValueError("sample_mask should not contain negative values.")
    if values.max() > np.iinfo(np.int32).max:
        raise CleaningValueError(
            "Max value in sample mask is larger than what can be represented by int32: "
            f"{values.max()}."
        )
    return values.astype(np.int32)


def sanitize_sample_mask(sample_mask: object, n_time: int) -> IntArray | None:
    """Validate ``sample_mask`` against a run of ``n_time`` volumes.

    Parameters
    ----------
    sample_mask : None, ndarray, list or tuple
        Indices or booleans of the volumes to keep, or a list of one such mask per run.
    n_time : int
        Number of volumes of the (single) run.

    Returns
    -------
    ndarray of int32 or None
        Indices of the kept volumes, in the order given (a new array).

    Raises
    ------
    TypeError
        Unsupported type ("sample_mask has an unhandled type").
    ValueError
        Negative values, no kept volume, or a number of masks other than one.
    IndexError
        More indices than volumes, or an index out of range.
    """
    if sample_mask is None:
        return None
    masks = [_run_mask_to_indices(mask) for mask in _as_run_masks(sample_mask)]
    if len(masks) != 1:
        raise CleaningValueError(
            f"Number of sample_mask ({len(masks)}) not matching number of runs (1)."
        )
    indices = masks[0]
    if len(indices) > n_time:
        raise CleaningIndexError(
            "sample_mask 1 of 1 is has more timepoints than the current run ;sample_mask "
            f"contains {len(indices)} index but the run has {n_time} timepoints."
        )
    invalid = indices[indices > n_time]
    if invalid.size:
        raise CleaningIndexError(
            f"sample_mask 1 of 1 contains invalid index {invalid}. "
            f"The signal contains {n_time} time points."
        )
    at_end = indices[indices == n_time]
    if at_end.size:
        raise CleaningIndexError(
            f"sample_mask 1 of 1 contains invalid index {at_end}. The signal contains "
            f"{n_time} time points (index {n_time} is out of bounds for axis 0 with size "
            f"{n_time}); indices count from 0."
        )
    return indices.copy()
