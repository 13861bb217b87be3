"""Byte-range planning for remote ``.nii`` gathers (pure numpy, no server).

The plan is checked against properties stated independently of its code: it covers every
wanted byte, wastes nothing at range edges, never leaves a gap of at most ``max_gap`` between
two ranges unless merging them would pass ``max_block``, and fetches no byte twice.
"""

from __future__ import annotations

import numpy as np
import pytest

from lazyspheres.io.ranges import (
    RangePlan,
    gather_values,
    merge_ranges,
    split_ranges,
    voxel_runs,
)


def _random_voxels(rng, volume_voxels, n):
    # Clustered like sphere voxels (runs along x), plus isolated voxels.
    centres = rng.integers(0, volume_voxels, size=max(1, n // 8))
    runs = (centres[:, None] + np.arange(rng.integers(1, 9))[None, :]).ravel()
    singles = rng.integers(0, volume_voxels, size=n // 4)
    flat = np.concatenate([runs, singles])
    return flat[flat < volume_voxels]


def _wanted_bytes(flat, t0, t1, *, itemsize, volume_voxels, vox_offset):
    volume_bytes = volume_voxels * itemsize
    origins = vox_offset + np.arange(t0, t1) * volume_bytes
    firsts = (origins[:, None] + np.unique(flat)[None, :] * itemsize).ravel()
    return np.sort(firsts)  # first byte of every wanted value


@pytest.mark.parametrize("seed", range(40))
def test_voxel_runs_rebuild_the_index_set(seed):
    rng = np.random.default_rng(seed)
    flat = rng.integers(0, 500, size=rng.integers(0, 120))
    starts, stops = voxel_runs(flat)
    rebuilt = (
        np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
        if starts.size
        else np.zeros(0, dtype=np.int64)
    )
    np.testing.assert_array_equal(rebuilt, np.unique(flat))
    # Maximal runs: consecutive runs are separated by at least one missing index.
    assert np.all(starts[1:] > stops[:-1])


@pytest.mark.parametrize("seed", range(60))
def test_block_ranges_are_minimal_coalesced_and_bounded(seed):
    rng = np.random.default_rng(seed)
    itemsize = int(rng.choice([1, 2, 4, 8]))
    volume_voxels = int(rng.integers(50, 5000))
    vox_offset = int(rng.choice([352, 544, 353]))
    max_gap = int(rng.choice([0, itemsize, 64, 1000, 10**6]))
    max_block = int(rng.choice([itemsize * 3, 256, 4096, 10**7]))
    flat = _random_voxels(rng, volume_voxels, int(rng.integers(1, 200)))
    t0 = int(rng.integers(0, 5))
    t1 = t0 + int(rng.integers(1, 6))
    plan = RangePlan.from_voxels(
        flat,
        itemsize=itemsize,
        volume_voxels=volume_voxels,
        vox_offset=vox_offset,
        max_gap=max_gap,
        max_block=max_block,
    )
    starts, ends = plan.block(t0, t1)
    wanted = _wanted_bytes(
        flat, t0, t1, itemsize=itemsize, volume_voxels=volume_voxels, vox_offset=vox_offset
    )
    # Sorted, disjoint, bounded.
    assert np.all(ends > starts)
    assert np.all(starts[1:] >= ends[:-1])
    assert np.all(ends - starts <= max(max_block, itemsize))
    # Every wanted value lies entirely inside one range.
    where = np.searchsorted(starts, wanted, side="right") - 1
    assert np.all(where >= 0)
    assert np.all(wanted + itemsize <= ends[where])
    # No waste at the edges: each range starts at a wanted value and ends right after one.
    assert set(starts.tolist()) <= set(wanted.tolist())
    assert set((ends - itemsize).tolist()) <= set(wanted.tolist())
    # Inside a range, wanted values are never more than max_gap bytes apart.
    for r in range(starts.size):
        inside = wanted[where == r]
        assert np.all(np.diff(inside) - itemsize <= max_gap)
    # Greedy coalescing: neighbours closer than max_gap stay apart only for max_block.
    close = starts[1:] - ends[:-1] <= max_gap
    assert np.all(ends[1:][close] - starts[:-1][close] > max_block)


def test_one_volume_of_sphere_voxels_is_few_requests():
    # A 91x109x91 float32 grid and a radius-5 mm sphere (2 mm voxels): 81 voxels in
    # ~25 x-runs spread over 5 slices, 40 KB apart: one request per volume with a gap
    # allowance above a slice, one per x-run with no allowance.
    shape = (91, 109, 91)
    i, j, k = np.meshgrid(*(np.arange(-2, 3),) * 3, indexing="ij")
    inside = i**2 + j**2 + k**2 <= 6.25
    voxels = np.stack([i[inside] + 45, j[inside] + 54, k[inside] + 45])
    flat = np.ravel_multi_index(tuple(voxels), shape, order="F")
    runs = voxel_runs(flat)[0].size
    options = {"itemsize": 4, "volume_voxels": int(np.prod(shape)), "vox_offset": 352}
    coarse = RangePlan.from_voxels(flat, max_gap=2**20, max_block=8 * 2**20, **options)
    fine = RangePlan.from_voxels(flat, max_gap=0, max_block=8 * 2**20, **options)
    assert coarse.volume_starts.size == 1
    assert fine.volume_starts.size == runs
    # Fetched bytes: a few slices of the volume, not the volume.
    assert coarse.bytes_per_volume < 0.1 * shape[0] * shape[1] * shape[2] * 4


@pytest.mark.parametrize("seed", range(20))
def test_gather_values_picks_the_right_values(seed):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(rng.choice(["<f4", ">f4", "<i2", "<f8", "u1"]))
    volume_voxels, n_volumes = 300, 4
    vox_offset = int(rng.choice([352, 353, 1031]))  # odd offsets: buffers start off-grid
    data = rng.integers(0, 120, size=(n_volumes, volume_voxels)).astype(dtype)
    blob = b"\0" * vox_offset + data.tobytes()
    flat = rng.permutation(volume_voxels)[: rng.integers(1, 60)]
    plan = RangePlan.from_voxels(
        flat,
        itemsize=dtype.itemsize,
        volume_voxels=volume_voxels,
        vox_offset=vox_offset,
        max_gap=int(rng.choice([0, 16, 400])),
        max_block=int(rng.choice([64, 1024, 10**6])),
    )
    starts, ends = plan.block(1, 3)
    buffers = [blob[a:b] for a, b in zip(starts, ends, strict=True)]
    positions = (
        vox_offset
        + np.arange(1, 3)[:, None] * volume_voxels * dtype.itemsize
        + flat[None, :] * dtype.itemsize
    )
    values = gather_values(buffers, starts, positions, dtype)
    np.testing.assert_array_equal(values, data[1:3][:, flat])
    assert values.dtype == dtype


def test_gather_values_refuses_positions_outside_the_ranges():
    with pytest.raises(ValueError, match="outside the fetched byte ranges"):
        gather_values([b"abcd"], np.array([100]), np.array([[104]]), np.dtype("u1"))
    with pytest.raises(ValueError, match="whole number of items"):
        gather_values([b"abcdefgh"], np.array([100]), np.array([[102]]), np.dtype("<i4"))


def test_split_and_merge_tile_exactly():
    starts, ends = split_ranges(np.array([0, 100]), np.array([25, 101]), 10)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == [
        (0, 10),
        (10, 20),
        (20, 25),
        (100, 101),
    ]
    merged = merge_ranges(starts, ends, max_gap=0)
    assert list(zip(*(m.tolist() for m in merged), strict=True)) == [(0, 25), (100, 101)]


def test_bad_plan_parameters():
    with pytest.raises(ValueError, match="max_block"):
        RangePlan.from_voxels(
            np.array([1]), itemsize=4, volume_voxels=10, vox_offset=0, max_gap=0, max_block=2
        )
    with pytest.raises(IndexError, match="outside a volume"):
        RangePlan.from_voxels(
            np.array([10]), itemsize=4, volume_voxels=10, vox_offset=0, max_gap=0, max_block=64
        )
