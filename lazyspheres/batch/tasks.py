"""The functions batch tasks run on workers: probe a run, read a time block, finish a run.

They never raise for a problem with one run: they return a :class:`Failure` that travels
down the graph, so one corrupt file or empty sphere does not stop the other runs (a dead
worker still surfaces as an exception on that run's future, handled by the executor).
Everything they receive is small and picklable: paths, seeds, parameters.
"""

from __future__ import annotations

import fnmatch
import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

import numpy as np

from lazyspheres._lru import LRU
from lazyspheres._malloc import recycle_buffers
from lazyspheres._types import BoolArray, FloatArray, StorageOptions, UserInput
from lazyspheres.batch.params import BatchParams
from lazyspheres.batch.reading import ImageFacts, block_means, file_fingerprint, open_image
from lazyspheres.batch.runs import RunSpec
from lazyspheres.batch.spheres import RunSpheres, run_spheres
from lazyspheres.batch.store import StoreReady, write_run
from lazyspheres.cleaning.options import CleaningParams
from lazyspheres.gather import GatherPlan
from lazyspheres.smoothing import SmoothingPlan

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BlockMeans",
    "Failure",
    "Opened",
    "Probe",
    "RunOutcome",
    "finish_run",
    "probe_run",
    "read_block",
    "select_confounds",
]

# warnings.catch_warnings swaps process-wide state: tasks in threads take turns.
_WARNINGS_LOCK = threading.Lock()
_MASKS: LRU[Hashable, BoolArray] = LRU(8)
_SMOOTHERS: LRU[Hashable, tuple[GatherPlan, SmoothingPlan]] = LRU(8)


@dataclass(frozen=True)
class Failure:
    """A run that failed: the exception type and message."""

    error_type: str
    message: str

    @classmethod
    def of(cls, error: BaseException) -> Failure:
        """Describe an exception."""
        return cls(type(error).__name__, str(error))


@dataclass
class RunOutcome:
    """What the client learns about one run (never image data)."""

    index: int
    run_id: str
    source: str
    failure: Failure | None = None
    n_volumes: int = 0
    fingerprint: str = ""
    n_voxels: np.ndarray | None = None  # per seed, in this run's grid and mask
    t_r: float | None = None
    seconds: float = 0.0
    warnings: list[tuple[str, str]] = field(default_factory=list)


def run_fingerprint(spec: RunSpec, facts: ImageFacts, options: StorageOptions | None) -> str:
    """JSON identity of everything a run's result depends on besides the batch parameters."""
    identity = {
        "image": {"location": facts.location, "size": facts.size, "version": facts.fingerprint},
        "confounds": file_fingerprint(spec.confounds, options),
        "sample_mask": file_fingerprint(spec.sample_mask, options),
        "mask": file_fingerprint(spec.mask, options),
    }
    return json.dumps(identity, sort_keys=True, default=str)


class Opened(NamedTuple):
    """A run whose header could be read: its facts and its input fingerprint."""

    facts: ImageFacts
    fingerprint: str  # JSON identity of the run's inputs (run_fingerprint)


#: What probing a run gives: its facts, or why it cannot be opened.
Probe: TypeAlias = "Opened | Failure"


def probe_run(spec: RunSpec, options: StorageOptions | None) -> Probe:
    """Header facts and input fingerprint of a run (a Failure if it cannot be opened)."""
    try:
        facts = open_image(spec.source, options)[1]
        return Opened(facts, run_fingerprint(spec, facts, options))
    except Exception as error:
        return Failure.of(error)


def spheres_for(facts: ImageFacts, mask_source: UserInput, params: BatchParams) -> RunSpheres:
    """The run's spheres (mask read and resampled to its grid, cached per process)."""
    mask = None
    if mask_source is not None:
        mask = _mask_on_grid(mask_source, facts, params.storage_options)
    return run_spheres(
        params.coords,
        params.radii,
        facts.affine,
        facts.shape,
        mask=mask,
        allow_overlap=params.allow_overlap,
        on_empty=params.on_empty,
    )


def _mask_on_grid(
    source: UserInput, facts: ImageFacts, options: StorageOptions | None
) -> BoolArray:
    from lazyspheres.extraction import load_mask_on_grid

    key = (
        json.dumps(file_fingerprint(source, options), sort_keys=True, default=str),
        facts.affine.tobytes(),
        facts.shape,
    )
    cached = _MASKS.get(key)
    if cached is not None:
        return cached
    mask = load_mask_on_grid(source, facts.affine, facts.shape, storage_options=options)
    _MASKS.put(key, mask)
    return mask


