"""Warning helper and the nilearn 0.12.1 message texts that users (and tests) match on.

The texts are behaviour: ``pytest.warns(..., match=...)`` written against nilearn must keep
working against lazyspheres, so they are reproduced character for character (including
nilearn's missing spaces after some periods). Everything else in this subpackage is worded
by us.
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType

__all__ = ["EXTRAPOLATE_FUTURE", "ZSCORE_DEPRECATION", "warn"]

ZSCORE_DEPRECATION = (
    "The default strategy for standardize is currently 'zscore' which incorrectly uses "
    "population std to calculate sample zscores. The new strategy 'zscore_sample' corrects "
    "this behavior by using the sample std. In release 0.13, the default strategy will be "
    "replaced by the new strategy and the 'zscore' option will be removed. Please use "
    "'zscore_sample' instead."
)

EXTRAPOLATE_FUTURE = (
    "By default the cubic spline interpolator extrapolates the out-of-bounds censored "
    "volumes in the data run. This can lead to undesired filtered signal results. Starting "
    "in version 0.13, the default strategy will be not to extrapolate but to discard those "
    "volumes at filtering."
)

DETREND_SINGLE = (
    "Detrending of 3D signal has been requested but would lead to zero values. Skipping."
)

STANDARDIZE_SINGLE = (
    "Standardization of 3D signal has been requested but would lead to zero values. Skipping."
)

PSC_ZERO_MEAN = (
    "psc standardization strategy is meaningless for features that have a mean of 0. "
    "These time series are set to 0."
)

COSINE_IN_CONFOUNDS = (
    "Cosine filter(s) exist in user supplied confounds.Use user supplied regressors only."
)

COSINE_NOT_CREATED = (
    "Cosine filter was not created. The time series might be too short or the high pass "
    "filter is not suitable for the data."
)

NO_FILTER_TYPE = (
    "No filter type selected but cutoff frequency provided.Will not perform filtering."
)

BAND_EQUAL = (
    "Signals are returned unfiltered because band-pass critical frequencies are equal. "
    "Please check that inputs for sampling_rate, low_pass, and high_pass are valid."
)


def _stacklevel() -> int:
    """Return the stacklevel of the first frame outside lazyspheres (the user's call)."""
    frame: FrameType | None = sys._getframe(2)  # skip this helper and warn()
    level = 2
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != "lazyspheres" and not module.startswith("lazyspheres."):
            return level
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Emit ``message`` attributed to the first caller outside lazyspheres.

    Attributing the warning to user code (as nilearn's ``find_stack_level`` does) makes it
    visible by default and keeps lazyspheres' own "no warnings from our modules" filter
    meaningful. At compute time inside Dask workers the first outside frame is Dask's.

    Parameters
    ----------
    message : str
        Warning text.
    category : type of Warning, default UserWarning
        Warning class.
    """
    warnings.warn(message, category, stacklevel=_stacklevel())
