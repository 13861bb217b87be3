"""High-variance confounds, as streaming computations: pure NumPy/SciPy, no I/O.

nilearn (``image.high_variance_confounds`` → ``signal.high_variance_confounds``) takes every
voxel's series ``x`` (all voxels, raw image, no mask), detrends it (removes its mean and its
least-squares linear trend), keeps the voxels whose mean of squares exceeds the
``100 - percentile`` percentile (``np.nanpercentile``, linear interpolation; NaN voxels never
qualify), and returns the eigenvectors of ``S Sᵀ / T`` (``S``: the kept detrended series,
``T × n``) for the ``n_confounds`` largest eigenvalues.

Here the same numbers come from two streaming passes over volumes, in float64:

1. :class:`VoxelMoments` accumulates, per voxel, ``Σy``, ``Σy²`` and ``Σ(t - t̄)y`` of
   ``y = x - x₀`` (``x₀``: the voxel's first value, which removes the offset before squaring
   so that nothing cancels catastrophically). The detrended mean of squares is then
   ``(Σy² - (Σy)²/T - (Σ(t - t̄)y)²/Σ(t - t̄)²) / T``.
2. :class:`SelectedSeries` knows each kept voxel's offset, mean and slope, so it detrends
   any block of their values exactly; ``S Sᵀ`` is accumulated from such blocks
   (:func:`gram_of_blocks`), never holding ``S`` whole unless it is small.

nilearn computes in the image's float dtype (float32 for float32 and ≤ 4-byte integer
images). We compute in float64 and return nilearn's dtype; see the module docs of
:mod:`lazyspheres.high_variance` for what that changes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

__all__ = [
    "SelectedSeries",
    "VoxelMoments",
    "check_hv_params",
    "confounds_dtype",
    "confounds_from_gram",
    "gram_of_blocks",
    "gram_of_chunks",
    "percentile_threshold",
    "select_voxels",
]

DETREND_SINGLE = (
    "Detrending of 3D signal has been requested but would lead to zero values. Skipping."
)
# Bytes of float64 temporaries per vectorised step of the moment update, whatever the image
# size and the number of volumes given at once.
_STEP_BYTES = 16 * 2**20


def check_hv_params(n_confounds: object, percentile: object, detrend: object) -> None:
    """Validate parameters with nilearn's exception types (and its key phrase for detrend).

    Raises
    ------
    TypeError
        ``detrend`` not a bool ("'detrend' should be of type '<class 'bool'>'"), or
        ``n_confounds`` not an integer, or ``percentile`` not a number.
    ValueError
        ``n_confounds < 1`` or ``percentile`` outside [0, 100] ("Percentiles must be in
        the range [0, 100]", numpy's words).
    """
    if not isinstance(detrend, bool):
        raise TypeError(f"'detrend' should be of type '{bool}'.\nGot: '{type(detrend)}'")
    if isinstance(n_confounds, bool) or not isinstance(n_confounds, (int, np.integer)):
        raise TypeError(f"'n_confounds' must be an integer; got {n_confounds!r}.")
    if n_confounds < 1:
        raise ValueError(f"'n_confounds' must be at least 1; got {n_confounds}.")
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.number)):
        raise TypeError(f"'percentile' must be a number; got {percentile!r}.")
    if not 0 <= percentile <= 100:
        raise ValueError(f"Percentiles must be in the range [0, 100]; got {percentile}.")


def confounds_dtype(image_dtype: np.dtype) -> np.dtype:
    """The float dtype nilearn works in for an image dtype (sklearn's ``as_float_array``)."""
    image_dtype = np.dtype(image_dtype)
    if image_dtype in (np.float32, np.float64):
        return image_dtype
    if image_dtype.kind in "uib" and image_dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def effective_detrend(detrend: bool, n_volumes: int) -> bool:
    """Whether series are detrended: nilearn skips it, with a warning, for a single volume."""
    if detrend and n_volumes == 1:
        warnings.warn(DETREND_SINGLE, UserWarning, stacklevel=3)
        return False
    return detrend


def _centred_times(t0: int, count: int, n_volumes: int) -> np.ndarray:
    return np.arange(t0, t0 + count, dtype=np.float64) - (n_volumes - 1) / 2.0


@dataclass
class VoxelMoments:
    """Per-voxel running sums of one run, in float64.

    Attributes
    ----------
    n_volumes : int
        Number of volumes of the whole run (``T``).
    detrend : bool
        Whether the mean of squares is of detrended series.
    offset : numpy.ndarray
        ``(V,)`` value subtracted before summing (the first volume; zeros without detrend).
    sum, sum_sq, sum_t : numpy.ndarray
        ``(V,)`` sums of ``y``, ``y²`` and ``(t - t̄)·y`` over the volumes seen so far.
    """

    n_volumes: int
    detrend: bool
    offset: np.ndarray
    sum: np.ndarray = field(repr=False)
    sum_sq: np.ndarray = field(repr=False)
    sum_t: np.ndarray = field(repr=False)

    @classmethod
    def start(cls, offset: np.ndarray, n_volumes: int, detrend: bool) -> VoxelMoments:
        """Empty sums for voxels whose first values (with detrend) are ``offset``."""
        offset = np.asarray(offset, dtype=np.float64)
        if not detrend:
            offset = np.zeros_like(offset)
        zeros = np.zeros_like(offset)
        return cls(n_volumes, detrend, offset, zeros, zeros.copy(), zeros.copy())

    def update(
        self,
        t0: int,
        values: np.ndarray,
        scale: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """Add volumes ``t0 .. t0 + b - 1`` given as ``(b, V)`` values (any real dtype).

        ``scale`` turns stored values into image values (NIfTI scaling); it is applied a
        slice at a time, like the float64 conversion, so temporaries stay small.
        """
        count = values.shape[0]
        times = np.stack(
            [np.ones(count), _centred_times(t0, count, self.n_volumes)]
        )  # (2, b): Σy and Σ(t - t̄)y in one matrix product
        step = max(1024, _STEP_BYTES // (8 * max(1, count)))
        for lo in range(0, values.shape[1], step):
            hi = min(values.shape[1], lo + step)
            part = values[:, lo:hi] if scale is None else scale(values[:, lo:hi])
            y = np.subtract(part, self.offset[lo:hi], dtype=np.float64)  # one pass, float64
            sums = times @ y
            self.sum[lo:hi] += sums[0]
            self.sum_t[lo:hi] += sums[1]
            self.sum_sq[lo:hi] += np.einsum("tv,tv->v", y, y)

    def __add__(self, other: VoxelMoments) -> VoxelMoments:
        """Sums over two disjoint sets of volumes of the same voxels (same offset)."""
        return VoxelMoments(
            self.n_volumes,
            self.detrend,
            self.offset,
            self.sum + other.sum,
            self.sum_sq + other.sum_sq,
            self.sum_t + other.sum_t,
        )

    def mean_square(self) -> np.ndarray:
        """``(V,)`` mean of squares of each (detrended) series.

        NaN where any value was not finite: nilearn's NaN propagates the same way and such
        voxels never pass the threshold.
        """
        n = float(self.n_volumes)
        with np.errstate(invalid="ignore", over="ignore"):
            residual = self.sum_sq.copy()
            if self.detrend:
                residual -= self.sum**2 / n
                residual -= self.sum_t**2 / _sum_sq_times(self.n_volumes)
            out = np.maximum(residual, 0.0) / n  # rounding can dip below 0 for flat series
            out[~np.isfinite(residual)] = np.nan
        return out

    def selected(self, mask: np.ndarray) -> SelectedSeries:
        """The detrending coefficients of the voxels where ``mask`` (flat, ``(V,)``) is True."""
        n = float(self.n_volumes)
        if self.detrend:
            mean = self.sum[mask] / n
            slope = self.sum_t[mask] / _sum_sq_times(self.n_volumes)
        else:
            mean = slope = np.zeros(int(np.count_nonzero(mask)))
        return SelectedSeries(self.n_volumes, self.offset[mask] + mean, slope)


def _sum_sq_times(n_volumes: int) -> float:
    return float(np.sum(_centred_times(0, n_volumes, n_volumes) ** 2))


@dataclass(frozen=True)
class SelectedSeries:
    """What detrends the kept voxels: ``s = x - level - slope · (t - t̄)``."""

    n_volumes: int
    level: np.ndarray
    slope: np.ndarray

    @property
    def n_voxels(self) -> int:
        """Number of kept voxels."""
        return int(self.level.size)

    def detrended(self, t0: int, values: np.ndarray, columns: slice = slice(None)) -> np.ndarray:
        """``(b, n)`` float64 detrended series from ``(b, n)`` values of volumes from ``t0``.

        ``columns`` selects which kept voxels ``values`` holds (all by default).
        """
        out = values.astype(np.float64)
        out -= self.level[columns]
        times = _centred_times(t0, values.shape[0], self.n_volumes)
        out -= times[:, None] * self.slope[columns]
        return out


def percentile_threshold(mean_square: np.ndarray, percentile: float) -> float:
    """The threshold ``np.nanpercentile(mean_square, 100 - percentile)`` (linear), as nilearn.

    NaN voxels are ignored; NaN when every voxel is NaN (then nothing is kept).
    """
    values = np.asarray(mean_square).reshape(-1)
    if np.isnan(values).all():
        return float("nan")
    return float(np.nanpercentile(values, 100.0 - percentile))


def select_voxels(mean_square: np.ndarray, percentile: float) -> np.ndarray:
    """Boolean mask of the voxels strictly above :func:`percentile_threshold`."""
    return mean_square > percentile_threshold(mean_square, percentile)


def gram_of_blocks(n_blocks: int, load: Callable[[int], np.ndarray], n_volumes: int) -> np.ndarray:
    """``S Sᵀ`` (``T × T`` float64) from row blocks of ``S`` that can be (re)loaded.

    ``load(a)`` returns the detrended ``(b_a, n)`` rows of time block ``a`` (blocks in time
    order, covering all ``T`` rows). Block pairs are multiplied one at a time, so memory is
    two blocks plus the result; each block is loaded ``a + 1`` times when there are several.
    """
    gram = np.empty((n_volumes, n_volumes))
    bounds = []
    start = 0
    for a in range(n_blocks):
        rows = load(a)
        stop = start + rows.shape[0]
        bounds.append((start, stop))
        gram[start:stop, start:stop] = rows @ rows.T
        for b in range(a):
            other = load(b)
            b0, b1 = bounds[b]
            product = rows @ other.T
            gram[start:stop, b0:b1] = product
            gram[b0:b1, start:stop] = product.T
        start = stop
    if start != n_volumes:
        raise AssertionError(f"blocks cover {start} volumes, expected {n_volumes}")
    return gram


def gram_of_chunks(chunks: Iterable[np.ndarray], n_volumes: int) -> np.ndarray:
    """``S Sᵀ`` summed over column chunks ``(T, n_c)`` of ``S``."""
    gram = np.zeros((n_volumes, n_volumes))
    for chunk in chunks:
        gram += chunk @ chunk.T
    return gram


def confounds_from_gram(gram: np.ndarray, n_confounds: int, dtype: np.dtype) -> np.ndarray:
    """The ``n_confounds`` eigenvectors of ``gram / T`` with the largest eigenvalues.

    As nilearn: ``scipy.linalg.eigh``, then columns in decreasing eigenvalue order (the
    reversed ``argsort``), at most ``T`` of them, cast to nilearn's working ``dtype``.
    """
    n_volumes = gram.shape[0]
    # nilearn decomposes S Sᵀ / T as computed (eigh reads its lower triangle)
    values, vectors = scipy.linalg.eigh(gram / n_volumes, overwrite_a=True)
    order = np.argsort(values)[::-1]
    return np.ascontiguousarray(vectors[:, order[:n_confounds]]).astype(dtype, copy=False)
