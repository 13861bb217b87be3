"""``connectome`` with several runs per task: the partition, and nilearn's numbers across it.

The differential cases of ``test_connectome_nilearn.py`` have at most 5 runs, one per task;
here 37 runs make groups of 2-3 runs (at least 16 tasks), so a run's place inside its group
and the group mean's sum over groups are checked against nilearn 0.12.1 (rtol 1e-6,
atol 1e-12 for entries near 0, as there).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import xarray as xr

import lazyspheres as ls
from lazyspheres.connectivity.connectome import (
    MAX_RUNS_PER_TASK,
    MIN_TASKS,
    TASKS_PER_THREAD,
    partition,
)

N_RUNS = 37


@pytest.mark.parametrize("threads", [1, 2, 8, 64])
def test_partition_covers_every_run_in_near_equal_groups(threads):
    for n_runs in range(1, 400):
        groups = partition(n_runs, threads)
        starts, stops = zip(*groups, strict=True)
        assert starts[0] == 0
        assert stops[-1] == n_runs
        assert list(starts[1:]) == list(stops[:-1])
        sizes = [stop - start for start, stop in groups]
        assert min(sizes) >= 1
        assert max(sizes) - min(sizes) <= 1
        assert max(sizes) <= MAX_RUNS_PER_TASK
        wanted = max(MIN_TASKS, TASKS_PER_THREAD * threads, math.ceil(n_runs / MAX_RUNS_PER_TASK))
        assert len(groups) == min(n_runs, wanted)


def test_one_worker_and_two_get_the_same_groups():
    # the benchmark's 1-worker baseline runs the same graph as the 2-worker cluster
    assert partition(100, 1) == partition(100, 2)


def _runs(rng, equal: bool) -> list[np.ndarray]:
    mixing = rng.standard_normal((6, 6)) + 2 * np.eye(6)
    lengths = [60] * N_RUNS if equal else rng.integers(40, 80, size=N_RUNS).tolist()
    return [rng.standard_normal((int(t), 6)) @ mixing for t in lengths]


def _store_like(runs: list[np.ndarray]) -> xr.Dataset:
    padded = np.full((len(runs), max(r.shape[0] for r in runs) + 2, 6), np.nan)
    for index, run in enumerate(runs):
        padded[index, : run.shape[0]] = run
    return xr.Dataset(
        {
            "signals": (("run", "time", "seed"), padded),
            "n_volumes": ("run", np.array([r.shape[0] for r in runs])),
        },
        coords={"run": [f"sub-{i:02d}" for i in range(len(runs))]},
    ).chunk({"run": 1})


@pytest.mark.parametrize("kind", ["correlation", "tangent", "partial correlation"])
@pytest.mark.parametrize("form", ["list", "array3d", "dataset"])
def test_grouped_runs_equal_nilearn(rng, kind, form):
    from nilearn.connectome import ConnectivityMeasure

    runs = _runs(rng, equal=form == "array3d")
    signals = runs
    if form == "array3d":
        signals = np.stack(runs)
    elif form == "dataset":
        signals = _store_like(runs)
    result = ls.connectome(signals, kind)
    measure = ConnectivityMeasure(kind=kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = measure.fit_transform(runs)
    assert len(result.chunks[0]) >= MIN_TASKS  # several runs per task, several tasks
    assert max(result.chunks[0]) > 1
    np.testing.assert_allclose(result.values, expected, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(result["group_mean"].values, measure.mean_, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("chunks", [(1, None), (4, None), (1, 20)])
def test_store_path_is_one_task_per_group(tmp_path, rng, chunks):
    # one run per chunk (extract_many's layout), several runs per chunk (read across group
    # edges), and time split into chunks (read through zarr instead of the chunk files)
    from nilearn.connectome import ConnectivityMeasure

    from lazyspheres.batch.store import STORE_FORMAT

    runs = _runs(rng, equal=False)
    dataset = _store_like(runs)
    dataset.attrs.update(store_format=STORE_FORMAT, complete=True)
    n_time, n_seeds = dataset["signals"].shape[1:]
    layout = (chunks[0], chunks[1] or n_time, n_seeds)
    dataset = dataset.chunk(dict(zip(("run", "time", "seed"), layout, strict=True)))
    encoding = {"signals": {"chunks": layout}}
    dataset.to_zarr(tmp_path / "results.zarr", zarr_format=3, encoding=encoding)
    result = ls.connectome(tmp_path / "results.zarr", "correlation")
    groups = len(result.chunks[0])
    assert groups >= MIN_TASKS
    # each group's task reads its runs itself: no read, count or id task besides it
    assert len(dict(result.data.__dask_graph__())) == groups
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = ConnectivityMeasure(kind="correlation").fit_transform(runs)
    np.testing.assert_allclose(result.values, expected, rtol=1e-6, atol=1e-12)
