"""``connectome`` on result stores: real volumes only, written back, lazy, CLI, bad input."""

from __future__ import annotations

import importlib
import warnings

import dask
import numpy as np
import pytest
import xarray as xr
from sklearn.base import BaseEstimator

import lazyspheres as ls
from lazyspheres.cli import main
from tests.batch_helpers import run_affine, world_seeds, write_runs


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("connectome")
    paths = write_runs(folder / "data", n_subjects=3, n_runs=1, n_volumes=30)
    # one shorter run: the store pads it with NaN to the longest run
    short = write_runs(folder / "short", n_subjects=1, n_runs=1, n_volumes=22)
    seeds = world_seeds(run_affine(paths[0]))
    target = folder / "results.zarr"
    ls.extract_many([*paths, *short], seeds, 5.0, store=target, progress=False)
    return target


def _per_run(store):
    results = ls.open_results(store)
    counts = results["n_volumes"].values
    return [results["signals"].values[r, : counts[r]] for r in range(counts.size)]


def _nilearn(runs, kind, **options):
    from nilearn.connectome import ConnectivityMeasure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ConnectivityMeasure(kind=kind, **options).fit_transform(runs)


def _raising_scheduler(*args, **kwargs):
    raise AssertionError("the graph was computed while it was being built")


@pytest.mark.parametrize("kind", ["correlation", "tangent"])
def test_store_uses_real_volumes_only(store, kind):
    runs = _per_run(store)
    assert {r.shape[0] for r in runs} == {30, 22}
    result = ls.connectome(store, kind)
    assert result.sizes["run"] == 4
    np.testing.assert_allclose(result.values, _nilearn(runs, kind), rtol=1e-6, atol=1e-12)
    assert list(result["run"].values) == list(ls.open_results(store)["run"].values)
    np.testing.assert_array_equal(result["x"].values, result["x2"].values)


def test_building_the_graph_computes_nothing(store):
    dataset = ls.open_results(store)
    with dask.config.set(scheduler=_raising_scheduler):
        for kind in ("tangent", "partial correlation"):
            result = ls.connectome(dataset, kind, vectorize=True)
            assert result.sizes["run"] == 4
    # one task per run reads the store (tangent adds the group mean and one task per run)
    assert result.data.npartitions == 4


def test_extract_many_store_is_read_by_the_tasks_themselves(store):
    # the CLI's route: given by path, a store as extract_many writes it has one task per
    # group of runs and nothing else (no read, count or id task beside it)
    with dask.config.set(scheduler=_raising_scheduler):
        result = ls.connectome(store, "correlation")
    assert len(dict(result.data.__dask_graph__())) == len(result.chunks[0])


