"""``connectome``: per-run connectivity matrices with nilearn 0.12.1's ``ConnectivityMeasure``.

One run is little work (Ledoit-Wolf on 1200 x 264 signals: ~2 ms of CPU, see
:mod:`~lazyspheres.connectivity.covariance`), less than what a distributed task costs around
it (scheduling, one small read, moving the result), so the graph has one task per *group*
of consecutive runs (see :func:`partition`), and nothing else per group: the task gets its
runs (a result store given by path is read by the task itself, see
:mod:`~lazyspheres.connectivity.reads`; other inputs are one block of the input array),
fits the covariance of each run and derives the kind. The group mean is a sum tree over the
groups' blocks, not a gather of every matrix. ``"tangent"`` needs the group's geometric
mean, so its graph has two passes: per-group covariances, one task for the geometric mean
and its whitening matrix, then per-group tangent vectors. Written into the result store it
was read from (the CLI's route), a group's task also writes its runs' chunk files and
returns only its matrices' sum (see :mod:`~lazyspheres.connectivity.store`).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, TypeAlias

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask._task_spec import List, Task, TaskRef  # the Task spec of dask's graph docs
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.typing import Key

from lazyspheres._scheduler import active_client, n_workers
from lazyspheres._types import FloatArray, IntArray, StorageOptions, UserInput
from lazyspheres.connectivity.covariance import RunCovariance
from lazyspheres.connectivity.inputs import RunSignals, as_runs
from lazyspheres.connectivity.layout import label_matrices, vectorize_matrices
from lazyspheres.connectivity.reads import StoredRuns
from lazyspheres.connectivity.spd import (
    check_spd,
    cov_to_corr,
    eigen_map,
    geometric_mean,
    prec_to_partial,
    tangent_vector,
)
from lazyspheres.io.zarr_chunks import ZarrChunkReader

if TYPE_CHECKING:
    from lazyspheres.connectivity.direct_write import MatrixWrite

__all__ = ["KINDS", "CovarianceEstimator", "connectome", "partition"]


class CovarianceEstimator(Protocol):
    """What ``cov_estimator`` must be: a scikit-learn covariance estimator.

    It is cloned per run; ``fit(X)`` on the run's ``(time, seed)`` signals sets ``covariance_``.
    """

    def fit(self, X: FloatArray) -> CovarianceEstimator:
        """Estimate the covariance of ``X``."""
        ...


#: A group's signals for a task: a ``(k, T, n)`` block, or ``k`` arrays ``(T_r, n)``.
GroupSignals: TypeAlias = np.ndarray | Sequence[np.ndarray]
#: A run's count of real volumes (None: every row).
Count: TypeAlias = "int | np.integer | None"
#: ``function(signals, counts, run_ids, *args) -> (k, n, n)``, one call per group.
GroupFunction: TypeAlias = Callable[..., FloatArray]

KINDS = ("covariance", "correlation", "partial correlation", "tangent", "precision")

#: Tasks per worker thread the runs are split into: enough to even out runs of different
#: lengths and a slower worker, few enough that each task carries several runs' work.
TASKS_PER_THREAD = 4
#: Never fewer tasks than this (so the graph, hence the result's chunks, is the same on
#: one worker as on a small cluster), never more runs per task than ``MAX_RUNS_PER_TASK``
#: (a group's signals and matrices stay a few tens of MB).
MIN_TASKS = 16
MAX_RUNS_PER_TASK = 32


def partition(n_runs: int, n_threads: int | None = None) -> list[tuple[int, int]]:
    """Split ``n_runs`` consecutive runs into near-equal groups, one task each.

    Parameters
    ----------
    n_runs : int
        Number of runs.
    n_threads : int, optional
        Worker threads the graph will run on (default: those of the current
        ``distributed`` client, else the CPU count).

    Returns
    -------
    list of (start, stop)
        ``max(MIN_TASKS, TASKS_PER_THREAD * n_threads)`` groups (fewer when the runs are
        fewer, or when a group would exceed ``MAX_RUNS_PER_TASK`` runs: then more), sizes
        differing by at most one.
    """
    threads = n_threads if n_threads is not None else _n_threads()
    n_tasks = max(MIN_TASKS, TASKS_PER_THREAD * threads, math.ceil(n_runs / MAX_RUNS_PER_TASK))
    n_tasks = max(1, min(n_runs, n_tasks))
    bounds = [n_runs * i // n_tasks for i in range(n_tasks + 1)]
    return list(itertools.pairwise(bounds))


def _n_threads() -> int:
    return n_workers(active_client())


def connectome(
    signals: UserInput,
    kind: str = "correlation",
    *,
    cov_estimator: CovarianceEstimator | None = None,
    vectorize: bool = False,
    discard_diagonal: bool = False,
    store: UserInput = None,
    storage_options: StorageOptions | None = None,
) -> xr.DataArray:
    """Connectivity matrix of each run, lazily, as nilearn 0.12.1's ``ConnectivityMeasure``.

    Parameters
    ----------
    signals : DataArray, Dataset, path, array or list of arrays
        A ``(time, seed)`` DataArray (one run); a ``(run, time, seed)`` DataArray; the result
        store of :func:`~lazyspheres.extract_many` (its path or the Dataset of
        :func:`~lazyspheres.open_results`: each run uses only its ``n_volumes`` real
        volumes); a ``(time, seed)`` or ``(run, time, seed)`` array; or a list of
        ``(time, seed)`` arrays (runs may differ in length).
    kind : {"correlation", "covariance", "partial correlation", "tangent", "precision"}
        The matrix kind. ``"correlation"`` z-scores each run's signals (population std,
        nilearn 0.12.1's ``standardize=True``) before fitting the estimator; the other kinds
        fit it on the signals as given. ``"tangent"`` needs at least two runs.
    cov_estimator : sklearn covariance estimator, optional
        Default ``sklearn.covariance.LedoitWolf(store_precision=False)``. It is cloned for
        every run; anything with ``fit(X).covariance_`` works (e.g. ``EmpiricalCovariance``).
    vectorize : bool, default False
        Return the lower triangle of each matrix, row by row, as a ``pair`` dimension with
        the diagonal divided by √2 (nilearn's ``sym_matrix_to_vec``).
    discard_diagonal : bool, default False
        With ``vectorize``, leave the diagonal out (and do not rescale).
    store : path or zarr store, optional
        Also compute the result and write it into this Zarr store (normally the result
        store the signals came from) as the variable ``connectome_<kind>``; the returned
        array is then read back lazily from the store. See :func:`write_connectome`.
    storage_options : dict, optional
        fsspec options for ``signals`` or ``store`` given as URLs.

    Returns
    -------
    xarray.DataArray
        ``(run, seed, seed2)`` float64 matrices, or ``(run, pair)`` vectors with
        ``vectorize``. Both seed axes carry the seed coordinates (``x, y, z``, labels ...;
        the second copy is suffixed ``2``); ``pair`` carries ``seed``/``seed2`` indices and
        the same labels. The matrix form has a ``group_mean`` ``(seed, seed2)`` coordinate:
        nilearn's ``mean_`` (the geometric mean of the covariances for ``"tangent"``, the
        symmetrised mean of the matrices otherwise). Dask-backed, one chunk per group of runs
        (:func:`partition`).

    Raises
    ------
    ValueError
        An unknown ``kind``; ``"tangent"`` with one run; runs with different seed counts;
        (when computed) NaN inside a run's real volumes, or a covariance that is not
        positive definite for ``"tangent"``.

    Examples
    --------
    >>> import numpy as np, lazyspheres as ls
    >>> rng = np.random.default_rng(0)
    >>> runs = [rng.standard_normal((50, 4)) for _ in range(3)]
    >>> ls.connectome(runs, "correlation").shape
    (3, 4, 4)
    """
    if kind not in KINDS:
        raise ValueError(f"Allowed connectivity kinds are {KINDS}; got kind {kind!r}.")
    runs = as_runs(signals, storage_options=storage_options)
    if kind == "tangent" and runs.n_runs <= 1:
        raise ValueError(
            "The tangent kind is the deviation of each run from the group's geometric mean: "
            f"it needs at least 2 runs, and got {runs.n_runs}."
        )
    estimator = _estimator(cov_estimator)
    groups = partition(runs.n_runs)
    if kind == "tangent":
        covariances = _per_group(runs, groups, _group_covariances, estimator)
        geometric, whitening = dask.delayed(_group_whitening, pure=True, nout=2)(covariances)
        n = runs.n_seeds
        whitening = da.from_delayed(whitening, shape=(n, n), dtype=np.float64)
        matrices = da.map_blocks(_tangents, covariances, whitening, dtype=np.float64)
        mean = da.from_delayed(geometric, shape=(n, n), dtype=np.float64)
    else:
        matrices = _per_group(runs, groups, _group_matrices, estimator, kind)
        mean = matrices.sum(axis=0) / runs.n_runs
        mean = (mean + mean.T) * 0.5
    result = label_matrices(
        matrices,
        mean,
        runs,
        vectorize=vectorize,
        discard_diagonal=discard_diagonal,
        attrs={
            "kind": kind,
            "cov_estimator": repr(estimator),
            "vectorize": bool(vectorize),
            "discard_diagonal": bool(discard_diagonal),
        },
    )
    if store is not None:
        from lazyspheres.connectivity.store import write_connectome, write_into

        if runs.opened is not None and _same_path(store, signals):  # opened once, not twice
            direct = None
            if kind != "tangent" and runs.stored is not None:
                options = (kind, vectorize, discard_diagonal)
                direct = functools.partial(_write_groups, runs, groups, estimator, options)
                plan = _matrix_write(result, store)
                if plan is not None:
                    return plan.run(direct, runs.opened)
            return write_into(
                result, store, runs.opened, storage_options=storage_options, direct=direct
            )
        return write_connectome(result, store, storage_options=storage_options)
    return result


def _same_path(store: UserInput, signals: UserInput) -> bool:
    paths = (str, os.PathLike)
    if not isinstance(store, paths) or not isinstance(signals, paths):
        return False
    return os.fspath(store) == os.fspath(signals)


def _matrix_write(result: xr.DataArray, store: UserInput) -> MatrixWrite | None:
    """The write without xarray of a new matrix result into a local store, if possible."""
    from lazyspheres.connectivity.direct_write import plan_matrix_write

    if not isinstance(store, (str, os.PathLike)):
        return None
    folder = os.fspath(store)
    if "://" in folder and not folder.startswith("file://"):
        return None
    return plan_matrix_write(result, folder.removeprefix("file://"), str(result.name))


def _estimator(cov_estimator: CovarianceEstimator | None) -> CovarianceEstimator:
    from sklearn.base import clone
    from sklearn.covariance import LedoitWolf

    if cov_estimator is None:
        return LedoitWolf(store_precision=False)
    if not hasattr(cov_estimator, "fit"):
        raise TypeError(
            f"cov_estimator {cov_estimator!r} has no fit method: give a scikit-learn "
            "covariance estimator such as sklearn.covariance.EmpiricalCovariance()."
        )
    return clone(cov_estimator)


# ---------------------------------------------------------------------------- tasks
def _real_volumes(signals: np.ndarray, n_volumes: Count, run_id: str) -> np.ndarray:
    """The run's real volumes (store padding dropped), checked finite."""
    values = np.asarray(signals)
    if n_volumes is not None:
        values = values[: int(n_volumes)]
    if values.shape[0] == 0:
        raise ValueError(f"Run {run_id} has no volume: it cannot have a connectome.")
    # a finite column sum means finite values (NaN and inf propagate); only else look closer
    if not np.isfinite(values.sum(axis=0)).all() and not np.isfinite(values).all():
        bad = np.unique(np.nonzero(~np.isfinite(values))[1])
        raise ValueError(
            f"Run {run_id} has NaN or infinite signals in seed(s) {bad[:10].tolist()} within "
            "its real volumes (an empty sphere, or a partial result store?). Drop those "
            "seeds or runs first."
        )
    return values


