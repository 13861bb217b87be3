"""Write a connectome into a Zarr store (normally the result store its signals came from).

Only what the store does not have yet is written: the connectome variable (chunked one run
per chunk), its ``seed2``/``pair`` coordinates and its group mean. The store's own ``run`` and
``seed`` coordinates are checked to match, never rewritten, so the store still opens with
``xr.open_zarr`` and :func:`~lazyspheres.open_results`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["write_connectome"]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # zarr warns that consolidated metadata is not in the v3 spec; the result store uses it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", module="zarr")
        yield


def write_connectome(
    result: xr.DataArray,
    store: Any,
    *,
    name: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> xr.DataArray:
    """Compute ``result`` and write it into ``store``; return it read back lazily.

    Parameters
    ----------
    result : xarray.DataArray
        A :func:`~lazyspheres.connectome` result.
    store : path or zarr store
        A Zarr store; when it already has ``run`` / ``seed`` coordinates they must equal the
        result's (an existing variable of the same name is replaced).
    name : str, optional
        Variable name (default ``result.name``, e.g. ``connectome_correlation``).
    storage_options : dict, optional
        fsspec options for URLs.

    Returns
    -------
    xarray.DataArray
        The stored variable, lazily opened from the store.

    Raises
    ------
    ValueError
        The store's runs or seeds differ from the result's.
    """
    name = name or str(result.name)
    with _quiet():
        try:
            existing = xr.open_zarr(store, storage_options=storage_options)
        except (FileNotFoundError, KeyError, ValueError):
            existing = None
    dataset = result.rename(name).to_dataset()
    if "group_mean" in dataset.coords:
        dataset = dataset.rename({"group_mean": f"{name}_group_mean"})
    if existing is not None:
        for dim in ("run", "seed"):
            _check_same(existing, dataset, dim, store)
        shared = [c for c in dataset.coords if c in existing.variables and c not in ("pair",)]
        dataset = dataset.drop_vars([c for c in shared if c in ("run", "seed")] + [
            c for c in shared if c not in ("run", "seed") and existing[c].dims == dataset[c].dims
        ])
    encoding = {name: {"chunks": (1, *result.shape[1:])}}
    with _quiet():
        dataset.to_zarr(
            store,
            mode="a",
            consolidated=True,
            zarr_format=3,
            storage_options=storage_options,
            encoding=encoding if existing is None or name not in existing else None,
        )
        reopened = xr.open_zarr(store, storage_options=storage_options)
    return reopened[name]


def _check_same(existing: xr.Dataset, dataset: xr.Dataset, dim: str, store: Any) -> None:
    if dim not in existing.coords or dim not in dataset.coords:
        return
    theirs = np.asarray(existing[dim].values)
    ours = np.asarray(dataset[dim].values)
    if theirs.shape != ours.shape or not np.array_equal(theirs.astype(str), ours.astype(str)):
        raise ValueError(
            f"The store {store} has {dim} coordinate {theirs[:5].tolist()} (size "
            f"{theirs.size}) but the connectome has {ours[:5].tolist()} (size {ours.size}): "
            "write a connectome into the store its signals came from, or into a new store."
        )
