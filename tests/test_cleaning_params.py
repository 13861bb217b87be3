"""CleaningParams: the cleaning options as one typed object, equal to clean's keywords."""

from __future__ import annotations

import dataclasses
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


def test_validated_checks_types_and_marks_the_params():
    params = CleaningParams(detrend=True, t_r=2.0, given=frozenset({"detrend"}))
    checked = params.validated()
    assert checked.checked
    assert not params.checked
    assert checked == params
    assert checked.given == params.given
    assert checked.validated() is checked
    assert "checked" not in CleaningParams.names()
    assert "checked" not in checked.record()
    # a changed option is checked again
    assert not dataclasses.replace(checked, t_r=3.0).checked
    with pytest.raises(TypeError, match="'detrend' should be of type"):
        CleaningParams(detrend="yes").validated()
    with pytest.raises(TypeError, match="'high_pass' should be of type"):
        CleaningParams(high_pass=[0.1]).validated()


def test_clean_checks_parameter_types_once(monkeypatch):
    import lazyspheres.cleaning.options as options

    checked = []
    check_bool = options._check_bool

    def counting(name, value):
        checked.append(name)
        check_bool(name, value)

    monkeypatch.setattr(options, "_check_bool", counting)
    signals = np.random.default_rng(0).standard_normal((20, 2))
    clean(signals, detrend=True, confounds=np.arange(20.0))
    assert checked == ["detrend", "standardize_confounds"]
    # params built without validated() are checked with the plan
    checked.clear()
    clean_with(signals, CleaningParams(detrend=True))
    assert checked == ["detrend", "standardize_confounds"]


def test_clean_args_give_params_by_nilearn_names():
    from lazyspheres.cleaning.args import clean_args_to_params

    params = clean_args_to_params({"butterworth__order": 3, "filter": "cosine", "other": 1})
    assert params == CleaningParams(butterworth_order=3, filter="cosine")
    assert clean_args_to_params(None) == CleaningParams()
    with pytest.raises(TypeError, match="multiple values for keyword argument 't_r'"):
        clean_args_to_params({"t_r": 2.0})
