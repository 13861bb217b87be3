"""extract_many on a real distributed.LocalCluster (2 worker processes, 1 thread each).

Kept to one cluster for the module and few batches: the suite runs on 2 cores.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
import traceback

import cloudpickle
import dask
import numpy as np
import pytest
import xarray as xr
from batch_helpers import chunk_mtimes, run_affine, world_seeds, write_runs
from distributed import Client, LocalCluster, WorkerPlugin

import lazyspheres as ls
from lazyspheres.batch import BatchError, open_results
from lazyspheres.cli import main

# The fault-injection plugin below must reach the worker processes by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

CLEAN = {"detrend": True, "standardize": "zscore_sample"}


@pytest.fixture(scope="module")
def cluster():
    # A dead worker fails its task at once (no retry elsewhere): the batch sees the failure
    # and must resume it. One task per thread, so a death takes only the running task.
    config = {
        "distributed.scheduler.allowed-failures": 0,
        "distributed.scheduler.worker-saturation": 1.0,
    }
    with (
        dask.config.set(config),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local,
    ):
        yield local


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return write_runs(tmp_path_factory.mktemp("bids"), n_subjects=2, n_runs=2, n_volumes=24)


@pytest.fixture(scope="module")
def seeds(runs):
    return world_seeds(run_affine(runs[0]))


@pytest.fixture(scope="module")
def sequential(runs, seeds, tmp_path_factory):
    """The same batch, one task at a time in this process: the reference store."""
    store = tmp_path_factory.mktemp("ref") / "sequential.zarr"
    with dask.config.set(scheduler="synchronous"):
        return ls.extract_many(runs, seeds, 3.0, store=store, clean=CLEAN, progress=False).load()


def assert_same_store(ds, reference):
    xr.testing.assert_identical(ds.drop_attrs(deep=False), reference.drop_attrs(deep=False))
    for name in ("parameters", "inputs", "failed", "complete"):
        assert ds.attrs[name] == reference.attrs[name]


def test_cluster_batch_equals_sequential(cluster, runs, seeds, sequential, tmp_path):
    store = tmp_path / "cluster.zarr"
    with Client(cluster):  # the active default client is used
        ds = ls.extract_many(runs, seeds, 3.0, store=store, clean=CLEAN, progress=False)
    assert ds.attrs["complete"] is True
    assert_same_store(ds.load(), sequential)


class KillOnce(WorkerPlugin):
    """Make a worker process die (os._exit) at given (stage, run) points, once each."""

    def __init__(self, targets, markers):
        self.targets = set(targets)
        self.markers = str(markers)

    def setup(self, worker):
        from lazyspheres.batch import store

        targets, markers = self.targets, pathlib.Path(self.markers)

        def hook(stage, run_id):
            marker = markers / f"{stage}-{run_id}"
            if (stage, run_id) in targets and not marker.exists():
                marker.touch()
                os._exit(1)  # the worker process dies here, mid-run

        store.fault_hook = hook


def test_killed_workers_leave_a_partial_store_that_resumes(
    cluster, runs, seeds, sequential, tmp_path
):
    store = tmp_path / "killed.zarr"
    reading, flagging = "sub-01_task-rest_run-2", "sub-02_task-rest_run-1"
    markers = tmp_path / "markers"
    markers.mkdir()
    with Client(cluster) as client:
        client.register_plugin(
            KillOnce({("reading", reading), ("before_flag", flagging)}, markers),
            name="kill-once",
        )
        try:
            with pytest.raises(BatchError) as caught:
                ls.extract_many(runs, seeds, 3.0, store=store, clean=CLEAN, client=client)
            failures = caught.value.failures
            assert {reading, flagging} <= set(failures)
            assert all("KilledWorker" in text for text in failures.values())
            assert sorted(p.name for p in markers.iterdir()) == [
                f"before_flag-{flagging}",
                f"reading-{reading}",
            ]
            partial = xr.open_zarr(store)
            flags = dict(zip(partial.run.values.tolist(), partial.complete.values, strict=True))
            assert not flags[reading]
            assert not flags[flagging]
            index = partial.run.values.tolist().index(flagging)
            assert not np.isnan(partial.signals.values[index]).all()  # data, but no flag
            assert set(json.loads(partial.attrs["failed"])) == set(failures)
            with pytest.raises(ls.errors.IncompleteStoreError, match=flagging):
                open_results(store)
            before = chunk_mtimes(store, "signals")

            resumed = ls.extract_many(runs, seeds, 3.0, store=store, clean=CLEAN, client=client)
        finally:
            client.unregister_worker_plugin("kill-once")
    after = chunk_mtimes(store, "signals")
    for i, run_id in enumerate(partial.run.values.tolist()):  # complete runs not redone
        assert (after[f"{i}/0/0"] == before.get(f"{i}/0/0")) == bool(flags[run_id])
    assert_same_store(resumed.load(), sequential)


def test_cli_extract_on_a_scheduler_address(cluster, runs, seeds, tmp_path, capsys):
    table = tmp_path / "seeds.csv"
    table.write_text(
        "x,y,z,label\n" + "".join(f"{x},{y},{z},s{i}\n" for i, (x, y, z) in enumerate(seeds))
    )
    out = tmp_path / "cli.zarr"
    argv = [
        "extract",
        *map(str, runs[:2]),
        "--seeds",
        str(table),
        "--radius",
        "3",
        "--detrend",
        "--out",
        str(out),
        "--scheduler",
        cluster.scheduler_address,
        "--no-progress",
    ]
    assert main(argv) == 0
    assert "2 of 2 run(s) complete" in capsys.readouterr().out
    ds = open_results(out)
    assert ds.label.values.tolist() == ["s0", "s1", "s2", "s3"]
    for i, run in enumerate(runs[:2]):
        expected = ls.clean(ls.extract(run, seeds, 3.0).values, detrend=True)
        np.testing.assert_array_equal(ds.signals.values[i], expected)


def test_a_store_that_cannot_be_created_cancels_the_reads(cluster, runs, seeds, tmp_path):
    """On a cluster the reads start before the store is created; if creating it fails, the
    error reaches the caller, the reads are cancelled and nothing is left behind."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's parent folder should be")
    store = blocker / "results.zarr"
    with Client(cluster) as client:
        with pytest.raises(NotADirectoryError) as caught:
            ls.extract_many(runs, seeds, 3.0, store=store, client=client, progress=False)
        raised_in = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
        assert "prepare_store" in raised_in  # after the reads were submitted
        deadline = time.monotonic() + 10
        while client.who_has() and time.monotonic() < deadline:  # cancellation is async
            time.sleep(0.05)
        assert not client.who_has()  # no read result is kept anywhere
        assert not any(client.processing().values())
    assert not store.exists()
