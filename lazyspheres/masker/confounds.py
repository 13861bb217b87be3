"""High-variance confounds of the input image (nilearn's ``high_variance_confounds``).

Temporary in-memory implementation until ``lazyspheres.hv_confounds`` (streaming) lands.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import xarray as xr

__all__ = ["high_variance_confounds"]


def high_variance_confounds(image: xr.DataArray) -> np.ndarray:
    """5 components of the 2 % highest-variance voxels of the raw image (T, 5)."""
    if "time" not in image.dims:
        from lazyspheres.errors import DimensionError

        raise DimensionError(3, 4, "High-variance confounds need a 4D image.")
    values = np.asarray(image.transpose("time", ...).values)
    series = values.reshape(values.shape[0], -1)
    dtype = (
        np.float64
        if series.dtype.kind == "f" and series.dtype.itemsize == 8
        else (np.float32 if series.dtype.itemsize <= 4 else np.float64)
    )
    series = series.astype(dtype)
    n = series.shape[0]
    series = series - series.mean(axis=0)
    ramp = np.arange(n, dtype=dtype)
    ramp -= ramp.mean()
    norm = np.linalg.norm(ramp)
    if norm >= np.finfo(np.float64).eps:
        ramp /= norm
    series -= ramp[:, None] @ (ramp[None, :] @ series)
    variance = (series**2).mean(axis=0)
    threshold = np.nanpercentile(variance, 98.0)
    kept = series[:, variance > threshold]
    u, _, _ = scipy.linalg.svd(kept, full_matrices=False)
    return u[:, :5]
