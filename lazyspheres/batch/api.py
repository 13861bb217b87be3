"""``extract_many``: sphere signals of many runs into one resumable Zarr store."""

from __future__ import annotations

import builtins
import json
import warnings
from typing import Any, Literal

import numpy as np
import xarray as xr

from lazyspheres.batch.checks import check_confounds
from lazyspheres.batch.execute import active_client
from lazyspheres.batch.ledger import RunLedger
from lazyspheres.batch.lock import one_writer
from lazyspheres.batch.params import (
    check_clean,
    dry_run_clean,
    seed_coords,
    split_mask,
    store_parameters,
)
from lazyspheres.batch.reading import ImageFacts
from lazyspheres.batch.running import probe_all, run_all
from lazyspheres.batch.runs import RunSpec, build_runs
from lazyspheres.batch.spheres import check_radii
from lazyspheres.batch.store import ResultStore, open_handle
from lazyspheres.batch.tasks import BatchConfig, Failure, RunOutcome
from lazyspheres.cleaning.options import CleaningParams
from lazyspheres.errors import LazySpheresError
from lazyspheres.smoothing import check_fwhm

__all__ = ["BatchError", "extract_many"]


class BatchError(LazySpheresError, RuntimeError):
    """Some runs of a batch failed; the others are complete in the store.

    Attributes
    ----------
    failures : dict
        ``{run id: "source: ErrorType: message"}``.
    store : object
        The (partial) store.
    """

    def __init__(self, message: str, failures: dict[str, str], store: Any) -> None:
        super().__init__(message)
        self.failures = failures
        self.store = store


