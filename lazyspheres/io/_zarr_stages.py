"""The two stages of :func:`lazyspheres.to_zarr_image`, in bounded memory.

Stage 1 streams the run once and appends each block of volumes, cut into the output's
spatial blocks, to one raw file per block. Stage 2 reads each block file whole, transposes
it to ``(i, j, k, time)`` and writes it as its output chunk(s). See
:mod:`lazyspheres.io.zarr_image` for why.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from lazyspheres.io.reader import NiftiFile

if TYPE_CHECKING:
    import zarr

__all__ = ["boxes", "stage_blocks", "write_blocks"]


def boxes(spatial: tuple[int, ...], edges: tuple[int, ...]) -> list[tuple[slice, ...]]:
    starts = [range(0, n, c) for n, c in zip(spatial, edges, strict=True)]
    return [
        tuple(slice(a, min(a + c, n)) for a, c, n in zip(corner, edges, spatial, strict=True))
        for corner in itertools.product(*starts)
    ]


def _volume_blocks(
    source: NiftiFile | xr.DataArray, shape: tuple[int, ...]
) -> Iterator[np.ndarray]:
    """Blocks of volumes as ``(b, Z, Y, X)`` arrays (NIfTI order), raw values."""
    x, y, z = shape[:3]
    if isinstance(source, NiftiFile):
        for _, block in source.iter_volume_blocks():
            yield block.reshape(-1, z, y, x)
        return
    data = source.transpose("i", "j", "k", *(["time"] if "time" in source.dims else []))
    n_volumes = shape[3] if len(shape) == 4 else 1
    step = max(1, (32 * 2**20) // max(1, x * y * z * data.dtype.itemsize))
    for t0 in range(0, n_volumes, step):
        part = data.isel(time=slice(t0, t0 + step)) if data.ndim == 4 else data
        values = np.asarray(part.values)
        values = values[..., None] if values.ndim == 3 else values
        yield values.transpose(3, 2, 1, 0)


def stage_blocks(
    source: NiftiFile | xr.DataArray,
    shape: tuple[int, ...],
    blocks: list[tuple[slice, ...]],
    folder: str,
) -> None:
    """Stage 1: stream volumes once, appending each spatial block's slab to its raw file."""
    slabs: queue.Queue[np.ndarray | None] = queue.Queue(
        maxsize=1
    )  # one block being read, one being written
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            while (slab := slabs.get()) is not None:
                for index, (i, j, k) in enumerate(blocks):
                    with open(os.path.join(folder, str(index)), "ab") as handle:
                        handle.write(np.ascontiguousarray(slab[:, k, j, i]).data)
        except BaseException as error:  # re-raised in the reading thread
            failure.append(error)
            with contextlib.suppress(queue.Empty):
                while True:  # unblock the reader
                    slabs.get_nowait()

    thread = threading.Thread(target=writer, name="lazyspheres-zarr-stage", daemon=True)
    thread.start()
    try:
        for slab in _volume_blocks(source, shape):
            if failure:
                break
            slabs.put(slab)
    finally:
        slabs.put(None)
        thread.join()
    if failure:
        raise failure[0]


def write_blocks(
    array: zarr.Array,
    shape: tuple[int, ...],
    dtype: np.dtype,
    blocks: list[tuple[slice, ...]],
    folder: str,
    threads: int | None,
) -> None:
    """Stage 2: each block file, read whole and transposed, becomes its output chunk(s)."""
    n_volumes = shape[3] if len(shape) == 4 else 1

    def write(item: tuple[int, tuple[slice, slice, slice]]) -> None:
        index, (i, j, k) = item
        path = os.path.join(folder, str(index))
        sizes = (n_volumes, k.stop - k.start, j.stop - j.start, i.stop - i.start)
        values = np.fromfile(path, dtype=dtype).reshape(sizes).transpose(3, 2, 1, 0)
        array[(i, j, k) if len(shape) == 3 else (i, j, k, slice(None))] = (
            values[..., 0] if len(shape) == 3 else values
        )
        os.unlink(path)

    workers = threads or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(write, enumerate(blocks)):
            pass
