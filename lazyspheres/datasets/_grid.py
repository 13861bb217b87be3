"""The synthetic brain: the MNI 2 mm grid, a brain-shaped support and tissue compartments.

Everything here is a pure function of the grid (shape + affine), so the same voxels are brain
for every run on that grid, and masks written next to generated runs match them exactly.
"""

from __future__ import annotations

import functools

import nibabel as nib
import numpy as np

__all__ = ["MNI_2MM_AFFINE", "MNI_2MM_SHAPE", "brain_mask", "default_affine", "tissue_labels"]

#: Shape of the MNI152 2 mm grid (FSL's ``MNI152_T1_2mm``).
MNI_2MM_SHAPE: tuple[int, int, int] = (91, 109, 91)
#: Affine of the grid: 2 mm isotropic voxels, voxel (0, 0, 0) at (-90, -126, -72) mm.
MNI_2MM_AFFINE: np.ndarray = np.array(
    [[2.0, 0, 0, -90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]]
)
MNI_2MM_AFFINE.setflags(write=False)

# Tissue codes of :func:`tissue_labels`.
BACKGROUND, GREY_MATTER, WHITE_MATTER, CSF = 0, 1, 2, 3

# Ellipsoids as (centre mm, semi-axes mm). Their union covers the MNI brain generously
# (cerebrum, lateral cortex, temporal and frontal poles, occipital lobe, cerebellum,
# brainstem), so every seed of the named sets (Power, Dosenbach, Seitzman) lies inside the
# support, nearly all at least 6 mm from its edge: their 5 mm spheres hold no background.
_BRAIN = (
    ((0, -16, 14), (74, 100, 72)),
    ((0, -18, 6), (76, 84, 50)),
    ((-46, -14, -22), (30, 46, 26)),
    ((46, -14, -22), (30, 46, 26)),
    ((0, 32, -4), (58, 40, 30)),
    ((0, -78, -2), (56, 32, 32)),
    ((0, -58, -36), (54, 38, 32)),
    ((0, -24, -34), (14, 16, 30)),
)
_WHITE = (((0, -18, 14), (56, 74, 48)),)
_VENTRICLES = (((-11, -10, 14), (7, 24, 11)), ((11, -10, 14), (7, 24, 11)))


def default_affine(shape: tuple[int, ...]) -> np.ndarray:
    """Affine that stretches a grid of any ``shape`` over the MNI 2 mm field of view.

    The first and last voxel centres along each axis coincide with those of the MNI 2 mm grid,
    so a small test grid still holds the whole brain (at a coarser resolution) and every named
    seed set lands inside it. For :data:`MNI_2MM_SHAPE` this is exactly :data:`MNI_2MM_AFFINE`.

    Parameters
    ----------
    shape : tuple of int
        Spatial shape (the first three entries are used), each at least 2.

    Returns
    -------
    numpy.ndarray
        The 4×4 voxel-to-mm affine (diagonal).

    Examples
    --------
    >>> from lazyspheres.datasets import default_affine
    >>> default_affine((91, 109, 91))[:3, 3]
    array([ -90., -126.,  -72.])
    >>> default_affine((46, 55, 46)).diagonal()
    array([4., 4., 4., 1.])
    """
    spatial = np.asarray(shape[:3], dtype=float)
    if spatial.size != 3 or np.any(spatial < 2):
        raise ValueError(f"shape must have three spatial sizes >= 2, got {tuple(shape)}")
    affine = np.eye(4)
    np.fill_diagonal(affine[:3, :3], 2.0 * (np.array(MNI_2MM_SHAPE) - 1) / (spatial - 1))
    affine[:3, 3] = MNI_2MM_AFFINE[:3, 3]
    # NIfTI stores the sform in float32: use the values a reader will get back.
    return affine.astype(np.float32).astype(np.float64)


