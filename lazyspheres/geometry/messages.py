"""The messages of the geometry errors: nilearn's key phrase, then what is wrong and where."""

from __future__ import annotations

import numpy as np
import scipy.sparse

__all__ = ["empty_message", "overlap_message"]


_MAX_LISTED = 10


def _fmt_point(point: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:g}" for v in point) + ")"


def empty_message(
    empty: np.ndarray,
    coords: np.ndarray,
    nearest: np.ndarray,
    inside: np.ndarray,
    shape: tuple[int, int, int],
    radius: float | None,
    mask_raw: np.ndarray | None,
) -> str:
    """Message of :class:`~lazyspheres.errors.EmptySphereError` for the seeds ``empty``."""
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
        elif mask_raw is None:  # pragma: no cover - inside, unmasked: never empty
            where = "not a candidate voxel"
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


def overlap_message(
    indices: np.ndarray, indptr: np.ndarray, counts: np.ndarray, coords: np.ndarray, n_union: int
) -> str:
    """Message of :class:`~lazyspheres.errors.OverlapError`, listing the sharing pairs."""
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
