"""Laziness of ``lazyspheres.clean`` on Dask: nothing computed while building, identical
results for every seed chunking, and a clear error when time is split into chunks."""

from __future__ import annotations

import pickle
import subprocess
import sys

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from cleaning_helpers import make_signals

from lazyspheres.cleaning import TimeChunksError, clean
from lazyspheres.testing import raise_if_dask_computes

pytestmark = pytest.mark.filterwarnings(
    "ignore:The default strategy for standardize:DeprecationWarning",
    "ignore:By default the cubic spline:FutureWarning",
)

N_TIME, N_SERIES = 64, 7
SIGNALS = make_signals(np.random.default_rng(0), N_TIME, N_SERIES)
CONFOUNDS = np.random.default_rng(1).standard_normal((N_TIME, 3))
MASK = np.setdiff1d(np.arange(N_TIME), [0, 1, 20, 43, 63])

OPTIONS = {
    "nothing": {},
    "detrend_zscore": {"detrend": True, "standardize": True},
    "band_confounds_zscore_sample": {
        "detrend": True,
        "low_pass": 0.1,
        "high_pass": 0.01,
        "t_r": 2.0,
        "confounds": CONFOUNDS,
        "standardize": "zscore_sample",
    },
    "psc_high_pass": {"high_pass": 0.02, "t_r": 2.0, "standardize": "psc"},
    "psc_plain": {"standardize": "psc", "confounds": CONFOUNDS[:, :1]},
    "cosine_lazy_confounds": {
        "filter": "cosine",
        "high_pass": 0.02,
        "t_r": 2.0,
        "confounds": "lazy",
        "standardize": "zscore_sample",
    },
    "scrub_low_pass": {"low_pass": 0.1, "t_r": 2.0, "sample_mask": MASK, "detrend": True},
    "scrub_no_extrapolation_psc": {
        "high_pass": 0.02,
        "t_r": 2.0,
        "sample_mask": MASK,
        "extrapolate": False,
        "standardize": "psc",
        "confounds": "lazy",
    },
    "censor_unscaled_confounds": {
        "sample_mask": MASK,
        "confounds": CONFOUNDS,
        "standardize_confounds": False,
        "detrend": True,
    },
}


def _params(name):
    params = dict(OPTIONS[name])
    if isinstance(params.get("confounds"), str):  # lazily computed confounds, chunked in time
        params["confounds"] = da.from_array(CONFOUNDS, chunks=(16, 2)) * 1.0
    return params


@pytest.fixture(autouse=True)
def _synchronous_dask():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16])
def test_no_compute_and_chunk_invariance(name, dtype):
    signals = SIGNALS.astype(dtype) if dtype != np.int16 else np.round(SIGNALS * 10).astype(dtype)
    params = _params(name)
    numpy_result = clean(signals, **params)
    for seed_chunks in [1, 2, (3, 4), (1, 5, 1), N_SERIES]:
        lazy_signals = da.from_array(signals, chunks=(N_TIME, seed_chunks))
        with raise_if_dask_computes():
            lazy = clean(lazy_signals, **params)
        assert isinstance(lazy, da.Array)
        assert lazy.chunks[1] == lazy_signals.chunks[1]
        assert lazy.dtype == numpy_result.dtype
        assert lazy.shape == numpy_result.shape
        computed = lazy.compute()
        np.testing.assert_array_equal(computed, numpy_result)  # bit for bit
        assert computed.dtype == numpy_result.dtype


@pytest.mark.parametrize("name", ["detrend_zscore", "psc_high_pass", "scrub_low_pass"])
def test_dataarray_dask_backed_is_lazy_and_labelled(name):
    params = _params(name)
    times = np.arange(N_TIME) * 2.0
    signals = xr.DataArray(
        SIGNALS,
        dims=("time", "seed"),
        coords={
            "time": times,
            "seed": np.arange(N_SERIES),
            "x": ("seed", np.linspace(-40, 40, N_SERIES)),
            "label": ("seed", [f"s{i}" for i in range(N_SERIES)]),
            "fd": ("time", np.linspace(0, 1, N_TIME)),
        },
        name="bold",
        attrs={"units": "a.u."},
    ).chunk(seed=2)
    with raise_if_dask_computes():
        cleaned = clean(signals, **params)
    assert isinstance(cleaned.data, da.Array)
    kept = params.get("sample_mask", np.arange(N_TIME))
    np.testing.assert_array_equal(cleaned["time"].values, times[kept])
    np.testing.assert_array_equal(cleaned["fd"].values, signals["fd"].values[kept])
    assert list(cleaned["label"].values) == list(signals["label"].values)
    assert cleaned.name == "bold"
    assert cleaned.attrs == {"units": "a.u."}
    np.testing.assert_array_equal(cleaned.values, clean(SIGNALS, **params))


