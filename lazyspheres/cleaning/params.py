"""Eager validation of cleaning parameters and the resulting :class:`CleanPlan`.

Everything that depends only on parameters, shapes, confounds and the sample mask is decided
here, in the caller's thread, before any data is touched: nilearn 0.12.1's type checks,
filter checks, warnings (category and text) and errors, in nilearn's order. The plan is a
small picklable object that the numpy kernel applies to each block of series.

Deliberate differences from nilearn 0.12.1 (tested in ``tests/test_cleaning_errors.py``):

- ``standardize`` is validated at call time (nilearn raises "... is no valid standardize
  strategy." only when it reaches that step), and ``1`` / ``np.True_`` / ``1.0`` standardize
  like ``True`` (nilearn 0.12.1 silently does nothing: SPEC §3.5);
- ``t_r <= 0`` with a filter or scrubbing is a ValueError (nilearn: ZeroDivisionError or a
  scipy error);
- ``extrapolate`` must be a boolean (nilearn passes anything to scipy).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import numpy as np
from scipy.interpolate import CubicSpline

from lazyspheres.cleaning._warnings import (
    DETREND_SINGLE,
    EXTRAPOLATE_FUTURE,
    NO_FILTER_TYPE,
    STANDARDIZE_SINGLE,
    ZSCORE_DEPRECATION,
    warn,
)
from lazyspheres.cleaning.confounds import (
    ConfoundSet,
    check_finite_confounds,
    prepare_confounds,
)
from lazyspheres.cleaning.exceptions import CleaningError, CleaningTypeError, CleaningValueError
from lazyspheres.cleaning.filters import (
    check_butterworth_length,
    cosine_drift,
    design_butterworth,
)
from lazyspheres.cleaning.options import CleaningParams, ConfoundsLike, SampleMaskLike
from lazyspheres.cleaning.sample_mask import sanitize_sample_mask

__all__ = ["CleanPlan", "build_plan", "normalize_standardize"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_STANDARDIZE_STRINGS = ("zscore", "zscore_sample", "psc")


@dataclass
class CleanPlan:
    """What to do to each series; built by :func:`build_plan`.

    Attributes
    ----------
    n_time : int
        Volumes in the input.
    dtype : numpy.dtype
        Working float dtype of the signals.
    detrend, standardize_confounds, ensure_finite, extrapolate : bool
        As given.
    standardize : {None, "zscore", "zscore_sample", "psc"}
        Normalised strategy.
    filter : {None, "butterworth", "cosine"}
        The active filter.
    t_r : float or None
        Repetition time.
    sos : ndarray or None
        Butterworth sections (None: no Butterworth filtering).
    padtype, padlen
        ``sosfiltfilt`` padding.
    sample_mask : ndarray of int32 or None
        Kept volumes.
    scrub : {None, "censor", "interpolate"}
        Censor rows before processing, or interpolate censored rows and censor after filtering.
    span : tuple of int
        Volumes ``[start, stop)`` filtered when interpolating (all unless extrapolate=False).
    censored : ndarray of int
        Volumes to interpolate (inside ``span``).
    final_rows : ndarray of int or None
        Rows kept after filtering, relative to ``span[0]``.
    n_out : int
        Output length.
    drift : ndarray or None
        Cosine regressors (T, order) to append to the confounds, if any.
    """

    n_time: int
    dtype: np.dtype
    detrend: bool = False
    standardize: str | None = None
    standardize_confounds: bool = True
    filter: str | None = None
    t_r: float | None = None
    sos: np.ndarray | None = None
    padtype: str | None = "odd"
    padlen: int | None = None
    extrapolate: bool = True
    ensure_finite: bool = False
    sample_mask: np.ndarray | None = None
    scrub: str | None = None
    span: tuple[int, int] = (0, 0)
    censored: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    final_rows: np.ndarray | None = None
    n_out: int = 0
    drift: np.ndarray | None = None

    @property
    def output_volumes(self) -> np.ndarray:
        """Input volume index of each output row."""
        if self.sample_mask is None:
            return np.arange(self.n_time)
        return self.sample_mask.astype(np.intp)


def _scipy_checked(func: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Call scipy now (a dry run or the filter design), re-raising its errors as ours.

    The message is scipy's, i.e. exactly what nilearn's users see.
    """
    try:
        return func(*args, **kwargs)
    except CleaningError:
        raise
    except ValueError as exc:
        raise CleaningValueError(str(exc)) from exc
    except TypeError as exc:
        raise CleaningTypeError(str(exc)) from exc


