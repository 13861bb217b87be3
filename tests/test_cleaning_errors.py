"""Warnings and errors of ``lazyspheres.clean``, pinned against nilearn 0.12.1.

``SAME`` lists inputs for which lazyspheres must raise the exception nilearn raises (same
type; nilearn's message, or its key phrase where ours says more) and emit exactly the
warnings nilearn emits (category, text and count). The remaining tests pin the deliberate
differences, each showing what nilearn does and what lazyspheres does instead.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from cleaning_helpers import assert_same, make_signals, nilearn_clean, run_recording

from lazyspheres.cleaning import (
    NonFiniteConfoundsError,
    check_clean_kwargs,
    clean,
    clean_args_to_kwargs,
    read_confounds_file,
)
from lazyspheres.errors import LazySpheresError
from lazyspheres.testing import raise_if_dask_computes

pytestmark = pytest.mark.filterwarnings(
    "ignore:The default strategy for standardize:DeprecationWarning",
    "ignore:By default the cubic spline:FutureWarning",
    "ignore::RuntimeWarning:nilearn",
)

N_TIME = 40
SIGNALS = make_signals(np.random.default_rng(0), N_TIME, 3)
CONFOUNDS = np.random.default_rng(1).standard_normal((N_TIME, 2))
NAN_CONFOUNDS = CONFOUNDS.copy()
NAN_CONFOUNDS[6, 1] = np.nan
BAND = {"low_pass": 0.1, "high_pass": 0.02, "t_r": 2.0}

# id -> (kwargs, key phrase when our message legitimately says more than nilearn's)
SAME = {
    # parameter types (nilearn's check_params texts)
    "detrend_str": ({"detrend": "yes"}, None),
    "detrend_np_bool": ({"detrend": np.True_}, None),
    "detrend_int": ({"detrend": 1}, None),
    "standardize_confounds_int": ({"standardize_confounds": 1}, None),
    "t_r_str": ({"t_r": "2"}, None),
    "low_pass_str": ({"low_pass": "0.1", "t_r": 2.0}, None),
    "high_pass_list": ({"high_pass": [0.1], "t_r": 2.0}, None),
    "low_pass_bool": ({"low_pass": True, "t_r": 2.0}, None),
    "ensure_finite_int": ({"ensure_finite": 1}, None),
    "standardize_foo": ({"standardize": "foo"}, None),
    "standardize_2": ({"standardize": 2}, None),
    # filters
    "filter_unknown": ({"filter": "foo"}, None),
    "butterworth_no_t_r": ({"low_pass": 0.1}, None),
    "cosine_no_high_pass": ({"filter": "cosine", "t_r": 2.0}, None),
    "cosine_np_float32_t_r": ({"filter": "cosine", "t_r": np.float32(2), "high_pass": 0.01}, None),
    "cosine_np_int_high_pass": ({"filter": "cosine", "t_r": 2.0, "high_pass": np.int64(0)}, None),
    "high_ge_low": ({"low_pass": 0.1, "high_pass": 0.1, "t_r": 2.0}, None),
    "high_pass_zero": ({"high_pass": 0.0, "t_r": 2.0}, None),
    "order_float": ({"low_pass": 0.1, "t_r": 2.0, "butterworth_order": 2.5}, None),
    "padtype_unknown": ({"low_pass": 0.1, "t_r": 2.0, "butterworth_padtype": "foo"}, None),
    "padlen_too_long": ({"low_pass": 0.1, "t_r": 2.0, "butterworth_padlen": 40}, None),
    "band_too_short": ({**BAND, "sample_mask": np.arange(8, 40)}, None),
    # filter warnings
    "filter_false_with_cutoff": ({"filter": False, "low_pass": 0.1}, None),
    "filter_none_with_cutoff": ({"filter": None, "high_pass": 0.1}, None),
    "filter_none_np_cutoff": ({"filter": None, "low_pass": np.float32(0.1)}, None),
    "cosine_with_low_pass": (
        {"filter": "cosine", "t_r": 2.0, "high_pass": 0.01, "low_pass": 0.1},
        None,
    ),
    "low_at_nyquist": ({"low_pass": 0.25, "t_r": 2.0}, None),
    "high_above_nyquist_twice": ({"high_pass": 0.3, "t_r": 2.0, "confounds": CONFOUNDS}, None),
    "high_negative": ({"high_pass": -0.5, "t_r": 2.0}, None),
    "band_both_clipped": (
        {"low_pass": 0.4, "high_pass": 0.3, "t_r": 2.0, "confounds": CONFOUNDS},
        None,
    ),
    "cosine_order_zero": ({"filter": "cosine", "t_r": 2.0, "high_pass": 0.001}, None),
    "cosine_saturates": ({"filter": "cosine", "t_r": 2.0, "high_pass": 0.3}, None),
    # standardisation warnings (0.12.1: DeprecationWarning per z-scored matrix)
    "zscore_signals": ({"standardize": "zscore"}, None),
    "true_signals_and_confounds": ({"standardize": True, "confounds": CONFOUNDS}, None),
    "confounds_only": ({"confounds": CONFOUNDS}, None),
    "cosine_terms_only": ({"filter": "cosine", "t_r": 2.0, "high_pass": 0.02}, None),
    "confounds_unscaled_not_detrended": (
        {"confounds": CONFOUNDS, "standardize_confounds": False},
        None,
    ),
    "zscore_sample_silent": (
        {"standardize": "zscore_sample", "confounds": CONFOUNDS, "detrend": True},
        None,
    ),
    # scrubbing
    "extrapolate_warning": ({"low_pass": 0.1, "t_r": 2.0, "sample_mask": np.arange(2, 40)}, None),
    "extrapolate_warning_twice": (
        {"low_pass": 0.1, "t_r": 2.0, "sample_mask": np.arange(40) != 5, "confounds": CONFOUNDS},
        None,
    ),
    "no_extrapolate_no_warning": (
        {"low_pass": 0.1, "t_r": 2.0, "sample_mask": np.arange(2, 40), "extrapolate": False},
        None,
    ),
    "censor_without_filter_no_warning": ({"sample_mask": np.arange(2, 40)}, None),
    "mask_unsorted_butterworth": (
        {"low_pass": 0.1, "t_r": 2.0, "sample_mask": np.array([4, 1, 5])},
        None,
    ),
    "mask_duplicates_butterworth": (
        {"high_pass": 0.1, "t_r": 2.0, "sample_mask": np.array([1, 1, 5])},
        None,
    ),
    "mask_one_volume_butterworth": (
        {"low_pass": 0.1, "t_r": 2.0, "sample_mask": np.array([3])},
        None,
    ),
    "mask_unsorted_no_filter": ({"sample_mask": np.array([5, 1, 1, 30])}, None),
    # single volume left
    "one_volume_detrend_standardize": (
        {
            "detrend": True,
            "standardize": "zscore",
            "sample_mask": np.array([4]),
            "confounds": CONFOUNDS,
        },
        None,
    ),
    # sample masks
    "mask_int": ({"sample_mask": 3}, None),
    "mask_str": ({"sample_mask": "abc"}, "sample_mask has an unhandled type"),
    "mask_flat_list": ({"sample_mask": [1, 2, 4]}, "'int' object is not iterable"),
    "mask_two_runs": ({"sample_mask": [[1, 2], [3]]}, None),
    "mask_negative": ({"sample_mask": np.array([-1, 2])}, None),
    "mask_all_false": ({"sample_mask": np.zeros(N_TIME, bool)}, "zero-size array to reduction"),
    "mask_empty": ({"sample_mask": np.array([], int)}, "zero-size array to reduction"),
    "mask_too_long": ({"sample_mask": np.arange(41) % 40}, None),
    "mask_bool_too_long": ({"sample_mask": np.ones(45, bool)}, None),
    "mask_index_above_t": ({"sample_mask": np.array([1, 41, 50])}, None),
    "mask_index_equal_t": (
        {"sample_mask": np.array([1, 40])},
        "index 40 is out of bounds for axis 0 with size 40",
    ),
    "mask_int32_overflow": (
        {"sample_mask": np.array([1, 2**33])},
        "Max value in sample mask is larger than",
    ),
    "mask_list_of_one_bool": ({"sample_mask": [np.arange(N_TIME) > 3]}, None),
    "mask_tuple_of_one": ({"sample_mask": (np.arange(3, 40),)}, None),
    "mask_floats": ({"sample_mask": np.array([1.5, 2.7, 9.0])}, None),
    # confounds
    "confounds_int": ({"confounds": 5}, None),
    "confounds_list_of_int": ({"confounds": [5]}, None),
    "confounds_list_of_list": ({"confounds": [[1.0] * N_TIME]}, None),
    "confounds_3d": ({"confounds": np.zeros((N_TIME, 2, 2))}, None),
    "confounds_wrong_length": ({"confounds": np.zeros((41, 2))}, None),
    "confounds_wrong_length_in_list": ({"confounds": [CONFOUNDS, np.zeros(39)]}, None),
    "confounds_empty_list": ({"confounds": []}, "need at least one array to concatenate"),
    "confounds_nan": ({"confounds": NAN_CONFOUNDS}, "array must not contain infs or NaNs"),
    "confounds_nan_dataframe": (
        {"confounds": pd.DataFrame(NAN_CONFOUNDS)},
        "array must not contain infs or NaNs",
    ),
    "confounds_nan_filtered": (
        {"confounds": NAN_CONFOUNDS, **BAND},
        "array must not contain infs or NaNs",
    ),
    "confounds_constant_column_cosine": (
        {"filter": "cosine", "t_r": 2.0, "high_pass": 0.02, "confounds": np.ones((N_TIME, 1))},
        None,
    ),
    "confounds_tuple": ({"confounds": (CONFOUNDS[:, 0], CONFOUNDS[:, 1])}, None),
    "confounds_int_dtype": ({"confounds": np.arange(2 * N_TIME).reshape(N_TIME, 2) % 7}, None),
    "psc_zero_mean_column": ({"standardize": "psc", "signals": "zero_column"}, None),
}


def _inputs(kwargs):
    kwargs = dict(kwargs)
    signals = SIGNALS
    if kwargs.pop("signals", None) == "zero_column":
        signals = SIGNALS.copy()
        signals[:, 1] = 0
    return signals, kwargs


@pytest.mark.nilearn
@pytest.mark.parametrize("case", list(SAME))
def test_same_as_nilearn(case):
    kwargs, key_phrase = SAME[case]
    signals, kwargs = _inputs(kwargs)
    expected, expected_warnings = run_recording(nilearn_clean, signals, **kwargs)
    ours, our_warnings = run_recording(clean, signals, **kwargs)
    if isinstance(expected, Exception):
        assert isinstance(ours, type(expected)), (ours, expected)
        assert isinstance(ours, LazySpheresError), type(ours)
        if key_phrase is None:
            assert str(expected) in str(ours), (str(ours), str(expected))
        else:
            assert key_phrase in str(ours), (str(ours), key_phrase)
            assert key_phrase in str(expected) or case == "mask_flat_list"
    else:
        assert not isinstance(ours, Exception), ours
        assert_same(ours, expected)
    # warnings emitted before the failure / along the way: same categories, texts, counts
    if not (isinstance(expected, Exception) and case.startswith("confounds_nan")):
        assert our_warnings == expected_warnings


# Signals that cannot be cleaned, and a parameter of the wrong type: nilearn's check_params
# runs before anything looks at the signals, so the parameter's TypeError is the one raised
# (lazyspheres: CleaningParams.validated, at clean's entry).
PARAMETERS_BEFORE_SIGNALS = {
    "3d_signals_detrend_str": (np.zeros((5, 2, 2)), {"detrend": "x"}),
    "text_signals_t_r_str": (np.array([["a", "b"]] * 5), {"t_r": "2"}),
    "no_volume_standardize_confounds_int": (np.zeros((0, 3)), {"standardize_confounds": 1}),
}


@pytest.mark.parametrize("case", sorted(PARAMETERS_BEFORE_SIGNALS))
def test_parameter_types_are_checked_before_the_signals(case):
    signals, kwargs = PARAMETERS_BEFORE_SIGNALS[case]
    expected, expected_warnings = run_recording(nilearn_clean, signals, **kwargs)
    ours, our_warnings = run_recording(clean, signals, **kwargs)
    assert isinstance(expected, TypeError), expected
    assert isinstance(ours, TypeError), ours
    assert isinstance(ours, LazySpheresError), ours
    assert str(expected) in str(ours), (str(ours), str(expected))
    assert our_warnings == expected_warnings


@pytest.mark.parametrize(
    ("kwargs", "exception", "match"),
    [
        ({"detrend": "yes"}, TypeError, "'detrend' should be of type '<class 'bool'>'"),
        ({"t_r": "2"}, TypeError, r"'t_r' should be of type 'float \| int \| numpy.floating"),
        ({"standardize": "zscor"}, ValueError, "zscor is no valid standardize strategy"),
        ({"filter": "fir", "low_pass": 0.1, "t_r": 2}, ValueError, "Filter method fir not"),
        ({"low_pass": 0.1}, ValueError, r"Repetition time \(t_r\) must be specified for butter"),
        ({"confounds": 5}, TypeError, "confounds keyword has an unhandled type"),
        ({"confounds": np.zeros((41, 2))}, ValueError, "Confound signal has an incorrect length"),
        ({"sample_mask": np.array([-1])}, ValueError, "should not contain negative values"),
        ({"sample_mask": np.array([99])}, IndexError, r"contains invalid index \[99\]"),
        ({"high_pass": 0.1, "low_pass": 0.05, "t_r": 2}, ValueError, "High pass cutoff frequency"),
        (
            {"low_pass": 0.1, "t_r": 2, "sample_mask": np.arange(30, 40), "extrapolate": False},
            ValueError,
            "padlen",
        ),
    ],
)
def test_errors_at_graph_build_time(kwargs, exception, match):
    """Parameter/shape errors are raised when the Dask graph is built, computing nothing."""
    lazy = da.from_array(SIGNALS, chunks=(N_TIME, 1))
    with raise_if_dask_computes(), pytest.raises(exception, match=match):
        clean(lazy, **kwargs)


def test_warnings_at_graph_build_time():
    lazy = da.from_array(SIGNALS, chunks=(N_TIME, 2))
    params = {"standardize": True, "low_pass": 0.3, "t_r": 2.0, "sample_mask": np.arange(1, 40)}
    with raise_if_dask_computes(), pytest.warns(UserWarning, match="too high") as record:
        clean(lazy, confounds=CONFOUNDS, **params)
    categories = sorted({w.category.__name__ for w in record})
    assert categories == ["DeprecationWarning", "FutureWarning", "UserWarning"]


def test_psc_zero_mean_warning_at_compute_time_once():
    signals = SIGNALS.copy()
    signals[:, [0, 2]] = 0.0
    lazy = da.from_array(signals, chunks=(N_TIME, 1))
    with raise_if_dask_computes():
        result = clean(lazy, standardize="psc")  # nothing yet: it depends on the data
    with pytest.warns(UserWarning, match="psc standardization strategy is meaningless") as rec:
        values = result.compute()
    assert sum("psc standardization" in str(w.message) for w in rec) == 1
    np.testing.assert_array_equal(values[:, [0, 2]], 0.0)


# ---------------------------------------------------------------------------------------------
# deliberate differences


@pytest.mark.nilearn
def test_index_equal_to_length_is_rejected_early():
    """nilearn: numpy IndexError deep inside; ours: the same type, both phrases, at once."""
    mask = np.array([1, N_TIME])
    theirs, _ = run_recording(nilearn_clean, SIGNALS, sample_mask=mask)
    assert isinstance(theirs, IndexError)
    with pytest.raises(IndexError, match="invalid index") as info:
        clean(da.from_array(SIGNALS), sample_mask=mask)
    assert str(theirs) in str(info.value)


@pytest.mark.nilearn
def test_two_dimensional_sample_mask_is_rejected():
    mask = np.array([[1, 2, 4]])
    theirs = nilearn_clean(SIGNALS, sample_mask=mask)
    assert theirs.shape == (1, 3, 3)  # nilearn: a 3-D "signal"
    with pytest.raises(ValueError, match="one-dimensional"):
        clean(SIGNALS, sample_mask=mask)


@pytest.mark.nilearn
def test_na_cells_name_column_and_row(tmp_path):
    frame = pd.DataFrame(CONFOUNDS, columns=["csf", "trans_x_derivative1"])
    frame.loc[3, "trans_x_derivative1"] = np.nan
    path = tmp_path / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    frame.to_csv(path, sep="\t", index=False, na_rep="n/a")
    theirs, _ = run_recording(nilearn_clean, SIGNALS, confounds=str(path))
    assert isinstance(theirs, ValueError)
    assert str(theirs) == "array must not contain infs or NaNs"
    with pytest.raises(
        NonFiniteConfoundsError, match="array must not contain infs or NaNs"
    ) as info:
        clean(SIGNALS, confounds=path)
    message = str(info.value)
    assert "'trans_x_derivative1'" in message
    assert "row 3" in message
    assert "line 5 of the file" in message
    assert "fill_na" in message


@pytest.mark.nilearn
def test_headerless_file_with_na_first_cell(tmp_path):
    """nilearn reads a first-cell n/a as a header line and reports a length mismatch."""
    path = tmp_path / "no_header.tsv"
    values = CONFOUNDS.copy()
    values[0, 0] = np.nan
    pd.DataFrame(values).to_csv(path, sep="\t", index=False, header=False, na_rep="n/a")
    theirs, _ = run_recording(nilearn_clean, SIGNALS, confounds=str(path))
    assert "Confound signal has an incorrect length" in str(theirs)
    with pytest.raises(ValueError, match="row 0"):
        clean(SIGNALS, confounds=path)
    filled = values.copy()
    filled[0, 0] = 0.0
    with pytest.warns(DeprecationWarning, match="population std"):
        assert_same(
            clean(SIGNALS, confounds=path, fill_na="zero"),
            nilearn_clean(SIGNALS, confounds=filled),
        )


@pytest.mark.nilearn
@pytest.mark.parametrize("header", [True, False])
def test_single_column_file(tmp_path, header):
    """nilearn crashes on one-column files; lazyspheres reads one regressor."""
    path = tmp_path / "one.csv"
    pd.DataFrame({"fd": CONFOUNDS[:, 0]}).to_csv(path, index=False, header=header)
    theirs, _ = run_recording(nilearn_clean, SIGNALS, confounds=str(path))
    assert isinstance(theirs, TypeError)
    values, names = read_confounds_file(path)
    assert values.shape == (N_TIME, 1)
    assert names == (["fd"] if header else None)
    expected = nilearn_clean(SIGNALS, confounds=CONFOUNDS[:, :1])
    assert_same(clean(SIGNALS, confounds=path), expected)


@pytest.mark.nilearn
@pytest.mark.parametrize("t_r", [0, -2.0])
def test_non_positive_t_r_with_filter(t_r):
    theirs, _ = run_recording(nilearn_clean, SIGNALS, low_pass=0.1, t_r=t_r)
    # nilearn: ZeroDivisionError for 0, a silently meaningless filter for negative values
    assert isinstance(theirs, ZeroDivisionError) or not isinstance(theirs, Exception)
    with pytest.raises(ValueError, match=r"Repetition time \(t_r\) must be positive"):
        clean(SIGNALS, low_pass=0.1, t_r=t_r)


@pytest.mark.nilearn
def test_cosine_single_volume():
    theirs, _ = run_recording(nilearn_clean, SIGNALS[:1], filter="cosine", t_r=2.0, high_pass=0.01)
    assert isinstance(theirs, ValueError)  # "cannot convert float NaN to integer"
    with pytest.raises(ValueError, match="at least 2 volumes"):
        clean(SIGNALS[:1], filter="cosine", t_r=2.0, high_pass=0.01)


@pytest.mark.nilearn
def test_extrapolate_must_be_boolean():
    params = {"low_pass": 0.1, "t_r": 2.0, "sample_mask": np.arange(3, 40)}
    theirs, _ = run_recording(nilearn_clean, SIGNALS, extrapolate="no", **params)
    assert not isinstance(theirs, Exception)  # nilearn hands the string to scipy
    with pytest.raises(TypeError, match="'extrapolate' must be True or False"):
        clean(SIGNALS, extrapolate="no", **params)


@pytest.mark.nilearn
def test_callers_sample_mask_is_not_modified():
    params = {"low_pass": 0.1, "t_r": 2.0, "extrapolate": False}
    theirs_mask = np.arange(3, N_TIME, dtype=np.int32)
    nilearn_clean(SIGNALS, sample_mask=theirs_mask, **params)
    assert theirs_mask[0] == 0  # nilearn shifted the caller's array in place
    ours_mask = np.arange(3, N_TIME, dtype=np.int32)
    clean(SIGNALS, sample_mask=ours_mask, **params)
    np.testing.assert_array_equal(ours_mask, np.arange(3, N_TIME))


@pytest.mark.nilearn
@pytest.mark.parametrize(
    "params", [{"detrend": True}, {"standardize": "zscore_sample"}, {"standardize": "psc"}]
)
def test_one_dimensional_signals_work(params):
    """nilearn 0.12.1 fails on 1-D signals with detrending or z-scoring; we clean the column."""
    theirs, _ = run_recording(
        lambda: __import__("nilearn.signal").signal.clean(
            SIGNALS[:, 0], detrend=False, standardize=False, **params
        )
    )
    ours = clean(SIGNALS[:, 0], **params)
    assert ours.shape == (N_TIME,)
    assert_same(ours, nilearn_clean(SIGNALS[:, :1], **params)[:, 0])
    if params != {"standardize": "psc"}:
        assert isinstance(theirs, (IndexError, TypeError))


def test_sample_mask_given_twice():
    frame = pd.DataFrame(CONFOUNDS)
    with pytest.raises(ValueError, match="sample_mask was given twice"):
        clean(SIGNALS, confounds=(frame, np.arange(3, 40)), sample_mask=np.arange(5, 40))


@pytest.mark.parametrize("fill_na", ["linear", 0, True])
def test_fill_na_values(fill_na):
    with pytest.raises(ValueError, match="fill_na must be one of"):
        clean(SIGNALS, confounds=CONFOUNDS, fill_na=fill_na)


def test_fill_na_all_missing_column():
    values = CONFOUNDS.copy()
    values[:, 1] = np.nan
    with pytest.raises(ValueError, match="no finite value"):
        clean(SIGNALS, confounds=values, fill_na="mean")


def test_lazy_confounds_na_raise_when_computed():
    lazy_conf = da.from_array(NAN_CONFOUNDS, chunks=(N_TIME, 1))
    with raise_if_dask_computes(), pytest.warns(DeprecationWarning, match="population std"):
        result = clean(da.from_array(SIGNALS), confounds=lazy_conf)
    with pytest.raises(NonFiniteConfoundsError, match=r"row 6 .*must not contain infs or NaNs"):
        result.compute()


@pytest.mark.parametrize(
    ("signals", "exception", "match"),
    [
        (np.zeros((2, 3, 4)), ValueError, "shape"),
        (np.zeros((0, 3)), ValueError, "no time point"),
        (np.array([["a", "b"]]), TypeError, "numeric"),
        (np.ones((4, 2), dtype=complex), TypeError, "numeric"),
    ],
)
def test_bad_signals(signals, exception, match):
    with pytest.raises(exception, match=match):
        clean(signals)


def test_dataarray_needs_time_dimension():
    xr = pytest.importorskip("xarray")
    with pytest.raises(ValueError, match="dims"):
        clean(xr.DataArray(SIGNALS, dims=("volume", "seed")))


# ---------------------------------------------------------------------------------------------
# clean_args / deprecated clean__ kwargs


@pytest.mark.parametrize("key", ["t_r", "detrend", "runs", "confounds", "sample_mask"])
def test_clean_args_duplicate_keys(key):
    with pytest.raises(TypeError, match=f"got multiple values for keyword argument '{key}'"):
        clean_args_to_kwargs({key: 2})


def test_clean_args_signals_key():
    with pytest.raises(TypeError, match="got multiple values for argument 'signals'"):
        clean_args_to_kwargs({"signals": None})


def test_clean_args_mapping():
    mapped = clean_args_to_kwargs(
        {
            "filter": "cosine",
            "ensure_finite": True,
            "extrapolate": False,
            "butterworth__order": 3,
            "butterworth__padtype": "even",
            "butterworth__padlen": 4,
            "butterworth__copy": True,
            "unknown_key": 1,  # silently ignored, as in nilearn
        }
    )
    assert mapped == {
        "filter": "cosine",
        "ensure_finite": True,
        "extrapolate": False,
        "butterworth_order": 3,
        "butterworth_padtype": "even",
        "butterworth_padlen": 4,
    }
    assert clean_args_to_kwargs(None) == {}
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        clean_args_to_kwargs({"butterworth__foo": 1})


def test_deprecated_clean_kwargs():
    with pytest.warns(
        DeprecationWarning,
        match=r"You passed some kwargs to NiftiSpheresMasker: \['clean__extrapolate, bar'\]\. "
        r"This behavior is deprecated and will be removed in version >0.13.",
    ):
        stripped = check_clean_kwargs({"clean__extrapolate": False, "bar": 1}, {})
    assert stripped == {"extrapolate": False}
    with (
        pytest.warns(DeprecationWarning, match="You passed some kwargs"),
        pytest.raises(ValueError, match="mutually exclusive with using 'clean_args'"),
    ):
        check_clean_kwargs({"clean__x": 1}, {"a": 1})
    assert check_clean_kwargs({}, {"a": 1}) == {}


@pytest.mark.nilearn
@pytest.mark.parametrize(
    ("clean_args", "kwargs", "params"),
    [
        ({"filter": "cosine"}, {}, {"t_r": 2.0, "high_pass": 0.02}),
        ({"butterworth__order": 2, "butterworth__padlen": 5}, {}, {"t_r": 2.0, "low_pass": 0.1}),
        (None, {"clean__extrapolate": False, "other": 1}, {"t_r": 2.0, "low_pass": 0.1}),
        ({"ensure_finite": True, "unknown": 3}, {}, {"detrend": True}),
    ],
)
def test_clean_args_against_nilearn_masker(clean_args, kwargs, params):
    """The masker's cleaning through nilearn equals our clean with the mapped arguments."""
    import nibabel as nib
    from nilearn.maskers import NiftiSpheresMasker

    rng = np.random.default_rng(3)
    data = 100 + rng.standard_normal((5, 5, 5, N_TIME))
    img = nib.Nifti1Image(data, np.eye(4))
    seeds = [(1, 1, 1), (3, 3, 3)]
    mask = np.arange(2, N_TIME)
    raw = NiftiSpheresMasker(seeds, radius=1).fit_transform(img)
    masker = NiftiSpheresMasker(seeds, radius=1, clean_args=clean_args, **params, **kwargs)
    expected, expected_warnings = run_recording(masker.fit_transform, img, sample_mask=mask)

    def ours_func():
        stripped = check_clean_kwargs(kwargs, clean_args)
        extra = stripped if kwargs else (clean_args or {})
        return clean(raw, sample_mask=mask, **params, **clean_args_to_kwargs(extra))

    ours, our_warnings = run_recording(ours_func)
    assert_same(ours, expected)
    assert our_warnings == expected_warnings