@one_writer  # one writer per store: a second one stops at once (batch/lock.py)
def extract_many(
    sources: Any,
    seeds: Any,
    radius: Any = None,
    *,
    store: Any = "results.zarr",
    mask_img: Any = None,
    allow_overlap: bool = False,
    confounds: Any = None,
    confound_columns: list[str] | None = None,
    sample_mask: Any = None,
    clean: dict[str, Any] | CleaningParams | None = None,
    smoothing_fwhm: Any = None,
    client: Any = None,
    resume: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    on_empty: Literal["raise", "nan"] = "raise",
    errors: Literal["raise", "warn"] = "raise",
    run_ids: list[str] | None = None,
    time_blocks: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Extract (and clean) sphere signals of many runs into one resumable Zarr v3 store.

    Each run is read by its own task on a worker (one streaming pass for ``.nii.gz``, time
    blocks for uncompressed ``.nii`` when there are fewer runs than threads, touched chunks
    for Zarr images), cleaned there, and written to its own region of the store, followed
    by its completion flag. Runs on Dask's local scheduler by default, or on ``client`` /
    the active ``distributed`` client.

    Parameters
    ----------
    sources : path, URL, glob pattern, or sequence of them
        The 4D runs (``.nii``, ``.nii.gz``, Zarr images).
    seeds : array-like, DataFrame or str
        As in :func:`lazyspheres.extract` (label columns become seed coordinates).
    radius : float, sequence of float, or None
        Sphere radius in mm, or one radius per seed (a lazyspheres extension: nilearn has
        one radius). ``None``: nearest voxel only.
    store : str, os.PathLike or zarr Store, default "results.zarr"
        The result store (path, fsspec URL or zarr Store).
    mask_img : image, "bids", list or dict, optional
        One mask for all runs, or one per run (a list, a dict run id → mask, or ``"bids"``
        for fMRIPrep's ``..._desc-brain_mask.nii.gz`` next to each run).
    allow_overlap : bool, default False
        Whether spheres may share voxels.
    confounds, sample_mask : list, dict or "bids", optional
        One entry per run (a list aligned with ``sources`` or a dict run id → value), each
        anything :func:`lazyspheres.clean` accepts. ``confounds="bids"`` finds fMRIPrep's
        ``..._desc-confounds_timeseries.tsv`` next to each run.
    confound_columns : list of str, optional
        Column names or shell patterns (``"trans_*"``) to keep from confounds tables.
    clean : dict or CleaningParams, optional
        Keywords of :func:`lazyspheres.clean` (``detrend``, ``standardize``, ``low_pass``,
        ``high_pass``, ``t_r``, ``filter``, ...), applied to each run; or them as one
        :class:`lazyspheres.cleaning.options.CleaningParams`.
    smoothing_fwhm : float, sequence of 3 floats, "fast" or None, optional
        Gaussian smoothing as in :func:`lazyspheres.extract` (computed on the sphere voxels
        and their kernel halo only).
    client : distributed.Client, optional
        Cluster to run on (default: the active client, else the local scheduler).
    resume : bool, default True
        Continue an existing store: skip complete runs whose inputs are unchanged
        (fingerprint), redo incomplete or changed ones. False: refuse an existing store
        unless ``overwrite``. A store in which no run was ever completed is started again
        whatever these say (it holds nothing to keep).
    overwrite : bool, default False
        Start the store again from scratch.
    progress : bool, default True
        Draw a progress bar on stderr: finished runs, and volumes read inside them.
    on_empty : {"raise", "nan"}, default "raise"
        A run in which a sphere is empty (after masking) fails, or gets NaN for that seed
        (``n_voxels`` records the coverage).
    errors : {"raise", "warn"}, default "raise"
        After all runs ran: raise :class:`BatchError` listing failed runs, or warn.
    run_ids : list of str, optional
        Explicit run ids (default: BIDS entities or file stems).
    time_blocks : int, optional
        Split each uncompressed run in this many time blocks (default: automatic).
    storage_options : dict, optional
        fsspec options for URLs (inputs and store).

    Returns
    -------
    xarray.Dataset
        The store opened lazily (see :func:`lazyspheres.batch.open_results`); with
        ``errors="warn"`` and failures, incomplete runs' signals are NaN.

    Raises
    ------
    BatchInputError, MissingInputsError
        Before any image is read: missing confounds or mask files, confound columns that
        match nothing, wrong lengths, or ``n/a`` cells in kept volumes (one line per
        problem; nothing is written).
    StoreMismatchError
        The store was written with other parameters, seeds or runs (all differences named).
    FileExistsError
        The store exists with complete runs, ``resume=False`` and ``overwrite=False``.
    BatchError
        Runs failed (``errors="raise"``); the others are complete and the store says which
        failed. Fix them and call again: complete runs are not recomputed.
    EmptySphereError, OverlapError, SeedError, TypeError, ValueError
        Bad seeds, radii or cleaning parameters, before anything is written (spheres are
        checked on the first run's grid; other grids fail per run).

    Examples
    --------
    >>> import lazyspheres as ls
    >>> ds = ls.extract_many(  # doctest: +SKIP
    ...     "derivatives/sub-*/func/*_desc-preproc_bold.nii.gz", "power2011", 5,
    ...     store="power.zarr", confounds="bids", confound_columns=["trans_?", "rot_?"],
    ...     clean={"detrend": True, "standardize": "zscore_sample"},
    ... )
    >>> ds.signals.sel(run="sub-01_task-rest_run-1")  # doctest: +SKIP
    """
    from lazyspheres.seeds import load_seeds

    if on_empty not in ("raise", "nan"):
        raise ValueError(f"on_empty must be 'raise' or 'nan'; got {on_empty!r}.")
    if errors not in ("raise", "warn"):
        raise ValueError(f"errors must be 'raise' or 'warn'; got {errors!r}.")
    shared_mask, per_run_masks = split_mask(mask_img)
    runs = build_runs(
        sources,
        confounds=confounds,
        sample_mask=sample_mask,
        masks=per_run_masks,
        run_ids=run_ids,
        storage_options=storage_options,
    )
    coords, labels = load_seeds(seeds)
    radii = check_radii(radius, coords.shape[0])
    clean_params = check_clean(clean)
    fwhm = check_fwhm(smoothing_fwhm)
    handle = ResultStore(store, storage_options)
    exists = handle.exists()
    overwrite = _store_policy(handle, exists, resume=resume, overwrite=overwrite)
    client = active_client(client)
    probes = probe_all(runs, client, storage_options)
    opened = [p for p in probes if not isinstance(p, Failure)]
    if not opened:
        failures = {r.run_id: _describe(r, p) for r, p in zip(runs, probes, strict=True)}
        raise BatchError(_failure_message(failures, store, n_complete=None), failures, store)
    facts = [p[0] for p in opened]
    dtype = "float32" if all(f.dtype == "float32" for f in facts) else "float64"
    has_confounds = any(run.confounds is not None for run in runs)
    known = dry_run_clean(clean_params, facts[0].n_volumes, dtype, has_confounds)
    config = BatchConfig(
        coords=coords,
        radii=radii,
        allow_overlap=bool(allow_overlap),
        on_empty=on_empty,
        mask=shared_mask,
        clean=clean_params,
        confound_columns=None if confound_columns is None else tuple(confound_columns),
        dtype=dtype,
        store=store,
        storage_options=storage_options,
        fwhm=fwhm,
        known_warnings=frozenset(known),
    )
    check_confounds(
        runs,
        [None if isinstance(p, Failure) else p[0].n_volumes for p in probes],
        config,
        clean_params.fill_na if clean_params else None,
    )
    if per_run_masks is None:  # fail fast on seeds that are wrong for every run
        from lazyspheres.batch.tasks import spheres_for

        spheres_for(facts[0], shared_mask, config)
    recorded = store_parameters(
        radius, smoothing_fwhm, config, confounds, sample_mask, mask_img, storage_options
    )
    seeds_table = seed_coords(coords, radii, labels)
    n_time = max(f.n_volumes for f in facts)
    resuming = exists and not overwrite
    if resuming:
        handle.check(
            parameters=recorded, run_ids=[r.run_id for r in runs], seed_coords=seeds_table
        )
        if n_time > handle.n_time():
            handle.grow_time(n_time)
        ledger = RunLedger(handle, handle.state())
    else:
        ledger = RunLedger(handle, n_runs=len(runs), n_seeds=coords.shape[0])
    run_ids = [r.run_id for r in runs]
    complete = ledger.complete_runs(run_ids)
    todo = runs_to_do(runs, probes, complete)

    def prepare_store() -> dict[str, Any] | None:
        # Runs while the workers already read: nothing is written to the store before
        # this, and no run is written before it is marked incomplete. Its root goes to
        # the workers, which write their run without reading the store's metadata.
        if not resuming:
            handle.create(
                run_ids=run_ids,
                sources=[r.source for r in runs],
                n_time=n_time,
                seed_coords=seeds_table,
                dtype=np.dtype(dtype),
                parameters=recorded,
                overwrite=overwrite,
                t_r=_common_t_r(facts),
            )
        ledger.ready = True
        if resuming:
            ledger.clear([run.index for run, _ in todo if run.run_id in complete])
            if handle.attrs().get("complete"):
                handle.set_attrs(complete=False)
        return handle.root()

    try:
        outcomes = run_all(
            todo, config, client, progress, time_blocks, prepare_store, ledger.record
        )
    finally:
        ledger.close()  # runs finished before an interruption keep their flags
    return _finish(handle, ledger, runs, outcomes, errors)


def _store_policy(handle: ResultStore, exists: bool, *, resume: bool, overwrite: bool) -> bool:
    """Whether to overwrite the store; FileExistsError when neither resuming nor overwriting."""
    if exists and not overwrite and handle.is_unfinished_start():
        overwrite = True  # no run was ever completed in it: nothing to keep, nothing to mix
    if exists and not resume and not overwrite:
        raise FileExistsError(
            f"{handle.store} exists. Pass resume=True to finish or update it, or "
            "overwrite=True to start again."
        )
    return overwrite


def runs_to_do(
    runs: list[RunSpec],
    probes: list[tuple[ImageFacts, str] | Failure],
    complete: dict[str, str],
) -> list[tuple[RunSpec, tuple[ImageFacts, str] | Failure]]:
    """The resume policy: runs that failed to open, are new, or changed since written.

    Parameters
    ----------
    runs : list of RunSpec
        Every run of the batch.
    probes : list
        Each run's ``(facts, input fingerprint)``, or the Failure opening it.
    complete : dict
        Run id -> input fingerprint of the runs the store holds complete.

    Returns
    -------
    list of (RunSpec, probe)
        The runs to (re)compute, in order.
    """
    return [
        (run, probe)
        for run, probe in zip(runs, probes, strict=True)
        if isinstance(probe, Failure) or complete.get(run.run_id) != probe[1]
    ]


def _common_t_r(facts: list[Any]) -> float | None:
    """The repetition time every opened run shares, or None."""
    values = {f.t_r for f in facts}
    return values.pop() if len(values) == 1 else None


def _finish(
    handle: ResultStore,
    ledger: RunLedger,
    runs: list[RunSpec],
    outcomes: list[RunOutcome],
    errors: str,
) -> xr.Dataset:
    failed = json.loads(handle.attrs().get("failed") or "{}")
    grouped: dict[tuple[str, str], list[str]] = {}
    for outcome in sorted(outcomes, key=lambda o: o.index):
        if outcome.failure is None:
            failed.pop(outcome.run_id, None)
        else:
            failed[outcome.run_id] = _describe(runs[outcome.index], outcome.failure)
        for item in outcome.warnings:
            grouped.setdefault(item, []).append(outcome.run_id)
    # The flags and per-run fingerprints are the truth (as written by the ledger).
    done = ledger.complete_runs([run.run_id for run in runs])
    inputs = {run.run_id: json.loads(done[run.run_id]) for run in runs if run.run_id in done}
    complete = len(done) == len(runs)
    handle.set_attrs(inputs=inputs, failed=failed, complete=complete)  # the last write
    for (category, message), run_ids in grouped.items():
        listed = ", ".join(run_ids[:5]) + (" ..." if len(run_ids) > 5 else "")
        klass = getattr(builtins, category, None)
        klass = klass if isinstance(klass, type) and issubclass(klass, Warning) else UserWarning
        warnings.warn(f"{message} [run(s) {listed}]", klass, stacklevel=3)
    new_failures = {o.run_id: failed[o.run_id] for o in outcomes if o.failure is not None}
    if new_failures:
        message = _failure_message(new_failures, handle.store, n_complete=(len(done), len(runs)))
        if errors == "raise":
            raise BatchError(message, new_failures, handle.store)
        warnings.warn(message, UserWarning, stacklevel=3)
    return open_handle(handle, allow_partial=True)


def _describe(run: RunSpec, failure: Any) -> str:
    return f"{run.source}: {failure.error_type}: {failure.message}"


def _failure_message(
    failures: dict[str, str], store: Any, *, n_complete: tuple[int, int] | None
) -> str:
    """The failed runs, one line each, then what to do next.

    ``n_complete`` is ``(complete runs, runs)`` in the store, or None when nothing was
    written.
    """
    lines = [f"{len(failures)} run(s) failed:"]
    lines += [f"  {run_id}: {text}" for run_id, text in list(failures.items())[:20]]
    if len(failures) > 20:
        lines.append(f"  ... and {len(failures) - 20} more (see the store's 'failed' attribute)")
    if n_complete is None:
        lines.append("No run could be opened; nothing was written.")
        return "\n".join(lines)
    done, total = n_complete
    lines.append(
        f"{done} of {total} run(s) are complete in {store}. Fix the failed runs and call "
        "extract_many again with the same arguments"
        + (": complete runs are not recomputed." if done else ".")
    )
    return "\n".join(lines)
