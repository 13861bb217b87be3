"""A new connectome written into a local store without xarray equals xarray's write.

``connectome(store, kind, store=store)`` renders the new arrays' metadata itself, writes it
while the tasks run and consolidates by rewriting the root once (``direct_write``). The
reference is the same write with that route turned off: xarray writes the metadata
(``store._write_direct``). Both stores must open alike with plain ``xr.open_zarr``, with the
same attributes, dtypes, chunks and fill values, and the returned arrays must be equal.
"""

from __future__ import annotations

import importlib
import json
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr
from sklearn.base import BaseEstimator

import lazyspheres as ls
from lazyspheres.batch.params import seed_coords
from lazyspheres.batch.store import ResultStore
from lazyspheres.connectivity import direct_write
from lazyspheres.seeds import load_seeds

connectome_module = importlib.import_module("lazyspheres.connectivity.connectome")
NAME = "connectome_correlation"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A complete result store with string label coordinates and one constant radius."""
    coords, labels = load_seeds("power2011")
    n_runs, n_time, n_seeds = 5, 40, 8
    store = tmp_path_factory.mktemp("direct") / "results.zarr"
    handle = ResultStore(store)
    handle.create(
        run_ids=[f"sub-{i:02d}" for i in range(n_runs)],
        sources=[f"sub-{i:02d}.nii.gz" for i in range(n_runs)],
        n_time=n_time,
        seed_coords=seed_coords(coords[:n_seeds], np.full(n_seeds, 5.0), labels[:n_seeds]),
        dtype=np.dtype("float32"),
        parameters={"radius": 5.0},
        t_r=2.0,
    )
    rng = np.random.default_rng(0)
    counts = np.array([40, 33, 40, 25, 38])
    signals = np.full((n_runs, n_time, n_seeds), np.nan, dtype=np.float32)
    for run, count in enumerate(counts):
        signals[run, :count] = rng.standard_normal((count, n_seeds))
    group = zarr.open_group(store, mode="r+")
    group["signals"][...] = signals
    group["n_volumes"][...] = counts
    group["complete"][...] = True
    handle.set_attrs(complete=True)
    return store


def _copy(source, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(source, target)
    return target


def _files(store):
    return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}


def _both(tmp_path, source, monkeypatch, kind="correlation"):
    """(direct store, its result), (xarray store, its result), loaded.

    Both are written at the same path (the result's ``source`` attribute), then moved.
    """
    at = tmp_path / "results.zarr"
    shutil.copytree(source, at)
    written = ls.connectome(at, kind, store=at).load()
    direct = at.rename(tmp_path / "direct.zarr")
    shutil.copytree(source, at)
    with monkeypatch.context() as patched:
        patched.setattr(connectome_module, "_matrix_write", lambda result, store: None)
        expected = ls.connectome(at, kind, store=at).load()
    return (direct, written), (at.rename(tmp_path / "xarray.zarr"), expected)


def test_the_direct_write_equals_xarrays(tmp_path, labelled, monkeypatch):
    (direct, written), (reference, expected) = _both(tmp_path, labelled, monkeypatch)
    ours, theirs = xr.open_zarr(direct), xr.open_zarr(reference)
    xr.testing.assert_identical(ours, theirs)  # values, coordinates, attributes
    assert {"network2", "network_id2", "roi2", "x2", "radius2", "seed2"} <= set(ours.coords)
    for key in (NAME, f"{NAME}_group_mean", "network2", "x2", "radius2", "seed2"):
        assert ours[key].dtype == theirs[key].dtype, key
        assert ours[key].encoding["chunks"] == theirs[key].encoding["chunks"], key
        assert ours[key].encoding.get("_FillValue") is theirs[key].encoding.get("_FillValue") or (
            np.isnan(ours[key].encoding["_FillValue"])
            and np.isnan(theirs[key].encoding["_FillValue"])
        ), key
    # the new arrays' metadata documents are the very ones xarray writes, in both places
    roots = [json.loads((s / "zarr.json").read_bytes()) for s in (direct, reference)]
    for key in (NAME, f"{NAME}_group_mean", "seed2", "x2", "network2"):
        mine = json.loads((direct / key / "zarr.json").read_bytes())
        assert mine == json.loads((reference / key / "zarr.json").read_bytes()), key
        assert roots[0]["consolidated_metadata"]["metadata"][key] == mine, key
    assert roots[0]["attributes"] == roots[1]["attributes"]
    # the returned array: equal to xarray's route, and to the store as opened afterwards
    xr.testing.assert_identical(written, expected)
    reopened = ours[NAME].assign_coords(group_mean=ours[f"{NAME}_group_mean"].variable)
    xr.testing.assert_identical(written, reopened.drop_vars(f"{NAME}_group_mean"))
    assert not any(".sums-" in path for path in _files(direct))  # the scratch sums are gone


def test_the_metadata_reads_alike_without_consolidation(tmp_path, labelled, monkeypatch):
    (direct, _), (reference, _) = _both(tmp_path, labelled, monkeypatch, kind="covariance")
    ours = zarr.open_group(direct, mode="r", use_consolidated=False)
    theirs = zarr.open_group(reference, mode="r", use_consolidated=False)
    assert sorted(ours.array_keys()) == sorted(theirs.array_keys())
    xr.testing.assert_identical(
        xr.open_zarr(direct, consolidated=False), xr.open_zarr(reference, consolidated=False)
    )
    ls.open_results(direct)  # still a complete result store


def test_extract_many_store_gives_the_same_result_both_ways(tmp_path, monkeypatch):
    from tests.batch_helpers import run_affine, world_seeds, write_runs

    paths = write_runs(tmp_path / "data", n_subjects=3, n_runs=1, n_volumes=30)
    source = tmp_path / "extracted.zarr"
    ls.extract_many(paths, world_seeds(run_affine(paths[0])), 5.0, store=source, progress=False)
    (direct, written), (reference, expected) = _both(tmp_path, source, monkeypatch)
    xr.testing.assert_identical(written, expected)
    xr.testing.assert_identical(xr.open_zarr(direct), xr.open_zarr(reference))


class _Failing(BaseEstimator):
    def fit(self, X):
        raise ValueError("this estimator fails on purpose")


@pytest.mark.parametrize("cluster", [False, True])
def test_a_failed_write_leaves_the_store_as_it_was(tmp_path, labelled, cluster):
    from distributed import Client, LocalCluster

    store = _copy(labelled, tmp_path, "failed.zarr")
    before = _files(store)
    if not cluster:
        with pytest.raises(ValueError, match="on purpose"):
            ls.connectome(store, "correlation", store=store, cov_estimator=_Failing())
    else:
        options = {"n_workers": 2, "threads_per_worker": 1, "processes": False}
        with (
            LocalCluster(**options, dashboard_address=None) as running,
            Client(running),
            pytest.raises(ValueError, match="on purpose"),
        ):
            ls.connectome(store, "correlation", store=store, cov_estimator=_Failing())
    assert _files(store) == before  # nothing added, the root as it was
    assert NAME not in xr.open_zarr(store)


def test_a_failed_metadata_write_waits_for_the_tasks_and_removes_their_files(
    tmp_path, labelled, monkeypatch
):
    from distributed import Client, LocalCluster

    def failing(self):
        raise OSError("the disk is full, on purpose")

    monkeypatch.setattr(direct_write.MatrixWrite, "_write_arrays", failing)
    store = _copy(labelled, tmp_path, "full.zarr")
    before = _files(store)
    options = {"n_workers": 2, "threads_per_worker": 1, "processes": False}
    with (
        LocalCluster(**options, dashboard_address=None) as running,
        Client(running),
        pytest.raises(OSError, match="on purpose"),
    ):
        ls.connectome(store, "correlation", store=store)
    assert _files(store) == before


def test_leftovers_of_a_killed_write_are_replaced(tmp_path, labelled):
    store = _copy(labelled, tmp_path, "killed.zarr")
    stale = store / NAME / "c" / "0" / "0" / "0"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a chunk")  # chunk files without metadata: not part of the store
    written = ls.connectome(store, "correlation", store=store)
    reference = ls.connectome(labelled, "correlation")
    np.testing.assert_allclose(written.values, reference.values, rtol=1e-12)
    assert stale.stat().st_size == 8 * 8 * 8


def test_an_unlisted_array_or_an_existing_variable_goes_through_xarray(
    tmp_path, labelled, monkeypatch
):
    calls = []
    real = direct_write.MatrixWrite.run
    monkeypatch.setattr(
        direct_write.MatrixWrite, "run", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    store = _copy(labelled, tmp_path, "twice.zarr")
    first = ls.connectome(store, "correlation", store=store)
    again = ls.connectome(store, "correlation", store=store)  # replaces it, through xarray
    assert len(calls) == 1
    xr.testing.assert_allclose(first, again)
    # an array that the consolidated metadata does not list is not overwritten here
    other = _copy(labelled, tmp_path, "unlisted.zarr")
    (other / "connectome_covariance").mkdir()
    (other / "connectome_covariance" / "zarr.json").write_text("{}")
    assert direct_write.plan_matrix_write(first, str(other), "connectome_covariance") is None


def test_a_second_kind_in_the_same_store_equals_xarrays(tmp_path, labelled, monkeypatch):
    # the CLI run twice: the second connectome finds seed2, x2, ... already stored
    at = tmp_path / "results.zarr"
    stores = {}
    for route in ("direct", "xarray"):
        shutil.copytree(labelled, at)
        with monkeypatch.context() as patched:
            if route == "xarray":
                patched.setattr(connectome_module, "_matrix_write", lambda result, store: None)
            ls.connectome(at, "correlation", store=at)
            second = ls.connectome(at, "covariance", store=at).load()
        stores[route] = (at.rename(tmp_path / f"{route}.zarr"), second)
    (direct, ours), (reference, theirs) = stores["direct"], stores["xarray"]
    xr.testing.assert_identical(ours, theirs)
    xr.testing.assert_identical(xr.open_zarr(direct), xr.open_zarr(reference))
    for key in ("connectome_covariance", "connectome_covariance_group_mean"):
        mine = json.loads((direct / key / "zarr.json").read_bytes())
        assert mine == json.loads((reference / key / "zarr.json").read_bytes()), key


def test_a_stored_coordinate_of_another_shape_is_left_to_xarray(tmp_path, labelled):
    store = _copy(labelled, tmp_path, "other.zarr")
    first = ls.connectome(store, "correlation", store=store)
    root = json.loads((store / "zarr.json").read_bytes())
    root["consolidated_metadata"]["metadata"]["seed2"]["shape"] = [3]
    (store / "zarr.json").write_text(json.dumps(root))
    assert direct_write.plan_matrix_write(first, str(store), "connectome_covariance") is None
