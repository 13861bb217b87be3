"""A Zarr v3 store reached in few requests: one GET per object, concurrent PUTs, no probes.

On an object store every object is a request and every request a round trip (tens of
milliseconds). zarr's and xarray's generic paths add requests a result store never needs:
Zarr v2 probes (``.zgroup``, ``.zattrs``, ``.zmetadata``), listings, an existence check
before each read, and one metadata read per array even when the group's consolidated
metadata holds them all. These helpers go straight to the objects:

- :func:`zarr_store` opens the location as a zarr ``Store`` (a local folder, a URL through
  fsspec, or a store object as given);
- :func:`template_objects` renders a Dataset's whole template (metadata, coordinates) in
  memory, so that :func:`put_objects` writes it in one concurrent wave;
- :func:`root_group` makes the group and every array from the root ``zarr.json`` alone;
- :class:`PrimedStore` answers the first read of objects the client already holds from
  memory, so that opening the store it has just written costs no round trip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.core.group import Group
from zarr.storage import WrapperStore

from lazyspheres._types import Attrs, StorageOptions
from lazyspheres.batch._store_types import StoreLocation

if TYPE_CHECKING:
    import xarray as xr

T = TypeVar("T")

__all__ = [
    "ROOT",
    "PrimedStore",
    "constants_as_fill",
    "get_json",
    "get_many",
    "list_top",
    "put_json",
    "put_objects",
    "root_group",
    "run_concurrently",
    "template_objects",
    "zarr_store",
]

ROOT = "zarr.json"
#: Requests in flight at once: a template is ~30 objects, written in one wave.
_CONCURRENCY = 32


def zarr_store(
    store: StoreLocation, storage_options: StorageOptions | None, *, read_only: bool
) -> Store:
    """The zarr ``Store`` at ``store`` (a path, a URL or a zarr store object)."""
    from zarr.storage import FsspecStore, LocalStore

    if not isinstance(store, (str, os.PathLike)):
        return store
    text = os.fspath(store)
    if "://" not in text or text.startswith("file://"):
        return LocalStore(text.removeprefix("file://"), read_only=read_only)
    options = dict(storage_options or {})
    if text.startswith(("s3://", "s3a://")):
        # s3fs asks for an object's size (a HEAD) before each whole-object GET when it may
        # split big reads; a result store's objects are small, so one GET each.
        options.setdefault("max_concurrency", 1)
        # aiobotocore keeps 10 connections by default: a 30-object template would take
        # three round trips instead of one.
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("max_pool_connections", _CONCURRENCY)
        options["config_kwargs"] = config
    return FsspecStore.from_url(text, storage_options=options, read_only=read_only)


def _sync(coroutine: Coroutine[object, object, T]) -> T:
    from zarr.core.sync import sync

    return sync(coroutine)


def get_json(zstore: Store, key: str) -> Attrs | None:
    """The JSON object at ``key`` (one GET), or None if there is none."""
    from zarr.core.buffer import default_buffer_prototype

    try:
        buffer = _sync(zstore.get(key, default_buffer_prototype()))
    except FileNotFoundError:  # a local store whose folder does not exist
        return None
    return None if buffer is None else json.loads(buffer.to_bytes())


def get_many(zstore: Store, keys: Iterable[str]) -> dict[str, bytes]:
    """The objects at ``keys`` that exist, read concurrently (one round trip)."""
    import asyncio

    from zarr.core.buffer import default_buffer_prototype

    keys = list(keys)

    async def read() -> list[Buffer | None]:
        prototype = default_buffer_prototype()
        return await asyncio.gather(*(zstore.get(key, prototype) for key in keys))

    try:
        found = _sync(read()) if keys else []
    except FileNotFoundError:
        return {}
    pairs = zip(keys, found, strict=True)
    return {key: value.to_bytes() for key, value in pairs if value is not None}


def put_json(zstore: Store, key: str, document: Attrs) -> bytes:
    """Write ``document`` as the JSON object at ``key`` (one PUT); the bytes written."""
    from zarr.core.buffer import default_buffer_prototype

    data = json.dumps(document, indent=2).encode()
    _sync(zstore.set(key, default_buffer_prototype().buffer.from_bytes(data)))
    return data


def list_top(zstore: Store) -> list[str]:
    """Names directly below the store's root (one listing)."""
    from zarr.storage import FsspecStore

    fs = getattr(zstore, "fs", None)
    if isinstance(zstore, FsspecStore) and "s3" in getattr(fs, "protocol", ()):
        # s3fs's generic listing lists the parent too when nothing is there (a second
        # request); one LIST of the prefix says all we need.
        try:
            entries = _sync(fs._lsdir(zstore.path, refresh=True))  # type: ignore[union-attr]
        except FileNotFoundError:
            return []
        return [entry["name"].rstrip("/").rsplit("/", 1)[-1] for entry in entries]

    async def names() -> list[str]:
        return [name async for name in zstore.list_dir("")]

    try:
        return _sync(names())
    except FileNotFoundError:
        return []