def test_written_into_the_store_and_store_still_opens(tmp_path, store):
    import shutil

    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    stored = ls.connectome(copy, "correlation", store=copy)
    ls.connectome(copy, "covariance", vectorize=True, store=copy)
    reopened = xr.open_zarr(copy)
    assert "connectome_correlation" in reopened
    assert reopened["connectome_covariance"].dims == ("run", "pair")
    assert ls.open_results(copy)["signals"].shape == ls.open_results(store)["signals"].shape
    expected = _nilearn(_per_run(store), "correlation")
    np.testing.assert_allclose(stored.values, expected, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(
        reopened["connectome_correlation_group_mean"].values, expected.mean(0), rtol=1e-6
    )


def test_cli_writes_the_connectome(tmp_path, store, capsys):
    import shutil

    copy = tmp_path / "cli.zarr"
    shutil.copytree(store, copy)
    assert main(["connectome", str(copy), "--kind", "partial correlation"]) == 0
    assert "connectome_partial_correlation" in capsys.readouterr().out
    stored = xr.open_zarr(copy)["connectome_partial_correlation"]
    expected = _nilearn(_per_run(store), "partial correlation")
    np.testing.assert_allclose(stored.values, expected, rtol=1e-6, atol=1e-12)
    assert main(["connectome", str(copy), "--discard-diagonal"]) == 2
    assert "--vectorize" in capsys.readouterr().err


def test_store_of_other_runs_is_refused(tmp_path, rng, store):
    runs = [rng.standard_normal((40, 4)) for _ in range(2)]
    with pytest.raises(ValueError, match="'run'"):
        ls.connectome(runs, "covariance", store=store)


@pytest.mark.parametrize(
    ("signals", "kind", "match"),
    [
        ([np.ones((10, 3))], "coherence", "Allowed connectivity kinds"),
        ([np.ones((10, 3))], "tangent", "at least 2 runs"),
        ([np.ones((10, 3)), np.ones((10, 4))], "covariance", r"same number of seeds"),
        ([np.ones(10)], "covariance", r"\(time, seed\)"),
        ("not-a-store.zarr", "covariance", "no result store"),
    ],
)
def test_bad_input_is_named(signals, kind, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        ls.connectome(signals, kind)


def test_nan_inside_real_volumes_names_the_run(rng):
    runs = [rng.standard_normal((30, 3)) for _ in range(2)]
    runs[1][5, 2] = np.nan
    result = ls.connectome(runs, "covariance")
    with pytest.raises(ValueError, match=r"Run 1 .*seed\(s\) \[2\]"):
        result.compute()


def test_bad_estimator_is_refused():
    with pytest.raises(TypeError, match="no fit method"):
        ls.connectome([np.ones((10, 3))], "covariance", cov_estimator="ledoit")


class _Failing(BaseEstimator):
    def fit(self, X):
        raise ValueError("this estimator fails on purpose")


def test_failed_write_leaves_the_store_without_the_connectome(tmp_path, store):
    import shutil

    copy = tmp_path / "failed.zarr"
    shutil.copytree(store, copy)
    with pytest.raises(ValueError, match="on purpose"):  # the tasks fail after the metadata
        ls.connectome(copy, "correlation", store=copy, cov_estimator=_Failing())
    reopened = xr.open_zarr(copy)
    assert "connectome_correlation" not in reopened
    assert ls.open_results(copy)["signals"].shape == ls.open_results(store)["signals"].shape


def test_written_on_a_distributed_cluster(tmp_path, store):
    import shutil

    from distributed import Client, LocalCluster

    copy = tmp_path / "cluster.zarr"
    shutil.copytree(store, copy)
    expected = _nilearn(_per_run(store), "correlation")
    options = {"n_workers": 2, "threads_per_worker": 1, "processes": False}
    with LocalCluster(**options, dashboard_address=None) as cluster, Client(cluster):
        with pytest.raises(ValueError, match="on purpose"):
            ls.connectome(copy, "correlation", store=copy, cov_estimator=_Failing())
        assert "connectome_correlation" not in xr.open_zarr(copy)
        stored = ls.connectome(copy, "correlation", store=copy)
    np.testing.assert_allclose(stored.values, expected, rtol=1e-6, atol=1e-12)
    mean = xr.open_zarr(copy)["connectome_correlation_group_mean"].values
    np.testing.assert_allclose(mean, expected.mean(0), rtol=1e-6)


def test_written_on_the_local_scheduler_the_user_chose_while_a_client_is_active(tmp_path, store):
    # dask.config's scheduler wins over an active client, as it does for dask.compute
    import shutil

    from distributed import Client, LocalCluster

    copy = tmp_path / "local.zarr"
    shutil.copytree(store, copy)
    options = {"n_workers": 1, "threads_per_worker": 1, "processes": False}
    with LocalCluster(**options, dashboard_address=None) as cluster, Client(cluster) as client:
        with dask.config.set(scheduler="sync"):
            stored = ls.connectome(copy, "correlation", store=copy)
        ran_on_cluster = client.run_on_scheduler(
            lambda dask_scheduler: len(dask_scheduler.transition_log)
        )
    assert ran_on_cluster == 0
    expected = _nilearn(_per_run(store), "correlation")
    np.testing.assert_allclose(stored.values, expected, rtol=1e-6, atol=1e-12)


def test_written_by_xarray_when_the_chunks_are_not_plain_files(tmp_path, store, monkeypatch):
    # e.g. a remote store: xarray's own graph writes the same variables
    import shutil

    from lazyspheres.connectivity import store as storing

    monkeypatch.setattr(storing, "_plain_chunks", lambda group, name: None)
    module = importlib.import_module("lazyspheres.connectivity.connectome")
    monkeypatch.setattr(module, "_write_groups", _raising_scheduler)  # not the tasks' writes
    monkeypatch.setattr(module, "_matrix_write", lambda result, store: None)  # nor this
    copy = tmp_path / "fallback.zarr"
    shutil.copytree(store, copy)
    stored = ls.connectome(copy, "correlation", store=copy)
    expected = _nilearn(_per_run(store), "correlation")
    np.testing.assert_allclose(stored.values, expected, rtol=1e-6, atol=1e-12)
    reopened = xr.open_zarr(copy)
    np.testing.assert_allclose(
        reopened["connectome_correlation_group_mean"].values, expected.mean(0), rtol=1e-6
    )
