"""The two passes of high-variance confounds over each kind of image storage.

* ``.nii.gz`` (and any non-local or compressed file): one Dask task, because a DEFLATE
  stream can only be read front to back. It inflates the file twice: once for the voxel
  moments, once for the kept voxels' values (kept in a :class:`~.store.RowStore`, which
  spills to a temporary file beyond its budget). Two inflates is the minimum: which voxels
  are kept depends on every voxel's variance over the whole run.
* local ``.nii``: a graph. Pass 1 is split in time blocks read by memory map (partial
  moments are added), pass 2 in chunks of kept voxels, taken in file order so that each
  chunk reads one contiguous byte range per volume, each giving a partial ``S Sᵀ``.
* any other Dask array: per-chunk moments summed over time chunks, then per spatial chunk
  the kept voxels' detrended series and their ``S Sᵀ``.
* NumPy: the same steps eagerly.

Memory is bounded by the stream block, the row store's budget and ``T × T`` (the matrix
nilearn decomposes), not by the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict, TypeVar

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from lazyspheres.high_variance.moments import (
    SelectedSeries,
    VoxelMoments,
    confounds_from_gram,
    gram_of_blocks,
    gram_of_chunks,
    percentile_threshold,
    select_voxels,
)
from lazyspheres.high_variance.store import RowStore
from lazyspheres.io.reader import NiftiFile
from lazyspheres.io.readers.nifti import MemmapReader

if TYPE_CHECKING:
    from dask.delayed import Delayed
    from dask.typing import Key

__all__ = ["confounds_from_dask", "confounds_from_file", "confounds_from_numpy"]

# Float64 bytes of detrended rows handled at once when forming S Sᵀ (per block, per chunk).
GRAM_BLOCK_BYTES = 16 * 2**20
# Time blocks of pass 1 over a local uncompressed file (parallel tasks), and the bytes of
# volumes each task copies out of the memory map at a time.
_LOCAL_TIME_BLOCKS = 4
_LOCAL_BLOCK_BYTES = 8 * 2**20


_Summable = TypeVar("_Summable", VoxelMoments, np.ndarray)

# What ``dask.array.map_blocks`` passes a kernel as ``block_info[n]`` (its keys have dashes).
_BlockInfo = TypedDict(
    "_BlockInfo",
    {
        "shape": tuple[int, ...],
        "num-chunks": tuple[int, ...],
        "chunk-location": tuple[int, ...],
        "array-location": list[tuple[int, int]],
        "chunk-shape": tuple[int, ...],
        "dtype": np.dtype,
    },
    total=False,
)


class Settings:
    """The parameters every task needs (small, picklable)."""

    def __init__(
        self, n_confounds: int, percentile: float, detrend: bool, dtype: np.dtype
    ) -> None:
        self.n_confounds = int(n_confounds)
        self.percentile = float(percentile)
        self.detrend = bool(detrend)
        self.dtype = np.dtype(dtype)

    def __reduce__(self) -> tuple[type[Settings], tuple[int, float, bool, np.dtype]]:
        return (Settings, (self.n_confounds, self.percentile, self.detrend, self.dtype))


def _n_out(n_volumes: int, settings: Settings) -> int:
    return min(settings.n_confounds, n_volumes)


# ------------------------------------------------------------------------------ files
def confounds_from_file(nifti: NiftiFile, settings: Settings) -> da.Array:
    """Lazy ``(T, n)`` confounds of a 4D NIfTI file."""
    n_volumes = nifti.layout.n_volumes
    shape = (n_volumes, _n_out(n_volumes, settings))
    if isinstance(nifti.reader, MemmapReader):  # the storage kind, as the reader tells it
        task = _memmap_graph(nifti, settings)
    else:
        task = dask.delayed(_stream_confounds, pure=True)(nifti, settings)
    return da.from_delayed(task, shape=shape, dtype=settings.dtype)


def _scale_of(nifti: NiftiFile) -> Callable[[np.ndarray], np.ndarray] | None:
    layout = nifti.layout
    return layout.scale if layout.is_scaled else None


def _scaled(values: np.ndarray, scale: Callable | None) -> np.ndarray:
    return values if scale is None else scale(values)


def _stream_confounds(nifti: NiftiFile, settings: Settings) -> np.ndarray:
    """Both passes over one sequential stream (two inflates of a gzip file)."""
    n_volumes = nifti.layout.n_volumes
    scale = _scale_of(nifti)
    moments: VoxelMoments | None = None
    for t0, block in nifti.iter_volume_blocks():
        if moments is None:
            first = _scaled(block[0], scale)
            moments = VoxelMoments.start(first, n_volumes, settings.detrend)
        moments.update(t0, block, scale)
    if moments is None:
        raise ValueError(f"{nifti.source.location}: the image has no volumes.")
    keep = select_voxels(moments.mean_square(), settings.percentile)
    series = moments.selected(keep)
    del moments
    flat = np.flatnonzero(keep)  # block columns are Fortran-order flat voxel indices
    if flat.size == 0:
        return confounds_from_gram(
            np.zeros((n_volumes, n_volumes)), settings.n_confounds, settings.dtype
        )
    with RowStore(flat.size, nifti.layout.raw_dtype) as store:
        for _, values in nifti.iter_gathered(flat):
            store.append(values)
        rows = max(1, GRAM_BLOCK_BYTES // (8 * flat.size))
        bounds = [(a, min(n_volumes, a + rows)) for a in range(0, n_volumes, rows)]

        def load(block: int) -> np.ndarray:
            start, stop = bounds[block]
            return series.detrended(start, _scaled(store.rows(start, stop), scale))

        gram = gram_of_blocks(len(bounds), load, n_volumes)
    return confounds_from_gram(gram, settings.n_confounds, settings.dtype)


def _memmap_graph(nifti: NiftiFile, settings: Settings) -> Delayed:
    """Delayed confounds of a local uncompressed file: blockwise passes."""
    n_volumes = nifti.layout.n_volumes
    offset = dask.delayed(_first_volume, pure=True)(nifti)
    step = max(1, math.ceil(n_volumes / _LOCAL_TIME_BLOCKS))
    partials = [
        dask.delayed(_moments_of_volumes, pure=True)(
            nifti, offset, start, min(n_volumes, start + step), settings.detrend
        )
        for start in range(0, n_volumes, step)
    ]
    moments = _tree_sum(partials)
    selection = dask.delayed(_selection, pure=True, nout=2)(moments, settings.percentile)
    flat, series = selection
    # Kept voxels are at most ~percentile % of the voxels; split them so that one chunk's
    # (T, n) float64 series stays within GRAM_BLOCK_BYTES.
    bound = math.ceil(nifti.layout.volume_voxels * settings.percentile / 100.0) + 1
    per_chunk = max(1, GRAM_BLOCK_BYTES // (8 * n_volumes))
    n_chunks = max(1, math.ceil(bound / per_chunk))
    grams = [
        dask.delayed(_gram_of_kept_chunk, pure=True)(nifti, flat, series, chunk, n_chunks)
        for chunk in range(n_chunks)
    ]
    gram = _tree_sum(grams)
    return dask.delayed(confounds_from_gram, pure=True)(gram, settings.n_confounds, settings.dtype)


def _first_volume(nifti: NiftiFile) -> np.ndarray:
    _, block = next(nifti.iter_volume_blocks(0, 1))
    return _scaled(block[0], _scale_of(nifti)).astype(np.float64)


def _moments_of_volumes(
    nifti: NiftiFile, offset: np.ndarray, start: int, stop: int, detrend: bool
) -> VoxelMoments:
    moments = VoxelMoments.start(offset, nifti.layout.n_volumes, detrend)
    scale = _scale_of(nifti)
    # small blocks: several of these tasks run at once, each holding a block copy
    for t0, block in nifti.iter_volume_blocks(start, stop, block_bytes=_LOCAL_BLOCK_BYTES):
        moments.update(t0, block, scale)
    return moments


def _selection(moments: VoxelMoments, percentile: float) -> tuple[np.ndarray, SelectedSeries]:
    keep = select_voxels(moments.mean_square(), percentile)
    return np.flatnonzero(keep), moments.selected(keep)


def _gram_of_kept_chunk(
    nifti: NiftiFile, flat: np.ndarray, series: SelectedSeries, chunk: int, n_chunks: int
) -> np.ndarray:
    n_volumes = nifti.layout.n_volumes
    bounds = np.linspace(0, flat.size, n_chunks + 1).astype(np.int64)
    columns = slice(int(bounds[chunk]), int(bounds[chunk + 1]))
    indices = flat[columns]
    if indices.size == 0:
        return np.zeros((n_volumes, n_volumes))
    scale = _scale_of(nifti)
    detrended = np.empty((n_volumes, indices.size))
    for t0, values in nifti.iter_gathered(indices):
        rows = slice(t0, t0 + values.shape[0])
        detrended[rows] = series.detrended(t0, _scaled(values, scale), columns)
    return gram_of_chunks([detrended], n_volumes)


def _tree_sum(items: list[Delayed], fan_in: int = 2) -> Delayed:
    """Sum delayed values in a shallow tree (bounded fan-in, few partials alive at once)."""
    while len(items) > 1:
        items = [
            dask.delayed(_sum, pure=True)(*items[i : i + fan_in])
            for i in range(0, len(items), fan_in)
        ]
    return items[0]


def _sum(*parts: _Summable) -> _Summable:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


# ------------------------------------------------------------------------------ dask arrays
def confounds_from_dask(data: da.Array, settings: Settings) -> da.Array:
    """Lazy ``(T, n)`` confounds of a Dask ``(X, Y, Z, T)`` array.

    Pass 1 maps the image's own chunks to per-voxel moments, summed over time chunks. Pass 2
    reads a copy of the image graph under new keys (:func:`reread_copy`), rechunked to the
    whole run per block of at most :data:`GRAM_BLOCK_BYTES`, and maps each block to the
    ``S Sᵀ`` of its kept voxels; those are summed.
    """
    n_volumes = data.shape[3]
    time_chunks = data.chunks[3]
    offset = data[..., 0].astype(np.float64)  # first volume, data's spatial chunks
    if not settings.detrend:
        offset = da.zeros_like(offset)
    moments = da.map_blocks(
        _chunk_moments,
        data,
        offset[..., None],
        n_volumes=n_volumes,
        detrend=settings.detrend,
        dtype=np.float64,
        chunks=(*data.chunks[:3], (3,) * len(time_chunks)),
    )  # per time chunk: Σy, Σy², Σ(t - t̄)y
    parts = [moments[..., 3 * a : 3 * a + 3] for a in range(len(time_chunks))]
    sums = da.stack(parts).sum(axis=0) if len(parts) > 1 else parts[0]
    mean_square = sums.map_blocks(
        _chunk_mean_square,
        n_volumes=n_volumes,
        detrend=settings.detrend,
        drop_axis=3,
        dtype=np.float64,
    )
    # One task sees every voxel (V float64 values). Kept in array land (not a Delayed), so
    # Dask optimises one graph and computes each image chunk once per pass.
    threshold = mean_square.rechunk(-1).map_blocks(
        _threshold_of_block,
        settings.percentile,
        drop_axis=(0, 1, 2),
        chunks=(),
        dtype=np.float64,
    )
    voxels_per_block = max(1, GRAM_BLOCK_BYTES // (8 * n_volumes))
    spatial = _spatial_chunks(data.shape[:3], voxels_per_block)
    again = reread_copy(data).rechunk((*spatial, (n_volumes,)))
    per_block = da.map_blocks(
        _block_gram,
        again,
        offset.rechunk(spatial)[..., None],
        sums.rechunk((*spatial, (3,))),
        mean_square.rechunk(spatial)[..., None],
        threshold,
        detrend=settings.detrend,
        new_axis=4,
        chunks=(*(((1,) * len(c)) for c in spatial), (n_volumes,), (n_volumes,)),
        dtype=np.float64,
    )  # (blocks_i, blocks_j, blocks_k, T, T)
    gram = per_block.sum(axis=(0, 1, 2), split_every=2)
    return gram.map_blocks(
        confounds_from_gram,
        settings.n_confounds,
        settings.dtype,
        chunks=((n_volumes,), (_n_out(n_volumes, settings),)),
        dtype=settings.dtype,
    )


def reread_copy(data: da.Array) -> da.Array:
    """The same array computed by an independent copy of its graph (all keys renamed).

    Pass 2 must read the image again: if it used pass 1's keys, Dask would keep every image
    chunk in memory from pass 1 until the threshold (which needs all of pass 1) is known.
    ``dask.graph_manipulation.clone`` does this too but fails on some graphs (those with
    ``x[..., None]`` layers, dask 2026.8), so the low-level graph is copied here. If the
    graph cannot be copied (a future Dask), the keys are shared: same numbers, more memory.
    """
    try:
        from dask._task_spec import convert_legacy_graph

        graph = convert_legacy_graph(dict(data.__dask_graph__()))
        suffix = f"-reread-{tokenize(data, 'reread')}"

        def rename(key: Key) -> Key:
            return (f"{key[0]}{suffix}", *key[1:]) if isinstance(key, tuple) else f"{key}{suffix}"

        copied = {
            rename(key): node.substitute(
                {d: rename(d) for d in node.dependencies}, key=rename(key)
            )
            for key, node in graph.items()
        }
    except Exception:  # pragma: no cover - depends on Dask internals
        return data
    name = f"{data.name}{suffix}"  # (rename of a plain key)
    layers = HighLevelGraph.from_collections(name, copied, dependencies=())
    return da.Array(layers, name, data.chunks, meta=data._meta)


def _spatial_chunks(shape: tuple[int, ...], voxels: int) -> tuple[tuple[int, ...], ...]:
    """Chunks of a 3D grid with at most ``voxels`` voxels per block: k slabs, then j rows."""
    x, y, z = (int(n) for n in shape)
    if x * y <= voxels:
        block = (x, y, min(z, voxels // (x * y)))
    elif x <= voxels:
        block = (x, voxels // x, 1)
    else:
        block = (voxels, 1, 1)
    return da.core.normalize_chunks(block, shape=(x, y, z))


def _threshold_of_block(mean_square: np.ndarray, percentile: float) -> np.ndarray:
    return np.array(percentile_threshold(mean_square, percentile))


def _chunk_moments(
    block: np.ndarray,
    offset: np.ndarray,
    *,
    n_volumes: int,
    detrend: bool,
    block_info: dict[int | None, _BlockInfo] | None = None,
) -> np.ndarray:
    if block_info is None:  # pragma: no cover - dask.array.map_blocks always passes it
        raise TypeError("_chunk_moments is a map_blocks kernel: it needs block_info.")
    t0 = block_info[0]["array-location"][3][0]
    moments = VoxelMoments.start(offset.reshape(-1), n_volumes, detrend)
    moments.update(t0, block.reshape(-1, block.shape[3]).T)
    stacked = np.stack([moments.sum, moments.sum_sq, moments.sum_t], axis=1)
    return stacked.reshape(*block.shape[:3], 3)


def _moments_of(
    offset: np.ndarray, sums: np.ndarray, n_volumes: int, detrend: bool
) -> VoxelMoments:
    flat = sums.reshape(-1, 3)
    return VoxelMoments(n_volumes, detrend, offset.reshape(-1), flat[:, 0], flat[:, 1], flat[:, 2])


def _chunk_mean_square(sums: np.ndarray, *, n_volumes: int, detrend: bool) -> np.ndarray:
    moments = _moments_of(np.zeros(sums.shape[:3]), sums, n_volumes, detrend)
    return moments.mean_square().reshape(sums.shape[:3])


def _block_gram(
    block: np.ndarray,
    offset: np.ndarray,
    sums: np.ndarray,
    mean_square: np.ndarray,
    threshold: np.ndarray,
    *,
    detrend: bool,
) -> np.ndarray:
    n_volumes = block.shape[3]
    keep = (mean_square > threshold).reshape(-1)  # NaN threshold: nothing kept
    series = _moments_of(offset, sums, n_volumes, detrend).selected(keep)
    kept = block.reshape(-1, n_volumes)[keep].T  # (T, n kept in this block)
    gram = gram_of_chunks([series.detrended(0, kept)], n_volumes)
    return gram[None, None, None]


# ------------------------------------------------------------------------------ numpy
def confounds_from_numpy(data: np.ndarray, settings: Settings) -> np.ndarray:
    """``(T, n)`` confounds of an in-memory ``(X, Y, Z, T)`` array, computed now.

    The Dask algorithm on slabs of ~:data:`GRAM_BLOCK_BYTES` (float64) spanning the whole
    run, run synchronously: temporaries stay slab-sized.
    """
    _, y, z, n_volumes = data.shape
    slab = max(1, GRAM_BLOCK_BYTES // (8 * y * z * n_volumes))
    lazy = da.from_array(data, chunks=(slab, y, z, n_volumes))
    return confounds_from_dask(lazy, settings).compute(scheduler="synchronous")
