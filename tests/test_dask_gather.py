"""gather_voxels: a few voxels' time series from a chunked Dask image, chunk by chunk."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from conftest import CountingArray
from hypothesis import given, settings
from hypothesis import strategies as st

from lazyspheres.dask_gather import VoxelGroups, gather_voxels
from lazyspheres.testing import raise_if_dask_computes


def _split(total: int, draw) -> tuple[int, ...]:
    """Irregular chunk sizes summing to ``total``."""
    sizes, left = [], total
    while left:
        size = draw(st.integers(1, left))
        sizes.append(size)
        left -= size
    return tuple(sizes)


@st.composite
def chunked_images(draw):
    ndim = draw(st.sampled_from([3, 4]))
    shape = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    chunks = tuple(_split(n, draw) for n in shape)
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int16, np.uint8]))
    seed = draw(st.integers(0, 2**16))
    values = np.random.default_rng(seed).integers(0, 100, size=shape).astype(dtype)
    n_voxels = draw(st.integers(0, 25))
    voxels = np.stack(
        [np.random.default_rng(seed + 1).integers(0, n, size=n_voxels) for n in shape[:3]],
        axis=1,
    ).reshape(-1, 3)
    return values, chunks, voxels


@settings(max_examples=150, deadline=None)
@given(chunked_images())
def test_equals_numpy_fancy_indexing(case):
    values, chunks, voxels = case
    data = da.from_array(values, chunks=chunks)
    gathered = gather_voxels(data, voxels)
    expected = values[voxels[:, 0], voxels[:, 1], voxels[:, 2]]
    assert gathered.dtype == values.dtype
    assert gathered.shape == expected.shape
    if values.ndim == 4:
        assert gathered.chunks[1] == chunks[3]  # the image's time chunks are kept
    result = gathered.compute(scheduler="synchronous")
    assert result.dtype == values.dtype
    np.testing.assert_array_equal(result, expected)


def test_reads_only_the_chunks_holding_voxels_once_each():
    values = np.arange(20 * 20 * 20 * 6, dtype=np.float32).reshape(20, 20, 20, 6)
    source = CountingArray(values)
    data = da.from_array(source, chunks=(5, 5, 5, 3), meta=np.empty((0,) * 4, values.dtype))
    voxels = np.array([[0, 0, 0], [1, 2, 3], [4, 4, 4], [12, 7, 19], [12, 8, 19]])
    with raise_if_dask_computes():
        gathered = gather_voxels(data, voxels)  # building reads nothing
    assert source.reads == []
    result = gathered.compute(scheduler="threads")
    np.testing.assert_array_equal(result, values[tuple(voxels.T)])
    # blocks (0,0,0) and (2,1,3), each for both time chunks, and nothing else
    expected = {
        ((0, 5), (0, 5), (0, 5), (0, 3)),
        ((0, 5), (0, 5), (0, 5), (3, 6)),
        ((10, 15), (5, 10), (15, 20), (0, 3)),
        ((10, 15), (5, 10), (15, 20), (3, 6)),
    }
    assert sorted(source.reads) == sorted(expected)


def test_voxel_groups_cover_every_voxel_once():
    voxels = np.array([[9, 0, 3], [0, 0, 0], [3, 3, 1], [9, 1, 2], [0, 0, 2]])
    groups = VoxelGroups(voxels, ((4, 6), (4,), (2, 2)))
    rows = np.sort(np.concatenate(groups.positions))
    np.testing.assert_array_equal(rows, np.arange(len(voxels)))
    for block, positions, local in zip(groups.blocks, groups.positions, groups.local, strict=True):
        corner = np.array([(0, 4)[block[0]], 0, (0, 2)[block[2]]])
        np.testing.assert_array_equal(voxels[positions] - corner, local)
    assert sorted(groups.blocks) == [(0, 0, 0), (0, 0, 1), (1, 0, 1)]


def test_errors_name_the_problem():
    data = da.zeros((4, 4, 4, 2), chunks=2)
    with pytest.raises(IndexError, match="out of bounds on axis 2: the image has 4 voxels"):
        gather_voxels(data, np.array([[0, 0, 4]]))
    with pytest.raises(ValueError, match=r"expected an \(i, j, k\[, time\]\) array; got 2"):
        gather_voxels(da.zeros((4, 4)), np.array([[0, 0, 0]]))


def test_graph_is_small_and_deterministic():
    data = da.zeros((32, 32, 32, 10), chunks=(8, 8, 8, 5))
    voxels = np.array([[1, 1, 1], [30, 30, 30]])
    first, second = gather_voxels(data, voxels), gather_voxels(data, voxels)
    assert first.name == second.name  # same inputs, same keys: dask can share the work
    culled = dask.optimize(first)[0].__dask_graph__()
    # 2 chunks × 2 time chunks read, 4 pieces, 2 assembled blocks (plus the concatenation)
    assert len(dict(culled)) <= 2 * 2 + 4 + 2 + 2
