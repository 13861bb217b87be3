"""Each run's covariance: scikit-learn's estimator, or the same Ledoit-Wolf in fewer passes.

A run is ~1200 x 264 values, so scikit-learn's ``LedoitWolf().fit`` is mostly not its
arithmetic: input validation (three finiteness checks), fresh arrays for the centred data
and its squares (each a new 2.5 MB allocation, hence page faults), and the product
``X.T @ X`` computed twice besides ``X2.T @ X2``. Measured: ~8 ms per run, of which the
products are ~1 ms. Two worker processes on two cores also share the memory bandwidth
those passes use. For the default estimator, :class:`RunCovariance` therefore computes
Ledoit and Wolf's (2004) shrinkage itself, in one reused float64 buffer per task:

- ``S = Xc.T @ Xc / T`` (one product), ``mu = trace(S) / p``;
- ``delta_ = sum(S**2)``; ``beta_ = sum_t (sum_i Xc[t, i]**2)**2`` (the sum of the entries
  of ``X2.T @ X2``, without the product);
- ``beta = (beta_ / T - delta_) / (p T)``, ``delta = (delta_ - 2 mu trace(S) + p mu**2) / p``,
  shrinkage ``min(beta, delta) / delta`` (0 if ``beta`` is 0), covariance
  ``(1 - shrinkage) S + shrinkage mu I``.

These are scikit-learn's formulas (``ledoit_wolf_shrinkage``); the differential tests hold
the results to nilearn 0.12.1's within rtol 1e-6. Every other estimator (or
``assume_centered=True``, one seed, one volume) goes through scikit-learn, cloned per run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lazyspheres._types import FloatArray
from lazyspheres.cleaning.standardize import zscore_rows

if TYPE_CHECKING:
    from lazyspheres.connectivity.connectome import CovarianceEstimator

__all__ = ["RunCovariance"]


class RunCovariance:
    """Covariances of the runs of one task (not thread-safe: one per task).

    Parameters
    ----------
    estimator : scikit-learn covariance estimator
        Cloned and fitted per run, unless it is a plain ``LedoitWolf`` (computed here).
    """

    def __init__(self, estimator: CovarianceEstimator) -> None:
        self.estimator = estimator
        self.direct = _plain_ledoit_wolf(estimator)
        self._buffer = np.empty(0)

    def __call__(self, values: np.ndarray, *, standardize: bool) -> FloatArray:
        """Covariance ``(p, p)`` of a run's ``(T, p)`` finite signals.

        ``standardize``: z-score each seed first (population std, a std below float64's
        epsilon counts as 1; skipped for a single volume), as nilearn's correlation does.
        """
        n_time, n_seeds = values.shape
        if not self.direct or n_time < 2 or n_seeds < 2 or values.dtype.char not in "fd":
            return self._scikit_learn(values, standardize=standardize)
        data = self._workspace(n_time, n_seeds, values.dtype)
        np.copyto(data, values)
        if standardize:
            _zscore_columns(data)
        data -= data.mean(axis=0)
        return _ledoit_wolf_centred(data)

    def _scikit_learn(self, values: np.ndarray, *, standardize: bool) -> FloatArray:
        from sklearn.base import clone

        if standardize and values.shape[0] > 1:
            values = zscore_rows(np.ascontiguousarray(values.T), ddof=0).T
        return np.asarray(clone(self.estimator).fit(values).covariance_)

    def _workspace(self, n_time: int, n_seeds: int, dtype: np.dtype) -> FloatArray:
        """A C-contiguous ``(n_time, n_seeds)`` view of a buffer kept across runs."""
        if self._buffer.size < n_time * n_seeds or self._buffer.dtype != dtype:
            self._buffer = np.empty(n_time * n_seeds, dtype=dtype)
        return self._buffer[: n_time * n_seeds].reshape(n_time, n_seeds)


def _plain_ledoit_wolf(estimator: CovarianceEstimator) -> bool:
    from sklearn.covariance import LedoitWolf

    # exactly LedoitWolf: a subclass may change fit; block_size and store_precision do not
    # change covariance_
    return type(estimator) is LedoitWolf and not getattr(estimator, "assume_centered", True)


def _zscore_columns(data: FloatArray) -> None:
    """Z-score each column in place, as ``zscore_rows(data.T, ddof=0)``."""
    n_time = data.shape[0]
    data -= data.mean(axis=0)
    # numpy's std re-centres: sum((x - m)**2) = sum(x**2) - T m**2 for the residual mean m
    residual = data.mean(axis=0)
    variance = (np.einsum("ti,ti->i", data, data) - n_time * residual**2) / n_time
    std = np.sqrt(np.maximum(variance, 0.0))
    std[std < np.finfo(np.float64).eps] = 1
    data /= std


def _ledoit_wolf_centred(data: FloatArray) -> FloatArray:
    """Ledoit-Wolf covariance of column-centred ``(T, p)`` data (formulas: module doc)."""
    n_time, n_seeds = data.shape
    empirical = data.T @ data / n_time
    trace = float(np.trace(empirical))
    mu = trace / n_seeds
    delta_ = float(np.sum(empirical**2))
    row_norms = np.einsum("ti,ti->t", data, data)
    beta_ = float(row_norms @ row_norms)
    beta = (beta_ / n_time - delta_) / (n_seeds * n_time)
    delta = (delta_ - 2.0 * mu * trace + n_seeds * mu**2) / n_seeds
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    shrunk = (1.0 - shrinkage) * empirical
    shrunk.flat[:: n_seeds + 1] += shrinkage * mu
    return shrunk
