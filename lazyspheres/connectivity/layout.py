"""Labels and layout of connectome results: ``(run, seed, seed2)`` matrices or ``(run, pair)``.

The vectorised layout is nilearn's ``sym_matrix_to_vec``: the lower triangle row by row
(``seed >= seed2``, or ``>`` without the diagonal), the diagonal divided by √2 so that the
vector keeps the matrix's Frobenius norm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import dask.array as da
import numpy as np
import xarray as xr

from lazyspheres._types import Attrs

if TYPE_CHECKING:
    from lazyspheres.connectivity.inputs import RunSignals

__all__ = ["label_matrices", "lower_pairs", "vectorize_matrices"]

#: ``(..., n, n)`` matrices, in memory or lazy: the result has the same type.
Matrices = TypeVar("Matrices", np.ndarray, da.Array)


def lower_pairs(n: int, *, discard_diagonal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the lower triangle, in row-major order."""
    rows, cols = np.tril_indices(n, k=-1 if discard_diagonal else 0)
    return rows, cols


def vectorize_matrices(matrices: Matrices, *, discard_diagonal: bool) -> Matrices:
    """``(..., n, n)`` -> ``(..., n_pairs)`` lower triangles (diagonal / √2 unless dropped)."""
    n = matrices.shape[-1]
    rows, cols = lower_pairs(n, discard_diagonal=discard_diagonal)
    values = matrices[..., rows, cols]
    if discard_diagonal:
        return values
    scale = np.where(rows == cols, np.sqrt(2.0), 1.0)
    return values / scale


def _vectorize_block(block: np.ndarray, discard_diagonal: bool) -> np.ndarray:
    return vectorize_matrices(block, discard_diagonal=discard_diagonal)


def label_matrices(
    matrices: da.Array,
    mean: da.Array,
    runs: RunSignals,
    *,
    vectorize: bool,
    discard_diagonal: bool,
    attrs: Attrs,
) -> xr.DataArray:
    """Wrap ``(run, n, n)`` matrices as a labelled DataArray (vectorised if asked)."""
    n = matrices.shape[-1]
    seed_coords = dict(runs.seed_coords)
    if "seed" not in seed_coords:
        seed_coords["seed"] = (np.arange(n), {})
    run_ids = np.asarray(runs.run_ids, dtype=object)
    coords: dict[str, tuple[object, ...]] = {"run": ("run", run_ids)}
    if all(isinstance(r, (int, np.integer)) for r in runs.run_ids):
        coords["run"] = ("run", np.asarray(runs.run_ids, dtype=np.int64))
    if runs.source is not None:
        attrs = {**attrs, "source": runs.source}
    name = "connectome_" + attrs["kind"].replace(" ", "_")
    if not vectorize:
        for key, (values, meta) in seed_coords.items():
            coords[key] = ("seed", values, meta)
            coords[f"{key}2"] = ("seed2", values, meta)
        coords["group_mean"] = (("seed", "seed2"), mean)
        return xr.DataArray(
            matrices, dims=("run", "seed", "seed2"), coords=coords, name=name, attrs=attrs
        )
    rows, cols = lower_pairs(n, discard_diagonal=discard_diagonal)
    vectors = da.map_blocks(
        _vectorize_block,
        matrices,
        discard_diagonal,
        dtype=np.float64,
        drop_axis=2,
        chunks=(matrices.chunks[0], (rows.size,)),
    )
    coords["pair"] = ("pair", np.arange(rows.size))
    for key, (values, meta) in seed_coords.items():
        coords[f"row_{key}"] = ("pair", values[rows], meta)
        coords[f"col_{key}"] = ("pair", values[cols], meta)
    return xr.DataArray(vectors, dims=("run", "pair"), coords=coords, name=name, attrs=attrs)
