"""Shared helpers of the cleaning tests (oracle calls, tolerances, independent models)."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
from scipy import signal as sp_signal
from scipy.interpolate import CubicSpline

# lazyspheres.clean keyword -> nilearn.signal.clean keyword
NILEARN_NAMES = {
    "butterworth_order": "butterworth__order",
    "butterworth_padtype": "butterworth__padtype",
    "butterworth_padlen": "butterworth__padlen",
}


def nilearn_clean(signals, **kwargs):
    """nilearn 0.12.1 ``signal.clean`` with the masker's defaults (our ``clean``'s defaults)."""
    from nilearn import signal as nilearn_signal

    kwargs = {NILEARN_NAMES.get(k, k): v for k, v in kwargs.items()}
    kwargs.setdefault("detrend", False)
    kwargs.setdefault("standardize", False)
    kwargs.setdefault("t_r", None)
    signals = np.asarray(signals)
    if signals.ndim == 1:  # nilearn's 1-D support is partial; clean the column
        return nilearn_signal.clean(signals[:, None], **kwargs)[:, 0]
    return nilearn_signal.clean(signals, **kwargs)


def run_recording(func, *args, **kwargs):
    """Call ``func``; return (result or exception, Counter of (category, message))."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            result = exc
    seen = Counter(
        (w.category.__name__, str(w.message))
        for w in caught
        # numpy's RuntimeWarnings inside nilearn (0/0 in corrcoef, ...) are not nilearn's own
        if not issubclass(w.category, RuntimeWarning)
    )
    return result, seen


def tolerance(
    reference: np.ndarray, scale: float | None = None, single_precision: bool = False
) -> dict:
    """assert_allclose tolerances for comparing with nilearn.

    float64: both implementations evaluate the same formulas in float64; they differ only by
    the order of summations (nilearn reduces along axis 0 and uses BLAS, lazyspheres sums
    each series along time in a fixed order so that results do not depend on the seed
    chunking). Observed differences are ~5e-15 of the output scale; 1e-10 leaves room for
    ill-conditioned cases (e.g. detrending a large mean) while catching any formula change.

    float32: every operation rounds to float32 (eps 6e-8) in both implementations, but at
    different points; after centring series whose mean is ~10x their spread and summing
    ~100 terms, differences reach ~1e-6 of the output scale. 2e-5 is float32 rounding with
    that headroom; an algorithmic difference (ddof, a missing step) is far larger.

    float32 confounds with float64 signals (high-variance confounds of a float32 image):
    the confound directions are orthonormalised in float32 by both, so the projection is only
    float32-accurate (~1e-7 of the output scale, as between nilearn versions: deltas §2):
    ``single_precision`` applies the float32 budget.

    ``scale`` defaults to the output's largest magnitude; outputs that are pure cancellation
    noise (everything regressed out) are compared on the input's scale instead.
    """
    if scale is None:
        scale = float(np.max(np.abs(reference))) if reference.size else 1.0
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    if reference.dtype == np.float64 and not single_precision:
        return {"rtol": 1e-10, "atol": 1e-10 * scale}
    return {"rtol": 0.0, "atol": 2e-5 * scale}


def assert_same(ours, reference, scale=None, single_precision=False):
    """Same dtype and shape as nilearn, values within :func:`tolerance`."""
    ours = np.asarray(ours)
    assert ours.dtype == reference.dtype, (ours.dtype, reference.dtype)
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    np.testing.assert_allclose(ours, reference, **tolerance(reference, scale, single_precision))


def as_indices(mask, n_time):
    mask = np.asarray(mask)
    return np.flatnonzero(mask) if mask.dtype == bool else mask.astype(int)


def mirror_safe(mask, n_time) -> bool:
    """True when every censored volume's mirror (T-1-i) is kept: nilearn's scrubbing is right."""
    kept = as_indices(mask, n_time)
    censored = np.setdiff1d(np.arange(n_time), kept)
    return bool(np.isin(n_time - 1 - censored, kept).all())


def prefill_censored(values, mask, t_r, extrapolate):
    """Independent model of correct scrubbing: fill every censored volume beforehand.

    A not-a-knot cubic spline through the kept volumes gives every censored volume its value
    (NaN outside the kept range when ``extrapolate`` is False, so nilearn drops those rows).
    nilearn's own interpolation then only rewrites volumes with the same values, so
    nilearn(prefilled input) is the result of interpolating *every* censored volume.
    """
    dtype = values.dtype
    if dtype.kind != "f":  # nilearn's working dtype for integer input
        dtype = np.float64 if dtype.itemsize == 8 else np.float32
    values = np.array(values, dtype=dtype)
    squeeze = values.ndim == 1
    values = values[:, None] if squeeze else values
    n_time = values.shape[0]
    kept = as_indices(mask, n_time)
    censored = np.setdiff1d(np.arange(n_time), kept)
    times = np.arange(n_time) * t_r
    spline = CubicSpline(times[kept], values[kept], extrapolate=extrapolate)
    values[censored] = spline(times[censored])
    return values[:, 0] if squeeze else values


def correct_scrub_filter(values, mask, t_r, low_pass=None, high_pass=None, order=5):
    """From-scratch model: interpolate all censored volumes, Butterworth, keep the mask.

    (No detrending, confounds or standardisation; extrapolation at the edges.)
    """
    values = np.asarray(values, dtype=np.float64)
    n_time = values.shape[0]
    kept = as_indices(mask, n_time)
    censored = np.setdiff1d(np.arange(n_time), kept)
    times = np.arange(n_time) * t_r
    filled = values.copy()
    filled[censored] = CubicSpline(times[kept], values[kept])(times[censored])
    if low_pass is not None and high_pass is not None:
        btype, wn = "band", [high_pass, low_pass]
    elif low_pass is not None:
        btype, wn = "low", low_pass
    else:
        btype, wn = "high", high_pass
    sos = sp_signal.butter(order, wn, btype=btype, output="sos", fs=1.0 / t_r)
    return sp_signal.sosfiltfilt(sos, filled, axis=0)[kept]


def make_signals(rng, n_time, n_series, dtype=np.float64, *, trend=True):
    """BOLD-like series: mean ~100, spread ~10, a slow drift (float or integer dtype)."""
    values = 100 + 10 * rng.standard_normal((n_time, n_series))
    values += rng.uniform(-5, 5, n_series) * np.linspace(-1, 1, n_time)[:, None] * trend
    values += 3 * np.sin(np.arange(n_time) * 0.3)[:, None] * rng.standard_normal(n_series)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return np.round(values * 10).astype(dtype)
    return values.astype(dtype)