def _per_group(
    runs: RunSignals, groups: list[tuple[int, int]], function: GroupFunction, *args: object
) -> da.Array:
    """``(run, seed, seed2)`` float64 array, one chunk per group: ``function`` of each group.

    ``function(signals, counts, run_ids, *args)`` gets the group's runs (a 3D block or a
    list of 2D arrays), their real-volume counts (or None) and ids, and returns ``(k, n, n)``.
    A hand-written layer, one task per group and nothing else: a read task, a count task or
    an id task beside it would be scheduled on its own, possibly on another worker.
    """
    n = runs.n_seeds
    sizes = tuple(stop - start for start, stop in groups)
    ids = [str(r) for r in runs.run_ids]
    # a store read by the tasks has no content token (a rewritten store keeps its paths and
    # shapes): its keys are unique, never those of an earlier (possibly persisted) result
    source = uuid.uuid4().hex if runs.stored is not None else _input_names(runs)
    name = f"{function.__name__.strip('_')}-" + tokenize(source, groups, ids, *args)
    layer: dict[Key, Task] = {}
    dependencies: list[da.Array] = []
    if runs.stored is None and runs.stacked is not None:
        signals = runs.stacked.rechunk((sizes, -1, -1))
        counts = None if runs.stacked_counts is None else runs.stacked_counts.rechunk((sizes,))
        dependencies = [signals] if counts is None else [signals, counts]
    for index, (start, stop) in enumerate(groups):
        key = (name, index, 0, 0)
        members = ids[start:stop]
        if runs.stored is not None:
            layer[key] = Task(
                key, _stored_group, runs.stored, start, stop, members, function, *args
            )
        elif runs.stacked is not None:
            count = None if counts is None else TaskRef((counts.name, index))
            block = TaskRef((signals.name, index, 0, 0))
            layer[key] = Task(key, function, block, count, members, *args)
        else:
            arrays = (runs.arrays or [])[start:stop]
            dependencies.extend(arrays)
            blocks = List(*(TaskRef((a.name, 0, 0)) for a in arrays))
            layer[key] = Task(key, function, blocks, None, members, *args)
    # dask's Array does not match dask's own DaskCollection protocol (a staticmethod there)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=dependencies)  # type: ignore[arg-type]
    return da.Array(graph, name, chunks=(sizes, (n,), (n,)), dtype=np.float64)


