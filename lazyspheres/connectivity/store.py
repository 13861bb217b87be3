"""Write a connectome into a Zarr store (normally the result store its signals came from).

Only what the store does not have yet is written: the connectome variable (chunked one run
per chunk), its ``seed2``/``pair`` coordinates and its group mean. The store's own ``run`` and
``seed`` coordinates are checked to match, never rewritten, so the store still opens with
``xr.open_zarr`` and :func:`~lazyspheres.open_results`.

A new variable of a local store is written without xarray's store tasks when the caller
can compute it chunk by chunk (``direct``): xarray writes only the metadata, each of the
connectome's tasks writes its runs' uncompressed chunk files itself (:func:`write_chunk`)
and a small sum for the group mean beside them. Why: a store task per group, a sum tree and
zarr's I/O threads were a fixed cost as large as half the work of 100 runs, which a second
worker does not share. A new ``(run, seed, seed2)`` connectome of a local store, written
into the store it was read from, skips xarray for the metadata too
(:mod:`~lazyspheres.connectivity.direct_write`); vectorized results come here.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TypeAlias

import numpy as np
import xarray as xr
import zarr.abc.store

from lazyspheres._types import FloatArray, StorageOptions
from lazyspheres.io.zarr_chunks import ZarrChunkReader

__all__ = ["DirectWrite", "write_chunk", "write_connectome", "write_into", "write_values"]

#: ``direct(chunks, meanwhile)`` computes the connectome with every run's chunk written
#: straight into the files of the output array (given by its chunk layout), calls
#: ``meanwhile()`` once the tasks are under way, and returns the group mean (None: none kept).
DirectWrite: TypeAlias = Callable[[ZarrChunkReader, Callable[[], None]], "FloatArray | None"]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # zarr warns that consolidated metadata is not in the v3 spec; the result store uses it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", module="zarr")
        yield


def write_connectome(
    result: xr.DataArray,
    store: str | os.PathLike[str] | zarr.abc.store.Store,
    *,
    name: str | None = None,
    storage_options: StorageOptions | None = None,
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
        The stored variable, lazily opened from the store (with its ``group_mean``
        coordinate, stored as ``<name>_group_mean``).

    Raises
    ------
    ValueError
        The store's runs or seeds differ from the result's.
    """
    with _quiet():
        try:
            existing = xr.open_zarr(store, storage_options=storage_options)
        except (FileNotFoundError, KeyError, ValueError):
            existing = None
    return write_into(result, store, existing, name=name, storage_options=storage_options)


def write_into(
    result: xr.DataArray,
    store: str | os.PathLike[str] | zarr.abc.store.Store,
    existing: xr.Dataset | None,
    *,
    name: str | None = None,
    storage_options: StorageOptions | None = None,
    direct: DirectWrite | None = None,
) -> xr.DataArray:
    """:func:`write_connectome` into a store already open as ``existing`` (None: no store).

    ``direct``: how to compute the result with its chunks written by the tasks themselves,
    used for a new variable of a local store (else ``result``'s own graph is stored).
    """
    name = name or str(result.name)
    dataset = result.rename(name).to_dataset()
    if "group_mean" in dataset.coords:
        dataset = dataset.rename({"group_mean": f"{name}_group_mean"})
    if existing is not None:
        dataset = dataset.drop_vars(_already_stored(existing, dataset, store))
        # to_zarr replaces the group's attributes with the Dataset's: keep the store's.
        dataset.attrs = dict(existing.attrs)
    new = existing is None or name not in existing
    # float64 matrices compress by ~5 % (noise-like mantissas) for 2-3x the CPU of the write
    encoding = {name: {"chunks": (1, *result.shape[1:]), "compressors": None}}
    with _quiet():
        if direct is not None and new:
            _write_direct(dataset, name, store, direct, encoding, storage_options)
        else:
            dataset.to_zarr(
                store,
                mode="a",
                consolidated=True,
                zarr_format=3,
                storage_options=storage_options,
                encoding=encoding if new else None,
            )
        reopened = xr.open_zarr(store, storage_options=storage_options)
    stored = reopened[name]
    mean = f"{name}_group_mean"
    if mean in reopened.variables:  # stored under its own name; the same coordinate again
        stored = stored.assign_coords(group_mean=reopened[mean].variable)
        stored = stored.drop_vars(mean, errors="ignore")
    return stored


