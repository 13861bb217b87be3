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
- :func:`root_group` makes the group and every array from the root ``zarr.json`` alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = [
    "ROOT",
    "get_json",
    "list_top",
    "put_objects",
    "root_group",
    "run_concurrently",
    "template_objects",
    "zarr_store",
]

ROOT = "zarr.json"
_CONCURRENCY = 16


def zarr_store(store: Any, storage_options: dict[str, Any] | None, *, read_only: bool) -> Any:
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
    return FsspecStore.from_url(text, storage_options=options, read_only=read_only)


def _sync(coroutine: Any) -> Any:
    from zarr.core.sync import sync

    return sync(coroutine)


def get_json(zstore: Any, key: str) -> dict[str, Any] | None:
    """The JSON object at ``key`` (one GET), or None if there is none."""
    from zarr.core.buffer import default_buffer_prototype

    try:
        buffer = _sync(zstore.get(key, default_buffer_prototype()))
    except FileNotFoundError:  # a local store whose folder does not exist
        return None
    return None if buffer is None else json.loads(buffer.to_bytes())


def list_top(zstore: Any) -> list[str]:
    """Names directly below the store's root (one listing)."""

    async def names() -> list[str]:
        return [name async for name in zstore.list_dir("")]

    try:
        return _sync(names())
    except FileNotFoundError:
        return []


def template_objects(dataset: Any, encoding: dict[str, Any]) -> dict[str, Any]:
    """Every object ``dataset.to_zarr(compute=False)`` writes, rendered in memory.

    Dask-backed variables are not written (their chunks read as the fill value); the
    root ``zarr.json`` holds the consolidated metadata of all arrays.
    """
    import warnings

    from zarr.storage import MemoryStore

    memory: dict[str, Any] = {}
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not in the v3 spec; plain xr.open_zarr
        # reads it, and without it every open lists and reads each array's metadata.
        warnings.filterwarnings("ignore", message="Consolidated metadata", module="zarr")
        dataset.to_zarr(
            MemoryStore(memory), compute=False, consolidated=True, zarr_format=3,
            encoding=encoding,
        )  # fmt: skip
    return memory


def put_objects(zstore: Any, objects: Mapping[str, Any]) -> None:
    """Write ``objects`` (key → zarr Buffer) concurrently, the root ``zarr.json`` last.

    The root is written once the rest is there, so a template cut short has no root and
    never opens as a store.
    """
    import asyncio

    rest = {key: value for key, value in objects.items() if key != ROOT}

    async def write() -> None:
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def one(key: str, value: Any) -> None:
            async with limit:
                await zstore.set(key, value)

        await asyncio.gather(*(one(key, value) for key, value in rest.items()))
        if ROOT in objects:
            await zstore.set(ROOT, objects[ROOT])

    _sync(write())


def root_group(zstore: Any, root: dict[str, Any]) -> Any:
    """The group whose root ``zarr.json`` is ``root``, bound to ``zstore`` (no request).

    With consolidated metadata in ``root``, its arrays come from it too, so reading or
    writing a chunk is the one request for that chunk.
    """
    import zarr
    from zarr.core.group import GroupMetadata
    from zarr.storage import StorePath

    return zarr.Group(zarr.AsyncGroup(GroupMetadata.from_dict(root), StorePath(zstore)))


def run_concurrently(calls: Iterable[Callable[[], Any]]) -> list[Any]:
    """Run blocking store calls (each one request or a few) side by side; their results."""
    calls = list(calls)
    if len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(min(len(calls), _CONCURRENCY)) as pool:
        return list(pool.map(lambda call: call(), calls))
