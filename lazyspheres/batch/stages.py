"""The stages of :func:`~lazyspheres.batch.extract_many`: validate, plan, schedule, write.

* :func:`validate` turns the user's arguments into the runs and one :class:`BatchParams`
  (nothing is read but seeds and, for ``"bids"``, the names next to each run);
* :func:`plan` probes the runs' headers, checks every input that can be checked before any
  image is read, applies the store and resume policies, and says which runs to (re)compute
  (nothing is written yet, except a longer time axis for a resumed store);
* :func:`schedule` reads, cleans and writes those runs on the workers, creating the store
  first (on a cluster, while the first reads run);
* :func:`write` records the outcome in the store's attributes and reports failed runs.
"""

from __future__ import annotations

import builtins
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from lazyspheres._types import Attrs, StorageOptions, UserInput
from lazyspheres.batch._types import ErrorPolicy, OnEmpty, StoreTarget
from lazyspheres.batch.checks import check_confounds
from lazyspheres.batch.ledger import RunLedger
from lazyspheres.batch.params import (
    BatchParams,
    check_clean,
    dry_run_clean,
    jsonable_fwhm,
    per_run_given,
    recorded_radius,
    split_mask,
)
from lazyspheres.batch.reading import ImageFacts
from lazyspheres.batch.running import probe_all, run_all
from lazyspheres.batch.runs import RunSpec, build_runs
from lazyspheres.batch.spheres import check_radii
from lazyspheres.batch.store import ResultStore, open_handle
from lazyspheres.batch.tasks import Failure, Probe, RunOutcome, spheres_for
from lazyspheres.errors import LazySpheresError
from lazyspheres.smoothing import check_fwhm

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["BatchError", "BatchPlan", "plan", "runs_to_do", "schedule", "validate", "write"]


class BatchError(LazySpheresError, RuntimeError):
    """Some runs of a batch failed; the others are complete in the store.

    Attributes
    ----------
    failures : dict
        ``{run id: "source: ErrorType: message"}``.
    store : object
        The (partial) store.
    """

    def __init__(self, message: str, failures: dict[str, str], store: StoreTarget) -> None:
        super().__init__(message)
        self.failures = failures
        self.store = store


