"""Dask graphs for :func:`lazyspheres.clean`: blockwise over seed chunks, nothing computed.

Each seed block is cleaned by the numpy kernel in one task; the time axis must be a single
chunk. Confounds are prepared once (one task when they are lazy, otherwise eagerly at
graph-build time) and shared by every block. psc's joint test needs every series: a first
pass cleans the blocks and keeps each series' original mean as an extra row, small per-series
statistics are gathered into one decision task (which warns once about zero-mean series), and
a second pass applies the scaling. Dask is imported only here.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from lazyspheres.cleaning.confounds import ConfoundSet
from lazyspheres.cleaning.exceptions import CleaningValueError, TimeChunksError
from lazyspheres.cleaning.kernel import (
    build_projector,
    clean_block,
    clean_rows,
    psc_decide,
    standardize_rows,
)
from lazyspheres.cleaning.params import CleanPlan
from lazyspheres.cleaning.standardize import psc_stats

if TYPE_CHECKING:
    import dask.array as da
    from dask.delayed import Delayed

__all__ = ["check_time_chunks", "clean_dask", "lazy_projector"]


def check_time_chunks(data: da.Array, time_dim: str = "time") -> None:
    """Raise a ValueError unless the time axis (axis 0) of ``data`` is a single chunk.

    Parameters
    ----------
    data : dask.array.Array
        Signals, time first.
    time_dim : str, default "time"
        Name of the time dimension (for the message).
    """
    time_chunks = data.chunks[0]
    if any(np.isnan(c) for chunks in data.chunks for c in chunks):
        raise CleaningValueError(
            f"The signals have unknown chunk sizes {data.chunks}; call "
            "`.compute_chunk_sizes()` before cleaning."
        )
    if len(time_chunks) != 1:
        raise TimeChunksError(
            "Cleaning needs the whole time axis of each seed in one chunk (filters, detrending "
            f"and standardisation run along time), but the '{time_dim}' axis is split into "
            f"{len(time_chunks)} chunks {time_chunks}. Rechunk it first: "
            f"`signals.chunk({time_dim}=-1)` for a DataArray, or `signals.rechunk({{0: -1}})` "
            "for a Dask array (chunk along seeds instead)."
        )


def lazy_projector(plan: CleanPlan, confounds: ConfoundSet | None) -> np.ndarray | Delayed | None:
    """The confound directions, as a numpy array, a Dask Delayed, or None.

    Parameters
    ----------
    plan : CleanPlan
        The plan.
    confounds : ConfoundSet or None
        Loaded confounds; lazy ones are prepared in a single task.

    Returns
    -------
    ndarray, dask.delayed.Delayed or None
    """
    if confounds is None:
        return build_projector(None, plan) if plan.drift is not None else None
    if isinstance(confounds.values, np.ndarray):
        return build_projector(confounds.values, plan)
    import dask

    return dask.delayed(build_projector, pure=True)(
        confounds.values, plan, confounds.labels, confounds.header_lines, True
    )


def _psc_stage(block: np.ndarray, plan: CleanPlan, projector: np.ndarray | None) -> np.ndarray:
    """Clean a block and append each series' original mean as a last row."""
    rows, original_mean = clean_rows(block, plan, projector)
    out = np.empty((plan.n_out + 1, rows.shape[0]), dtype=rows.dtype)
    out[: plan.n_out] = rows.T
    out[plan.n_out] = original_mean
    return out


def _split_stage(stage: np.ndarray, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(stage[:n_out].T), stage[n_out].copy()


def _psc_stage_stats(stage: np.ndarray, n_out: int) -> np.ndarray:
    rows, original_mean = _split_stage(stage, n_out)
    return psc_stats(rows, original_mean)


def _psc_apply(stage: np.ndarray, plan: CleanPlan, add_back: bool) -> np.ndarray:
    rows, original_mean = _split_stage(stage, plan.n_out)
    return np.ascontiguousarray(standardize_rows(rows, original_mean, plan, add_back).T)


def clean_dask(data: da.Array, plan: CleanPlan, confounds: ConfoundSet | None) -> da.Array:
    """Build the lazy cleaning graph of a ``(T, n)`` Dask array.

    Parameters
    ----------
    data : dask.array.Array, shape (n_time, n_series)
        Signals, time in one chunk.
    plan : CleanPlan
        The plan.
    confounds : ConfoundSet or None
        Loaded confounds.

    Returns
    -------
    dask.array.Array, shape (n_out, n_series)
        Cleaned signals, same seed chunks, dtype ``plan.dtype``.
    """
    import dask
    import dask.array as da

    check_time_chunks(data)
    projector = lazy_projector(plan, confounds)
    if isinstance(projector, np.ndarray):
        projector = dask.delayed(projector)  # one graph node shared by all blocks
    seed_chunks = data.chunks[1]
    # The cosine regressors (up to T x T) only feed the projector: keep them out of the
    # plan that every block task carries.
    plan = dataclasses.replace(plan, drift=None)
    if plan.standardize != "psc":
        return da.map_blocks(
            clean_block,
            data,
            plan=plan,
            projector=projector,
            chunks=((plan.n_out,), seed_chunks),
            dtype=plan.dtype,
            meta=np.empty((0, 0), dtype=plan.dtype),
        )
    stage = da.map_blocks(
        _psc_stage,
        data,
        plan=plan,
        projector=projector,
        chunks=((plan.n_out + 1,), seed_chunks),
        dtype=plan.dtype,
        meta=np.empty((0, 0), dtype=plan.dtype),
    )
    stats = da.map_blocks(
        _psc_stage_stats,
        stage,
        plan.n_out,
        chunks=((3,), seed_chunks),
        dtype=plan.dtype,
        meta=np.empty((0, 0), dtype=plan.dtype),
    )
    add_back = dask.delayed(psc_decide, pure=True)(stats, plan.n_out)
    return da.map_blocks(
        _psc_apply,
        stage,
        plan=plan,
        add_back=add_back,
        chunks=((plan.n_out,), seed_chunks),
        dtype=plan.dtype,
        meta=np.empty((0, 0), dtype=plan.dtype),
    )
