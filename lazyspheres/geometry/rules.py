"""nilearn 0.12.1's three sphere rules, computed per seed over small voxel boxes.

See :mod:`lazyspheres.geometry` for the rules. Every function here works on plain numpy
arrays already validated by :func:`lazyspheres.geometry.sphere_voxels`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from lazyspheres.errors import EmptySphereError, OverlapError
from lazyspheres.geometry.messages import empty_message, overlap_message
from lazyspheres.geometry.voxels import SphereVoxels

# (seed ids, flat voxel indices) of sphere members found by one rule
Pairs = tuple[np.ndarray, np.ndarray]

__all__ = ["compute"]

# Box voxels processed per vectorised batch (bounds temporary memory to ~100 MB).
_BATCH_VOXELS = 1 << 20
# 8 corners of the unit cube, as signs / as 0-1 selectors.
_SIGNS = np.array(list(itertools.product((-1.0, 1.0), repeat=3)))
_SELECT = (_SIGNS > 0).astype(np.float64)


def _world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """World coordinates ``(3, n)`` of voxel indices ``(3, n)``, rounded as nilearn's are.

    nilearn maps candidates with one ``np.dot(affine, [i, j, k, 1])`` (a BLAS matrix product
    whose FMA/summation order differs from a hand-written ``A @ v + t``). Radius ties and the
    truncation rule depend on the last bit, so we make the same call. With two or more
    columns each element came out the same whatever the number of columns (checked with
    OpenBLAS; the differential tests against nilearn guard it), but a single column takes
    the matrix-vector path, which rounds differently, so we pad to two.
    """
    n = ijk.shape[1]
    homogeneous = np.ones((4, max(n, 2)), dtype=np.float64)
    homogeneous[:3, :n] = ijk
    if n < 2:
        homogeneous[:3, n:] = 0.0
    return np.dot(affine, homogeneous)[:3, :n]


def _nearest_voxels(coords: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Rule (b): ``round(inv(affine) @ [s, 1])`` per seed, as float64 ``(n, 3)``.

    One matrix-vector product per seed, like nilearn, so half-voxel ties round identically;
    ``np.round`` rounds half to even.
    """
    out = np.empty((coords.shape[0], 4, 1), dtype=np.float64)
    column = np.ones((4, 1), dtype=np.float64)
    for i in range(coords.shape[0]):
        column[:3, 0] = coords[i]
        np.dot(inverse, column, out=out[i])
    return np.round(out[:, :3, 0])


