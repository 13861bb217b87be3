"""Temporal filters: Butterworth, cosine drift regressors, and scrubbing interpolation.

All functions take signals as rows: an array of shape ``(n_series, n_time)``, C-contiguous,
so that every per-series computation runs on contiguous memory and gives bit-identical
results whatever the number of series in the block (the basis of chunk invariance).

Butterworth (nilearn 0.12.1 semantics): ``scipy.signal.butter(order, Wn, btype,
output="sos", fs=1/t_r)`` applied forward-backward with ``sosfiltfilt`` (padding
``padtype``/``padlen`` as given, scipy's default padlen otherwise). A cutoff at or above
Nyquist is lowered to ``nyq - nyq*10*eps32``, a negative one raised to ``nyq*eps32``, each
with nilearn's warning; if a band's two cutoffs end up equal the signals are left unfiltered
(warning). Computation is in float64 and written back in the signals' dtype.

Cosine drift (DCT-II, as nilearn's ``create_cosine_drift``): ``order = min(T-1,
floor(2*T*high_pass*dt))`` columns ``sqrt(2/T)*cos(pi/T*(t+0.5)*k)``, k = 1..order (the
constant column is not used). They are appended to the confounds unless a user confound
correlates above 0.9 with one of them.

Scrubbing with Butterworth: censored volumes are replaced by a not-a-knot cubic spline
through the kept volumes (``scipy.interpolate.CubicSpline`` on times ``arange(T)*t_r``), the
series is filtered, and the kept volumes are selected afterwards (Lindquist et al. 2018).
**Difference from nilearn 0.12.1:** nilearn writes the spline values at rows
``~sample_mask`` — the bitwise NOT of the index array, i.e. the mirror rows ``T-1-k`` of the
kept rows — so a censored volume whose mirror is also censored keeps its raw value (a spike
there leaks into the filtered output), and censoring both ends with ``extrapolate=False``
misplaces rows. lazyspheres interpolates exactly the censored volumes (SPEC §3.5). When every
censored volume's mirror is kept the two agree. With ``extrapolate=False`` censored volumes
before the first / after the last kept one are dropped before filtering, as nilearn intends.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sp_signal
from scipy.interpolate import CubicSpline

from lazyspheres.cleaning._warnings import BAND_EQUAL, COSINE_NOT_CREATED, warn
from lazyspheres.cleaning.exceptions import CleaningValueError

__all__ = [
    "apply_butterworth",
    "check_butterworth_length",
    "cosine_drift",
    "cosine_in_confounds",
    "design_butterworth",
    "interpolate_censored",
]


def _clip_cutoff(btype: str, freq: float, nyq: float) -> float:
    """Keep a cutoff inside (0, Nyquist), warning as nilearn does when it moves."""
    eps = np.finfo(np.float32).eps
    if freq >= nyq:
        # Same expression as nilearn so the clipped value (and its printed form) match.
        freq = nyq - (nyq * 10 * eps)
        warn(
            f"The frequency specified for the {btype} pass filter is too high to be handled "
            "by a digital filter (superior to Nyquist frequency). It has been lowered to "
            f"{freq} (Nyquist frequency)."
        )
    elif freq < 0.0:
        freq = nyq * eps
        warn(
            f"The frequency specified for the {btype} pass filter is too low to be handled by "
            "a digital filter (must be non-negative). It has been set to eps: "
            f"{freq}."
        )
    return freq


def design_butterworth(
    low_pass: float | None, high_pass: float | None, t_r: float, order: int = 5
) -> np.ndarray | None:
    """Design nilearn's Butterworth filter as second-order sections.

    Parameters
    ----------
    low_pass, high_pass : float or None
        Cutoffs in Hz (at least one is given).
    t_r : float
        Repetition time in seconds.
    order : int, default 5
        Filter order.

    Returns
    -------
    ndarray or None
        The ``sos`` array, or None when a band's clipped cutoffs are equal (no filtering).

    Raises
    ------
    ValueError
        ``high_pass >= low_pass``, or scipy's own errors (zero cutoff, bad order).
    """
    if low_pass is not None and high_pass is not None and high_pass >= low_pass:
        raise CleaningValueError(
            f"High pass cutoff frequency ({high_pass}) is greater than or equal to low pass "
            f"filter frequency ({low_pass}). This case is not handled by this function."
        )
    sampling_rate = 1.0 / t_r
    nyq = sampling_rate * 0.5
    critical: list[float] = []
    btype = ""
    if high_pass is not None:
        btype = "high"
        critical.append(_clip_cutoff(btype, high_pass, nyq))
    if low_pass is not None:
        btype = "low"
        critical.append(_clip_cutoff(btype, low_pass, nyq))
    wn: float | list[float]
    if len(critical) == 2:
        btype = "band"
        if critical[0] == critical[1]:
            warn(BAND_EQUAL)
            return None
        wn = critical
    else:
        wn = critical[0]
    return sp_signal.butter(N=order, Wn=wn, btype=btype, output="sos", fs=sampling_rate)


def check_butterworth_length(
    sos: np.ndarray, n_time: int, padtype: str | None, padlen: int | None
) -> None:
    """Raise scipy's error now if ``sosfiltfilt`` cannot filter ``n_time`` samples.

    Filtering a zero series of the right length is the cheapest way to get exactly the
    message nilearn's users see ("The length of the input vector x must be greater than
    padlen, which is 18."), at graph-build time instead of inside a worker.

    Parameters
    ----------
    sos : ndarray
        Second-order sections.
    n_time : int
        Number of samples that will be filtered.
    padtype : str or None
        Padding type.
    padlen : int or None
        Padding length.
    """
    sp_signal.sosfiltfilt(sos, np.zeros(n_time), padtype=padtype, padlen=padlen)


def apply_butterworth(
    rows: np.ndarray, sos: np.ndarray, padtype: str | None, padlen: int | None
) -> np.ndarray:
    """Filter each row forward and backward; the result keeps ``rows``' dtype.

    Parameters
    ----------
    rows : ndarray, shape (n_series, n_time)
        Signals as rows.
    sos : ndarray
        Second-order sections.
    padtype : str or None
        Padding type.
    padlen : int or None
        Padding length.

    Returns
    -------
    ndarray
        Filtered rows (float64 arithmetic, cast back like nilearn's in-place write).
    """
    filtered = sp_signal.sosfiltfilt(sos, rows, axis=-1, padtype=padtype, padlen=padlen)
    return np.ascontiguousarray(filtered, dtype=rows.dtype)


def cosine_drift(high_pass: float, t_r: float, n_time: int) -> np.ndarray:
    """Cosine (DCT-II) drift regressors of nilearn's cosine filter, constant dropped.

    Parameters
    ----------
    high_pass : float
        Cutoff in Hz.
    t_r : float
        Repetition time in seconds.
    n_time : int
        Number of volumes (at least 2).

    Returns
    -------
    ndarray of float64, shape (n_time, order)
        The regressors; ``order`` may be 0 (warning).
    """
    if n_time < 2:
        raise CleaningValueError(
            f"The cosine filter needs at least 2 volumes to define its frequencies; got {n_time}."
        )
    frame_times = np.arange(n_time) * t_r
    dt = (frame_times[-1] - frame_times[0]) / (n_time - 1)
    if high_pass * dt >= 0.5:
        warn(
            "High-pass filter will span all accessible frequencies and saturate the design "
            "matrix. You may want to reduce the high_pass value."
            f"The provided value is {high_pass} Hz"
        )
    order = int(np.minimum(n_time - 1, int(np.floor(2 * n_time * high_pass * dt))))
    drift = np.zeros((n_time, order))
    normalizer = np.sqrt(2.0 / n_time)
    times = np.arange(n_time)
    for k in range(1, order + 1):
        drift[:, k - 1] = normalizer * np.cos((np.pi / n_time) * (times + 0.5) * k)
    if order == 0:
        warn(COSINE_NOT_CREATED)
    return drift


def cosine_in_confounds(drift: np.ndarray, confounds: np.ndarray) -> bool:
    """Whether a confound column correlates above 0.9 with a cosine regressor.

    NaN correlations (constant or non-finite columns) count as "not correlated", as in
    nilearn.

    Parameters
    ----------
    drift : ndarray, shape (n_time, n_cosines)
        Cosine regressors.
    confounds : ndarray, shape (n_time, n_columns)
        User confounds as given (before any processing).

    Returns
    -------
    bool
    """
    cos = drift - drift.mean(axis=0)
    conf = np.asarray(confounds, dtype=np.float64)
    conf = conf - conf.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        num = cos.T @ conf
        den = np.sqrt((cos * cos).sum(axis=0))[:, None] * np.sqrt((conf * conf).sum(axis=0))
        corr = np.clip(num / den, -1.0, 1.0)
    return bool(np.any(corr > 0.9))


def interpolate_censored(
    rows: np.ndarray,
    kept: np.ndarray,
    censored: np.ndarray,
    t_r: float,
    extrapolate: bool,
) -> np.ndarray:
    """Replace censored volumes by a cubic spline through the kept ones (in place).

    Parameters
    ----------
    rows : ndarray, shape (n_series, n_time)
        Signals as rows; modified in place and returned.
    kept : ndarray of int
        Kept volume indices, strictly increasing (at least 2).
    censored : ndarray of int
        Volumes to replace.
    t_r : float
        Repetition time (knot spacing).
    extrapolate : bool
        Whether volumes outside the kept range are extrapolated (else they become NaN and
        are dropped by the caller).

    Returns
    -------
    ndarray
        ``rows``.
    """
    if censored.size == 0:
        return rows
    frame_times = np.arange(rows.shape[1]) * t_r
    spline = CubicSpline(frame_times[kept], rows[:, kept], axis=1, extrapolate=extrapolate)
    rows[:, censored] = spline(frame_times[censored])
    return rows