def test_dataarray_dimension_order_is_kept():
    signals = xr.DataArray(SIGNALS.T, dims=("seed", "time"))
    cleaned = clean(signals, detrend=True)
    assert cleaned.dims == ("seed", "time")
    np.testing.assert_array_equal(cleaned.values, clean(SIGNALS, detrend=True).T)


@pytest.mark.parametrize("labelled", [False, True])
def test_time_split_in_chunks_is_a_clear_error(labelled):
    lazy = da.from_array(SIGNALS, chunks=(16, 3))
    signals = xr.DataArray(lazy, dims=("time", "seed")) if labelled else lazy
    with (
        raise_if_dask_computes(),
        pytest.raises(TimeChunksError, match=r"split into 4 chunks .*chunk\(time=-1\).*rechunk"),
    ):
        clean(signals, detrend=True)
    # and the suggested fix works
    fixed = signals.chunk(time=-1) if labelled else signals.rechunk({0: -1})
    np.testing.assert_array_equal(
        np.asarray(clean(fixed, detrend=True)), clean(SIGNALS, detrend=True)
    )


def test_lazy_confounds_are_prepared_once():
    calls = []
    lazy_conf = da.from_array(CONFOUNDS, chunks=(N_TIME, 3)).map_blocks(
        lambda block: calls.append(block.shape) or block, dtype=float, meta=np.empty((0, 0))
    )
    lazy = clean(da.from_array(SIGNALS, chunks=(N_TIME, 1)), confounds=lazy_conf, detrend=True)
    graph = dict(lazy.__dask_graph__())
    assert sum("build_projector" in str(key) for key in graph) == 1
    result = lazy.compute()
    assert len(calls) == 1
    np.testing.assert_array_equal(result, clean(SIGNALS, confounds=CONFOUNDS, detrend=True))


def test_lazy_confounds_with_numpy_signals_are_computed():
    lazy_conf = da.from_array(CONFOUNDS, chunks=(8, 3))
    result = clean(SIGNALS, confounds=[lazy_conf, pd.DataFrame(CONFOUNDS[:, :1])])
    expected = clean(SIGNALS, confounds=np.column_stack([CONFOUNDS, CONFOUNDS[:, :1]]))
    assert isinstance(result, np.ndarray)
    np.testing.assert_array_equal(result, expected)


def test_graph_is_one_task_per_seed_block_and_pickles():
    lazy = clean(
        da.from_array(SIGNALS, chunks=(N_TIME, 2)),
        confounds=CONFOUNDS,
        low_pass=0.1,
        t_r=2.0,
        detrend=True,
    )
    layer_sizes = [len(layer) for layer in lazy.__dask_graph__().layers.values()]
    assert max(layer_sizes) == len(lazy.chunks[1])
    restored = pickle.loads(pickle.dumps(lazy))
    np.testing.assert_array_equal(restored.compute(), lazy.compute())


def test_threaded_scheduler_matches():
    params = _params("band_confounds_zscore_sample")
    lazy = clean(da.from_array(SIGNALS, chunks=(N_TIME, 1)), **params)
    with dask.config.set(scheduler="threads"):
        np.testing.assert_array_equal(lazy.compute(), clean(SIGNALS, **params))


def test_numpy_path_needs_neither_dask_nor_xarray():
    code = (
        "import sys, numpy as np\n"
        "from lazyspheres.cleaning import clean\n"
        "x = np.random.default_rng(0).standard_normal((40, 3)) + 5\n"
        "clean(x, detrend=True, low_pass=0.1, t_r=2.0, confounds=x[:, :1],"
        " standardize='psc', sample_mask=np.arange(2, 40))\n"
        "bad = [m for m in ('dask', 'xarray', 'pandas') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)
