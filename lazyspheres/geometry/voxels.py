"""The result of the sphere geometry: which voxels each sphere holds, as CSR arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse

__all__ = ["SphereVoxels"]


@dataclass(frozen=True, eq=False)
class SphereVoxels:
    """Seed × voxel membership of spheres on one image grid (immutable).

    Instances are made by :func:`~lazyspheres.geometry.sphere_voxels`; all arrays are
    read-only.

    Attributes
    ----------
    seeds : numpy.ndarray
        ``(n_seeds, 3)`` float64 world (mm) coordinates of the seeds, as given.
    shape : tuple of int
        The 3D grid the voxel indices refer to.
    affine : numpy.ndarray
        ``(4, 4)`` float64 voxel-to-world affine of that grid.
    voxels : numpy.ndarray
        ``(n_union, 3)`` int64 voxel indices of the union of all spheres, unique and sorted in
        C order (first index slowest).
    indptr : numpy.ndarray
        ``(n_seeds + 1,)`` int64 CSR row pointer into :attr:`indices`.
    indices : numpy.ndarray
        ``(nnz,)`` int64 rows of :attr:`voxels`; ascending within each seed, so every sphere
        lists its voxels in C order (the order nilearn averages them in).
    radius : float or None
        The radius used (mm).
    """

    seeds: np.ndarray
    shape: tuple[int, int, int]
    affine: np.ndarray
    voxels: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    radius: float | None

    @property
    def n_seeds(self) -> int:
        """Number of seeds (spheres)."""
        return int(self.indptr.shape[0] - 1)

    @property
    def n_voxels(self) -> np.ndarray:
        """Number of voxels of each sphere, ``(n_seeds,)`` int64."""
        return np.diff(self.indptr)

    def flat_indices(self, order: Literal["C", "F"] = "C") -> np.ndarray:
        """Flat indices of :attr:`voxels` into an array of :attr:`shape`.

        Parameters
        ----------
        order : {"C", "F"}, default="C"
            Memory order of the array the indices are for (NIfTI data on disk is "F").

        Returns
        -------
        numpy.ndarray
            ``(n_union,)`` int64.
        """
        if self.voxels.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        return np.ravel_multi_index(tuple(self.voxels.T), self.shape, order=order).astype(
            np.int64, copy=False
        )

    def membership(self) -> scipy.sparse.csr_array:
        """Sparse ``(n_seeds, n_union)`` float64 matrix of ones (seed i contains voxel j).

        Row entries are in ascending column order. ``membership() @ values`` sums each
        sphere's voxel values; divide by :attr:`n_voxels` for the means.
        """
        data = np.ones(self.indices.shape[0], dtype=np.float64)
        return scipy.sparse.csr_array(
            (data, self.indices.copy(), self.indptr.copy()),
            shape=(self.n_seeds, self.voxels.shape[0]),
        )

    def sphere(self, i: int) -> np.ndarray:
        """Voxel indices of sphere ``i``, ``(n_i, 3)`` int64 in C order."""
        i = range(self.n_seeds)[i]  # bounds check and negative indices
        return self.voxels[self.indices[self.indptr[i] : self.indptr[i + 1]]]

    def to_mask(self) -> np.ndarray:
        """Boolean array of :attr:`shape`, True on the union of all spheres."""
        mask = np.zeros(self.shape, dtype=bool)
        mask[tuple(self.voxels.T)] = True
        return mask

    def __repr__(self) -> str:
        radius = "None" if self.radius is None else f"{self.radius:g}"
        sizes = self.n_voxels
        return (
            f"<SphereVoxels: {self.n_seeds} seeds, radius={radius} mm, grid {self.shape}, "
            f"{self.voxels.shape[0]} voxels in the union, "
            f"{int(sizes.min())}-{int(sizes.max())} per sphere>"
        )