def template_objects(dataset: xr.Dataset, encoding: dict[str, Attrs]) -> dict[str, bytes]:
    """Every object ``dataset.to_zarr(compute=False)`` writes, rendered in memory.

    Dask-backed variables are not written (their chunks read as the fill value); the
    root ``zarr.json`` holds the consolidated metadata of all arrays.
    """
    import warnings

    from zarr.storage import MemoryStore

    memory: dict[str, Buffer] = {}
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not in the v3 spec; plain xr.open_zarr
        # reads it, and without it every open lists and reads each array's metadata.
        warnings.filterwarnings("ignore", message="Consolidated metadata", module="zarr")
        dataset.to_zarr(
            MemoryStore(memory), compute=False, consolidated=True, zarr_format=3,
            encoding=encoding,
        )  # fmt: skip
    return {key: value.to_bytes() for key, value in memory.items()}


def constants_as_fill(objects: dict[str, bytes], values: Mapping[str, np.ndarray]) -> None:
    """Make each one-chunk numeric array of ``values`` that holds one value its fill value.

    Its chunk is then not written (zarr reads a missing chunk as the fill value): one
    object fewer for, say, one radius for every seed. The array's ``zarr.json`` and the
    root's consolidated copy of it say so.
    """
    root = json.loads(objects[ROOT])
    consolidated = root.get("consolidated_metadata", {}).get("metadata", {})
    for name, array in values.items():
        array = np.asarray(array)
        chunk, meta_key = f"{name}/c/0", f"{name}/{ROOT}"
        if chunk not in objects or meta_key not in objects or array.dtype.kind not in "iuf":
            continue
        first = array.flat[0] if array.size else None
        if first is None or not np.isfinite(first) or not (array == first).all():
            continue
        meta = json.loads(objects[meta_key])
        if meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape") != list(
            array.shape
        ):
            continue
        meta["fill_value"] = first.item()
        objects[meta_key] = json.dumps(meta, indent=2).encode()
        if name in consolidated:
            consolidated[name]["fill_value"] = first.item()
        del objects[chunk]
    objects[ROOT] = json.dumps(root, indent=2).encode()


def put_objects(zstore: Store, objects: Mapping[str, bytes]) -> None:
    """Write ``objects`` (key → bytes) concurrently, the root ``zarr.json`` last.

    The root is written once the rest is there, so a template cut short has no root and
    never opens as a store.
    """
    import asyncio

    from zarr.core.buffer import default_buffer_prototype

    wrap = default_buffer_prototype().buffer.from_bytes
    rest = {key: value for key, value in objects.items() if key != ROOT}

    async def write() -> None:
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def one(key: str, value: bytes) -> None:
            async with limit:
                await zstore.set(key, wrap(value))

        await asyncio.gather(*(one(key, value) for key, value in rest.items()))
        if ROOT in objects:
            await zstore.set(ROOT, wrap(objects[ROOT]))

    _sync(write())


def root_group(zstore: Store, root: Attrs) -> Group:
    """The group whose root ``zarr.json`` is ``root``, bound to ``zstore`` (no request).

    With consolidated metadata in ``root``, its arrays come from it too, so reading or
    writing a chunk is the one request for that chunk.
    """
    import zarr
    from zarr.core.group import GroupMetadata
    from zarr.storage import StorePath

    return zarr.Group(zarr.AsyncGroup(GroupMetadata.from_dict(root), StorePath(zstore)))


def run_concurrently(calls: Iterable[Callable[[], T]]) -> list[T]:
    """Run blocking store calls (each one request or a few) side by side; their results."""
    calls = list(calls)
    if len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(min(len(calls), _CONCURRENCY)) as pool:
        return list(pool.map(lambda call: call(), calls))


class PrimedStore(WrapperStore[Store]):
    """A store answering the first whole read of each primed object from memory.

    The objects are ones the client has just written or read (the root ``zarr.json``, the
    index coordinates), so xarray's open of a store the client knows costs no round trip.
    Each is served once: a later read (of an object that may have changed since) goes to
    the wrapped store.

    Parameters
    ----------
    store : zarr Store
        The store to wrap.
    primed : mapping of str to bytes, optional
        Object key → its content.
    """

    def __init__(self, store: Store, primed: Mapping[str, bytes] | None = None) -> None:
        super().__init__(store)
        self._primed = dict(primed or {})

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """The object at ``key``: from memory the first time if primed, else from the store."""
        if byte_range is None:
            value = self._primed.pop(key, None)
            if value is not None:
                return prototype.buffer.from_bytes(value)
        return await self._store.get(key, prototype, byte_range)
