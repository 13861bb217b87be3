"""The numpy cleaning kernel: one block of series, shape ``(T, n)``, cleaned per the plan.

Order of operations (nilearn 0.12.1 ``signal.clean`` with ``runs=None``):

1. copy to the working float dtype (optionally zeroing non-finite values);
2. scrubbing: censor the volumes, or (Butterworth) interpolate the censored ones;
3. remember each series' mean (psc uses it);
4. detrend (mean and linear trend);
5. Butterworth filter, then drop the censored volumes;
6. project out the confounds (prepared once by :func:`build_projector`: same scrubbing,
   detrending and filtering, then standardised and orthonormalised by pivoted QR, keeping
   the directions whose ``|R_ii| > 100*eps64``);
7. standardise.

Internally series are rows of a C-contiguous ``(n, T)`` array and the projection is
accumulated direction by direction with elementwise operations (no BLAS, whose summation
order depends on the block width), so every series' result is bitwise independent of how the
seeds are chunked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as np
from scipy import linalg

from lazyspheres.cleaning._warnings import COSINE_IN_CONFOUNDS, PSC_ZERO_MEAN, warn
from lazyspheres.cleaning.confounds import check_finite_confounds
from lazyspheres.cleaning.filters import (
    apply_butterworth,
    cosine_in_confounds,
    interpolate_censored,
)
from lazyspheres.cleaning.params import CleanPlan
from lazyspheres.cleaning.standardize import (
    detrend_rows,
    maxabs_scale_rows,
    mean_rows,
    psc_add_back,
    psc_rows,
    psc_stats,
    zscore_rows,
)

__all__ = [
    "build_projector",
    "clean_block",
    "clean_rows",
    "clean_series",
    "psc_decide",
    "regress_rows",
    "standardize_rows",
]

_EPS64 = np.finfo(np.float64).eps
_TEMP_ELEMENTS = 1 << 21  # bound on temporaries of the projection (16 MB of float64)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _quiet_fp(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``func`` without numpy floating-point warnings.

    Non-finite input (``ensure_finite=False``) propagates as NaN, as in nilearn; numpy's
    "invalid value" warnings along the way say nothing the NaN does not.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with np.errstate(all="ignore"):
            return func(*args, **kwargs)

    return wrapper


def _scrub(rows: np.ndarray, plan: CleanPlan) -> np.ndarray:
    if plan.scrub == "censor":
        # Fancy indexing along axis 1 returns an F-ordered array: rows must stay contiguous.
        return np.ascontiguousarray(rows[:, plan.sample_mask])
    # the plan sets sample_mask and t_r whenever it chooses to interpolate
    if plan.scrub == "interpolate" and plan.sample_mask is not None and plan.t_r is not None:
        interpolate_censored(rows, plan.sample_mask, plan.censored, plan.t_r, plan.extrapolate)
        start, stop = plan.span
        if (start, stop) != (0, plan.n_time):
            rows = np.ascontiguousarray(rows[:, start:stop])
    return rows


def _detrend_and_filter(rows: np.ndarray, plan: CleanPlan) -> np.ndarray:
    if plan.detrend and rows.shape[1] > 1:
        detrend_rows(rows)
    if plan.sos is not None:
        rows = apply_butterworth(rows, plan.sos, plan.padtype, plan.padlen)
    if plan.scrub == "interpolate":
        rows = np.ascontiguousarray(rows[:, plan.final_rows])
    return rows


@_quiet_fp
def clean_rows(
    block: np.ndarray, plan: CleanPlan, projector: np.ndarray | None, *, blas: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1–6 on a ``(T, n)`` block.

    Parameters
    ----------
    block : ndarray, shape (n_time, n_series)
        Raw signals (not modified).
    plan : CleanPlan
        What to do.
    projector : ndarray of shape (n_directions, n_out) or None
        Orthonormal confound directions from :func:`build_projector`.
    blas : bool, default False
        Project the confounds out with matrix products (faster on wide blocks, but each
        series' rounding then depends on the block; see :func:`regress_rows`).

    Returns
    -------
    rows : ndarray, shape (n_series, n_out)
        Cleaned series as rows, before standardisation.
    original_mean : ndarray, shape (n_series,)
        Each series' mean after scrubbing (before detrending).
    """
    rows = np.array(np.asarray(block).T, dtype=plan.dtype, order="C")
    if plan.ensure_finite:
        rows[~np.isfinite(rows)] = 0
    rows = _scrub(rows, plan)
    original_mean = mean_rows(rows)
    rows = _detrend_and_filter(rows, plan)
    if projector is not None:
        regress_rows(rows, projector, blas=blas)
    return rows, original_mean