def normalize_standardize(standardize: object) -> str | None:
    """Map a ``standardize`` value to None or one of "zscore", "zscore_sample", "psc".

    ``True`` (also ``1``, ``1.0``, ``np.True_``) means nilearn 0.12.1's ``"zscore"``
    (population std); ``False``, ``0`` and ``None`` mean no standardisation.

    Parameters
    ----------
    standardize : object
        The user's value.

    Returns
    -------
    str or None

    Raises
    ------
    ValueError
        "<value> is no valid standardize strategy."
    """
    if standardize is None:
        return None
    if isinstance(standardize, str):
        if standardize in _STANDARDIZE_STRINGS:
            return standardize
    elif isinstance(standardize, (bool, np.bool_, numbers.Number)) and standardize in (0, 1):
        return "zscore" if standardize else None
    raise CleaningValueError(f"{standardize} is no valid standardize strategy.")


def _check_filter(filter: object, low_pass: object, high_pass: object, t_r: object) -> str | None:
    """Apply nilearn's filter checks; return the active filter or None."""
    if not filter:
        if any(isinstance(item, (float, int)) for item in (low_pass, high_pass)):
            warn(NO_FILTER_TYPE)
        return None
    if filter not in ("butterworth", "cosine"):
        raise CleaningValueError(f"Filter method {filter} not implemented.")
    if filter == "cosine":
        if not all(isinstance(item, (float, int)) for item in (t_r, high_pass)):
            raise CleaningValueError(
                "Repetition time (t_r) and low cutoff frequency (high_pass) must be "
                f"specified for cosine filtering.t_r='{t_r}', high_pass='{high_pass}'"
            )
        return "cosine"
    if low_pass is None and high_pass is None:
        return None
    if t_r is None:
        raise CleaningValueError(
            "Repetition time (t_r) must be specified for butterworth filtering."
        )
    if any(isinstance(item, bool) for item in (low_pass, high_pass)):
        raise CleaningTypeError(
            "high/low pass must be float or None but you provided "
            f"high_pass='{high_pass}', low_pass='{low_pass}'"
        )
    return "butterworth"


def _check_positive_t_r(t_r: float | None, why: str) -> None:
    if t_r is not None and not t_r > 0:
        raise CleaningValueError(
            f"Repetition time (t_r) must be positive for {why}; got t_r={t_r}."
        )


def _plan_scrubbing(plan: CleanPlan, has_confounds: bool) -> int:
    """Fill the scrubbing fields of ``plan``; return the length entering detrend/filter."""
    mask, n_time = plan.sample_mask, plan.n_time
    if mask is None:
        plan.span = (0, n_time)
        return n_time
    if plan.filter != "butterworth":
        plan.scrub = "censor"
        return len(mask)
    plan.scrub = "interpolate"
    _check_positive_t_r(plan.t_r, "interpolating censored volumes")
    for _ in range(1 + has_confounds):  # nilearn warns for the signals and the confounds
        if plan.extrapolate:
            warn(EXTRAPOLATE_FUTURE, FutureWarning)
    # scipy's own errors for unsorted, duplicated or too few kept volumes, raised now.
    if plan.t_r is None:  # pragma: no cover - _check_filter required it for butterworth
        raise CleaningValueError("Repetition time (t_r) must be given to interpolate.")
    times = np.arange(n_time) * plan.t_r
    _scipy_checked(CubicSpline, times[mask], np.zeros(len(mask)), extrapolate=plan.extrapolate)
    if plan.extrapolate:
        start, stop = 0, n_time
    else:
        start, stop = int(mask[0]), int(mask[-1]) + 1
    inside = np.zeros(n_time, dtype=bool)
    inside[start:stop] = True
    inside[mask] = False
    plan.span = (start, stop)
    plan.censored = np.flatnonzero(inside)
    plan.final_rows = (mask - start).astype(np.intp)
    return stop - start


