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
"""

from __future__ import annotations

import hashlib
import itertools
import numbers
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse

from lazyspheres.errors import EmptySphereError, OverlapError
from lazyspheres.seeds import as_seed_array

__all__ = ["SphereVoxels", "clear_cache", "sphere_voxels"]

# Box voxels processed per vectorised batch (bounds temporary memory to ~100 MB).
_BATCH_VOXELS = 1 << 20
_CACHE_SIZE = 32
# 8 corners of the unit cube, as signs / as 0-1 selectors.
_SIGNS = np.array(list(itertools.product((-1.0, 1.0), repeat=3)))
_SELECT = (_SIGNS > 0).astype(np.float64)


@dataclass(frozen=True, eq=False)
class SphereVoxels:
    """Seed × voxel membership of spheres on one image grid (immutable).

    Instances are made by :func:`sphere_voxels`; all arrays are read-only.

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


# --------------------------------------------------------------------------------------
# public entry point


def sphere_voxels(
    seeds: Any,
    affine: Any,
    shape: Any,
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
    affine = _check_affine(affine)
    shape = _check_shape(shape)
    radius = _check_radius(radius)
    mask_raw, candidates = _check_mask(mask, shape)
    allow_overlap = bool(allow_overlap)

    key = _cache_key(coords, affine, shape, radius, candidates, allow_overlap)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    result = _compute(coords, affine, shape, radius, mask_raw, candidates, allow_overlap)
    _CACHE.put(key, result)
    return result


def clear_cache() -> None:
    """Empty the cache of :func:`sphere_voxels` results."""
    _CACHE.clear()


# --------------------------------------------------------------------------------------
# validation


def _check_affine(affine: Any) -> np.ndarray:
    try:
        arr = np.array(affine, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"affine must be a 4x4 array of numbers; got {affine!r}.") from exc
    if arr.shape != (4, 4) or not np.isfinite(arr).all():
        raise ValueError(
            f"affine must be a finite 4x4 array (voxel -> world mm); got shape {arr.shape}"
            f"{'' if np.isfinite(arr).all() else ' with non-finite values'}:\n{arr}"
        )
    if abs(np.linalg.det(arr[:3, :3])) == 0.0:
        raise ValueError(f"affine is singular (no voxel <-> world inverse):\n{arr}")
    return arr


def _check_shape(shape: Any) -> tuple[int, int, int]:
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


def _check_radius(radius: Any) -> float | None:
    if radius is None:
        return None
    if isinstance(radius, numbers.Real) and not np.isnan(radius) and radius >= 0:
        return float(radius)
    # nilearn surfaces scikit-learn's parameter check here; keep its key phrase.
    raise ValueError(
        "The 'radius' parameter must be a float in the range [0.0, inf] or None. "
        f"Got {radius!r} instead."
    )


def _check_mask(mask: Any, shape: tuple[int, int, int]) -> tuple[Any, np.ndarray | None]:
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


class _LRU:
    """A tiny thread-safe LRU mapping for immutable results."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[bytes, SphereVoxels] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> SphereVoxels | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: bytes, value: SphereVoxels) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_CACHE = _LRU(_CACHE_SIZE)


# --------------------------------------------------------------------------------------
# computation


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


def _iter_boxes(lo: np.ndarray, hi: np.ndarray):
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


def _radius_pairs(coords, affine, inverse, shape, radius, candidates):
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
    pairs = []
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


def _truncation_pairs(coords, affine, inverse, shape, candidates):
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


def _compute(coords, affine, shape, radius, mask_raw, candidates, allow_overlap):
    n_seeds = coords.shape[0]
    inverse = np.linalg.inv(affine)
    n_total = int(np.prod(shape))

    pairs = _radius_pairs(coords, affine, inverse, shape, radius, candidates)

    nearest = _nearest_voxels(coords, inverse)
    inside = ((nearest >= 0) & (nearest < np.asarray(shape))).all(axis=1)
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
            _empty_message(empty, coords, nearest, inside, shape, radius, mask_raw)
        )

    union, indices = np.unique(flat, return_inverse=True)
    indices = indices.astype(np.int64).ravel()
    if not allow_overlap:
        counts = np.bincount(indices, minlength=union.size)
        if (counts >= 2).any():
            raise OverlapError(_overlap_message(indices, indptr, counts, coords, union.size))

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


# --------------------------------------------------------------------------------------
# error messages

_MAX_LISTED = 10


def _fmt_point(point: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:g}" for v in point) + ")"


def _empty_message(empty, coords, nearest, inside, shape, radius, mask_raw) -> str:
    # nilearn's key phrase, formatted like nilearn (str of an int64 numpy array)
    lines = [f"These spheres are empty: {np.asarray(empty, dtype=np.int64)}"]
    lines.append(
        f"{empty.size} of {len(coords)} seed(s) have no voxel in their sphere "
        f"(radius={'None' if radius is None else f'{radius:g} mm'}, grid {shape}"
        f"{', with mask' if mask_raw is not None else ''}):"
    )
    for i in empty[:_MAX_LISTED]:
        voxel = "(" + ", ".join(f"{v:.0f}" for v in nearest[i]) + ")"
        if not inside[i]:
            where = f"outside the image of shape {shape}"
        else:
            value = np.asarray(mask_raw[tuple(int(v) for v in nearest[i])]).item()
            where = f"masked out (mask value {value!r} there)"
        lines.append(
            f"  seed #{i} at {_fmt_point(coords[i])} mm: nearest voxel {voxel} is {where}."
        )
    if empty.size > _MAX_LISTED:
        lines.append(f"  ... and {empty.size - _MAX_LISTED} more.")
    lines.append(
        "Check that the seeds are in the world (mm) space of the image affine, use a larger "
        "radius, or a mask that covers the seeds."
    )
    return "\n".join(lines)


def _overlap_message(indices, indptr, counts, coords, n_union) -> str:
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    shared_cols = counts[indices] >= 2
    sub = scipy.sparse.csr_array(
        (np.ones(int(shared_cols.sum())), (rows[shared_cols], indices[shared_cols])),
        shape=(len(indptr) - 1, n_union),
    )
    co = scipy.sparse.triu(sub @ sub.T, k=1).tocoo()
    order = np.lexsort((co.col, co.row))
    lines = [
        "Overlap detected between spheres: "
        f"{co.nnz} pair(s) of seeds share voxels ({int((counts >= 2).sum())} shared voxel(s))."
    ]
    for a, b, n in list(zip(co.row[order], co.col[order], co.data[order], strict=True))[
        :_MAX_LISTED
    ]:
        distance = float(np.linalg.norm(coords[a] - coords[b]))
        lines.append(
            f"  seeds #{a} {_fmt_point(coords[a])} and #{b} {_fmt_point(coords[b])} mm "
            f"({distance:.3g} mm apart) share {int(n)} voxel(s)."
        )
    if co.nnz > _MAX_LISTED:
        lines.append(f"  ... and {co.nnz - _MAX_LISTED} more pair(s).")
    lines.append(
        "Pass allow_overlap=True to let shared voxels count in each sphere, or use a "
        "smaller radius."
    )
    return "\n".join(lines)