def as_affine(affine: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``affine`` (or the default for ``shape``) as float32-exact float64, as a file stores it."""
    affine = default_affine(shape) if affine is None else np.asarray(affine, dtype=float)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be a 4x4 array, got shape {affine.shape}")
    return affine.astype(np.float32).astype(np.float64)


def _inside(xyz: np.ndarray, ellipsoids: tuple) -> np.ndarray:
    """Boolean mask of the points ``xyz`` (n, 3) inside the union of ``ellipsoids``."""
    hit = np.zeros(len(xyz), dtype=bool)
    for centre, axes in ellipsoids:
        hit |= (((xyz - centre) / axes) ** 2).sum(axis=1) <= 1.0
    return hit


@functools.lru_cache(maxsize=4)
def _labels_cached(shape: tuple[int, int, int], affine_key: tuple[float, ...]) -> np.ndarray:
    affine = np.array(affine_key).reshape(4, 4)
    labels = np.zeros(shape, dtype=np.uint8, order="F")
    # One slice at a time: voxel-centre coordinates of the whole MNI grid would take 20 MB
    # per float64 temporary, and the generator should stay far below one volume block.
    ij = np.indices(shape[:2], dtype=np.float64).reshape(2, -1, order="F").T
    for k in range(shape[2]):
        ijk = np.column_stack([ij, np.full(len(ij), k, dtype=np.float64)])
        xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
        brain = _inside(xyz, _BRAIN)
        tissue = np.where(brain, GREY_MATTER, BACKGROUND).astype(np.uint8)
        tissue[brain & _inside(xyz, _WHITE)] = WHITE_MATTER
        tissue[brain & _inside(xyz, _VENTRICLES)] = CSF
        labels[:, :, k] = tissue.reshape(shape[:2], order="F")
    # On coarse grids a compartment can fall between voxel centres; keep each one non-empty
    # (the confounds file needs a CSF and a white-matter mean) by labelling the nearest voxel.
    for (centre, _), code in [*((v, CSF) for v in _VENTRICLES), (_WHITE[0], WHITE_MATTER)]:
        ijk = np.rint(np.linalg.solve(affine, [*centre, 1.0])[:3]).astype(int)
        if np.all((ijk >= 0) & (ijk < shape)) and labels[tuple(ijk)]:
            labels[tuple(ijk)] = code
    labels.setflags(write=False)  # cached: callers must not be able to corrupt it
    return labels


def tissue_labels(
    shape: tuple[int, ...] = MNI_2MM_SHAPE, affine: np.ndarray | None = None
) -> np.ndarray:
    """Tissue label of every voxel: 0 background, 1 grey matter, 2 white matter, 3 CSF.

    Parameters
    ----------
    shape : tuple of int, default MNI_2MM_SHAPE
        Spatial shape of the grid.
    affine : numpy.ndarray or None, default None
        4×4 voxel-to-mm affine; None uses :func:`default_affine` for ``shape``.

    Returns
    -------
    numpy.ndarray
        Read-only uint8 array of shape ``shape[:3]``.

    Examples
    --------
    >>> from lazyspheres.datasets import tissue_labels
    >>> labels = tissue_labels((20, 24, 20))
    >>> sorted(set(labels.ravel().tolist()))
    [0, 1, 2, 3]
    """
    spatial = tuple(int(n) for n in shape[:3])
    affine = as_affine(affine, spatial)
    return _labels_cached(spatial, tuple(affine.ravel().tolist()))


def brain_mask(
    shape: tuple[int, ...] = MNI_2MM_SHAPE, affine: np.ndarray | None = None
) -> nib.Nifti1Image:
    """The brain-shaped support of the synthetic runs, as a uint8 NIfTI mask.

    Voxels outside it are 0 (or NaN with ``nan_background=True``) in every generated volume.

    Parameters
    ----------
    shape : tuple of int, default MNI_2MM_SHAPE
        Spatial shape of the grid.
    affine : numpy.ndarray or None, default None
        4×4 voxel-to-mm affine; None uses :func:`default_affine` for ``shape``.

    Returns
    -------
    nibabel.Nifti1Image
        3D uint8 image, 1 inside the brain, with sform/qform code 4 (MNI).

    Examples
    --------
    >>> from lazyspheres.datasets import brain_mask
    >>> mask = brain_mask((20, 24, 20))
    >>> mask.shape, mask.get_data_dtype().name
    ((20, 24, 20), 'uint8')
    >>> 0.2 < float(mask.get_fdata().mean()) < 0.4
    True
    """
    spatial = tuple(int(n) for n in shape[:3])
    affine = as_affine(affine, spatial)
    data = (tissue_labels(spatial, affine) > 0).astype(np.uint8)
    img = nib.Nifti1Image(data, affine)
    img.header.set_sform(affine, code=4)
    img.header.set_qform(affine, code=4)
    img.header.set_xyzt_units("mm")
    return img