def _smoother(
    spheres: RunSpheres, facts: ImageFacts, fwhm: FloatArray | str | None
) -> SmoothingPlan | None:
    """The run's smoothing plan (cached per process with its sphere plan)."""
    if fwhm is None or spheres.plan is None:
        return None
    key = (id(spheres.plan), repr(fwhm), facts.dtype, facts.affine.tobytes())
    hit = _SMOOTHERS.get(key)
    if hit is not None and hit[0] is spheres.plan:
        return hit[1]
    plan = spheres.plan
    smoother = SmoothingPlan.build(
        plan.voxels, plan.shape, facts.affine, fwhm, np.dtype(facts.dtype)
    )
    _SMOOTHERS.put(key, (plan, smoother))
    return smoother


@dataclass(frozen=True)
class BlockMeans:
    """What :func:`read_block` hands to :func:`finish_run` for volumes ``start:stop``.

    Attributes
    ----------
    facts : ImageFacts
        The run's header facts (their fingerprint tells whether the file changed).
    spheres : RunSpheres
        The run's spheres.
    means : numpy.ndarray
        ``(stop - start, n_kept)`` sphere means.
    n_bad : int
        Non-finite sphere-voxel values met (counted as 0).
    dtype : numpy.dtype
        dtype the means are cast to before cleaning (the image's, or the smoothing's).
    """

    facts: ImageFacts
    spheres: RunSpheres
    means: np.ndarray
    n_bad: int
    dtype: np.dtype


def read_block(
    spec: RunSpec, params: BatchParams, start: int, stop: int | None
) -> BlockMeans | Failure:
    """Sphere means of volumes ``start:stop`` of a run (``stop=None``: to the end)."""
    from lazyspheres.batch import store

    try:
        image, facts = open_image(spec.source, params.storage_options)
        stop = facts.n_volumes if stop is None else min(stop, facts.n_volumes)
        spheres = spheres_for(facts, spec.mask if spec.mask is not None else params.mask, params)
        if store.fault_hook is not None:
            store.fault_hook("reading", spec.run_id)
        _hold_for_tests(spec.run_id)
        smoother = _smoother(spheres, facts, params.fwhm)
        if spheres.plan is None:
            means, n_bad = np.zeros((stop - start, 0)), 0
        else:
            with recycle_buffers():  # distributed's malloc settings make each block fault
                means, n_bad = block_means(
                    image, facts, spheres.plan, start, stop, smoother, _reporter(spec.run_id)
                )
        dtype = np.dtype(facts.dtype) if smoother is None else smoother.dtype
        return BlockMeans(facts, spheres, means, int(n_bad), dtype)
    except Exception as error:
        return Failure.of(error)


#: Progress inside runs, on the local scheduler: ``sink(run_id, n_volumes)`` is set by the
#: client while its batch runs. On a ``distributed`` worker the same counts are sent as
#: events on :data:`PROGRESS_TOPIC`, which the client subscribes to.
progress_sink: Callable[[str, int], None] | None = None
PROGRESS_TOPIC = "lazyspheres-volumes-read"


def _reporter(run_id: str) -> Callable[[int], None] | None:
    """What a read reports its volumes to (None: nobody is listening)."""
    sink = progress_sink
    if sink is not None:
        return lambda n: sink(run_id, n)
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    return lambda n: worker.log_event(PROGRESS_TOPIC, (run_id, n))


#: Test only (tests/test_cli_session.py): the runs whose ids this variable holds
#: (comma-separated, or ``*`` for all) never finish reading, so a subprocess can be
#: interrupted at a known point. Never set it outside tests.
HOLD_RUN_VARIABLE = "LAZYSPHERES_TEST_HOLD_RUN"


def _hold_for_tests(run_id: str) -> None:
    held = os.environ.get(HOLD_RUN_VARIABLE)
    if held and (held == "*" or run_id in held.split(",")):
        while True:
            time.sleep(0.05)


