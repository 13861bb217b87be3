"""``inverse_transform``: sphere signals painted back into the mask's grid.

Every voxel of a sphere gets its sphere's value (with ``allow_overlap``, a voxel shared by
k spheres gets the mean of their k values); every other voxel is 0. The image is on the
grid of ``mask_img_`` (binarised at fit) and holds float64, as in nilearn 0.12.1.

Difference from nilearn 0.12.1 (SPEC §3.5): the spheres are built with exactly the rules
of ``transform`` (:func:`lazyspheres.sphere_voxels` on the mask grid, nearest voxel
included). nilearn's inverse drops the nearest-voxel rule, so small spheres can be empty
there ("These spheres are empty") or smaller than in ``transform``.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from sklearn.utils.validation import check_array

from lazyspheres._types import UserInput
from lazyspheres.geometry import sphere_voxels

__all__ = ["as_signal_array", "signals_to_image"]


def as_signal_array(region_signals: UserInput, n_elements: int) -> np.ndarray:
    """Validate signals for ``inverse_transform``: shape ``(n,)`` or ``(T, n)``.

    Accepts arrays, lists, pandas/polars DataFrames and DataArrays (a DataArray with a
    ``seed`` dimension is put in ``(time, seed)`` order).

    Raises
    ------
    ValueError
        NaN/inf values, more than 2 dimensions (scikit-learn's "Found array with dim 3,
        while dim <= 2 is required."), or a shape that does not match the seeds ("Input
        to 'inverse_transform' has wrong shape.").
    """
    signals = _to_numpy(region_signals)
    signals = np.atleast_1d(signals)
    signals = check_array(signals, ensure_2d=False)
    if signals.ndim > 2:  # check_array already refuses; kept for clarity of the contract
        raise ValueError(f"Found array with dim {signals.ndim}, while dim <= 2 is required.")
    expected = (n_elements,) if signals.ndim == 1 else (signals.shape[0], n_elements)
    if signals.shape != expected:
        raise ValueError(
            "Input to 'inverse_transform' has wrong shape.\n"
            f"Expected {expected}.\nGot {signals.shape}.\n"
            f"(One column per seed: the masker has {n_elements} seed(s).)"
        )
    return signals


def signals_to_image(
    signals: np.ndarray,
    mask_img: nib.Nifti1Image,
    coords: np.ndarray,
    radius: float | None,
    allow_overlap: bool,
) -> nib.Nifti1Image:
    """Paint sphere signals into the mask grid (float64).

    Parameters
    ----------
    signals : numpy.ndarray
        ``(n_seeds,)`` or ``(T, n_seeds)``.
    mask_img : nibabel.Nifti1Image
        The fitted binary 3D mask; it gives the grid and the candidate voxels.
    coords : numpy.ndarray
        ``(n_seeds, 3)`` seed coordinates (mm).
    radius : float or None
        Sphere radius.
    allow_overlap : bool
        Whether spheres may share voxels (shared voxels get the mean of the spheres).

    Returns
    -------
    nibabel.Nifti1Image
        3D for 1D signals, 4D ``(*mask.shape, T)`` for 2D signals.

    Raises
    ------
    EmptySphereError, OverlapError
        As for ``transform``, in the mask grid.
    """
    mask = np.asarray(mask_img.dataobj).astype(bool)
    spheres = sphere_voxels(
        coords, mask_img.affine, mask.shape, radius=radius, mask=mask, allow_overlap=allow_overlap
    )
    membership = spheres.membership()  # (n_seeds, n_union) ones
    if allow_overlap:
        counts = np.asarray(membership.sum(axis=0)).ravel()
        membership = membership.multiply(1.0 / np.maximum(1.0, counts)[None, :]).tocsr()
    one_d = signals.ndim == 1
    values = np.asarray(signals, dtype=np.float64).reshape(-1, spheres.n_seeds)
    voxel_values = np.asarray(membership.T @ values.T)  # (n_union, T)
    data = np.zeros((*mask.shape, values.shape[0]), dtype=np.float64)
    i, j, k = spheres.voxels.T
    data[i, j, k, :] = voxel_values
    if one_d:
        data = data[..., 0]
    return nib.Nifti1Image(data, mask_img.affine)


def _to_numpy(region_signals: UserInput) -> UserInput:
    """Plain arrays from DataFrames (pandas, polars) and DataArrays."""
    module = type(region_signals).__module__
    if module.startswith("pandas") and hasattr(region_signals, "to_numpy"):
        return region_signals.to_numpy()
    if module.startswith("polars") and hasattr(region_signals, "to_numpy"):
        return region_signals.to_numpy()
    if module.startswith("xarray") and hasattr(region_signals, "dims"):
        if "seed" in region_signals.dims and region_signals.ndim == 2:
            region_signals = region_signals.transpose(..., "seed")
        return np.asarray(region_signals.values)
    return region_signals