def regress_rows(rows: np.ndarray, projector: np.ndarray, *, blas: bool = False) -> np.ndarray:
    """Subtract from each row its projection on the rows of ``projector`` (in place).

    Parameters
    ----------
    rows : ndarray, shape (n_series, n_time)
        Signals as rows.
    projector : ndarray, shape (n_directions, n_time)
        Orthonormal directions.
    blas : bool, default False
        Use matrix products (as nilearn does): several times faster on wide blocks, but
        the summation order, hence the last bits, then depend on the block's width.

    Returns
    -------
    ndarray
        ``rows``.
    """
    n_dir = projector.shape[0]
    if n_dir == 0:
        return rows
    if blas:
        rows -= (rows @ projector.T) @ projector
        return rows
    step = max(1, _TEMP_ELEMENTS // max(1, rows.size))
    coefs = np.empty((rows.shape[0], n_dir), dtype=np.result_type(rows, projector))
    for k in range(0, n_dir, step):
        # (n, step, T) products summed along the contiguous time axis: per-row pairwise sums.
        coefs[:, k : k + step] = (rows[:, None, :] * projector[None, k : k + step, :]).sum(-1)
    fitted = coefs[:, :1] * projector[:1]
    for k in range(1, n_dir):
        fitted += coefs[:, k : k + 1] * projector[k : k + 1]
    rows -= fitted
    return rows


@_quiet_fp
def build_projector(
    values: np.ndarray | None,
    plan: CleanPlan,
    labels: list[str] | None = None,
    header_lines: list[int | None] | None = None,
    check_finite: bool = False,
) -> np.ndarray | None:
    """Prepare the confound directions to project out (nilearn's confound branch).

    Cosine regressors of the plan are appended unless a user confound correlates above 0.9
    with one of them (warning). The matrix is scrubbed, detrended and filtered like the
    signals, standardised (``standardize_confounds=True``: population z-score in its own
    dtype; False: divided by the max absolute value), then orthonormalised with pivoted QR.

    Parameters
    ----------
    values : ndarray of shape (n_time, k) or None
        User confounds (already in their float dtype).
    plan : CleanPlan
        The cleaning plan.
    labels, header_lines : list, optional
        Column provenance, for the non-finite error.
    check_finite : bool, default False
        Check the kept rows for NaN/inf (done eagerly by the planner for numpy confounds).

    Returns
    -------
    ndarray of shape (n_directions, n_out) or None
        Orthonormal directions as rows, in the confounds' dtype.
    """
    if values is not None and check_finite:
        check_finite_confounds(values, labels or [], plan.sample_mask, header_lines)
    matrix = values
    if plan.drift is not None:
        if matrix is None:
            matrix = plan.drift.copy()
        elif cosine_in_confounds(plan.drift, matrix):
            warn(COSINE_IN_CONFOUNDS)
        else:
            matrix = np.hstack([matrix, plan.drift])
    if matrix is None:
        return None
    rows = np.array(matrix.T, order="C")
    rows = _detrend_and_filter(_scrub(rows, plan), plan)
    if not plan.standardize_confounds:
        maxabs_scale_rows(rows)
    elif rows.shape[1] > 1:
        rows = zscore_rows(rows, ddof=0)
    q, r, _ = linalg.qr(rows.T, mode="economic", pivoting=True)
    keep = np.abs(np.diag(r)) > _EPS64 * 100.0
    return np.ascontiguousarray(q[:, keep].T)


@_quiet_fp
def standardize_rows(
    rows: np.ndarray, original_mean: np.ndarray, plan: CleanPlan, add_back: bool = False
) -> np.ndarray:
    """Step 7: apply ``plan.standardize`` to each row.

    Parameters
    ----------
    rows : ndarray, shape (n_series, n_out)
        Cleaned series.
    original_mean : ndarray, shape (n_series,)
        Means before cleaning (psc).
    plan : CleanPlan
        The plan.
    add_back : bool, default False
        psc only: the joint decision of :func:`psc_decide`.

    Returns
    -------
    ndarray
        Standardised rows.
    """
    strategy = plan.standardize
    if strategy == "psc":
        if rows.shape[1] == 1:  # nilearn adds the mean back, then skips the scaling
            return rows + original_mean[:, None] if add_back else rows
        return psc_rows(rows, original_mean, add_back)
    if strategy is None or rows.shape[1] == 1:
        return rows
    return zscore_rows(rows, ddof=1 if strategy == "zscore_sample" else 0)


def psc_decide(stats: np.ndarray, n_out: int) -> bool:
    """The joint psc decision over all series, warning once about zero-mean series.

    Parameters
    ----------
    stats : ndarray, shape (3, n_series)
        :func:`~lazyspheres.cleaning.standardize.psc_stats` of every series, in order.
    n_out : int
        Output length (no scaling, hence no warning, when it is 1).

    Returns
    -------
    bool
        Whether the original means are added back before scaling.
    """
    add_back = psc_add_back(stats)
    means = np.abs(stats[2]) if add_back else stats[0]
    if n_out > 1 and np.any(means < _EPS64):
        warn(PSC_ZERO_MEAN)
    return add_back


@_quiet_fp
def clean_series(
    block: np.ndarray, plan: CleanPlan, projector: np.ndarray | None, *, blas: bool = False
) -> np.ndarray:
    """Clean a whole ``(T, n)`` array and return the series as rows ``(n, n_out)``.

    As :func:`clean_block` (psc decided on these series), without the final transpose;
    ``blas`` as for :func:`clean_rows`.
    """
    rows, original_mean = clean_rows(block, plan, projector, blas=blas)
    add_back = False
    if plan.standardize == "psc":
        add_back = psc_decide(psc_stats(rows, original_mean), plan.n_out)
    return standardize_rows(rows, original_mean, plan, add_back)


@_quiet_fp
def clean_block(block: np.ndarray, plan: CleanPlan, projector: np.ndarray | None) -> np.ndarray:
    """Clean a whole ``(T, n)`` array (all series at once; psc decided on these series).

    Parameters
    ----------
    block : ndarray, shape (n_time, n_series)
        Raw signals.
    plan : CleanPlan
        The plan.
    projector : ndarray or None
        Confound directions.

    Returns
    -------
    ndarray, shape (n_out, n_series)
        Cleaned signals, C-contiguous, in the working dtype.
    """
    return np.ascontiguousarray(clean_series(block, plan, projector).T)