def finish_run(
    spec: RunSpec, params: BatchParams, ready: StoreReady | None, *blocks: BlockMeans | Failure
) -> RunOutcome:
    """Join a run's blocks, clean and write its signals; the outcome carries its state.

    ``ready`` is the store's preparation, which the write waits for (None: it is done).
    """
    started = time.perf_counter()
    outcome = RunOutcome(spec.index, spec.run_id, spec.source)
    read = [b for b in blocks if isinstance(b, BlockMeans)]
    failed = next((b for b in blocks if isinstance(b, Failure)), None)
    if failed is not None:
        outcome.failure = failed
        return outcome
    try:
        facts = read[0].facts
        if any(b.facts.fingerprint != facts.fingerprint for b in read):
            raise OSError(f"{facts.location} changed while it was being read; run it again.")
        spheres = read[0].spheres
        means = np.concatenate([b.means for b in read], axis=0)
        n_bad = sum(b.n_bad for b in read)
        if n_bad:
            outcome.warnings.append(("UserWarning", _nonfinite_message(n_bad)))
        signals = _clean(means, read[0].dtype, spec, params, outcome)
        full = np.full((signals.shape[0], params.coords.shape[0]), np.nan, dtype=params.dtype)
        full[:, spheres.kept] = signals
        outcome.fingerprint = run_fingerprint(spec, facts, params.storage_options)
        write_run(
            params.store,
            params.storage_options,
            index=spec.index,
            run_id=spec.run_id,
            signals=full,
            ready=ready,
        )
        outcome.n_volumes = int(full.shape[0])
        outcome.n_voxels, outcome.t_r = np.asarray(spheres.n_voxels), facts.t_r
    except Exception as error:
        outcome.failure = Failure.of(error)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _nonfinite_message(count: int) -> str:
    return (
        "Non-finite values detected. These values will be replaced with zeros: "
        f"{count} NaN/inf value(s) among the sphere voxels were counted as 0 in the sphere "
        "means (nilearn's rule)."
    )


def _clean(
    means: np.ndarray, dtype: np.dtype, spec: RunSpec, params: BatchParams, outcome: RunOutcome
) -> np.ndarray:
    """Cast the means as :func:`lazyspheres.extract` does, then clean them as it would."""
    from lazyspheres.extraction import output_dtype

    signals = means.astype(output_dtype(dtype), copy=False)
    confounds = select_confounds(spec.confounds, params)
    if not params.clean and confounds is None and spec.sample_mask is None:
        return signals
    from lazyspheres.cleaning.api import clean_with

    columns = signals if signals.shape[1] else np.ones((signals.shape[0], 1), signals.dtype)
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cleaning = params.clean or CleaningParams()
        cleaned = clean_with(columns, cleaning, confounds=confounds, sample_mask=spec.sample_mask)
    for record in caught:
        item = (record.category.__name__, str(record.message))
        if item not in params.known_warnings and item not in outcome.warnings:
            outcome.warnings.append(item)
    return cleaned if signals.shape[1] else cleaned[:, :0]


def select_confounds(value: UserInput, params: BatchParams) -> UserInput:
    """Confounds as :func:`clean` takes them; remote files read here; columns selected."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        remote = "://" in text and not text.startswith("file://")
        if params.confound_columns is None and not remote:
            return text  # nilearn's own file reading rules, in clean
        value = _read_table(text, params.storage_options)
    if params.confound_columns is None:
        return value
    import pandas as pd

    if not isinstance(value, pd.DataFrame):
        raise TypeError(
            "confound_columns selects columns of confounds tables (files or DataFrames); "
            f"got confounds of type {type(value).__name__}."
        )
    chosen = [
        c
        for c in value.columns
        if any(fnmatch.fnmatchcase(str(c), p) for p in params.confound_columns)
    ]
    if not chosen:
        raise ValueError(
            f"No confound column matches {list(params.confound_columns)}; the columns are "
            f"{[str(c) for c in value.columns[:30]]}{' ...' if value.shape[1] > 30 else ''}."
        )
    return value[chosen]


def _read_table(path: str, options: StorageOptions | None) -> pd.DataFrame:
    import fsspec
    import pandas as pd

    remote = "://" in path and not path.startswith("file://")
    with fsspec.open(path, "rt", **((options or {}) if remote else {})) as handle:
        sep = "\t" if path.lower().endswith(".tsv") else None
        return pd.read_csv(handle, sep=sep, engine="python" if sep is None else "c")
