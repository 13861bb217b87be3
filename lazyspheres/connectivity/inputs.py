"""Normalise the inputs of :func:`~lazyspheres.connectome` into per-run lazy arrays.

Accepted: a ``(time, seed)`` DataArray (one run), a ``(run, time, seed)`` DataArray, the
result store of :func:`~lazyspheres.extract_many` (path or opened Dataset: each run uses
only its ``n_volumes`` real volumes, the rest is NaN padding), a 2D/3D numpy or Dask array,
or a list of 2D arrays (runs may differ in length). Nothing is read here: each run is a
Dask array (and its number of real volumes a Dask scalar); a ``(run, time, seed)`` input also
keeps the whole array, so that a task can read a group of runs as one slice.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

__all__ = ["RunSignals", "as_runs"]


@dataclass(frozen=True)
class RunSignals:
    """Per-run ``(time, seed)`` arrays and the seed labels shared by all runs.

    Attributes
    ----------
    run_ids : list
        One id per run (the store's run ids, else ``0..n-1``).
    arrays : list of dask.array.Array
        ``(T_r, n_seeds)`` signals of each run (possibly NaN-padded, see ``n_volumes``).
    n_volumes : list
        Real volumes of each run (a Dask scalar for stores), or None to use every row.
    seed_coords : dict
        ``name -> (values, attrs)`` for every coordinate along ``seed`` (values may be
        lazy: nothing is read before the result is computed).
    source : str or None
        Where the signals came from (for attributes and messages).
    stacked : dask.array.Array or None
        The ``(run, time, seed)`` array the runs are slices of, when there is one.
    stacked_counts : dask.array.Array or None
        Its ``(run,)`` real-volume counts (None: every row is real).
    """

    run_ids: list[Any]
    arrays: list[Any]
    n_volumes: list[Any]
    seed_coords: dict[str, tuple[Any, dict]]
    source: str | None = None
    stacked: Any = None
    stacked_counts: Any = None

    def group(self, start: int, stop: int) -> tuple[Any, Any]:
        """Signals and real-volume counts of runs ``start:stop``, for one task.

        A ``(run, time, seed)`` input gives one 3D slice (one read where the store's chunks
        hold several runs) and its counts slice; a list input gives lists of 2D arrays.
        """
        if self.stacked is not None:
            counts = None if self.stacked_counts is None else self.stacked_counts[start:stop]
            return self.stacked[start:stop], counts
        return self.arrays[start:stop], self.n_volumes[start:stop]

    @property
    def n_seeds(self) -> int:
        """Number of seeds (columns) of every run."""
        return int(self.arrays[0].shape[1])


def as_runs(
    signals: Any,
    *,
    storage_options: dict[str, Any] | None = None,
    run_groups: Callable[[int], list[tuple[int, int]]] | None = None,
) -> RunSignals:
    """Per-run lazy signals of any accepted input (see the module docstring).

    ``run_groups(n_runs)`` gives the runs' grouping into tasks: a store given by its path is
    opened with one Dask chunk per group, so that a task reads its runs in one Zarr call
    (a Dataset opened by the caller keeps its own chunks).

    Raises
    ------
    TypeError
        An input of an unsupported type.
    ValueError
        Arrays that are not ``(time, seed)`` per run, or runs with different seed counts.
    """
    if isinstance(signals, (str, os.PathLike)):
        from lazyspheres.batch import open_results

        chunks = None  # the stored chunks: one run per chunk in extract_many's layout
        n_runs = _runs_stored_one_per_chunk(signals, storage_options)
        if run_groups is not None and n_runs is not None:
            chunks = {"run": tuple(stop - start for start, stop in run_groups(n_runs))}
        with warnings.catch_warnings():
            # the small `run`/`source` coordinates are stored in one chunk, which these
            # Dask chunks split; signals and n_volumes (one run per chunk) they do not
            warnings.filterwarnings(
                "ignore", message="The specified chunks separate", category=UserWarning
            )
            # opened once (the store's metadata is read once, on the client)
            dataset = open_results(signals, storage_options=storage_options, chunks=chunks)
        return _from_dataset(dataset, source=os.fspath(signals))
    if isinstance(signals, xr.Dataset):
        return _from_dataset(signals, source=None)
    if isinstance(signals, xr.DataArray):
        return _from_dataarray(signals)
    if isinstance(signals, (list, tuple)):
        if len(signals) == 0:
            raise ValueError("signals is an empty list: give at least one run's (time, seed).")
        arrays = [_as_2d(item, where=f"run {i} of the list") for i, item in enumerate(signals)]
        return _checked(list(range(len(arrays))), arrays, [None] * len(arrays), {}, None)
    if isinstance(signals, (np.ndarray, da.Array)):
        if signals.ndim == 3:
            arrays = [_as_2d(signals[r], where=f"run {r}") for r in range(signals.shape[0])]
            runs = _checked(list(range(len(arrays))), arrays, [None] * len(arrays), {}, None)
            if not isinstance(signals, da.Array):
                signals = da.from_array(signals, chunks=-1)
            return dataclasses.replace(runs, stacked=signals)
        return _checked([0], [_as_2d(signals, where="signals")], [None], {}, None)
    raise TypeError(
        f"signals of type {type(signals).__name__} is not supported: give a (time, seed) "
        "DataArray, a result store written by extract_many (path or xr.Dataset), a numpy "
        "array, or a list of (time, seed) arrays."
    )


def _runs_stored_one_per_chunk(store: Any, storage_options: dict[str, Any] | None) -> Any:
    """The run count if signals and n_volumes are stored one run per chunk, else None.

    Reads the two arrays' metadata only; anything unexpected is left to ``open_results``
    to report.
    """
    import zarr

    try:
        group = zarr.open_group(
            store, mode="r", storage_options=_url_options(store, storage_options)
        )
        signals, counts = group["signals"], group["n_volumes"]
    except (OSError, LookupError, ValueError, TypeError):  # open_results says what is wrong
        return None
    if not isinstance(signals, zarr.Array) or not isinstance(counts, zarr.Array):
        return None  # open_results says what is wrong
    if signals.chunks[0] != 1 or counts.chunks[0] != 1:
        return None
    return int(signals.shape[0])


def _url_options(store: Any, storage_options: dict[str, Any] | None) -> Any:
    # zarr refuses storage_options for local paths
    return storage_options if "://" in os.fspath(store) else None


def _as_2d(item: Any, *, where: str) -> da.Array:
    array = item if isinstance(item, da.Array) else np.asarray(item)
    if array.ndim != 2:
        raise ValueError(f"{where} has shape {array.shape}; each run must be (time, seed).")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where} has dtype {array.dtype}; signals must be numeric.")
    return array if isinstance(array, da.Array) else da.from_array(array, chunks=-1)


def _seed_coords(obj: xr.DataArray | xr.Dataset) -> dict[str, tuple[Any, dict]]:
    coords = {}
    for name, coord in obj.coords.items():
        if coord.dims == ("seed",):
            coords[str(name)] = (coord.data, dict(coord.attrs))
    return coords


def _from_dataarray(signals: xr.DataArray) -> RunSignals:
    if signals.ndim == 2 and set(signals.dims) == {"time", "seed"}:
        array = signals.transpose("time", "seed").data
        run_id = signals.coords["run"].item() if "run" in signals.coords else 0
        return _checked(
            [run_id], [_as_2d(array, where="signals")], [None], _seed_coords(signals), None
        )
    if signals.ndim == 3 and set(signals.dims) == {"run", "time", "seed"}:
        ordered = signals.transpose("run", "time", "seed")
        data = ordered.data if isinstance(ordered.data, da.Array) else ordered.chunk().data
        ids = list(ordered.coords["run"].values) if "run" in ordered.coords else None
        ids = ids if ids is not None else list(range(ordered.sizes["run"]))
        n_volumes, counts = [None] * len(ids), None
        if "n_volumes" in ordered.coords:
            counts = da.asarray(ordered.coords["n_volumes"].data)
            n_volumes = [counts[r] for r in range(len(ids))]
        arrays = [data[r] for r in range(len(ids))]
        runs = _checked(ids, arrays, n_volumes, _seed_coords(ordered), None)
        return dataclasses.replace(runs, stacked=data, stacked_counts=counts)
    raise ValueError(
        f"signals has dims {signals.dims}; expected ('time', 'seed') for one run or "
        "('run', 'time', 'seed') for several.",
    )


def _from_dataset(dataset: xr.Dataset, *, source: str | None) -> RunSignals:
    missing = [name for name in ("signals", "n_volumes") if name not in dataset.variables]
    if missing:
        raise ValueError(
            f"The Dataset has no {missing} variable(s): give the result store written by "
            "lazyspheres.extract_many (signals(run, time, seed) and n_volumes(run))."
        )
    signals = dataset["signals"].transpose("run", "time", "seed")
    data = signals.data if isinstance(signals.data, da.Array) else signals.chunk({"run": 1}).data
    stored = dataset["n_volumes"]
    counts = stored.data if isinstance(stored.data, da.Array) else stored.chunk().data
    ids = list(signals.coords["run"].values)
    arrays = [data[r] for r in range(len(ids))]
    n_volumes = [counts[r] for r in range(len(ids))]
    runs = _checked(ids, arrays, n_volumes, _seed_coords(signals), source)
    return dataclasses.replace(runs, stacked=data, stacked_counts=counts)


def _checked(
    ids: Sequence[Any],
    arrays: Sequence[Any],
    n_volumes: Sequence[Any],
    coords: dict[str, tuple[Any, dict]],
    source: str | None,
) -> RunSignals:
    widths = sorted({int(a.shape[1]) for a in arrays})
    if len(widths) > 1:
        raise ValueError(f"All runs must have the same number of seeds; got {widths} seeds.")
    return RunSignals(list(ids), list(arrays), list(n_volumes), coords, source)
