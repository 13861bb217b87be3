"""Differential tests: ``lazyspheres.connectome`` against nilearn 0.12.1's ConnectivityMeasure.

60 generated cases (12 per kind) vary the number of runs, their lengths (equal or not),
the number of seeds, vectorize / discard_diagonal, the covariance estimator and the input
form (list of arrays, 3D array, DataArrays, a NaN-padded result-store-like Dataset).
Tolerance: rtol 1e-6 in float64, plus atol 1e-12 because some entries (off-diagonal
covariances, partial correlations) are close to 0, where a relative bound means nothing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from sklearn.covariance import OAS, EmpiricalCovariance, LedoitWolf, ShrunkCovariance

import lazyspheres as ls
from lazyspheres.connectivity import KINDS

ESTIMATORS = [
    None,
    EmpiricalCovariance(),
    LedoitWolf(),
    ShrunkCovariance(shrinkage=0.2),
    OAS(),
]
FORMS = ["list", "array3d", "dataarray", "dataset"]


def _case(index: int) -> dict:
    rng = np.random.default_rng(1000 + index)
    kind = KINDS[index % len(KINDS)]
    n_runs = int(rng.integers(2, 6))
    n_seeds = int(rng.integers(2, 13))
    form = FORMS[(index // len(KINDS)) % len(FORMS)]
    equal = form in ("array3d", "dataarray")
    lengths = [int(rng.integers(n_seeds * 3 + 5, 90)) for _ in range(n_runs)]
    if equal:
        lengths = [lengths[0]] * n_runs
    mixing = rng.standard_normal((n_seeds, n_seeds)) + 2 * np.eye(n_seeds)
    runs = [
        rng.standard_normal((t, n_seeds)) @ mixing + rng.normal(0, 5, n_seeds) for t in lengths
    ]
    estimator = ESTIMATORS[index % len(ESTIMATORS)]
    if kind in ("precision", "partial correlation", "tangent") and estimator is not None:
        estimator = ESTIMATORS[1 + index % (len(ESTIMATORS) - 1)]
    vectorize = bool(rng.integers(0, 2))
    discard = vectorize and bool(rng.integers(0, 2))
    return {
        "kind": kind,
        "runs": runs,
        "form": form,
        "estimator": estimator,
        "vectorize": vectorize,
        "discard": discard,
    }


def _as_input(runs: list[np.ndarray], form: str):
    if form == "list":
        return runs
    if form == "array3d":
        return np.stack(runs)
    if form == "dataarray":
        return xr.DataArray(np.stack(runs), dims=("run", "time", "seed")).chunk({"run": 1})
    n_time = max(r.shape[0] for r in runs) + 3
    padded = np.full((len(runs), n_time, runs[0].shape[1]), np.nan)
    for index, run in enumerate(runs):
        padded[index, : run.shape[0]] = run
    return xr.Dataset(
        {
            "signals": (("run", "time", "seed"), padded),
            "n_volumes": ("run", np.array([r.shape[0] for r in runs])),
        },
        coords={
            "run": [f"sub-{i:02d}" for i in range(len(runs))],
            "seed": np.arange(runs[0].shape[1]),
            "label": ("seed", [f"s{i}" for i in range(runs[0].shape[1])]),
        },
    )


def _nilearn(case: dict):
    from nilearn.connectome import ConnectivityMeasure

    measure = ConnectivityMeasure(
        cov_estimator=case["estimator"],
        kind=case["kind"],
        vectorize=case["vectorize"],
        discard_diagonal=case["discard"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # standardize=True's notice
        values = measure.fit_transform(case["runs"])
    return values, measure.mean_


@pytest.mark.parametrize("index", range(60))
def test_connectome_equals_nilearn(index):
    case = _case(index)
    expected, expected_mean = _nilearn(case)
    result = ls.connectome(
        _as_input(case["runs"], case["form"]),
        case["kind"],
        cov_estimator=case["estimator"],
        vectorize=case["vectorize"],
        discard_diagonal=case["discard"],
    )
    n_seeds = case["runs"][0].shape[1]
    if case["vectorize"]:
        assert result.dims == ("run", "pair")
    else:
        assert result.dims == ("run", "seed", "seed2")
        assert result.sizes["seed"] == result.sizes["seed2"] == n_seeds
        np.testing.assert_allclose(
            result["group_mean"].values, expected_mean, rtol=1e-6, atol=1e-12
        )
    assert result.sizes["run"] == len(case["runs"])
    np.testing.assert_allclose(result.values, expected, rtol=1e-6, atol=1e-12)


def test_single_run_dataarray_equals_nilearn(rng):
    from nilearn.connectome import ConnectivityMeasure

    values = rng.standard_normal((70, 5))
    signals = xr.DataArray(
        values, dims=("time", "seed"), coords={"x": ("seed", np.arange(5.0) * 10)}
    )
    result = ls.connectome(signals, "partial correlation")
    expected = ConnectivityMeasure(kind="partial correlation").fit_transform([values])
    np.testing.assert_allclose(result.values, expected, rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(result["x2"].values, np.arange(5.0) * 10)


def test_vectorized_pairs_are_labelled(rng):
    runs = [rng.standard_normal((40, 4)) for _ in range(2)]
    labels = xr.DataArray(
        np.stack(runs),
        dims=("run", "time", "seed"),
        coords={"label": ("seed", list("abcd"))},
    )
    result = ls.connectome(labels, "covariance", vectorize=True, discard_diagonal=True)
    assert result.sizes["pair"] == 6
    assert list(result["row_label"].values) == ["b", "c", "c", "d", "d", "d"]
    assert list(result["col_label"].values) == ["a", "a", "b", "a", "b", "c"]
    matrices = ls.connectome(labels, "covariance").values
    np.testing.assert_array_equal(result.values[:, 4], matrices[:, 3, 1])