# ---------------------------------------------------------------------------- validate
def validate(
    sources: UserInput,
    seeds: UserInput,
    radius: UserInput = None,
    *,
    store: StoreTarget = "results.zarr",
    mask_img: UserInput = None,
    allow_overlap: bool = False,
    confounds: UserInput = None,
    confound_columns: Sequence[str] | None = None,
    sample_mask: UserInput = None,
    clean: UserInput = None,
    smoothing_fwhm: UserInput = None,
    resume: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    on_empty: OnEmpty = "raise",
    errors: ErrorPolicy = "raise",
    run_ids: Sequence[str] | None = None,
    time_blocks: int | None = None,
    storage_options: StorageOptions | None = None,
) -> tuple[list[RunSpec], BatchParams]:
    """The runs and the parameters of a batch, from :func:`extract_many`'s arguments.

    Raises
    ------
    ValueError, TypeError, FileNotFoundError, SeedError, BatchInputError, MissingInputsError
        An argument that is wrong whatever the images hold.
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
    params = BatchParams(
        coords=coords,
        radii=radii,
        labels=labels,
        radius=recorded_radius(radius, radii),
        allow_overlap=bool(allow_overlap),
        on_empty=on_empty,
        mask=shared_mask,
        masks_given=per_run_given(per_run_masks),
        confounds_given=per_run_given(confounds),
        sample_mask_given=sample_mask is not None,
        clean=check_clean(clean),
        confound_columns=None if confound_columns is None else tuple(confound_columns),
        fwhm=check_fwhm(smoothing_fwhm),
        smoothing_fwhm=jsonable_fwhm(smoothing_fwhm),
        store=store,
        storage_options=storage_options,
        errors=errors,
        time_blocks=time_blocks,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
    )
    return runs, params


# ---------------------------------------------------------------------------- plan
@dataclass(frozen=True, eq=False)
class BatchPlan:
    """What the plan stage decided: the runs to compute and the store to write them to.

    Attributes
    ----------
    runs : list of RunSpec
        Every run of the batch.
    params : BatchParams
        The parameters, with the store's dtype and the warnings already shown.
    handle : ResultStore
        The result store.
    ledger : RunLedger
        The runs' completion flags (read from the store when resuming).
    todo : list of (RunSpec, probe)
        The runs to (re)compute, with their header facts or the Failure opening them.
    resuming : bool
        Whether the store exists and is continued (else it is created).
    n_time : int
        Length of the store's time axis (the longest run).
    t_r : float or None
        The repetition time every opened run shares, or None.
    """

    runs: list[RunSpec]
    params: BatchParams
    handle: ResultStore
    ledger: RunLedger
    todo: list[tuple[RunSpec, Probe]]
    resuming: bool
    n_time: int
    t_r: float | None

    @property
    def run_ids(self) -> list[str]:
        """The run ids, in store order."""
        return [run.run_id for run in self.runs]


def plan(runs: list[RunSpec], params: BatchParams, client: Client | None) -> BatchPlan:
    """Probe the runs, check every input, and decide which runs to (re)compute.

    Raises
    ------
    FileExistsError
        The store exists with complete runs and neither resume nor overwrite was asked.
    BatchError
        No run could be opened (nothing is written).
    BatchInputError, StoreMismatchError, EmptySphereError, OverlapError
        Inputs that are wrong for these runs, or a store written with other parameters.
    """
    handle = ResultStore(params.store, params.storage_options)
    exists = handle.exists()
    overwrite = _store_policy(handle, exists, resume=params.resume, overwrite=params.overwrite)
    probes = probe_all(runs, client, params.storage_options)
    facts = _opened(runs, probes, params.store)
    dtype = "float32" if all(f.dtype == "float32" for f in facts) else "float64"
    has_confounds = any(run.confounds is not None for run in runs)
    known = dry_run_clean(params.clean, facts[0].n_volumes, dtype, has_confounds)
    params = params.planned(dtype=dtype, known_warnings=known, overwrite=overwrite)
    _check_inputs(runs, probes, facts[0], params)
    n_time = max(f.n_volumes for f in facts)
    resuming = exists and not overwrite
    ledger = _ledger(handle, runs, params, n_time, resuming=resuming)
    todo = runs_to_do(runs, probes, ledger.complete_runs([r.run_id for r in runs]))
    return BatchPlan(runs, params, handle, ledger, todo, resuming, n_time, _common_t_r(facts))


def _opened(runs: list[RunSpec], probes: list[Probe], store: StoreTarget) -> list[ImageFacts]:
    """The facts of the runs that could be opened; BatchError if none could."""
    facts = [p.facts for p in probes if not isinstance(p, Failure)]
    if not facts:
        failures = {
            r.run_id: describe(r, p)
            for r, p in zip(runs, probes, strict=True)
            if isinstance(p, Failure)  # all of them
        }
        message = _failure_message(failures, store, n_complete=None)
        raise BatchError(message, failures, store)
    return facts


def _check_inputs(
    runs: list[RunSpec], probes: list[Probe], first: ImageFacts, params: BatchParams
) -> None:
    """Check the confounds against the runs' lengths, and the seeds on the first run."""
    check_confounds(
        runs,
        [None if isinstance(p, Failure) else p.facts.n_volumes for p in probes],
        params,
        params.clean.fill_na if params.clean else None,
    )
    if params.masks_given is None:  # fail fast on seeds that are wrong for every run
        spheres_for(first, params.mask, params)


