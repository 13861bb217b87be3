"""Sphere geometry: which voxels belong to the sphere around each seed.

The rules are nilearn 0.12.1's (``NiftiSpheresMasker``), reproduced bit for bit. A voxel is a
*candidate* if it lies in the image grid and, when a mask is given, the mask is nonzero there.
For each seed ``s`` (world coordinates, mm) the sphere is the union of

(a) every candidate whose world position ``w`` satisfies ``(dx*dx + dy*dy) + dz*dz <= r*r``
    in float64 (``d = w - s``); ``radius=None`` adds nothing, ``radius=0`` only exact hits;
(b) the *nearest voxel* ``round(inv(affine) @ [s, 1])`` (half to even), if it is a candidate;
(c) the *truncation voxel*: the first candidate in C order whose world coordinates, truncated
    toward zero, equal the seed's truncated coordinates.

A seed with an empty sphere raises :class:`~lazyspheres.errors.EmptySphereError`; then, unless
``allow_overlap``, a voxel in two spheres raises :class:`~lazyspheres.errors.OverlapError`.

Unlike nilearn, which builds world coordinates for every voxel of the grid and searches Python
lists, the work here is bounded per seed: radius neighbours can only lie in the voxel box that
``inv(affine)`` maps the cube ``[s - r, s + r]`` to, and the truncation voxel in the box of the
world cell of ``trunc(s)``. All boxes are enumerated together with vectorised index arithmetic.
Results are cached (small LRU) and immutable.

Modules: this one validates and caches; :mod:`~lazyspheres.geometry.rules` computes the
rules; :mod:`~lazyspheres.geometry.voxels` holds the result type;
:mod:`~lazyspheres.geometry.messages` words the errors.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lazyspheres._lru import LRU
from lazyspheres.errors import ImageFormatError
from lazyspheres.geometry.rules import compute
from lazyspheres.geometry.voxels import SphereVoxels
from lazyspheres.seeds import as_seed_array

if TYPE_CHECKING:
    from lazyspheres._types import UserInput

__all__ = ["SphereVoxels", "clear_cache", "sphere_voxels"]

_CACHE_SIZE = 32


# --------------------------------------------------------------------------------------
# public entry point


def sphere_voxels(
    seeds: UserInput,
    affine: npt.ArrayLike,
    shape: Sequence[int] | np.ndarray,
    radius: float | None = None,
    mask: np.ndarray | None = None,
    allow_overlap: bool = False,
) -> SphereVoxels:
    """Voxels of the sphere around each seed, exactly as nilearn 0.12.1 selects them.

    Parameters
    ----------
    seeds : array-like of shape (n, 3), iterable of triplets, or pandas.DataFrame
        World (mm) coordinates, in the space of ``affine`` (see
        :func:`lazyspheres.seeds.as_seed_array`). Seeds may lie outside the image.
    affine : array-like of shape (4, 4)
        Voxel-to-world affine of the image grid.
    shape : sequence of 3 int
        Spatial shape of the image grid.
    radius : float or None, default=None
        Sphere radius in mm, ``>= 0`` (``numpy.inf`` allowed). ``None`` (or 0) selects only
        the nearest voxel and the truncation voxel (see the module docstring).
    mask : numpy.ndarray or None, default=None
        Array of ``shape`` on the same grid; nonzero voxels are the candidates. Resample
        masks from other grids first (:func:`lazyspheres.masks.resample_mask_to_grid`).
    allow_overlap : bool, default=False
        If False, spheres sharing a voxel raise :class:`~lazyspheres.errors.OverlapError`.

    Returns
    -------
    SphereVoxels
        Immutable; an identical call returns the same (cached) object.

    Raises
    ------
    SeedError
        Invalid seeds (wrong shape, non-numeric or non-finite values).
    ValueError
        Invalid ``affine``, ``shape``, ``mask`` or ``radius`` (the radius message keeps
        nilearn's phrase "must be a float in the range [0.0, inf] or None").
    EmptySphereError
        Some spheres contain no candidate voxel. The message starts with nilearn's
        "These spheres are empty: [i j ...]" and then describes each empty seed.
    OverlapError
        ``allow_overlap=False`` and spheres share voxels ("Overlap detected between
        spheres", with the seed pairs). Emptiness is checked first.

    Examples
    --------
    >>> import numpy as np
    >>> spheres = sphere_voxels([(0.0, 0.0, 0.0)], np.eye(4), (5, 5, 5), radius=1.0)
    >>> spheres.sphere(0).tolist()
    [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    """
    coords = as_seed_array(seeds)
    grid_affine = _check_affine(affine)
    grid = _check_shape(shape)
    radius = _check_radius(radius)
    mask_raw, candidates = _check_mask(mask, grid)
    allow_overlap = bool(allow_overlap)

    key = _cache_key(coords, grid_affine, grid, radius, candidates, allow_overlap)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    result = compute(coords, grid_affine, grid, radius, mask_raw, candidates, allow_overlap)
    _CACHE.put(key, result)
    return result


def clear_cache() -> None:
    """Empty the cache of :func:`sphere_voxels` results."""
    _CACHE.clear()


# --------------------------------------------------------------------------------------
# validation


def _check_affine(affine: npt.ArrayLike) -> np.ndarray:
    try:
        arr = np.array(affine, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"affine must be a 4x4 array of numbers; got {affine!r}.") from exc
    if arr.shape != (4, 4) or not np.isfinite(arr).all():
        raise ImageFormatError(
            f"affine must be a finite 4x4 array (voxel -> world mm); got shape {arr.shape}"
            f"{'' if np.isfinite(arr).all() else ' with non-finite values'}:\n{arr}"
        )
    if abs(np.linalg.det(arr[:3, :3])) == 0.0:
        raise ImageFormatError(f"affine is singular (no voxel <-> world inverse):\n{arr}")
    return arr


def _check_shape(shape: object) -> tuple[int, int, int]:
    values = tuple(shape) if isinstance(shape, tuple | list | np.ndarray) else None
    if (
        values is None
        or len(values) != 3
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values)
        or min(values) < 1
    ):
        raise ValueError(
            f"shape must be three positive integers (the spatial grid); got {shape!r}. "
            "For a 4D image pass shape[:3]."
        )
    return (int(values[0]), int(values[1]), int(values[2]))


def _check_radius(radius: object) -> float | None:
    if radius is None:
        return None
    value = float(radius) if isinstance(radius, numbers.Real) else np.nan
    if not np.isnan(value) and value >= 0:
        return value
    # nilearn surfaces scikit-learn's parameter check here; keep its key phrase.
    raise ValueError(
        "The 'radius' parameter must be a float in the range [0.0, inf] or None. "
        f"Got {radius!r} instead."
    )


def _check_mask(
    mask: npt.ArrayLike | None, shape: tuple[int, int, int]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if mask is None:
        return None, None
    raw = np.asarray(mask)
    if raw.shape != shape:
        raise ValueError(
            f"mask has shape {raw.shape} but the image grid is {shape}: the mask must be on "
            "the image grid. Resample it first (lazyspheres.masks.resample_mask_to_grid)."
        )
    return raw, raw != 0


def _cache_key(
    coords: np.ndarray,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    radius: float | None,
    candidates: np.ndarray | None,
    allow_overlap: bool,
) -> bytes:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(repr((coords.shape, shape, radius, allow_overlap)).encode())
    digest.update(coords.tobytes())
    digest.update(affine.tobytes())
    if candidates is None:
        digest.update(b"no mask")
    else:
        digest.update(np.packbits(candidates, axis=None).tobytes())
    return digest.digest()


_CACHE: LRU[bytes, SphereVoxels] = LRU(_CACHE_SIZE)
