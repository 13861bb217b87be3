"""The Zarr v3 result store of a batch: template, checks, per-run state, resume, refusal.

Layout (one group, consolidated metadata, readable with plain ``xr.open_zarr``)::

    signals      (run, time, seed)  float32/float64, chunks (1, T, n_seeds), NaN padding
    n_volumes    (run)        int64   real volumes of each run (0 until written)
    n_voxels     (run, seed)  int64   voxels per sphere in that run (coverage; 0 = empty)
    t_r          (run)        float64 the run's header TR (NaN if none)
    complete     (run)        bool    set only after the run's data and its state above
    coords: run (ids), source (run), time (s: volume x TR, when the runs share one TR;
            else the volume index), volume (time: the volume index), seed, x, y, z,
            radius, labels
    attrs:  lazyspheres_version, store_format, parameters (JSON), inputs (JSON run id ->
            identity of the run's inputs as read, for runs whose state is written),
            failed (JSON run id -> error), complete (bool, written last)

Made for object stores, where each object is a request (see ``zarr_objects``):

- The template (all metadata, consolidated in the root ``zarr.json``, and every
  coordinate) is rendered in memory and written in one concurrent wave, root last. A
  coordinate holding one value everywhere (one radius for all seeds) is that array's fill
  value, with no chunk to write.
- Each run's signals are one chunk, written by the worker that computed them.
- The small per-run state (``n_volumes``, ``n_voxels``, ``t_r``, then ``complete``) is
  chunked by blocks of :data:`RUN_BLOCK` runs and written by the client
  (:class:`~lazyspheres.batch.ledger.RunLedger`), a few objects for many runs; the runs'
  input fingerprints go with it, in the root's ``inputs`` attribute (one more object, which
  every open reads anyway). Resuming reads the state in one request per array.

A run's flag is set after its data is written and after its state; a changed run's flag is
cleared before its data is rewritten; the store's ``complete`` attribute is set only after
every flag. An interruption at any point therefore leaves a store whose ``complete`` is
False and whose flags are True only for runs whose data is whole.

Stores of formats ``lazyspheres-results/1`` (per-run state chunked one run per object, and
a ``fingerprint(run)`` array) and ``/2`` (that array, in blocks of runs) open and resume as
before.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import cast

import dask.array as da
import numpy as np
import numpy.typing as npt
import xarray as xr
import zarr
from zarr.abc.store import Store

from lazyspheres._types import Attrs, StorageOptions
from lazyspheres.batch._store_types import Coordinate, OpenChunks, StoreLocation
from lazyspheres.batch.zarr_objects import (
    ROOT,
    PrimedStore,
    constants_as_fill,
    get_json,
    get_many,
    list_top,
    put_json,
    put_objects,
    root_group,
    run_concurrently,
    template_objects,
    zarr_store,
)
from lazyspheres.errors import IncompleteStoreError, StoreMismatchError

__all__ = [
    "READABLE_FORMATS",
    "RUN_BLOCK",
    "STORE_FORMAT",
    "ResultStore",
    "StoreNotReadyError",
    "StoreReady",
    "open_handle",
    "open_results",
    "write_run",
]

STORE_FORMAT = "lazyspheres-results/3"
#: Formats whose fingerprints are a ``fingerprint(run)`` array, not the ``inputs`` attribute.
_FINGERPRINT_ARRAY = ("lazyspheres-results/1", "lazyspheres-results/2")
#: Formats this version opens and resumes.
READABLE_FORMATS = (*_FINGERPRINT_ARRAY, STORE_FORMAT)
#: Runs per chunk of the per-run state arrays: resuming reads one object per array for
#: up to this many runs; the client rewrites a block when a run in it finishes.
RUN_BLOCK = 1024
#: The per-run state the client writes before a run's ``complete`` flag (and the
#: ``fingerprint`` of each run, in the ``inputs`` attribute or, before ``/3``, an array).
RUN_STATE = ("n_volumes", "n_voxels", "t_r")
_V2_KEYS = frozenset({".zgroup", ".zarray", ".zattrs", ".zmetadata"})

#: Test seam: called as ``hook(stage, run_id)`` at "before_data" and "before_flag" inside
#: :func:`write_run`. Fault-injection tests set it (in worker processes too); None otherwise.
fault_hook: Callable[[str, str], None] | None = None


class StoreNotReadyError(RuntimeError):
    """The store could not be prepared, so no run can be written (its error is the cause)."""


class StoreReady:
    """The store's preparation (its template), run alongside the first reads.

    Workers wait on it before writing their run (so nothing is written before the template,
    nor before a redone run's flag is cleared), and take the ``signals`` metadata from the
    root it carries instead of reading it: one round trip fewer per run. Pickled for a
    cluster's workers once done, it carries that root only.

    Parameters
    ----------
    root : dict, optional
        The root ``zarr.json`` of the store, ready already (None: workers read the
        metadata themselves).
    done : bool, default True
        False while :meth:`start`'s preparation runs.
    """

    def __init__(self, root: Attrs | None = None, *, done: bool = True) -> None:
        self.root = root
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        if done:
            self._done.set()

    @classmethod
    def start(cls, prepare: Callable[[], object]) -> StoreReady:
        """Run ``prepare()`` (returning the root ``zarr.json``, or None) in a thread."""
        ready = cls(done=False)
        ready._thread = threading.Thread(
            target=ready._run, args=(prepare,), name="lazyspheres-store", daemon=True
        )
        ready._thread.start()
        return ready

    def _run(self, prepare: Callable[[], object]) -> None:
        try:
            root = prepare()
            self.root = root if isinstance(root, dict) else None
        except BaseException as error:  # handed to the waiters and to result()
            self.error = error
        finally:
            self._done.set()

    @property
    def failed(self) -> bool:
        """Whether the preparation has failed (reads not started yet can be skipped)."""
        return self._done.is_set() and self.error is not None

    def wait(self) -> Attrs | None:
        """The root once the store is ready; :class:`StoreNotReadyError` if it failed."""
        self._done.wait()
        if self.error is not None:
            raise StoreNotReadyError(f"the result store was not prepared: {self.error}")
        return self.root

    def wait_quietly(self) -> None:
        """Wait for the preparation to end, whatever its outcome."""
        if self._thread is not None:
            self._thread.join()

    def result(self) -> None:
        """Wait for the preparation; raise its own error if it failed."""
        self.wait_quietly()
        if self.error is not None:
            raise self.error

    def __getstate__(self) -> dict[str, object]:
        # Pickled for another process (a "processes" scheduler): its copy cannot wait on
        # this thread, so the copy is made once the preparation has ended.
        self._done.wait()
        return {"root": self.root, "error": None if self.error is None else str(self.error)}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(cast("Attrs | None", state["root"]))  # type: ignore[misc]  # a fresh, resolved copy
        if state["error"] is not None:
            self.error = StoreNotReadyError(str(state["error"]))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # zarr warns that consolidated metadata is not in the v3 spec yet. We consolidate anyway:
    # without it every plain xr.open_zarr of the store warns and opens slower.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", module="zarr")
        yield


def _options(
    store: StoreLocation, storage_options: StorageOptions | None
) -> StorageOptions | None:
    if isinstance(store, (str, os.PathLike)) and "://" in os.fspath(store):
        return storage_options
    return None


class ResultStore:
    """Client-side handle on a result store (creation, checks, per-run state, attributes).

    The root ``zarr.json`` is read once and kept: every array is reached through its
    consolidated metadata, so each read or write below is one request per chunk.

    Parameters
    ----------
    store : str, os.PathLike or zarr Store
        Where the store is.
    storage_options : dict, optional
        fsspec options when ``store`` is a URL.
    """

    def __init__(
        self, store: StoreLocation, storage_options: StorageOptions | None = None
    ) -> None:
        self.store = store
        self.storage_options = _options(store, storage_options)
        self._stores: dict[bool, Store] = {}
        self._root: Attrs | None = None
        #: Objects written by :meth:`create` (key → bytes), to answer the final open.
        self._written: dict[str, bytes] = {}
        self._run_ids: list[str] | None = None
        self._root_lock = threading.Lock()  # one root write at a time (ledger and client)

    def zarr_store(self, *, read_only: bool = True) -> Store:
        """The zarr Store object (read-only ones never create a missing local folder)."""
        if read_only not in self._stores:
            self._stores[read_only] = zarr_store(
                self.store, self.storage_options, read_only=read_only
            )
        return self._stores[read_only]

    def _root_doc(self) -> Attrs | None:
        if self._root is None:
            self._root = get_json(self.zarr_store(), ROOT)
        return self._root

    def root(self) -> Attrs | None:
        """The root ``zarr.json`` (with the consolidated metadata), None if there is none."""
        return self._root_doc()

    def group(self, *, writable: bool = False) -> zarr.Group:
        """The root group, its arrays taken from the consolidated metadata."""
        root = self._root_doc()
        if root is None:
            raise FileNotFoundError(f"File not found: no result store at '{self.store}'.")
        return root_group(self.zarr_store(read_only=not writable), root)

    # ------------------------------------------------------------------ creation
    def exists(self) -> bool:
        """Whether a Zarr group is at the location (a Zarr v2 one counts, to be refused).

        One listing answers both questions; the root is read only when it is there.
        """
        if self._root is not None:
            return True
        names = set(list_top(self.zarr_store()))
        if ROOT in names and self._root_doc() is not None:
            return True
        return bool(_V2_KEYS & names)

    def create(
        self,
        *,
        run_ids: list[str],
        sources: list[str],
        n_time: int,
        seed_coords: dict[str, Coordinate],
        dtype: np.dtype,
        parameters: Attrs,
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
        block = min(n_runs, RUN_BLOCK)
        coords: dict[str, Coordinate] = {
            "run": ("run", np.array(run_ids, dtype=object)),
            "source": ("run", np.array(sources, dtype=object)),
            "time": ("time", *_time_axis(0, n_time, t_r)),
            "volume": ("time", np.arange(n_time), {"units": "volume index"}),
            **seed_coords,
        }
        variables = {
            "signals": (
                ("run", "time", "seed"),
                _placeholder((n_runs, n_time, n_seeds), dtype, 1),
            ),
            "n_volumes": (("run",), _placeholder((n_runs,), np.int64, block)),
            "n_voxels": (("run", "seed"), _placeholder((n_runs, n_seeds), np.int64, block)),
            "t_r": (("run",), _placeholder((n_runs,), np.float64, block), {"units": "s"}),
            "complete": (("run",), _placeholder((n_runs,), bool, block)),
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
        encoding: dict[str, Attrs] = {
            "signals": {"chunks": (1, n_time, n_seeds)},
            "n_voxels": {"chunks": (block, n_seeds)},
            **{name: {"chunks": (block,)} for name in ("n_volumes", "t_r", "complete")},
        }
        objects = template_objects(dataset, encoding)
        constants_as_fill(objects, {name: value[1] for name, value in coords.items()})
        writer = self.zarr_store(read_only=False)
        if overwrite and self.exists():
            from zarr.core.sync import sync

            sync(writer.delete_dir(""))
        put_objects(writer, objects)
        self._written = dict(objects)
        self._root = json.loads(objects[ROOT])
        self._run_ids = list(run_ids)

    # ------------------------------------------------------------------ checks
    def attrs(self) -> Attrs:
        """The store's group attributes."""
        root = self._root_doc()
        return dict(root.get("attributes", {})) if root is not None else {}

    def check(
        self, *, parameters: Attrs, run_ids: list[str], seed_coords: dict[str, Coordinate]
    ) -> None:
        """Refuse a store written by other parameters, seeds or runs.

        Raises
        ------
        StoreMismatchError
            Naming every differing parameter (stored and requested values).
        """
        attrs = self.attrs()
        where = self._where()
        if attrs.get("store_format") not in READABLE_FORMATS:
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
        group = self.group()
        names = ["run", *(name for name in seed_coords if name in group)]
        values = dict(zip(names, _read_all(group, names), strict=True))
        stored_runs = self._run_ids = [str(r) for r in values["run"]]
        if stored_runs != run_ids:
            added = sorted(set(run_ids) - set(stored_runs))
            removed = sorted(set(stored_runs) - set(run_ids))
            diffs.append(
                f"runs: {len(stored_runs)} stored, {len(run_ids)} requested "
                f"(new: {added[:5]}, missing: {removed[:5]}"
                f"{', same runs in another order' if not added and not removed else ''})"
            )
        for name, (_, wanted_values, *_) in seed_coords.items():
            if name not in values or not _same(values[name], wanted_values):
                diffs.append(f"seed coordinate '{name}' differs")
        if diffs:
            raise StoreMismatchError(
                f"{where} was written with other parameters, so its results cannot be mixed "
                "with these:\n  " + "\n  ".join(diffs) + "\nUse another store path, pass the "
                "store's parameters, or pass overwrite=True to start it again."
            )

    def _where(self) -> str:
        return str(self.store) if isinstance(self.store, (str, os.PathLike)) else "the store"

    # ------------------------------------------------------------------ per-run state
    def _fingerprint_array(self) -> bool:
        """Whether the runs' fingerprints are an array (formats before ``/3``)."""
        return self.attrs().get("store_format") in _FINGERPRINT_ARRAY

    def run_ids(self) -> list[str]:
        """The store's run ids, in order (read once)."""
        if self._run_ids is None:
            self._run_ids = [str(r) for r in _read_all(self.group(), ["run"])[0]]
        return self._run_ids

    def state(self) -> dict[str, np.ndarray]:
        """The per-run state (``RUN_STATE``, ``fingerprint``, ``complete``), read concurrently.

        A run's ``fingerprint`` is its inputs' identity (JSON), or "" if none is recorded.
        """
        if self._fingerprint_array():
            names = [*RUN_STATE, "fingerprint", "complete"]
            return dict(zip(names, _read_all(self.group(), names), strict=True))
        names = [*RUN_STATE, "complete", *(["run"] if self._run_ids is None else [])]
        state = dict(zip(names, _read_all(self.group(), names), strict=True))
        if "run" in state:
            self._run_ids = [str(r) for r in state.pop("run")]
        inputs = json.loads(self.attrs().get("inputs") or "{}")
        state["fingerprint"] = np.array(
            [_canonical(inputs[r]) if r in inputs else "" for r in self.run_ids()], dtype=object
        )
        return state

    def write_state(self, state: dict[str, np.ndarray], indices: list[int]) -> None:
        """Write the blocks holding runs ``indices``: their state first, their flags last.

        The fingerprints are a block of their array (formats ``/1``, ``/2``) or the root's
        ``inputs`` attribute, written with the state: those of the runs flagged complete in
        ``state``.
        """
        if not indices:
            return
        group = self.group(writable=True)
        fingerprints = ("fingerprint",) if self._fingerprint_array() else ()
        for names in ((*RUN_STATE, *fingerprints), ("complete",)):
            calls = []
            for name in names:
                array = _array(group, name)
                step = array.chunks[0]
                for start in sorted({index // step * step for index in indices}):
                    block = slice(start, min(start + step, array.shape[0]))
                    calls.append(_setter(array, block, state[name][block]))
            if names[0] != "complete" and not fingerprints:
                calls.append(functools.partial(self._write_inputs, state))
            run_concurrently(calls)

    def _write_inputs(self, state: dict[str, np.ndarray]) -> None:
        runs, flags = self.run_ids(), np.asarray(state["complete"], dtype=bool)
        prints = state["fingerprint"]
        self.set_attrs(
            inputs={runs[i]: json.loads(prints[i]) for i in np.flatnonzero(flags) if prints[i]}
        )

    def complete_runs(self) -> dict[str, str]:
        """``{run id: stored fingerprint}`` of runs whose completion flag is set."""
        state = self.state()
        runs = self.run_ids()
        flags = np.asarray(state["complete"], dtype=bool)
        return {runs[i]: str(state["fingerprint"][i]) for i in np.flatnonzero(flags)}

    def is_unfinished_start(self) -> bool:
        """Whether this is a result store in which no run was ever completed.

        Such a store (a first batch that failed or was interrupted early, even while its
        template was written) holds nothing to keep, so a corrected call may start it
        again whatever its parameters.
        """
        if self.attrs().get("store_format") not in READABLE_FORMATS:
            # a group created but never given its attributes: nothing in it
            return not self.attrs() and not list(self.group().keys())
        try:
            return not np.asarray(_read_all(self.group(), ["complete"])[0], bool).any()
        except KeyError:  # a template interrupted before its flags were written
            return True

    def n_time(self) -> int:
        """Length of the store's time axis."""
        return int(_array(self.group(), "time").shape[0])

    def clear_flags(self, indices: list[int]) -> None:
        """Mark runs incomplete (before their data is rewritten)."""
        state = self.state()
        state["complete"][indices] = False
        self.write_state(state, list(indices))

    def grow_time(self, n_time: int) -> None:
        """Lengthen the time axis (a resumed run turned out longer than any before)."""
        group = self.group(writable=True)
        signals, time = _array(group, "signals"), _array(group, "time")
        old = time.shape[0]
        signals.resize((signals.shape[0], n_time, signals.shape[2]))
        time.resize((n_time,))
        t_r = time.attrs.get("t_r")
        time[old:] = _time_axis(old, n_time, float(t_r) if isinstance(t_r, int | float) else None)[
            0
        ]
        if "volume" in group:  # stores before lazyspheres 0.2 have no volume coordinate
            volume = _array(group, "volume")
            volume.resize((n_time,))
            volume[old:] = np.arange(old, n_time)
        with _quiet():  # rare: the consolidated metadata is rebuilt from every array's
            zarr.consolidate_metadata(self.zarr_store(read_only=False))
        self._root = None
        self._written = {}

    def set_attrs(self, **values: object) -> None:
        """Update group attributes (JSON-encoding dicts): one write of the root ``zarr.json``."""
        encoded = {k: _dumps(v) if isinstance(v, dict) else v for k, v in values.items()}
        with self._root_lock:
            root = self._root_doc()
            if root is None:
                raise FileNotFoundError(f"File not found: no result store at '{self.store}'.")
            # The root (with its consolidated metadata) is ours to write: one PUT, where
            # zarr's attrs.update writes it once per attribute.
            updated = {**root, "attributes": {**root.get("attributes", {}), **encoded}}
            self._written[ROOT] = put_json(self.zarr_store(read_only=False), ROOT, updated)
            self._root = updated

    def primed_store(self) -> PrimedStore:
        """The store, primed with what an xarray open of it reads first (see ``open_handle``).

        The root and the index coordinates (``run``, ``time``, ``seed``: xarray loads them
        one after another) are taken from what this client wrote, else read concurrently.
        """
        root = self._root_doc() or {}
        primed = {ROOT: json.dumps(root).encode()} if root else {}
        keys = _index_keys(root)
        if self._written:  # created here: a chunk not written holds the fill value
            primed.update({key: self._written[key] for key in keys if key in self._written})
        else:
            primed.update(get_many(self.zarr_store(), keys))
        return PrimedStore(self.zarr_store(), primed)

    def all_complete(self) -> bool:
        """Whether every run's completion flag is set."""
        return bool(np.asarray(_read_all(self.group(), ["complete"])[0], dtype=bool).all())


def _index_keys(root: Attrs) -> list[str]:
    """Keys of the one chunk of each index coordinate (those xarray loads when opening)."""
    arrays = root.get("consolidated_metadata", {}).get("metadata", {})
    keys = []
    for name in ("run", "time", "seed"):
        meta = arrays.get(name, {})
        shape = meta.get("shape", [])
        grid = meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape", [])
        encoding = meta.get("chunk_key_encoding", {})
        separator = encoding.get("configuration", {}).get("separator", "/")
        if (
            len(shape) == 1
            and grid
            and grid[0] >= shape[0] > 0
            and encoding.get("name") == "default"
            and separator == "/"
        ):
            keys.append(f"{name}/c/0")
    return keys


def _read_all(group: zarr.Group, names: list[str]) -> list[np.ndarray]:
    arrays = [_array(group, name) for name in names]
    return run_concurrently([functools.partial(_read_whole, array) for array in arrays])


def _array(group: zarr.Group, name: str) -> zarr.Array:
    array = group[name]
    if not isinstance(array, zarr.Array):
        raise StoreMismatchError(f"'{name}' in the result store is a group, not an array.")
    return array


def _read_whole(array: zarr.Array) -> np.ndarray:
    return np.asarray(array[...])


def _setter(array: zarr.Array, block: slice, values: np.ndarray) -> Callable[[], None]:
    def write() -> None:
        array[block] = values

    return write


def _time_axis(start: int, stop: int, t_r: float | None) -> tuple[np.ndarray, Attrs]:
    """Values and attributes of ``time`` for volumes ``start:stop``: seconds if TR is known."""
    volumes = np.arange(start, stop)
    if t_r is None or not np.isfinite(t_r) or t_r <= 0:
        return volumes, {"units": "volume index", "note": "the runs have no common TR"}
    return volumes * float(t_r), {"units": "s", "t_r": float(t_r)}


def _placeholder(shape: tuple[int, ...], dtype: npt.DTypeLike, block: int) -> da.Array:
    # A Dask array is never written by to_zarr(compute=False): only metadata is. Unwritten
    # chunks read as the fill value (NaN for floats, 0, False).
    chunks = tuple(block if axis == 0 else -1 for axis in range(len(shape)))
    return da.zeros(shape, dtype=dtype, chunks=chunks)


def _same(stored: np.ndarray, wanted: np.ndarray) -> bool:
    stored, wanted = np.asarray(stored), np.asarray(wanted)
    if stored.shape != wanted.shape:
        return False
    if stored.dtype.kind in "fc" and wanted.dtype.kind in "fc":
        return bool(np.array_equal(stored, wanted, equal_nan=True))
    return [str(v) for v in stored.ravel()] == [str(v) for v in wanted.ravel()]


def _canonical(identity: object) -> str:
    """A run's fingerprint as the tasks write it (``run_fingerprint``: sorted keys)."""
    return json.dumps(identity, sort_keys=True, default=str)


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


# ---------------------------------------------------------------------------- workers
def write_run(
    store: StoreLocation,
    storage_options: StorageOptions | None,
    *,
    index: int,
    run_id: str,
    signals: np.ndarray,
    ready: StoreReady | None = None,
) -> None:
    """Write one run's signals, from a worker: its chunk (and its array's metadata read).

    ``signals`` is ``(n_volumes, n_seeds)``; it is padded with NaN to the store's time
    axis and written as the run's one chunk. The run's state and completion flag are the
    client's to write, once this has returned. With ``ready``, the write waits for the
    store's preparation and takes the array's metadata from it.
    """
    where = zarr_store(store, _options(store, storage_options), read_only=False)
    root = ready.wait() if ready is not None else None
    arrays = (root or {}).get("consolidated_metadata", {}).get("metadata", {})
    target: zarr.Array
    if root is not None and "signals" in arrays:
        target = _array(root_group(where, root), "signals")  # no metadata read
    else:
        target = zarr.open_array(where, path="signals", mode="r+", zarr_format=3)
    n_time = target.shape[1]
    padded = np.full((n_time, target.shape[2]), np.nan, dtype=target.dtype)
    padded[: signals.shape[0]] = signals
    if fault_hook is not None:
        fault_hook("before_data", run_id)
    target[index] = padded
    if fault_hook is not None:
        fault_hook("before_flag", run_id)


# ---------------------------------------------------------------------------- reading
def open_results(
    store: StoreLocation,
    *,
    storage_options: StorageOptions | None = None,
    allow_partial: bool = False,
    chunks: OpenChunks = None,
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
    return open_handle(
        ResultStore(store, storage_options), allow_partial=allow_partial, chunks=chunks
    )


def open_handle(
    handle: ResultStore, *, allow_partial: bool, chunks: OpenChunks = None
) -> xr.Dataset:
    """:func:`open_results` on a handle (whose root metadata may already be read)."""
    if handle._root_doc() is None and not handle.exists():
        raise FileNotFoundError(f"File not found: no result store at '{handle.store}'.")
    attrs = handle.attrs()
    if attrs.get("store_format") not in READABLE_FORMATS:
        raise StoreMismatchError(
            f"{handle._where()} is not a lazyspheres result store "
            f"(store_format {attrs.get('store_format')!r})."
        )
    consolidated = "consolidated_metadata" in (handle._root_doc() or {})
    with _quiet():
        dataset = xr.open_zarr(
            handle.primed_store(),
            chunks=dict(chunks)
            if isinstance(chunks, Mapping)
            else {}
            if chunks is None
            else chunks,
            consolidated=True if consolidated else None,
            zarr_format=3,
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
