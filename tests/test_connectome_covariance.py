"""``RunCovariance``: the default Ledoit-Wolf computed directly equals scikit-learn's fit.

The differential tests against nilearn cover the default path on many cases; here the
direct formulas are held to scikit-learn's ``LedoitWolf`` itself, on the shapes where
shrinkage is extreme (fewer volumes than seeds), a constant seed (std 0 -> 1), and float32.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import EmpiricalCovariance, LedoitWolf

from lazyspheres.connectivity.covariance import RunCovariance


class _Subclass(LedoitWolf):
    pass


def _signals(rng, shape, dtype, constant):
    values = rng.standard_normal(shape) @ (np.eye(shape[1]) + 0.5)
    values += 3.0 * np.arange(shape[1])  # means away from 0
    if constant:
        values[:, 1] = 2.5
    return values.astype(dtype)


@pytest.mark.parametrize("shape", [(60, 7), (5, 12), (2, 3), (300, 40)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("constant", [False, True])
def test_direct_ledoit_wolf_equals_scikit_learn(rng, shape, dtype, standardize, constant):
    values = _signals(rng, shape, dtype, constant)
    direct = RunCovariance(LedoitWolf(store_precision=False))
    assert direct.direct
    fitted = RunCovariance(LedoitWolf(store_precision=False))
    fitted.direct = False
    expected = fitted(values, standardize=standardize)
    # twice: the second run reuses the buffer of the first
    for _ in range(2):
        got = direct(values, standardize=standardize)
        assert got.dtype == expected.dtype
        rtol = 1e-6 if dtype == np.float64 else 2e-4
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-12 if rtol == 1e-6 else 1e-6)


def test_only_a_plain_ledoit_wolf_is_computed_directly():
    assert RunCovariance(LedoitWolf(block_size=10)).direct
    assert not RunCovariance(LedoitWolf(assume_centered=True)).direct
    assert not RunCovariance(_Subclass()).direct
    assert not RunCovariance(EmpiricalCovariance()).direct


def test_buffer_follows_the_runs_shape_and_dtype(rng):
    estimate = RunCovariance(LedoitWolf())
    long = _signals(rng, (80, 5), np.float64, False)
    short = _signals(rng, (30, 5), np.float32, False)
    reference = RunCovariance(LedoitWolf())
    reference.direct = False
    for values in (long, short, long):
        np.testing.assert_allclose(
            estimate(values, standardize=True),
            reference(values, standardize=True),
            rtol=1e-6 if values.dtype == np.float64 else 2e-4,
            atol=1e-12 if values.dtype == np.float64 else 1e-6,
        )
