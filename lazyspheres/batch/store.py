"""The Zarr v3 result store of a batch: template, region writes, completion, resume, refusal.

Layout (one group, consolidated metadata, readable with plain ``xr.open_zarr``)::

    signals      (run, time, seed)  float32/float64, chunks (1, T, n_seeds), NaN padding
    n_volumes    (run)        int64   real volumes of each run (0 until written)
    n_voxels     (run, seed)  int64   voxels per sphere in that run (coverage; 0 = empty)
    t_r          (run)        float64 the run's header TR (NaN if none)
    fingerprint  (run)        str     JSON identity of the run's inputs, as read
    complete     (run)        bool    written only after the run's data
    coords: run (ids), source (run), time (s: volume x TR, when the runs share one TR;
            else the volume index), volume (time: the volume index), seed, x, y, z,
            radius, labels
    attrs:  lazyspheres_version, store_format, parameters (JSON), inputs (JSON),
            failed (JSON run id -> error), complete (bool, written last)

Every per-run variable is chunked by one run, so workers write their runs' chunks
concurrently without ever touching the same object. A run's flag is set after its data; a
changed run's flag is cleared before its data is rewritten; the store's ``complete``
attribute is set only after every flag. An interruption at any point therefore leaves a
store whose ``complete`` is False and whose flags are True only for runs whose data is
whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal

import dask.array as da
import numpy as np
import xarray as xr

from lazyspheres.errors import IncompleteStoreError, StoreMismatchError

__all__ = ["STORE_FORMAT", "ResultStore", "open_results", "write_run"]

STORE_FORMAT = "lazyspheres-results/1"

#: Test seam: called as ``hook(stage, run_id)`` at "before_data" and "before_flag" inside
#: :func:`write_run`. Fault-injection tests set it (in worker processes too); None otherwise.
fault_hook: Callable[[str, str], None] | None = None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # zarr warns that consolidated metadata is not in the v3 spec yet. We consolidate anyway:
    # without it every plain xr.open_zarr of the store warns and opens slower.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", module="zarr")
        yield


def _open_group(
    store: Any,
    storage_options: dict[str, Any] | None,
    mode: Literal["r", "r+", "a", "w", "w-"],
) -> Any:
    import zarr

    return zarr.open_group(store, mode=mode, storage_options=storage_options)


def _options(store: Any, storage_options: dict[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(store, (str, os.PathLike)) and "://" in os.fspath(store):
        return storage_options
    return None


def _exists(store: Any, storage_options: dict[str, Any] | None) -> bool:
    import zarr

    try:
        _open_group(store, storage_options, "r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return False
    return True


class ResultStore:
    """Client-side handle on a result store (creation, checks, flags, finalisation).

    Parameters
    ----------
    store : str, os.PathLike or zarr Store
        Where the store is.
    storage_options : dict, optional
        fsspec options when ``store`` is a URL.
    """

    def __init__(self, store: Any, storage_options: dict[str, Any] | None = None) -> None:
        self.store = store
        self.storage_options = _options(store, storage_options)

    # ------------------------------------------------------------------ creation
    def exists(self) -> bool:
        """Whether a Zarr group exists at the location."""
        return _exists(self.store, self.storage_options)

    def create(
        self,
        *,
        run_ids: list[str],
        sources: list[str],
        n_time: int,
        seed_coords: dict[str, Any],
        dtype: np.dtype,
        parameters: dict[str, Any],
        overwrite: bool = False,
        t_r: float | None = None,
    ) -> None:
        """Write the template: metadata, coordinates and empty per-run variables.

        ``time`` holds seconds (volume × ``t_r``, as :func:`lazyspheres.extract` gives)
        when the runs share one repetition time; otherwise it is the volume index. The
        volume index is always the ``volume`` coordinate.
        """
        import lazyspheres

        n_runs, n_seeds = len(run_ids), len(seed_coords["x"][1])
        coords: dict[str, Any] = {
            "run": ("run", np.array(run_ids, dtype=object)),
            "source": ("run", np.array(sources, dtype=object)),
            "time": ("time", *_time_axis(0, n_time, t_r)),
            "volume": ("time", np.arange(n_time), {"units": "volume index"}),
            **seed_coords,
        }
        variables = {
            "signals": (("run", "time", "seed"), _placeholder((n_runs, n_time, n_seeds), dtype)),
            "n_volumes": (("run",), _placeholder((n_runs,), np.int64)),
            "n_voxels": (("run", "seed"), _placeholder((n_runs, n_seeds), np.int64)),
            "t_r": (("run",), _placeholder((n_runs,), np.float64), {"units": "s"}),
            "fingerprint": (("run",), np.array([""] * n_runs, dtype=object)),
            "complete": (("run",), _placeholder((n_runs,), bool)),
        }
        attrs = {
            "lazyspheres_version": lazyspheres.__version__,
            "store_format": STORE_FORMAT,
            "parameters": _dumps(parameters),
            "inputs": _dumps({}),
            "failed": _dumps({}),
            "complete": False,
        }
        dataset = xr.Dataset(variables, coords=coords, attrs=attrs)
        per_run = {name: {"chunks": (1,)} for name in ("n_volumes", "t_r", "fingerprint")}
        encoding = {
            "signals": {"chunks": (1, n_time, n_seeds)},
            "n_voxels": {"chunks": (1, n_seeds)},
            "complete": {"chunks": (1,)},
            **per_run,
        }
        with _quiet():
            dataset.to_zarr(
                self.store,
                mode="w" if overwrite else "w-",
                compute=False,
                consolidated=True,
                zarr_format=3,
                storage_options=self.storage_options,
                encoding=encoding,
            )

    # ------------------------------------------------------------------ checks
    def attrs(self) -> dict[str, Any]:
        """The store's group attributes."""
        return dict(_open_group(self.store, self.storage_options, "r").attrs)

    def check(
        self, *, parameters: dict[str, Any], run_ids: list[str], seed_coords: dict[str, Any]
    ) -> None:
        """Refuse a store written by other parameters, seeds or runs.

        Raises
        ------
        StoreMismatchError
            Naming every differing parameter (stored and requested values).
        """
        attrs = self.attrs()
        where = self._where()
        if attrs.get("store_format") != STORE_FORMAT:
            raise StoreMismatchError(
                f"{where} is not a lazyspheres result store (store_format "
                f"{attrs.get('store_format')!r}). Choose another store path, or pass "
                "overwrite=True to replace it."
            )
        stored = json.loads(attrs["parameters"])
        wanted = json.loads(_dumps(parameters))
        diffs = [
            f"{key}: stored {stored.get(key)!r}, requested {wanted.get(key)!r}"
            for key in sorted(set(stored) | set(wanted))
            if stored.get(key) != wanted.get(key)
        ]
        group = _open_group(self.store, self.storage_options, "r")
        stored_runs = [str(r) for r in group["run"][:]]
        if stored_runs != run_ids:
            added = sorted(set(run_ids) - set(stored_runs))
            removed = sorted(set(stored_runs) - set(run_ids))
            diffs.append(
                f"runs: {len(stored_runs)} stored, {len(run_ids)} requested "
                f"(new: {added[:5]}, missing: {removed[:5]}"
                f"{', same runs in another order' if not added and not removed else ''})"
            )
        for name, (_, values, *_) in seed_coords.items():
            if name not in group or not _same(group[name][:], values):
                diffs.append(f"seed coordinate '{name}' differs")
        if diffs:
            raise StoreMismatchError(
                f"{where} was written with other parameters, so its results cannot be mixed "
                "with these:\n  " + "\n  ".join(diffs) + "\nUse another store path, pass the "
                "store's parameters, or pass overwrite=True to start it again."
            )

    def _where(self) -> str:
        return str(self.store) if isinstance(self.store, (str, os.PathLike)) else "the store"

    # ------------------------------------------------------------------ flags and sizes
    def complete_runs(self) -> dict[str, str]:
        """``{run id: stored fingerprint}`` of runs whose completion flag is set."""
        group = _open_group(self.store, self.storage_options, "r")
        flags = np.asarray(group["complete"][:], dtype=bool)
        fingerprints = group["fingerprint"][:]
        runs = group["run"][:]
        return {str(runs[i]): str(fingerprints[i]) for i in np.flatnonzero(flags)}

    def is_unfinished_start(self) -> bool:
        """Whether this is a result store in which no run was ever completed.

        Such a store (a first batch that failed or was interrupted early, even while its
        template was written) holds nothing to keep, so a corrected call may start it
        again whatever its parameters.
        """
        group = _open_group(self.store, self.storage_options, "r")
        if group.attrs.get("store_format") != STORE_FORMAT:
            # a template interrupted before its first attribute: an empty group
            return not group.attrs and not list(group.keys())
        try:
            return not np.asarray(group["complete"][:], dtype=bool).any()
        except KeyError:  # a template interrupted before its flags were written
            return True

    def n_time(self) -> int:
        """Length of the store's time axis."""
        return int(_open_group(self.store, self.storage_options, "r")["time"].shape[0])

    def clear_flags(self, indices: list[int]) -> None:
        """Mark runs incomplete (before their data is rewritten)."""
        group = _open_group(self.store, self.storage_options, "r+")
        for index in indices:
            group["complete"][index] = False

    def grow_time(self, n_time: int) -> None:
        """Lengthen the time axis (a resumed run turned out longer than any before)."""
        import zarr

        group = _open_group(self.store, self.storage_options, "r+")
        # One object per array: the group hands out arrays from its (consolidated) metadata,
        # which still has the old shape until it is consolidated again.
        signals, time = group["signals"], group["time"]
        old = time.shape[0]
        signals.resize((signals.shape[0], n_time, signals.shape[2]))
        time.resize((n_time,))
        time[old:] = _time_axis(old, n_time, time.attrs.get("t_r"))[0]
        if "volume" in group:  # stores before lazyspheres 0.2 have no volume coordinate
            volume = group["volume"]
            volume.resize((n_time,))
            volume[old:] = np.arange(old, n_time)
        with _quiet():
            zarr.consolidate_metadata(group.store)

    def set_attrs(self, **values: Any) -> None:
        """Update group attributes (JSON-encoding dicts) and re-consolidate the metadata."""
        import zarr

        group = _open_group(self.store, self.storage_options, "r+")
        group.attrs.update({k: _dumps(v) if isinstance(v, dict) else v for k, v in values.items()})
        with _quiet():
            zarr.consolidate_metadata(group.store)

    def all_complete(self) -> bool:
        """Whether every run's completion flag is set."""
        group = _open_group(self.store, self.storage_options, "r")
        return bool(np.asarray(group["complete"][:], dtype=bool).all())