def _voxel_boxes(
    low: np.ndarray, high: np.ndarray, inverse: np.ndarray, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-index boxes ``[lo, hi]`` (inclusive) covering world boxes ``[low, high]``.

    The 8 corners of each world box are mapped to voxel space; the box of their images
    contains every voxel inside the world box. It is widened by a margin far above the
    rounding error of the mapping (not by a whole voxel: that would double the work for
    typical spheres), and the exact tests run on the voxels inside afterwards.
    """
    corners = low[:, None, :] + _SELECT[None, :, :] * (high - low)[:, None, :]
    with np.errstate(invalid="ignore", over="ignore"):
        mapped = corners @ inverse[:3, :3].T + inverse[:3, 3]
        low_v = mapped.min(axis=1)
        high_v = mapped.max(axis=1)
        margin = 1e-6 + 1e-9 * np.maximum(np.abs(low_v), np.abs(high_v))
        lo = np.floor(low_v - margin)
        hi = np.ceil(high_v + margin)
    top = np.asarray(shape, dtype=np.float64) - 1
    lo = np.where(np.isnan(lo), 0.0, np.clip(lo, 0.0, top + 1))
    hi = np.where(np.isnan(hi), top, np.clip(hi, -1.0, top))
    return lo.astype(np.int64), hi.astype(np.int64)


def _iter_boxes(lo: np.ndarray, hi: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(seed_ids, ijk)`` for batches of boxes; ``ijk`` is ``(3, m)``.

    Each box's voxels come out contiguous and in C order. Boxes of equal extent (most of
    them: same radius, same voxel size) share one template of offsets, so the enumeration
    is a broadcast addition rather than per-voxel index arithmetic.
    """
    extent = np.maximum(hi - lo + 1, 0)
    sizes = extent.prod(axis=1)
    nonempty = np.flatnonzero(sizes)
    if nonempty.size == 0:
        return
    shapes, group = np.unique(extent[nonempty], axis=0, return_inverse=True)
    for g, box_shape in enumerate(shapes):
        members = nonempty[group.ravel() == g]
        template = np.indices(tuple(box_shape), dtype=np.int64).reshape(3, 1, -1)
        per_batch = max(1, _BATCH_VOXELS // template.shape[2])
        for start in range(0, members.size, per_batch):
            batch = members[start : start + per_batch]
            ijk = (lo[batch].T[:, :, None] + template).reshape(3, -1)
            yield np.repeat(batch, template.shape[2]), ijk


def _flat(ijk: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    return (ijk[0] * shape[1] + ijk[1]) * shape[2] + ijk[2]


def _is_candidate(flat: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
    if candidates is None:
        return np.ones(flat.shape[0], dtype=bool)
    return candidates.ravel()[flat]


def _radius_pairs(
    coords: np.ndarray,
    affine: np.ndarray,
    inverse: np.ndarray,
    shape: tuple[int, int, int],
    radius: float | None,
    candidates: np.ndarray | None,
) -> list[Pairs]:
    """Rule (a): ``(seed, flat voxel)`` pairs of radius neighbours."""
    if radius is None:
        return []
    n_total = int(np.prod(shape))
    if np.isinf(radius):
        flat = (
            np.arange(n_total, dtype=np.int64)
            if candidates is None
            else np.flatnonzero(candidates.ravel()).astype(np.int64)
        )
        return [(np.repeat(np.arange(len(coords)), flat.size), np.tile(flat, len(coords)))]
    r2 = radius * radius  # compared in float64, so r = sqrt(3) excludes distance-sqrt(3)
    lo, hi = _voxel_boxes(coords - radius, coords + radius, inverse, shape)
    pairs: list[Pairs] = []
    for seed_ids, ijk in _iter_boxes(lo, hi):
        world = _world(affine, ijk)
        delta = world - coords[seed_ids].T
        # left-to-right sum of squares, as scikit-learn's KD-tree accumulates it
        dist2 = (delta[0] * delta[0] + delta[1] * delta[1]) + delta[2] * delta[2]
        keep = dist2 <= r2
        flat = _flat(ijk[:, keep], shape)
        ok = _is_candidate(flat, candidates)
        pairs.append((seed_ids[keep][ok], flat[ok]))
    return pairs


def _truncation_cells(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World cell ``[low, high]`` of points whose truncation equals ``trunc(seed)``.

    Per axis, with ``t = trunc(s)``: ``[t, t+1)`` if ``t > 0``, ``(t-1, t]`` if ``t < 0``,
    and ``(-1, 1)`` if ``t == 0`` (truncation toward zero folds both sides onto 0).
    """
    t = np.trunc(coords)
    low = np.where(t > 0, t, t - 1)
    high = np.where(t < 0, t, t + 1)
    return t, low, high


def _truncation_pairs(
    coords: np.ndarray,
    affine: np.ndarray,
    inverse: np.ndarray,
    shape: tuple[int, int, int],
    candidates: np.ndarray | None,
) -> list[Pairs]:
    """Rule (c): for each seed, the first candidate (C order) sharing its truncated coords."""
    t, low, high = _truncation_cells(coords)
    lo, hi = _voxel_boxes(low, high, inverse, shape)
    seeds_out, flat_out = [], []
    for seed_ids, ijk in _iter_boxes(lo, hi):
        world = _world(affine, ijk)
        # nilearn compares int-cast coordinates; trunc() equality is the same test
        match = (np.trunc(world) == t[seed_ids].T).all(axis=0)
        hit_flat = _flat(ijk[:, match], shape)
        ok = _is_candidate(hit_flat, candidates)
        hit_seeds, hit_flat = seed_ids[match][ok], hit_flat[ok]
        # boxes are enumerated in C order, so the first hit of a seed is its first candidate
        first_seed, first = np.unique(hit_seeds, return_index=True)
        seeds_out.append(first_seed)
        flat_out.append(hit_flat[first])
    return list(zip(seeds_out, flat_out, strict=True))


def compute(
    coords: np.ndarray,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    radius: float | None,
    mask_raw: np.ndarray | None,
    candidates: np.ndarray | None,
    allow_overlap: bool,
) -> SphereVoxels:
    """The spheres of validated inputs (see :func:`lazyspheres.geometry.sphere_voxels`)."""
    n_seeds = coords.shape[0]
    inverse = np.linalg.inv(affine)
    n_total = int(np.prod(shape))

    pairs = _radius_pairs(coords, affine, inverse, shape, radius, candidates)

    nearest = _nearest_voxels(coords, inverse)
    inside = np.asarray(((nearest >= 0) & (nearest < np.asarray(shape))).all(axis=1))
    near_idx = np.where(inside[:, None], nearest, 0).astype(np.int64).T
    near_flat = _flat(near_idx, shape)
    near_ok = inside & _is_candidate(near_flat, candidates)
    pairs.append((np.flatnonzero(near_ok), near_flat[near_ok]))

    pairs.extend(_truncation_pairs(coords, affine, inverse, shape, candidates))

    seed_ids = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in pairs])
    flat = np.concatenate([np.asarray(p[1], dtype=np.int64) for p in pairs])
    keys = np.sort(seed_ids * n_total + flat)  # by seed, then C order
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if keys.size else keys
    row = keys // n_total
    flat = keys % n_total
    indptr = np.searchsorted(row, np.arange(n_seeds + 1)).astype(np.int64)

    empty = np.flatnonzero(np.diff(indptr) == 0)
    if empty.size:
        raise EmptySphereError(
            empty_message(empty, coords, nearest, inside, shape, radius, mask_raw)
        )

    union, indices = np.unique(flat, return_inverse=True)
    indices = indices.astype(np.int64).ravel()
    if not allow_overlap:
        counts = np.bincount(indices, minlength=union.size)
        if (counts >= 2).any():
            raise OverlapError(overlap_message(indices, indptr, counts, coords, union.size))

    voxels = np.stack(np.unravel_index(union, shape), axis=1).astype(np.int64)
    arrays = [coords.copy(), affine.copy(), voxels, indptr, indices.copy()]
    for array in arrays:
        array.setflags(write=False)
    return SphereVoxels(
        seeds=arrays[0],
        shape=shape,
        affine=arrays[1],
        voxels=arrays[2],
        indptr=arrays[3],
        indices=arrays[4],
        radius=radius,
    )
