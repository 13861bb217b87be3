"""CleaningParams: the cleaning options as one typed object, equal to clean's keywords."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from lazyspheres.cleaning import clean
from lazyspheres.cleaning.api import clean_with
from lazyspheres.cleaning.options import CleaningParams


def test_fields_and_defaults_are_those_of_clean():
    keywords = {
        name: p.default
        for name, p in inspect.signature(clean).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("confounds", "sample_mask")
    }
    defaults = CleaningParams()
    assert CleaningParams.names() == list(keywords)
    assert {name: getattr(defaults, name) for name in keywords} == keywords


def test_clean_with_params_equals_clean_with_keywords():
    rng = np.random.default_rng(0)
    signals = rng.standard_normal((60, 4))
    confounds = rng.standard_normal((60, 2))
    options = {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.1, "t_r": 2.0}
    expected = clean(signals, confounds=confounds, sample_mask=np.arange(5, 60), **options)
    got = clean_with(
        signals,
        CleaningParams.from_options(options),
        confounds=confounds,
        sample_mask=np.arange(5, 60),
    )
    np.testing.assert_array_equal(got, expected)


def test_record_keeps_given_options_even_at_their_defaults():
    params = CleaningParams.from_options({"detrend": False, "t_r": 2.0})
    assert params.record() == {"detrend": False, "t_r": 2.0}
    assert CleaningParams(high_pass=0.01).record() == {"high_pass": 0.01}
    assert CleaningParams().record() == {}


def test_params_are_frozen_and_compare_by_value():
    params = CleaningParams.from_options({"detrend": True})
    assert params == CleaningParams(detrend=True)
    with pytest.raises(AttributeError):
        params.detrend = False


def test_unknown_option_is_named():
    with pytest.raises(TypeError, match="lowpass"):
        CleaningParams.from_options({"lowpass": 0.1})