def _time_axis(start: int, stop: int, t_r: float | None) -> tuple[np.ndarray, dict[str, Any]]:
    """Values and attributes of ``time`` for volumes ``start:stop``: seconds if TR is known."""
    volumes = np.arange(start, stop)
    if t_r is None or not np.isfinite(t_r) or t_r <= 0:
        return volumes, {"units": "volume index", "note": "the runs have no common TR"}
    return volumes * float(t_r), {"units": "s", "t_r": float(t_r)}


def _placeholder(shape: tuple[int, ...], dtype: Any) -> da.Array:
    # A Dask array is never written by to_zarr(compute=False): only metadata is. Unwritten
    # chunks read as the fill value (NaN for floats, 0, False).
    chunks = tuple(1 if axis == 0 else -1 for axis in range(len(shape)))
    return da.zeros(shape, dtype=dtype, chunks=chunks)


def _same(stored: np.ndarray, wanted: np.ndarray) -> bool:
    stored, wanted = np.asarray(stored), np.asarray(wanted)
    if stored.shape != wanted.shape:
        return False
    if stored.dtype.kind in "fc" and wanted.dtype.kind in "fc":
        return bool(np.array_equal(stored, wanted, equal_nan=True))
    return [str(v) for v in stored.ravel()] == [str(v) for v in wanted.ravel()]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


