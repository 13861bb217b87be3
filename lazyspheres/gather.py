"""Sphere means from gathered voxel values: pure numpy, no I/O, no Dask.

A :class:`GatherPlan` lists the union of all spheres' voxels once and a sparse seed × voxel
membership matrix. Readers gather the union's values (``(b, n_union)`` for ``b`` volumes)
however their storage allows; :func:`sphere_means` turns them into ``(b, n_seeds)`` means.

Exactness: nilearn's sphere signal is ``np.mean`` over the sphere's voxels taken in
ascending C order, which numpy evaluates as a sequential sum in that order divided by the
count. The CSR product below adds each sphere's voxels in exactly that order (scipy's
``csr_matvecs`` loops over a row's entries in storage order, and entries are sorted), in
float64, then divides by the count. Float64 images therefore give nilearn's numbers bit for
bit; integer images give the exact mean (nilearn truncates it to the integer dtype); float32
images are accumulated in float64 (nilearn accumulates in float32), which only changes the
last float32 bits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from lazyspheres.geometry import SphereVoxels

__all__ = ["GatherPlan", "sphere_means"]


@dataclass(frozen=True, eq=False)
class GatherPlan:
    """What to read and how to average it.

    Attributes
    ----------
    shape : tuple of int
        The spatial grid ``(X, Y, Z)`` the voxels index into.
    voxels : numpy.ndarray
        ``(n_union, 3)`` voxel indices, unique, in C order.
    membership : scipy.sparse.csr_array
        ``(n_seeds, n_union)`` ones; row entries sorted by column.
    n_voxels : numpy.ndarray
        ``(n_seeds,)`` voxels per sphere.
    """

    shape: tuple[int, int, int]
    voxels: np.ndarray
    membership: sp.csr_array
    n_voxels: np.ndarray

    @classmethod
    def from_spheres(cls, spheres: SphereVoxels) -> GatherPlan:
        """Build the plan of a :class:`lazyspheres.geometry.SphereVoxels`."""
        membership = spheres.membership()
        membership.sort_indices()
        return cls(
            shape=(int(spheres.shape[0]), int(spheres.shape[1]), int(spheres.shape[2])),
            voxels=np.asarray(spheres.voxels, dtype=np.int64),
            membership=membership,
            n_voxels=np.asarray(spheres.n_voxels, dtype=np.int64),
        )

    @property
    def n_seeds(self) -> int:
        """Number of spheres."""
        return int(self.membership.shape[0])

    @property
    def n_union(self) -> int:
        """Number of distinct voxels to read."""
        return int(self.voxels.shape[0])

    def flat_indices(self, order: Literal["C", "F"] = "F") -> np.ndarray:
        """Flat voxel indices within one volume (``"F"``: NIfTI's on-disk order)."""
        return np.ravel_multi_index(tuple(self.voxels.T), self.shape, order=order)


def sphere_means(
    values: np.ndarray,
    plan: GatherPlan,
    *,
    scale: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, int]:
    """Average gathered voxel values into sphere signals.

    Parameters
    ----------
    values : numpy.ndarray
        ``(b, n_union)`` values of the plan's voxels for ``b`` volumes (or ``(n_union,)``).
    plan : GatherPlan
        The plan the values were gathered for.
    scale : callable, optional
        Turns raw stored values into image values (NIfTI ``scl_slope``/``scl_inter``).

    Returns
    -------
    means : numpy.ndarray
        ``(b, n_seeds)`` (or ``(n_seeds,)``) float64 sphere means.
    n_nonfinite : int
        How many gathered values were NaN/inf; they are counted as zeros in the means, as
        nilearn does once it finds non-finite values.
    """
    one_volume = values.ndim == 1
    block = values[None, :] if one_volume else values
    block = scale(block) if scale is not None else block
    # Voxel-major, C-contiguous float64: what csr @ dense needs to add row by row.
    voxel_major = np.array(block.T, dtype=np.float64, order="C")
    finite = np.isfinite(voxel_major)
    n_nonfinite = int(voxel_major.size - np.count_nonzero(finite))
    if n_nonfinite:
        voxel_major[~finite] = 0.0
    sums = plan.membership @ voxel_major
    means = (sums / plan.n_voxels[:, None]).T
    return (means[0] if one_volume else np.ascontiguousarray(means)), n_nonfinite
