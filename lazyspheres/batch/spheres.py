"""Sphere plans for a batch: per-seed radii and empty spheres tolerated on request.

Pure numpy on top of :func:`lazyspheres.sphere_voxels` (nilearn's rules, one radius per
call): seeds are grouped by radius, each group is selected with its radius, and the groups
are merged into one :class:`~lazyspheres.gather.GatherPlan`. Every seed's voxel set is
exactly what :func:`lazyspheres.sphere_voxels` gives it with its own radius, in C order,
so each signal equals a single-radius extraction of that seed.

nilearn has one radius per masker; per-seed radii are a lazyspheres extension.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from lazyspheres._lru import LRU
from lazyspheres._types import BoolArray, UserInput
from lazyspheres.errors import EmptySphereError, OverlapError
from lazyspheres.gather import GatherPlan
from lazyspheres.geometry import SphereVoxels, sphere_voxels

__all__ = ["RunSpheres", "check_radii", "run_spheres"]

_CACHE_SIZE = 16
_CACHE: LRU[Hashable, RunSpheres] = LRU(_CACHE_SIZE)


@dataclass(frozen=True, eq=False)
class RunSpheres:
    """The spheres of all seeds on one run's grid.

    Attributes
    ----------
    plan : GatherPlan or None
        Plan over the non-empty spheres (None when all are empty).
    kept : numpy.ndarray
        Indices of the seeds in ``plan``, ascending.
    n_voxels : numpy.ndarray
        ``(n_seeds,)`` voxels per sphere (0 for empty ones).
    """

    plan: GatherPlan | None
    kept: np.ndarray
    n_voxels: np.ndarray


def check_radii(radius: UserInput, n_seeds: int) -> np.ndarray:
    """``(n_seeds,)`` float64 radii, NaN for ``None`` (nearest voxel only).

    Raises
    ------
    ValueError
        A radius that is negative, NaN or not a number, or a sequence of the wrong length.
    """
    if radius is None:
        return np.full(n_seeds, np.nan)
    if np.ndim(radius) == 0:
        values = np.full(n_seeds, _one_radius(radius, "radius"))
    else:
        items = list(radius)
        if len(items) != n_seeds:
            raise ValueError(
                f"radius has {len(items)} values but there are {n_seeds} seeds; give one "
                "radius per seed, or a single number."
            )
        values = np.array(
            [np.nan if r is None else _one_radius(r, f"radius[{i}]") for i, r in enumerate(items)]
        )
    return values


def _one_radius(value: UserInput, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not number >= 0:  # NaN fails too
        raise ValueError(
            f"{where} must be a float in the range [0.0, inf] or None; got {value!r}."
        )
    return number


def run_spheres(
    coords: np.ndarray,
    radii: np.ndarray,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    *,
    mask: np.ndarray | None = None,
    allow_overlap: bool = False,
    on_empty: str = "raise",
) -> RunSpheres:
    """Select every seed's sphere on a grid (cached per process).

    Parameters
    ----------
    coords : numpy.ndarray
        ``(n, 3)`` seed coordinates (mm).
    radii : numpy.ndarray
        ``(n,)`` radii (NaN: nearest voxel only).
    affine, shape : grid of the run.
    mask : numpy.ndarray, optional
        Binary mask on that grid.
    allow_overlap : bool
        Whether spheres may share voxels.
    on_empty : {"raise", "nan"}
        What an empty sphere does: raise :class:`EmptySphereError`, or get no voxel
        (its signal is NaN).

    Raises
    ------
    EmptySphereError, OverlapError
        As :func:`lazyspheres.sphere_voxels` (seed numbers refer to the whole seed list).
    """
    key = (
        coords.tobytes(),
        radii.tobytes(),
        np.asarray(affine, dtype=np.float64).tobytes(),
        tuple(shape),
        None if mask is None else (mask.shape, np.packbits(mask.astype(bool)).tobytes()),
        bool(allow_overlap),
        on_empty,
    )
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    result = _compute(coords, radii, affine, shape, mask, allow_overlap, on_empty)
    _CACHE.put(key, result)
    return result


def _compute(
    coords: np.ndarray,
    radii: np.ndarray,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    mask: BoolArray | None,
    allow_overlap: bool,
    on_empty: str,
) -> RunSpheres:
    n_seeds = coords.shape[0]
    groups: dict[float | None, np.ndarray] = {}
    for value in np.unique(radii[~np.isnan(radii)]):
        groups[float(value)] = np.flatnonzero(radii == value)
    if np.isnan(radii).any():
        groups[None] = np.flatnonzero(np.isnan(radii))
    single = len(groups) == 1
    empty: list[int] = []
    selected: list[tuple[np.ndarray, SphereVoxels]] = []  # per group
    for radius, members in groups.items():
        try:
            spheres = sphere_voxels(
                coords[members], affine, shape, radius=radius, mask=mask,
                allow_overlap=allow_overlap if single else True,
            )  # fmt: skip
        except EmptySphereError as error:
            if single and on_empty == "raise":
                raise  # seed numbers in the message are already the caller's
            missing = _empty_members(coords, members, radius, affine, shape, mask)
            if on_empty == "raise":
                raise EmptySphereError(_empty_message(missing, coords, radii, error)) from None
            empty.extend(missing)
            members = np.setdiff1d(members, missing)
            if members.size == 0:
                continue
            spheres = sphere_voxels(
                coords[members], affine, shape, radius=radius, mask=mask,
                allow_overlap=allow_overlap if single else True,
            )  # fmt: skip
        selected.append((members, spheres))
    return _merge(selected, n_seeds, shape, coords, allow_overlap or single)


def _empty_members(
    coords: np.ndarray,
    members: np.ndarray,
    radius: float | None,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    mask: BoolArray | None,
) -> list[int]:
    """Which seeds of a group have empty spheres (one seed at a time: the rare path)."""
    missing = []
    for seed in members:
        try:
            sphere_voxels(coords[[seed]], affine, shape, radius=radius, mask=mask)
        except EmptySphereError:
            missing.append(int(seed))
    return missing


def _empty_message(
    missing: list[int], coords: np.ndarray, radii: np.ndarray, error: EmptySphereError
) -> str:
    lines = [f"These spheres are empty: {np.asarray(sorted(missing), dtype=np.int64)}"]
    for seed in sorted(missing)[:10]:
        radius = "None" if np.isnan(radii[seed]) else f"{radii[seed]:g} mm"
        lines.append(f"  seed #{seed} at {_point(coords[seed])} mm, radius {radius}: no voxel.")
    lines.append(str(error).split("\n", 1)[-1].rsplit("\n", 1)[-1])  # the advice line
    lines.append("Or pass on_empty='nan' to give empty spheres NaN signals.")
    return "\n".join(lines)


def _merge(
    selected: list[tuple[np.ndarray, SphereVoxels]],
    n_seeds: int,
    shape: tuple[int, int, int],
    coords: np.ndarray,
    overlap_ok: bool,
) -> RunSpheres:
    n_voxels = np.zeros(n_seeds, dtype=np.int64)
    if not selected:
        return RunSpheres(None, np.zeros(0, dtype=np.int64), n_voxels)
    flats, rows = [], []
    for members, spheres in selected:
        flat = spheres.flat_indices("C")
        counts = spheres.n_voxels
        n_voxels[members] = counts
        flats.append(flat[spheres.indices])
        rows.append(np.repeat(members, counts))
    flat_all = np.concatenate(flats)
    row_all = np.concatenate(rows)
    union, columns = np.unique(flat_all, return_inverse=True)
    kept = np.flatnonzero(n_voxels > 0)
    position = np.full(n_seeds, -1, dtype=np.int64)
    position[kept] = np.arange(kept.size)
    membership = sp.csr_array(
        (np.ones(flat_all.size), (position[row_all], columns.ravel())),
        shape=(kept.size, union.size),
    )
    membership.sort_indices()
    if not overlap_ok:
        shared = np.bincount(columns.ravel(), minlength=union.size)
        if (shared >= 2).any():
            raise OverlapError(_overlap_message(membership, shared, kept, coords))
    voxels = np.stack(np.unravel_index(union, shape), axis=1).astype(np.int64)
    plan = GatherPlan(
        shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        voxels=voxels,
        membership=membership,
        n_voxels=n_voxels[kept],
    )
    return RunSpheres(plan, kept, n_voxels)


def _overlap_message(
    membership: sp.csr_array, shared: np.ndarray, kept: np.ndarray, coords: np.ndarray
) -> str:
    sub = membership[:, shared >= 2]
    pairs = sp.triu(sub @ sub.T, k=1).tocoo()
    lines = [
        "Overlap detected between spheres: "
        f"{pairs.nnz} pair(s) of seeds share voxels ({int((shared >= 2).sum())} voxel(s))."
    ]
    for a, b, n in list(zip(pairs.row, pairs.col, pairs.data, strict=True))[:10]:
        sa, sb = int(kept[a]), int(kept[b])
        lines.append(
            f"  seeds #{sa} {_point(coords[sa])} and #{sb} {_point(coords[sb])} mm share "
            f"{int(n)} voxel(s)."
        )
    lines.append(
        "Pass allow_overlap=True to let shared voxels count in each sphere, or use smaller radii."
    )
    return "\n".join(lines)


def _point(xyz: np.ndarray) -> str:
    return "(" + ", ".join(f"{float(v):g}" for v in xyz) + ")"