# ---------------------------------------------------------------------------- workers
def write_run(
    store: Any,
    storage_options: dict[str, Any] | None,
    *,
    index: int,
    run_id: str,
    signals: np.ndarray,
    n_voxels: np.ndarray,
    t_r: float | None,
    fingerprint: str,
) -> None:
    """Write one run's region (data first, completion flag last), from a worker.

    ``signals`` is ``(n_volumes, n_seeds)``; it is padded with NaN to the store's time
    axis and written as the run's one chunk.
    """
    group = _open_group(store, _options(store, storage_options), "r+")
    target = group["signals"]
    n_time = target.shape[1]
    padded = np.full((n_time, target.shape[2]), np.nan, dtype=target.dtype)
    padded[: signals.shape[0]] = signals
    if fault_hook is not None:
        fault_hook("before_data", run_id)
    target[index] = padded
    group["n_volumes"][index] = signals.shape[0]
    group["n_voxels"][index] = n_voxels
    group["t_r"][index] = np.nan if t_r is None else float(t_r)
    group["fingerprint"][index] = fingerprint
    if fault_hook is not None:
        fault_hook("before_flag", run_id)
    group["complete"][index] = True


# ---------------------------------------------------------------------------- reading
def open_results(
    store: Any,
    *,
    storage_options: dict[str, Any] | None = None,
    allow_partial: bool = False,
    chunks: Any = None,
) -> xr.Dataset:
    """Open a result store written by :func:`lazyspheres.extract_many`, checking it.

    Parameters
    ----------
    store : str, os.PathLike or zarr Store
        The store.
    storage_options : dict, optional
        fsspec options for URLs.
    allow_partial : bool, default False
        Open an interrupted store anyway; signals of runs that are not complete are
        masked to NaN (their data may be half-written).
    chunks : optional
        As in ``xr.open_zarr`` (default: the stored chunks, one run per chunk).

    Returns
    -------
    xarray.Dataset
        Lazily loaded: ``signals(run, time, seed)``, ``n_volumes``, ``n_voxels``, ...

    Raises
    ------
    IncompleteStoreError
        The store is partial (interrupted, or some runs failed) and ``allow_partial`` is
        False; the message lists the incomplete runs and the recorded failures.
    StoreMismatchError
        The store is not a lazyspheres result store.
    """
    handle = ResultStore(store, storage_options)
    if not handle.exists():
        raise FileNotFoundError(f"File not found: no result store at '{store}'.")
    attrs = handle.attrs()
    if attrs.get("store_format") != STORE_FORMAT:
        raise StoreMismatchError(
            f"{handle._where()} is not a lazyspheres result store "
            f"(store_format {attrs.get('store_format')!r})."
        )
    with _quiet():
        dataset = xr.open_zarr(
            store, chunks={} if chunks is None else chunks, storage_options=handle.storage_options
        )
    if dataset.attrs.get("complete"):
        return dataset
    flags = np.asarray(dataset["complete"].values, dtype=bool)
    if not allow_partial:
        missing = [str(r) for r in dataset["run"].values[~flags]]
        failed = json.loads(dataset.attrs.get("failed") or "{}")
        detail = "".join(f"\n  {run}: {failed[run]}" for run in list(failed)[:10])
        raise IncompleteStoreError(
            f"{handle._where()} is incomplete: {len(missing)} of {flags.size} run(s) are not "
            f"complete ({missing[:10]}{' ...' if len(missing) > 10 else ''})."
            f"{' Recorded failures:' + detail if detail else ''}\nFinish it with "
            "extract_many(..., resume=True) and the same arguments, or open it with "
            "open_results(store, allow_partial=True)."
        )
    dataset["signals"] = dataset["signals"].where(dataset["complete"])
    return dataset