def build_plan(
    n_time: int,
    dtype: np.dtype,
    params: CleaningParams,
    *,
    confounds: ConfoundsLike | None = None,
    sample_mask: SampleMaskLike | None = None,
) -> tuple[CleanPlan, ConfoundSet | None]:
    """Validate everything that does not need the data, warn, and plan the cleaning.

    Parameters
    ----------
    n_time : int
        Number of volumes of the signals.
    dtype : numpy.dtype
        Working float dtype of the signals.
    params : CleaningParams
        The run-independent options.
    confounds, sample_mask
        As for :func:`lazyspheres.clean`.

    Returns
    -------
    plan : CleanPlan
        The plan.
    confounds : ConfoundSet or None
        The loaded confounds (eager or lazy).
    """
    detrend, standardize = params.detrend, params.standardize
    standardize_confounds, filter = params.standardize_confounds, params.filter
    low_pass, high_pass, t_r = params.low_pass, params.high_pass, params.t_r
    ensure_finite, extrapolate = params.ensure_finite, params.extrapolate
    butterworth_order = params.butterworth_order
    butterworth_padtype, butterworth_padlen = params.butterworth_padtype, params.butterworth_padlen
    fill_na = params.fill_na
    params.validated()  # nilearn's first checks, unless done where the options entered
    strategy = normalize_standardize(standardize)
    if confounds is not None and not detrend and not standardize_confounds:
        warn(
            "When confounds are provided, one must perform detrend and/or standardize "
            f"confounds. You provided detrend={detrend}, standardize_confounds="
            f"{standardize_confounds}. If confounds were not standardized or demeaned before "
            "passing to signal.clean signal will not be correctly cleaned. "
        )
    active = _check_filter(filter, low_pass, high_pass, t_r)
    loaded = prepare_confounds(confounds, n_time, fill_na=fill_na)
    if loaded is not None and loaded.has_pair_mask:
        if sample_mask is not None:
            raise CleaningValueError(
                "sample_mask was given twice: as the sample_mask argument and as the second "
                "element of the (confounds, sample_mask) pair returned by load_confounds."
            )
        mask = sanitize_sample_mask(loaded.sample_mask, n_time)
    else:
        mask = sanitize_sample_mask(sample_mask, n_time)
    if not isinstance(ensure_finite, bool):
        raise CleaningValueError(
            "'ensure_finite' must be boolean type True or False but you provided "
            f"ensure_finite={ensure_finite}"
        )
    if not isinstance(extrapolate, (bool, np.bool_)):
        raise CleaningTypeError(f"'extrapolate' must be True or False; got {extrapolate!r}.")
    if loaded is not None and isinstance(loaded.values, np.ndarray):  # lazy: at compute
        check_finite_confounds(loaded.values, loaded.labels, mask, loaded.header_lines)

    plan = CleanPlan(
        n_time=n_time,
        dtype=np.dtype(dtype),
        detrend=detrend,
        standardize=strategy,
        standardize_confounds=standardize_confounds,
        filter=active,
        t_r=t_r,
        padtype=butterworth_padtype,
        padlen=butterworth_padlen,
        extrapolate=bool(extrapolate),
        ensure_finite=ensure_finite,
        sample_mask=mask,
    )
    # _check_filter has made sure the active filter has the numbers it needs
    if active == "cosine" and high_pass is not None and t_r is not None:
        drift = cosine_drift(high_pass, t_r, n_time)
        plan.drift = drift if drift.shape[1] else None
    has_confounds = loaded is not None or plan.drift is not None

    n_filtered = _plan_scrubbing(plan, has_confounds)
    if detrend and n_filtered == 1:
        for _ in range(1 + has_confounds):
            warn(DETREND_SINGLE)
    plan.n_out = n_filtered if plan.final_rows is None else len(plan.final_rows)

    if active == "butterworth" and t_r is not None:  # _check_filter required t_r for it
        _check_positive_t_r(t_r, "Butterworth filtering")
        plan.sos = _scipy_checked(design_butterworth, low_pass, high_pass, t_r, butterworth_order)
        if plan.sos is not None:
            _scipy_checked(
                check_butterworth_length,
                plan.sos,
                n_filtered,
                butterworth_padtype,
                butterworth_padlen,
            )
        if has_confounds:  # nilearn designs it again for the confounds
            design_butterworth(low_pass, high_pass, t_r, butterworth_order)

    if has_confounds and standardize_confounds:
        if plan.n_out == 1:
            warn(STANDARDIZE_SINGLE)
        else:
            warn(ZSCORE_DEPRECATION, DeprecationWarning)
    if strategy is not None:
        if plan.n_out == 1:
            warn(STANDARDIZE_SINGLE)
        elif strategy == "zscore":
            warn(ZSCORE_DEPRECATION, DeprecationWarning)
    return plan, loaded
