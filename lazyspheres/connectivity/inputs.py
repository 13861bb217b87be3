"""Normalise the inputs of :func:`~lazyspheres.connectome` into per-run lazy arrays.

Accepted: a ``(time, seed)`` DataArray (one run), a ``(run, time, seed)`` DataArray, the
result store of :func:`~lazyspheres.extract_many` (path or opened Dataset: each run uses
only its ``n_volumes`` real volumes, the rest is NaN padding), a 2D/3D numpy or Dask array,
or a list of 2D arrays (runs may differ in length). Nothing is read here (a store's
metadata aside): a list stays a list of Dask arrays; a ``(run, time, seed)`` input stays one
Dask array (with its real-volume counts), so that a task gets a group of runs as one block;
a complete store given by its path is read by the tasks themselves
(:class:`~lazyspheres.connectivity.reads.StoredRuns`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TypeAlias

import dask.array as da
import numpy as np
import xarray as xr

from lazyspheres._types import Attrs, StorageOptions, UserInput
from lazyspheres.connectivity.reads import StoredRuns

__all__ = ["RunSignals", "SeedCoords", "as_runs"]

#: ``name -> (values, attrs)`` of the coordinates along ``seed`` (values may be Dask arrays).
SeedCoords: TypeAlias = dict[str, tuple[np.ndarray | da.Array, Attrs]]


@dataclass(frozen=True)
class RunSignals:
    """The runs' signals, in one of three forms, and the seed labels shared by all runs.

    Attributes
    ----------
    run_ids : list
        One id per run (the store's run ids, else ``0..n-1``).
    n_seeds : int
        Seeds (columns) of every run.
    seed_coords : dict
        ``name -> (values, attrs)`` for every coordinate along ``seed`` (values may be
        lazy: nothing is read before the result is computed).
    source : str or None
        Where the signals came from (for attributes and messages).
    arrays : list of dask.array.Array or None
        A list input's ``(T_r, n_seeds)`` runs (every row is real).
    stacked : dask.array.Array or None
        A ``(run, time, seed)`` input.
    stacked_counts : dask.array.Array or None
        Its ``(run,)`` real-volume counts (None: every row is real).
    stored : StoredRuns or None
        A complete result store given by its path: read by the tasks themselves (then
        ``stacked`` is the same data through xarray, unused).
    opened : xarray.Dataset or None
        That store, as opened on the client (to write the result into it without opening
        it again).
    """

    run_ids: list[Hashable]
    n_seeds: int
    seed_coords: SeedCoords
    source: str | None = None
    arrays: list[da.Array] | None = None
    stacked: da.Array | None = None
    stacked_counts: da.Array | None = None
    stored: StoredRuns | None = None
    opened: xr.Dataset | None = None

    @property
    def n_runs(self) -> int:
        """Number of runs."""
        return len(self.run_ids)


def as_runs(signals: UserInput, *, storage_options: StorageOptions | None = None) -> RunSignals:
    """The runs of any accepted input (see the module docstring); nothing is read.

    Raises
    ------
    TypeError
        An input of an unsupported type.
    ValueError
        Arrays that are not ``(time, seed)`` per run, or runs with different seed counts.
    """
    if isinstance(signals, (str, os.PathLike)):
        return _from_store(signals, storage_options)
    if isinstance(signals, xr.Dataset):
        return _from_dataset(signals, source=None)
    if isinstance(signals, xr.DataArray):
        return _from_dataarray(signals)
    if isinstance(signals, (list, tuple)):
        if len(signals) == 0:
            raise ValueError("signals is an empty list: give at least one run's (time, seed).")
        arrays = [_as_2d(item, where=f"run {i} of the list") for i, item in enumerate(signals)]
        return _listed(arrays, {})
    if isinstance(signals, (np.ndarray, da.Array)):
        if signals.ndim == 3:
            _check_numeric(signals, where="signals")
            stacked = signals if isinstance(signals, da.Array) else da.from_array(signals, -1)
            ids: list[Hashable] = list(range(signals.shape[0]))
            return RunSignals(ids, int(signals.shape[2]), {}, stacked=stacked)
        return _listed([_as_2d(signals, where="signals")], {})
    raise TypeError(
        f"signals of type {type(signals).__name__} is not supported: give a (time, seed) "
        "DataArray, a result store written by extract_many (path or xr.Dataset), a numpy "
        "array, or a list of (time, seed) arrays."
    )


def _from_store(
    path: str | os.PathLike[str], storage_options: StorageOptions | None
) -> RunSignals:
    """A result store by path: checked and opened once on the client, read by the tasks."""
    from lazyspheres.batch.store import ResultStore, open_handle

    handle = ResultStore(path, storage_options)
    dataset = open_handle(handle, allow_partial=False)
    runs = _from_dataset(dataset, source=os.fspath(path))
    stored = StoredRuns.for_store(handle.group(), dataset)
    return dataclasses.replace(runs, stored=stored, opened=dataset)


def _check_numeric(array: np.ndarray | da.Array | xr.DataArray, *, where: str) -> None:
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where} has dtype {array.dtype}; signals must be numeric.")


def _as_2d(item: UserInput, *, where: str) -> da.Array:
    array = item if isinstance(item, da.Array) else np.asarray(item)
    if array.ndim != 2:
        raise ValueError(f"{where} has shape {array.shape}; each run must be (time, seed).")
    _check_numeric(array, where=where)
    # one chunk per run: a task takes each run as one block
    return array.rechunk(-1) if isinstance(array, da.Array) else da.from_array(array, chunks=-1)


def _seed_coords(obj: xr.DataArray | xr.Dataset) -> SeedCoords:
    coords: SeedCoords = {}
    for name, coord in obj.coords.items():
        if coord.dims == ("seed",):
            coords[str(name)] = (coord.data, dict(coord.attrs))
    return coords


def _from_dataarray(signals: xr.DataArray) -> RunSignals:
    if signals.ndim == 2 and set(signals.dims) == {"time", "seed"}:
        array = signals.transpose("time", "seed").data
        runs = _listed([_as_2d(array, where="signals")], _seed_coords(signals))
        run_id = signals.coords["run"].item() if "run" in signals.coords else 0
        return dataclasses.replace(runs, run_ids=[run_id])
    if signals.ndim == 3 and set(signals.dims) == {"run", "time", "seed"}:
        ordered = signals.transpose("run", "time", "seed")
        _check_numeric(ordered, where="signals")
        data = ordered.data if isinstance(ordered.data, da.Array) else ordered.chunk().data
        ids = list(ordered.coords["run"].values) if "run" in ordered.coords else None
        ids = ids if ids is not None else list(range(ordered.sizes["run"]))
        counts = None
        if "n_volumes" in ordered.coords:
            counts = da.asarray(ordered.coords["n_volumes"].data)
        seeds = int(ordered.sizes["seed"])
        coords = _seed_coords(ordered)
        return RunSignals(ids, seeds, coords, stacked=data, stacked_counts=counts)
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
    seeds = int(signals.sizes["seed"])
    coords = _seed_coords(signals)
    return RunSignals(ids, seeds, coords, source, stacked=data, stacked_counts=counts)


def _listed(arrays: list[da.Array], coords: SeedCoords) -> RunSignals:
    widths = sorted({int(a.shape[1]) for a in arrays})
    if len(widths) > 1:
        raise ValueError(f"All runs must have the same number of seeds; got {widths} seeds.")
    return RunSignals(list(range(len(arrays))), widths[0], coords, arrays=arrays)
