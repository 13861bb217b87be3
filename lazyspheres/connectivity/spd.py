"""Matrix functions on symmetric (positive definite) matrices, with nilearn 0.12.1's maths.

The connectome kinds derive from covariance matrices: correlation (scale by the inverse
standard deviations), precision (inverse), partial correlation (negated correlation of the
precision), and the tangent-space embedding around the group's geometric mean
(:func:`geometric_mean`, the Riemannian gradient descent of Fletcher & Joshi 2007 that
nilearn runs: arithmetic-mean start, at most 30 steps, step halved when the gradient norm
grows, stop when that norm divided by the number of entries is below 1e-7).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import linalg

__all__ = [
    "check_spd",
    "cov_to_corr",
    "eigen_map",
    "geometric_mean",
    "prec_to_partial",
    "tangent_vector",
]


def eigen_map(function: Callable[[np.ndarray], np.ndarray], matrix: np.ndarray) -> np.ndarray:
    """``V f(w) V^T`` for the eigen-decomposition ``w, V`` of a symmetric ``matrix``."""
    values, vectors = linalg.eigh(matrix)
    return _rebuild(function(values), vectors)


def _rebuild(values: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    return (vectors * values) @ vectors.T


def cov_to_corr(covariance: np.ndarray) -> np.ndarray:
    """Correlation matrix of a covariance matrix, with an exact unit diagonal."""
    inv_std = 1.0 / np.sqrt(np.diag(covariance))
    correlation = covariance * inv_std[None, :] * inv_std[:, None]
    np.fill_diagonal(correlation, 1.0)
    return correlation


def prec_to_partial(precision: np.ndarray) -> np.ndarray:
    """Partial correlations from a precision matrix (unit diagonal)."""
    partial = -cov_to_corr(precision)
    np.fill_diagonal(partial, 1.0)
    return partial


def check_spd(matrix: np.ndarray, *, where: str) -> None:
    """Raise a ValueError unless ``matrix`` is symmetric positive definite.

    The test is nilearn's: symmetric to a relative 1e-7 and all eigenvalues positive.
    """
    symmetric = np.allclose(matrix, matrix.T, atol=0, rtol=1e-7)
    if not symmetric or np.min(linalg.eigvalsh(matrix)) <= 0:
        raise ValueError(
            f"Expected a symmetric positive definite matrix: the covariance of {where} is "
            "not. A run with constant or perfectly collinear seed signals (or fewer volumes "
            "than needed) has a singular covariance; drop it, or use a shrinkage estimator "
            "such as the default LedoitWolf."
        )


def geometric_mean(
    matrices: Sequence[np.ndarray], *, max_iter: int = 30, tol: float = 1e-7
) -> np.ndarray:
    """Riemannian geometric mean of symmetric positive definite matrices.

    Parameters
    ----------
    matrices : sequence of ndarray, each ``(n, n)``
        Symmetric positive definite matrices (checked by the caller).
    max_iter : int, default 30
        Maximum number of gradient steps (nilearn's ``ConnectivityMeasure`` uses 30).
    tol : float, default 1e-7
        Stop when the gradient norm divided by ``n * n`` is below this.

    Returns
    -------
    ndarray
        The mean, ``(n, n)``.
    """
    stack = np.asarray(matrices)  # nilearn keeps the estimator's dtype throughout
    mean = stack.mean(axis=0)
    best = np.inf
    step = 1.0
    norm = np.inf
    for _ in range(max_iter):
        values, vectors = linalg.eigh(mean)
        inv_sqrt = _rebuild(np.sqrt(1.0 / values), vectors)
        logs = [eigen_map(np.log, inv_sqrt @ m @ inv_sqrt) for m in stack]
        gradient = np.mean(logs, axis=0)
        if np.any(np.isnan(gradient)):
            raise FloatingPointError("NaN in the matrix logarithm of the geometric mean.")
        norm = float(np.linalg.norm(gradient))
        g_values, g_vectors = linalg.eigh(gradient)
        root = _rebuild(np.sqrt(values), vectors)
        mean = root @ _rebuild(np.exp(g_values * step), g_vectors) @ root
        if norm < best:
            best = norm
        elif norm > best:
            step /= 2.0
            norm = best
        if norm / mean.size < tol:
            break
    else:
        if norm / mean.size >= tol:
            warnings.warn(
                f"The geometric mean did not converge in {max_iter} iterations (gradient "
                f"norm per entry {norm / mean.size:.3g} >= {tol}); using the last estimate.",
                UserWarning,
                stacklevel=2,
            )
    return mean


def tangent_vector(covariance: np.ndarray, whitening: np.ndarray) -> np.ndarray:
    """Tangent-space embedding ``log(W C W)`` of one covariance around the group mean."""
    return eigen_map(np.log, whitening @ covariance @ whitening)
