"""Per-series centring, detrending and standardisation (nilearn 0.12.1 formulas).

Signals are rows of a C-contiguous ``(n_series, n_time)`` array and every reduction runs
along the contiguous last axis, so each series' result depends only on that series (not on
the other series of its block): this is what makes Dask results identical across seed
chunkings. nilearn reduces along axis 0 of a ``(T, n)`` array (and uses BLAS for the
detrending product), so the two differ by floating-point reassociation only (~1e-15
relative in float64).

Strategies (``standardize``):

- ``"zscore"`` (and ``True``): centre, divide by the population std (ddof 0); std below
  float64 eps becomes 1. nilearn 0.12.1 emits a DeprecationWarning each time (the caller
  emits it, once per matrix).
- ``"zscore_sample"``: the same with ddof 1.
- ``"psc"``: ``(x - mean) / |mean| * 100``; series whose |mean| is below float64 eps become 0
  (with a warning). Whether the original mean is added back first is decided jointly over
  all series (:func:`psc_add_back`), which in Dask needs the per-series means of every block.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "detrend_rows",
    "maxabs_scale_rows",
    "mean_rows",
    "psc_add_back",
    "psc_rows",
    "psc_stats",
    "zscore_rows",
]

_EPS64 = np.finfo(np.float64).eps


def mean_rows(rows: np.ndarray) -> np.ndarray:
    """Mean of each row (numpy's pairwise sum along the contiguous axis)."""
    return rows.mean(axis=1)


def detrend_rows(rows: np.ndarray) -> np.ndarray:
    """Remove each row's mean and linear trend (in place; ``rows`` is returned).

    The trend regressor is ``arange(T)`` in the rows' dtype, centred and scaled to unit norm
    (unless its norm is below float64 eps), as in nilearn's ``_detrend``.

    Parameters
    ----------
    rows : ndarray, shape (n_series, n_time)
        Signals as rows, float, at least 2 samples.

    Returns
    -------
    ndarray
        ``rows``, detrended.
    """
    rows -= mean_rows(rows)[:, None]
    ramp = np.arange(rows.shape[1], dtype=rows.dtype)
    ramp -= ramp.mean()
    norm = np.sqrt((ramp**2).sum())
    if not norm < _EPS64:
        ramp /= norm
    slope = (rows * ramp).sum(axis=1)
    rows -= slope[:, None] * ramp
    return rows


def zscore_rows(rows: np.ndarray, ddof: int) -> np.ndarray:
    """Centre each row and divide it by its std (``ddof`` 0 or 1); tiny stds become 1.

    Parameters
    ----------
    rows : ndarray, shape (n_series, n_time)
        Signals as rows (not modified).
    ddof : int
        Delta degrees of freedom of the std.

    Returns
    -------
    ndarray
        Standardised copy.
    """
    centred = rows - mean_rows(rows)[:, None]
    # numpy's std: re-centre, square, sum, divide by (n - ddof), sqrt.
    deviation = centred - mean_rows(centred)[:, None]
    variance = (deviation * deviation).sum(axis=1) / max(rows.shape[1] - ddof, 0)
    std = np.sqrt(variance)
    std[std < _EPS64] = 1.0
    centred /= std[:, None]
    return centred


def maxabs_scale_rows(rows: np.ndarray) -> np.ndarray:
    """Divide each row by its maximum absolute value (0 -> 1), in place."""
    peak = np.max(np.abs(rows), axis=1)
    peak[peak == 0] = 1
    rows /= peak[:, None]
    return rows


def psc_stats(rows: np.ndarray, original_mean: np.ndarray) -> np.ndarray:
    """Per-series statistics the joint psc decision needs.

    Parameters
    ----------
    rows : ndarray, shape (n_series, n_time)
        Cleaned signals before standardisation.
    original_mean : ndarray, shape (n_series,)
        Their means before detrending/filtering/regression.

    Returns
    -------
    ndarray, shape (3, n_series)
        |mean of rows|, |original mean|, and the mean of ``rows + original_mean`` (used to
        flag zero-mean series whichever way the decision goes).
    """
    return np.stack(
        [
            np.abs(mean_rows(rows)),
            np.abs(original_mean),
            mean_rows(rows + original_mean[:, None]),
        ]
    )


def psc_add_back(stats: np.ndarray) -> bool:
    """Decide (nilearn's joint test) whether to add the original mean back before psc.

    ``mean over series of |mean|`` after cleaning divided by the same for the original
    signals, compared with 0.1 (NaN, e.g. all original means zero, means "no").

    Parameters
    ----------
    stats : ndarray, shape (3, n_series)
        Output of :func:`psc_stats` for all series, in series order.

    Returns
    -------
    bool
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return bool(stats[0].mean() / stats[1].mean() < 1e-1)


def psc_rows(rows: np.ndarray, original_mean: np.ndarray, add_back: bool) -> np.ndarray:
    """Percent signal change of each row; zero-mean rows become 0.

    Parameters
    ----------
    rows : ndarray, shape (n_series, n_time)
        Cleaned signals (not modified).
    original_mean : ndarray, shape (n_series,)
        Means before cleaning.
    add_back : bool
        Result of :func:`psc_add_back`.

    Returns
    -------
    ndarray
        The psc-scaled copy.
    """
    if add_back:
        rows = rows + original_mean[:, None]
    mean = mean_rows(rows)
    zero = np.abs(mean) < _EPS64
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = (rows - mean[:, None]) / np.abs(mean)[:, None]
    scaled *= 100
    scaled[zero] = 0
    return scaled