def _ledger(
    handle: ResultStore, runs: list[RunSpec], params: BatchParams, n_time: int, *, resuming: bool
) -> RunLedger:
    """The runs' flags: the store's when resuming (checked, its time axis grown), else new."""
    if not resuming:
        return RunLedger(handle, n_runs=len(runs), n_seeds=params.n_seeds)
    handle.check(
        parameters=params.record(),
        run_ids=[r.run_id for r in runs],
        seed_coords=params.seed_coords(),
    )
    if n_time > handle.n_time():
        handle.grow_time(n_time)
    return RunLedger(handle, handle.state())


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
    runs: list[RunSpec], probes: Sequence[Probe], complete: dict[str, str]
) -> list[tuple[RunSpec, Probe]]:
    """The resume policy: runs that failed to open, are new, or changed since written.

    Parameters
    ----------
    runs : list of RunSpec
        Every run of the batch.
    probes : list of Opened or Failure
        Each run's facts and input fingerprint, or the Failure opening it.
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
        if isinstance(probe, Failure) or complete.get(run.run_id) != probe.fingerprint
    ]


def _common_t_r(facts: list[ImageFacts]) -> float | None:
    """The repetition time every opened run shares, or None."""
    values = {f.t_r for f in facts}
    return values.pop() if len(values) == 1 else None


# ---------------------------------------------------------------------------- schedule
def schedule(batch: BatchPlan, client: Client | None) -> list[RunOutcome]:
    """Compute the plan's runs; each run's flag is recorded as it finishes.

    Runs finished before an interruption keep their flags (the ledger is flushed).
    """
    try:
        return run_all(
            batch.todo,
            batch.params,
            client,
            lambda: prepare_store(batch),
            batch.ledger.record,
        )
    finally:
        batch.ledger.close()


def prepare_store(batch: BatchPlan) -> Attrs | None:
    """Create the store, or mark the runs about to be redone incomplete; its root.

    Runs while the workers already read: nothing is written to the store before this, and
    no run is written before it is marked incomplete. The root ``zarr.json`` it returns
    goes to the workers, which write their run without reading the store's metadata.
    """
    handle, params = batch.handle, batch.params
    if not batch.resuming:
        handle.create(
            run_ids=batch.run_ids,
            sources=[r.source for r in batch.runs],
            n_time=batch.n_time,
            seed_coords=params.seed_coords(),
            dtype=np.dtype(params.dtype),
            parameters=params.record(),
            overwrite=params.overwrite,
            t_r=batch.t_r,
        )
    batch.ledger.ready = True
    if batch.resuming:
        complete = batch.ledger.complete_runs(batch.run_ids)
        batch.ledger.clear([run.index for run, _ in batch.todo if run.run_id in complete])
        if handle.attrs().get("complete"):
            handle.set_attrs(complete=False)
    return handle.root()


# ---------------------------------------------------------------------------- write
def write(batch: BatchPlan, outcomes: list[RunOutcome]) -> xr.Dataset:
    """Record the batch's outcome in the store; raise or warn about failed runs.

    Returns
    -------
    xarray.Dataset
        The store, opened lazily.
    """
    handle, runs = batch.handle, batch.runs
    failed = json.loads(handle.attrs().get("failed") or "{}")
    grouped: dict[tuple[str, str], list[str]] = {}
    for outcome in sorted(outcomes, key=lambda o: o.index):
        if outcome.failure is None:
            failed.pop(outcome.run_id, None)
        else:
            failed[outcome.run_id] = describe(runs[outcome.index], outcome.failure)
        for item in outcome.warnings:
            grouped.setdefault(item, []).append(outcome.run_id)
    # The flags and per-run fingerprints are the truth (as written by the ledger).
    done = batch.ledger.complete_runs(batch.run_ids)
    inputs = {run.run_id: json.loads(done[run.run_id]) for run in runs if run.run_id in done}
    complete = len(done) == len(runs)
    handle.set_attrs(inputs=inputs, failed=failed, complete=complete)  # the last write
    for (category, message), run_ids in grouped.items():
        listed = ", ".join(run_ids[:5]) + (" ..." if len(run_ids) > 5 else "")
        klass = getattr(builtins, category, None)
        klass = klass if isinstance(klass, type) and issubclass(klass, Warning) else UserWarning
        warnings.warn(f"{message} [run(s) {listed}]", klass, stacklevel=4)
    new_failures = {o.run_id: failed[o.run_id] for o in outcomes if o.failure is not None}
    if new_failures:
        message = _failure_message(new_failures, handle.store, n_complete=(len(done), len(runs)))
        if batch.params.errors == "raise":
            raise BatchError(message, new_failures, handle.store)
        warnings.warn(message, UserWarning, stacklevel=4)
    return open_handle(handle, allow_partial=True)


def describe(run: RunSpec, failure: Failure) -> str:
    """One failed run, as the store's ``failed`` attribute and BatchError list it."""
    return f"{run.source}: {failure.error_type}: {failure.message}"


def _failure_message(
    failures: dict[str, str], store: StoreTarget, *, n_complete: tuple[int, int] | None
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
