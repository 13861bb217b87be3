"""``connectome``: per-run connectivity matrices with nilearn 0.12.1's ``ConnectivityMeasure``.

The graph has one task per run (read the run, fit the covariance estimator, derive the
kind), so runs spread over a cluster's workers. ``"tangent"`` needs the group's geometric
mean, so its graph has two passes: per-run covariances, one task for the group mean and
its whitening matrix, then per-run tangent vectors.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from lazyspheres.cleaning.standardize import zscore_rows
from lazyspheres.connectivity.inputs import RunSignals, as_runs
from lazyspheres.connectivity.layout import label_matrices
from lazyspheres.connectivity.spd import (
    check_spd,
    cov_to_corr,
    eigen_map,
    geometric_mean,
    prec_to_partial,
    tangent_vector,
)

__all__ = ["KINDS", "connectome"]

KINDS = ("covariance", "correlation", "partial correlation", "tangent", "precision")


def connectome(
    signals: Any,
    kind: str = "correlation",
    *,
    cov_estimator: Any = None,
    vectorize: bool = False,
    discard_diagonal: bool = False,
    store: Any = None,
    storage_options: dict[str, Any] | None = None,
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
        symmetrised mean of the matrices otherwise). Dask-backed, one chunk per run.

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
    if kind == "tangent" and len(runs.arrays) <= 1:
        raise ValueError(
            "The tangent kind is the deviation of each run from the group's geometric mean: "
            f"it needs at least 2 runs, and got {len(runs.arrays)}."
        )
    estimator = _estimator(cov_estimator)
    n = runs.n_seeds
    if kind == "tangent":
        tasks, group_mean = _tangent_graph(runs, estimator)
    else:
        tasks = [
            dask.delayed(_run_matrix, pure=True)(array, count, estimator, kind, str(run_id))
            for run_id, array, count in zip(runs.run_ids, runs.arrays, runs.n_volumes, strict=True)
        ]
        group_mean = dask.delayed(_symmetric_mean, pure=True)(tasks)
    blocks = [da.from_delayed(task, shape=(n, n), dtype=np.float64) for task in tasks]
    matrices = da.stack(blocks)
    mean = da.from_delayed(group_mean, shape=(n, n), dtype=np.float64)
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
        from lazyspheres.connectivity.store import write_connectome

        return write_connectome(result, store, storage_options=storage_options)
    return result


def _estimator(cov_estimator: Any) -> Any:
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
def _real_volumes(signals: np.ndarray, n_volumes: Any, run_id: str) -> np.ndarray:
    """The run's real volumes (store padding dropped), checked finite."""
    values = np.asarray(signals)
    if n_volumes is not None:
        values = values[: int(n_volumes)]
    if values.shape[0] == 0:
        raise ValueError(f"Run {run_id} has no volume: it cannot have a connectome.")
    if not np.all(np.isfinite(values)):
        bad = np.unique(np.nonzero(~np.isfinite(values))[1])
        raise ValueError(
            f"Run {run_id} has NaN or infinite signals in seed(s) {bad[:10].tolist()} within "
            "its real volumes (an empty sphere, or a partial result store?). Drop those "
            "seeds or runs first."
        )
    return values


def _covariance(values: np.ndarray, estimator: Any) -> np.ndarray:
    from sklearn.base import clone

    return np.asarray(clone(estimator).fit(values).covariance_)


def _run_matrix(
    signals: np.ndarray, n_volumes: Any, estimator: Any, kind: str, run_id: str
) -> np.ndarray:
    from scipy import linalg

    values = _real_volumes(signals, n_volumes, run_id)
    if kind == "correlation":
        if values.shape[0] > 1:  # nilearn skips standardising a single sample
            values = zscore_rows(np.ascontiguousarray(values.T), ddof=0).T
        return cov_to_corr(_covariance(values, estimator)).astype(np.float64)
    covariance = _covariance(values, estimator)
    if kind == "covariance":
        return covariance.astype(np.float64)
    precision = linalg.inv(covariance)
    if kind == "precision":
        return precision.astype(np.float64)
    return prec_to_partial(precision).astype(np.float64)


def _symmetric_mean(matrices: list[np.ndarray]) -> np.ndarray:
    mean = np.mean(matrices, axis=0)
    return (mean + mean.T) * 0.5


def _run_covariance(
    signals: np.ndarray, n_volumes: Any, estimator: Any, run_id: str
) -> np.ndarray:
    covariance = _covariance(_real_volumes(signals, n_volumes, run_id), estimator)
    check_spd(covariance, where=f"run {run_id}")
    return covariance


def _group_whitening(covariances: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    mean = geometric_mean(covariances, max_iter=30, tol=1e-7)
    return mean, eigen_map(lambda w: 1.0 / np.sqrt(w), mean)


def _tangent_graph(runs: RunSignals, estimator: Any) -> tuple[list[Any], Any]:
    covariances = [
        dask.delayed(_run_covariance, pure=True)(array, count, estimator, str(run_id))
        for run_id, array, count in zip(runs.run_ids, runs.arrays, runs.n_volumes, strict=True)
    ]
    group = dask.delayed(_group_whitening, pure=True, nout=2)(covariances)
    tasks = [dask.delayed(_tangent, pure=True)(covariance, group[1]) for covariance in covariances]
    return tasks, group[0]


def _tangent(covariance: np.ndarray, whitening: np.ndarray) -> np.ndarray:
    return tangent_vector(covariance, whitening).astype(np.float64)
