"""Gaussian smoothing (``smoothing_fwhm``) computed only where sphere signals need it.

:func:`check_fwhm`, :func:`smoothing_sigmas` and :func:`smoothing_dtype` are nilearn 0.12.1's
rules; :class:`SmoothingPlan` computes the smoothed values at chosen voxels from the raw values
around them, bit for bit equal to smoothing the whole image first.
"""

from __future__ import annotations

from lazyspheres.smoothing.params import (
    FWHM_TO_SIGMA,
    check_fwhm,
    kernel_halo,
    smoothing_dtype,
    smoothing_sigmas,
)
from lazyspheres.smoothing.plan import SmoothingPlan, reflect_index

__all__ = [
    "FWHM_TO_SIGMA",
    "SmoothingPlan",
    "check_fwhm",
    "kernel_halo",
    "reflect_index",
    "smoothing_dtype",
    "smoothing_sigmas",
]