def _write_direct(
    dataset: xr.Dataset,
    name: str,
    store: str | os.PathLike[str] | zarr.abc.store.Store,
    direct: DirectWrite,
    encoding: Mapping[str, Mapping[str, object]],
    storage_options: StorageOptions | None,
) -> None:
    """Write ``dataset`` with its variable ``name`` computed by ``direct``.

    xarray writes the metadata and the small coordinates (``compute=False``: the graph it
    returns for the lazy variables is not run), unconsolidated; the tasks of ``direct``
    write the chunks, this process the group mean; consolidating comes last. When the tasks
    fail, what this call added is removed again: the store never lists a half-written
    connectome. Falls back to xarray's write when the new array is not uncompressed, one
    run per chunk, in a local store.
    """
    mean = f"{name}_group_mean"
    small = [key for key in dataset.variables if key not in (name, mean)]
    dataset = dataset.assign_coords({k: dataset[k].load() for k in small if k in dataset.coords})
    if mean in dataset.variables:  # one uncompressed chunk: written as one file below
        encoding = {**encoding, mean: {"chunks": dataset[mean].shape, "compressors": None}}
    writes = dataset.to_zarr(
        store,
        mode="a",
        consolidated=False,
        zarr_format=3,
        storage_options=storage_options,
        encoding=encoding,
        compute=False,
    )
    group = zarr.open_group(store, mode="r+", storage_options=storage_options)
    chunks, whole = _plain_chunks(group, name), _plain_chunks(group, mean)
    if chunks is not None and chunks.chunk_shape == (1, *chunks.shape[1:]):
        try:
            values = direct(chunks, _nothing)
        except BaseException:  # no half-written variable: remove what this call added
            for key in dataset.variables:
                with contextlib.suppress(KeyError):
                    del group[str(key)]
            zarr.consolidate_metadata(group.store)
            raise
        if values is not None and whole is not None and whole.chunk_shape == whole.shape:
            write_chunk(whole, (0,) * values.ndim, values)
        elif values is not None and isinstance(target := group.get(mean), zarr.Array):
            target[...] = values
    else:
        writes.compute()
    zarr.consolidate_metadata(group.store)


def _nothing() -> None:
    return None


def _plain_chunks(group: zarr.Group, name: str) -> ZarrChunkReader | None:
    """The chunk files of array ``name`` if they are plain and uncompressed, else None."""
    array = group.get(name)
    chunks = ZarrChunkReader.for_array(array, {}) if isinstance(array, zarr.Array) else None
    return chunks if chunks is not None and chunks.compressor is None else None


def write_chunk(chunks: ZarrChunkReader, index: tuple[int, ...], values: np.ndarray) -> None:
    """Write one whole uncompressed chunk into its file (the inverse of ``chunks.read``)."""
    data = np.asarray(values, dtype=chunks.dtype).reshape(chunks.chunk_shape)
    write_values(chunks.chunk_path(index), data)


def write_values(path: str, values: np.ndarray) -> None:
    """Write the bytes of ``values`` (C order) into the file ``path``, making its folder."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(np.ascontiguousarray(values).data)


def _already_stored(existing: xr.Dataset, dataset: xr.Dataset, store: object) -> list[str]:
    """Coordinates the store already holds with the same values (others must be new)."""
    same = []
    for key in dataset.coords:
        if key not in existing.variables:
            continue
        theirs, ours = existing[key], dataset[key]
        equal = theirs.dims == ours.dims and theirs.shape == ours.shape
        equal = equal and _as_strings(theirs) == _as_strings(ours)
        if not equal:
            raise ValueError(
                f"The store {store} already has a '{key}' {theirs.dims} of shape {theirs.shape} "
                f"that differs from the connectome's {ours.dims} {ours.shape}: write a connectome "
                "into the store its signals came from, or into a new store (a vectorized "
                "connectome with and one without its diagonal cannot share a store)."
            )
        same.append(str(key))
    return same


def _as_strings(values: xr.DataArray) -> list[str]:
    # str() of every value: object, fixed-width and variable-width string arrays compare alike
    return [str(v) for v in np.asarray(values.values).ravel().tolist()]
