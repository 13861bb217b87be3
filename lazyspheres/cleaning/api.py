"""``lazyspheres.clean``: nilearn 0.12.1's ``signal.clean`` (as the masker calls it), lazily."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from lazyspheres.cleaning._kinds import is_dask_array, is_dataarray
from lazyspheres.cleaning.confounds import ConfoundSet, ensure_float_dtype
from lazyspheres.cleaning.exceptions import CleaningTypeError, CleaningValueError
from lazyspheres.cleaning.kernel import build_projector, clean_block
from lazyspheres.cleaning.options import (
    CleaningParams,
    ConfoundsLike,
    FillNa,
    FilterKind,
    PadType,
    SampleMaskLike,
    Standardize,
)
from lazyspheres.cleaning.params import CleanPlan, build_plan

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr

__all__ = ["Signals", "clean", "clean_with", "numpy_projector"]

Signals = TypeVar("Signals", np.ndarray, "da.Array", "xr.DataArray")
"""Signals to clean; the cleaned ones are of the same kind."""
_Matrix = TypeVar("_Matrix", np.ndarray, "da.Array")


def clean(
    signals: Signals,
    *,
    detrend: bool = False,
    standardize: Standardize = False,
    standardize_confounds: bool = True,
    confounds: ConfoundsLike | None = None,
    sample_mask: SampleMaskLike | None = None,
    low_pass: float | None = None,
    high_pass: float | None = None,
    t_r: float | None = None,
    filter: FilterKind = "butterworth",
    ensure_finite: bool = False,
    extrapolate: bool = True,
    butterworth_order: int = 5,
    butterworth_padtype: PadType = "odd",
    butterworth_padlen: int | None = None,
    fill_na: FillNa = None,
) -> Signals:
    """Clean time series the way nilearn 0.12.1's ``NiftiSpheresMasker`` does.

    Steps, in nilearn's order: scrubbing (``sample_mask``), detrending, Butterworth or cosine
    filtering, confound regression, standardisation. Defaults are the masker's (no
    detrending, no standardisation); ``extrapolate=True`` is nilearn 0.12.1's default.

    Parameters
    ----------
    signals : ndarray, dask.array.Array or xarray.DataArray
        Shape ``(T, n)`` or ``(T,)``; a DataArray needs a ``"time"`` dimension (and one other,
        usually ``"seed"``). Dask arrays are processed lazily, blockwise over the seed axis;
        their time axis must be a single chunk.
    detrend : bool, default False
        Remove each series' mean and linear trend (the confounds too).
    standardize : {False, True, "zscore", "zscore_sample", "psc", None}, default False
        ``True`` and ``"zscore"``: population z-score (ddof 0, with nilearn 0.12.1's
        DeprecationWarning); ``"zscore_sample"``: ddof 1; ``"psc"``: percent signal change,
        the original mean being added back first when the cleaned means are < 10 % of the
        original ones (a joint test over all series). ``1``/``np.True_`` act like ``True``.
    standardize_confounds : bool, default True
        z-score the confounds (population std) before regression; False divides them by
        their maximum absolute value.
    confounds : array-like, DataFrame, path, Dask array, DataArray, list or tuple, optional
        Regressors of shape ``(T, k)`` (or ``(T,)``), or files (CSV/TSV/text, header
        detected), or a list of those (stacked), or ``load_confounds``' ``(DataFrame,
        sample_mask)`` pair. Lazy Dask confounds stay lazy.
    sample_mask : ndarray, list or tuple, optional
        Volumes to keep (indices or booleans; a list holds one mask per run, hence one mask).
    low_pass, high_pass : float, optional
        Butterworth cutoffs in Hz (``high_pass`` is also the cosine filter's cutoff).
    t_r : float, optional
        Repetition time in seconds (required to filter).
    filter : {"butterworth", "cosine", False}, default "butterworth"
        Filter type; falsy disables filtering.
    ensure_finite : bool, default False
        Replace non-finite signal values by 0 first.
    extrapolate : bool, default True
        With Butterworth and a sample mask: extrapolate censored volumes before the first /
        after the last kept one (True, nilearn 0.12.1's default, with its FutureWarning), or
        drop them before filtering (False).
    butterworth_order : int, default 5
        Butterworth filter order.
    butterworth_padtype : {"odd", "even", "constant", None}, default "odd"
        ``scipy.signal.sosfiltfilt`` padding type.
    butterworth_padlen : int, optional
        ``scipy.signal.sosfiltfilt`` padding length (scipy's default when None).
    fill_na : {None, "zero", "mean", "interpolate"}, default None
        How to fill non-finite confound cells (fMRIPrep ``n/a``). None: such cells in kept
        volumes raise a ValueError naming the column and row.

    Returns
    -------
    ndarray, dask.array.Array or xarray.DataArray
        The same kind as ``signals``, shape ``(T_kept, n)`` (or ``(T_kept,)``), in nilearn's
        working dtype: float32 for float32 and ≤4-byte integer input, float64 for float64
        and 8-byte integers. A DataArray keeps its coordinates and attributes; coordinates
        along time are subset to the kept volumes.

    Raises
    ------
    TypeError, ValueError, IndexError, FileNotFoundError
        As nilearn raises them for the same inputs (same key phrases), at call time: bad
        parameter types or values, confounds of the wrong type/length/with n/a cells, bad
        sample masks, filter parameters out of range, series too short for the filter
        padding, a Dask time axis split into several chunks.

    Warns
    -----
    UserWarning, DeprecationWarning, FutureWarning
        nilearn 0.12.1's warnings, at call time; only psc's zero-mean warning (and, for lazy
        confounds, the cosine/confound correlation warning) depends on data and is emitted
        when the result is computed.

    Notes
    -----
    Differences from nilearn 0.12.1, all deliberate (SPEC §3.5): every censored volume is
    interpolated before Butterworth filtering (nilearn's ``~sample_mask`` indexing misses
    those whose mirror volume is censored too); ``standardize=1``/``np.True_`` standardize;
    validation happens at call time; n/a confound cells give a clear error (or are filled).
    Numbers agree with nilearn to floating-point reassociation (~1e-15 relative in float64):
    per-series sums run along time in a fixed order so that results are bitwise identical
    for any seed chunking.
    """
    params = CleaningParams(
        detrend=detrend,
        standardize=standardize,
        standardize_confounds=standardize_confounds,
        low_pass=low_pass,
        high_pass=high_pass,
        t_r=t_r,
        filter=filter,
        ensure_finite=ensure_finite,
        extrapolate=extrapolate,
        butterworth_order=butterworth_order,
        butterworth_padtype=butterworth_padtype,
        butterworth_padlen=butterworth_padlen,
        fill_na=fill_na,
    ).validated()  # before the signals are looked at, as nilearn checks them
    return clean_with(signals, params, confounds=confounds, sample_mask=sample_mask)


def clean_with(
    signals: Signals,
    params: CleaningParams,
    *,
    confounds: ConfoundsLike | None = None,
    sample_mask: SampleMaskLike | None = None,
) -> Signals:
    """:func:`clean` with its run-independent options as one :class:`CleaningParams`.

    Parameters
    ----------
    signals, confounds, sample_mask
        As for :func:`clean`.
    params : CleaningParams
        Every other option of :func:`clean`; :meth:`CleaningParams.validated` where the
        user gave them (otherwise they are checked with the plan).

    Returns
    -------
    ndarray, dask.array.Array or xarray.DataArray
        As :func:`clean` returns it.
    """
    per_run = _PerRun(confounds, sample_mask)
    if is_dataarray(signals):
        return _clean_dataarray(signals, params, per_run)
    if is_dask_array(signals):
        return _clean_array(signals, params, per_run)[0]
    return _clean_array(np.asarray(signals), params, per_run)[0]


@dataclass(frozen=True)
class _PerRun:
    """The run's own cleaning inputs, beside its :class:`CleaningParams`."""

    confounds: ConfoundsLike | None
    sample_mask: SampleMaskLike | None


def _clean_array(
    data: _Matrix, params: CleaningParams, per_run: _PerRun
) -> tuple[_Matrix, CleanPlan]:
    """Clean a numpy or Dask array of shape (T, n) or (T,)."""
    if data.ndim not in (1, 2):
        raise CleaningValueError(
            f"signals must have shape (n_time, n_series) or (n_time,); got {data.shape}."
        )
    if data.shape[0] == 0:
        raise CleaningValueError("signals have no time point (shape[0] == 0).")
    if data.dtype.kind not in "biuf":
        raise CleaningTypeError(f"signals must be numeric; got dtype {data.dtype}.")
    dtype = ensure_float_dtype(data.dtype)
    plan, confounds = build_plan(
        data.shape[0],
        dtype,
        params,
        confounds=per_run.confounds,
        sample_mask=per_run.sample_mask,
    )
    matrix: _Matrix = data[:, None] if data.ndim == 1 else data
    result: _Matrix
    if is_dask_array(matrix):
        from lazyspheres.cleaning.lazy import clean_dask

        result = clean_dask(matrix, plan, confounds)
    else:
        result = clean_block(matrix, plan, numpy_projector(plan, confounds))
    return (result[:, 0] if data.ndim == 1 else result), plan


def numpy_projector(plan: CleanPlan, confounds: ConfoundSet | None) -> np.ndarray | None:
    """The plan's confound directions, computed now (lazy confounds are computed).

    Parameters
    ----------
    plan : CleanPlan
        From :func:`~lazyspheres.cleaning.params.build_plan`.
    confounds : ConfoundSet or None
        The loaded confounds returned with the plan.

    Returns
    -------
    ndarray or None
        For :func:`~lazyspheres.cleaning.kernel.clean_block`.
    """
    values = None
    if confounds is not None:
        lazy_or_not = confounds.values
        # numpy signals: the caller wants numbers now
        values = lazy_or_not.compute() if is_dask_array(lazy_or_not) else lazy_or_not
    checked = confounds is not None and confounds.is_lazy
    return build_projector(
        values,
        plan,
        confounds.labels if confounds else None,
        confounds.header_lines if confounds else None,
        check_finite=checked,
    )


def _clean_dataarray(
    signals: xr.DataArray, params: CleaningParams, per_run: _PerRun
) -> xr.DataArray:
    """Clean a DataArray with a "time" dimension, keeping its labels."""
    import xarray as xr

    dims = signals.dims
    if "time" not in dims or signals.ndim not in (1, 2):
        raise CleaningValueError(
            "A DataArray to clean needs dims ('time',) or ('time', <series dim>) such as "
            f"('time', 'seed'); got {dims}."
        )
    ordered = signals.transpose("time", ...)
    result, plan = _clean_array(ordered.data, params, per_run)
    volumes = plan.output_volumes
    coords = {}
    for name, coord in ordered.coords.items():
        coords[name] = coord.isel(time=volumes) if "time" in coord.dims else coord
    cleaned = xr.DataArray(
        result, dims=ordered.dims, coords=coords, name=signals.name, attrs=signals.attrs
    )
    return cleaned.transpose(*dims)