def _write_groups(
    runs: RunSignals,
    groups: list[tuple[int, int]],
    estimator: CovarianceEstimator,
    options: tuple[str, bool, bool],
    chunks: ZarrChunkReader,
    meanwhile: Callable[[], None],
) -> FloatArray:
    """Compute a stored input's result with each task writing its runs' chunks itself.

    Why: as a ``to_zarr`` of the result, every group adds a store task, the group mean a
    sum tree, and the chunks go through zarr's I/O threads; here a group is still one task,
    which also writes its matrices' sum (lower triangle) into a scratch file beside the
    chunks, read here at the end: nothing but the tasks' states passes through the
    scheduler (sent back as results, the sums were 16 round trips and ~4.5 MB through this
    process's event loop, which shares the cores with the workers). ``meanwhile()`` is
    called once the tasks are submitted (the store's metadata is written while they run).
    Returns the group mean (as the lazy result's ``group_mean``).
    """
    if runs.stored is None:
        raise ValueError("Only a result store read by the tasks is written by them.")
    ids = [str(r) for r in runs.run_ids]
    name = "connectome-written-" + uuid.uuid4().hex  # writes: never shared with a result
    scratch = os.path.join(chunks.folder, f".sums-{name}")  # where every worker writes
    layer: dict[Key, Task] = {}
    for index, (start, stop) in enumerate(groups):
        key = (name, index, 0, 0)
        members = ids[start:stop]
        arguments = (chunks, start, os.path.join(scratch, str(index)), estimator, *options)
        layer[key] = Task(
            key, _stored_group, runs.stored, start, stop, members, _written_group, *arguments
        )
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[])
    try:
        _run_all([Delayed(key, graph, layer=name) for key in layer], meanwhile)
        n_pairs = runs.n_seeds * (runs.n_seeds + 1) // 2
        total = np.zeros(n_pairs)
        for index in range(len(groups)):
            total += _read_sum(os.path.join(scratch, str(index)), n_pairs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows, cols = np.tril_indices(runs.n_seeds)
    mean = np.empty((runs.n_seeds, runs.n_seeds))
    mean[rows, cols] = mean[cols, rows] = total / runs.n_runs
    return mean


def _read_sum(path: str, n_values: int) -> FloatArray:
    values = np.fromfile(path, dtype="<f8")
    if values.size != n_values:  # never expected: a task returned without writing it whole
        raise OSError(f"{path} holds {values.size} values, not the {n_values} written.")
    return values


def _run_all(parts: list[Delayed], meanwhile: Callable[[], None]) -> None:
    """Compute ``parts`` (tasks that return nothing), calling ``meanwhile()`` alongside.

    ``meanwhile()`` runs once the tasks are submitted to a ``distributed`` cluster (before
    computing, on a local scheduler). When anything fails on a cluster, the tasks still
    running are waited for, so that none writes after this returns. (Dask's local
    schedulers raise at once and leave a running task to finish: its chunk files, without
    metadata, are not part of the store, and the next write removes them.)
    """
    client = active_client()
    if client is None:
        meanwhile()
        dask.compute(*parts)
        return
    from distributed import wait

    futures = client.compute(parts)
    try:
        meanwhile()
        # waited for, not gathered: a gather is a round trip to every worker for nothing
        wait(futures)
        for future in futures:
            if future.status != "finished":
                future.result()  # raises the task's error
    except BaseException:
        wait(futures)
        raise


def _written_group(
    signals: GroupSignals,
    counts: IntArray | None,
    run_ids: list[str],
    chunks: ZarrChunkReader,
    start: int,
    partial: str,
    estimator: CovarianceEstimator,
    kind: str,
    vectorize: bool,
    discard_diagonal: bool,
) -> None:
    """:func:`_group_matrices` written into the output chunks, their sum into ``partial``.

    The sum is symmetrised as the lazy group mean, and only its lower triangle is kept.
    """
    from lazyspheres.connectivity.store import write_chunk, write_values

    matrices = _group_matrices(signals, counts, run_ids, estimator, kind)
    stored = matrices
    if vectorize:
        stored = vectorize_matrices(matrices, discard_diagonal=discard_diagonal)
    for offset, values in enumerate(stored):
        write_chunk(chunks, (start + offset, *(0,) * values.ndim), values)
    total = matrices.sum(axis=0)
    lower = ((total + total.T) * 0.5)[np.tril_indices(total.shape[0])]
    write_values(partial, lower.astype("<f8", copy=False))


def _input_names(runs: RunSignals) -> list[str]:
    arrays = [runs.stacked, runs.stacked_counts] if runs.stacked is not None else runs.arrays
    return [a.name for a in arrays or [] if a is not None]


def _stored_group(
    stored: StoredRuns,
    start: int,
    stop: int,
    run_ids: list[str],
    function: GroupFunction,
    *args: object,
) -> FloatArray:
    """``function`` of runs ``start:stop`` of a result store, read here."""
    signals, counts = stored.read(start, stop)
    return function(signals, counts, run_ids, *args)


def _members(
    signals: GroupSignals, counts: IntArray | None, run_ids: list[str]
) -> Iterator[tuple[np.ndarray, Count, str]]:
    """``(signals, n_volumes, run_id)`` of each run of a group."""
    counts_or_none: Sequence[Count] = [None] * len(run_ids) if counts is None else list(counts)
    return zip(signals, counts_or_none, run_ids, strict=True)


def _group_matrices(
    signals: GroupSignals,
    counts: IntArray | None,
    run_ids: list[str],
    estimator: CovarianceEstimator,
    kind: str,
) -> FloatArray:
    """Matrices of a group of runs, ``(k, n, n)``."""
    covariances = RunCovariance(estimator)
    members = _members(signals, counts, run_ids)
    n_seeds = signals[0].shape[-1]
    matrices = np.empty((len(run_ids), n_seeds, n_seeds))  # filled in place: no stack copy
    for index, (values, count, run_id) in enumerate(members):
        matrices[index] = _run_matrix(values, count, covariances, kind, run_id)
    return matrices


def _run_matrix(
    signals: np.ndarray, n_volumes: Count, covariances: RunCovariance, kind: str, run_id: str
) -> FloatArray:
    from scipy import linalg

    values = _real_volumes(signals, n_volumes, run_id)
    if kind == "correlation":
        return cov_to_corr(covariances(values, standardize=True)).astype(np.float64, copy=False)
    covariance = covariances(values, standardize=False)
    if kind == "covariance":
        return covariance.astype(np.float64, copy=False)
    precision = linalg.inv(covariance)
    if kind == "precision":
        return precision.astype(np.float64, copy=False)
    return prec_to_partial(precision).astype(np.float64, copy=False)


def _group_covariances(
    signals: GroupSignals,
    counts: IntArray | None,
    run_ids: list[str],
    estimator: CovarianceEstimator,
) -> FloatArray:
    covariances = []
    estimate = RunCovariance(estimator)
    for values, count, run_id in _members(signals, counts, run_ids):
        covariance = estimate(_real_volumes(values, count, run_id), standardize=False)
        check_spd(covariance, where=f"run {run_id}")
        covariances.append(covariance)
    return np.stack(covariances)


def _group_whitening(covariances: FloatArray) -> tuple[FloatArray, FloatArray]:
    mean = geometric_mean(list(covariances), max_iter=30, tol=1e-7)
    return mean, eigen_map(lambda w: 1.0 / np.sqrt(w), mean)


def _tangents(covariances: FloatArray, whitening: FloatArray) -> FloatArray:
    return np.stack([tangent_vector(c, whitening) for c in covariances]).astype(np.float64)
