"""Differential tests of ``lazyspheres.clean`` against nilearn 0.12.1's ``signal.clean``.

Every case runs nilearn and lazyspheres on the same input and compares values (dtype, shape,
tolerances of ``cleaning_helpers.tolerance``), exceptions (type and message) and warnings
(category and text, with counts). Each case also runs through Dask at seed chunkings 1, 2 and
all, and through xarray; those must equal the numpy path bit for bit.

Where lazyspheres deliberately differs (scrubbing volumes whose mirror is censored, SPEC
§3.5), the reference is nilearn applied to input whose censored volumes were filled by an
independent spline model (``prefill_censored``): the correct result.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from cleaning_helpers import (
    assert_same,
    make_signals,
    mirror_safe,
    nilearn_clean,
    prefill_censored,
    run_recording,
)

from lazyspheres.cleaning import clean

pytestmark = [
    pytest.mark.nilearn,
    # nilearn 0.12.1's own warnings; every comparison below pins them via run_recording
    pytest.mark.filterwarnings("ignore:The default strategy for standardize:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:By default the cubic spline:FutureWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning:nilearn"),
]
pytest.importorskip("nilearn")


@pytest.fixture(autouse=True)
def _synchronous_dask():
    with dask.config.set(scheduler="synchronous"):
        yield


# ---------------------------------------------------------------------------------------------
# confounds in every form: (object given to lazyspheres, object given to nilearn, numeric view)


def confound_forms(form, values, tmp_path, n_time):
    """Return (ours, theirs, numeric) for a confound ``form`` holding ``values`` (T, k)."""
    names = [f"conf_{j}" for j in range(values.shape[1])]
    frame = pd.DataFrame(values, columns=names)
    if form == "array":
        return values, values, values
    if form == "1d":
        return values[:, 0], values[:, 0], values[:, :1]
    if form == "list":
        parts = [values[:, :1], values[:, 1:]]
        return parts, parts, values
    if form == "tuple":
        parts = (values[:, :1], values[:, 1:])
        return parts, parts, values
    if form == "dataframe":
        return frame, frame, values
    if form == "csv_header":
        path = tmp_path / "conf.csv"
        frame.to_csv(path, index=False)
        return str(path), str(path), values
    if form == "tsv_header":  # fMRIPrep-style, given as a pathlib.Path
        path = tmp_path / "desc-confounds_timeseries.tsv"
        frame.to_csv(path, sep="\t", index=False)
        return path, path, values
    if form == "whitespace":  # SPM rp_*.txt style, no header
        path = tmp_path / "rp.txt"
        np.savetxt(path, values)
        return str(path), str(path), values
    if form == "pandas_index":  # the index column becomes a regressor, in both
        path = tmp_path / "with_index.csv"
        frame.to_csv(path)
        return str(path), str(path), np.column_stack([np.arange(n_time), values])
    if form == "dask":
        return da.from_array(values, chunks=(n_time, 1)), values, values
    if form == "dataarray":
        arr = xr.DataArray(values, dims=("time", "confound"), coords={"confound": names})
        return arr, values, values
    if form == "float32":  # like high-variance confounds of a float32 image
        values32 = values.astype(np.float32)
        return values32, values32, values32
    if form == "mixed_list":  # what the masker passes: [lazy hv confounds, user confounds]
        hv = values[:, :1].astype(np.float32)
        ours = [da.from_array(hv, chunks=(n_time, 1)), frame.iloc[:, 1:]]
        return ours, [hv, frame.iloc[:, 1:]], np.column_stack([hv, values[:, 1:]])
    raise AssertionError(form)


FILTERS = {
    "none": {},
    "low": {"low_pass": 0.1, "t_r": 2.0},
    "high": {"high_pass": 0.02, "t_r": 2.0},
    "band": {"low_pass": 0.12, "high_pass": 0.015, "t_r": 2.0},
    "low_at_nyquist": {"low_pass": 0.3, "t_r": 2.0},  # clipped below Nyquist, warning
    "band_negative_high": {"low_pass": 0.1, "high_pass": -0.01, "t_r": 2.0},
    "low_order3_even": {
        "low_pass": 0.08,
        "t_r": 1.5,
        "butterworth_order": 3,
        "butterworth_padtype": "even",
    },
    "high_padlen": {"high_pass": 0.03, "t_r": 2.0, "butterworth_padlen": 10},
    "cosine": {"filter": "cosine", "high_pass": 0.02, "t_r": 2.0},
    "cosine_int_tr": {"filter": "cosine", "high_pass": 0.01, "t_r": 3},
    "filter_off": {"filter": False, "low_pass": 0.1, "t_r": 2.0},  # warning, no filtering
}


def sample_masks(n_time, rng):
    interior = np.setdiff1d(np.arange(n_time), [7, 8, n_time // 2])
    scattered = rng.random(n_time) > 0.2
    return {
        "none": None,
        "interior": interior,
        "interior_bool": np.isin(np.arange(n_time), interior),
        "head": np.arange(3, n_time),
        "tail": np.arange(0, n_time - 4),
        "head_tail": np.arange(2, n_time - 2),
        "scattered_bool": scattered,
        "list_of_one": [np.arange(1, n_time)],
    }


STANDARDIZE = [False, True, "zscore", "zscore_sample", "psc", None]
CONFOUNDS = [
    "none",
    "array",
    "1d",
    "list",
    "tuple",
    "dataframe",
    "csv_header",
    "tsv_header",
    "whitespace",
    "pandas_index",
    "dask",
    "dataarray",
    "float32",
    "mixed_list",
]
DTYPES = [np.float64, np.float32, np.int16]
N_RANDOM = 360


def draw_case(index):
    """A reproducible random combination of every option."""
    rng = np.random.default_rng(10_000 + index)
    n_time = int(rng.choice([40, 57, 90]))
    case = {
        "n_time": n_time,
        "n_series": int(rng.choice([1, 3, 5])),
        "dtype": DTYPES[rng.integers(len(DTYPES))],
        "detrend": bool(rng.integers(2)),
        "standardize": STANDARDIZE[rng.integers(len(STANDARDIZE))],
        "standardize_confounds": bool(rng.integers(2)),
        "confounds": CONFOUNDS[rng.integers(len(CONFOUNDS))],
        "filter": list(FILTERS)[rng.integers(len(FILTERS))],
        "mask": list(sample_masks(n_time, rng))[rng.integers(8)],
        "extrapolate": bool(rng.integers(2)),
        "seed": index,
    }
    if case["confounds"] == "pandas_index" and case["detrend"]:
        # Detrending turns the index column (a pure ramp) into rounding noise that z-scoring
        # then blows up to unit variance: an ill-posed regressor in any implementation.
        case["detrend"] = False
    return case


def compare_with_nilearn(case, tmp_path):
    """Run one case through nilearn and every lazyspheres path; assert they agree."""
    rng = np.random.default_rng(case["seed"])
    n_time, n_series = case["n_time"], case["n_series"]
    signals = make_signals(rng, n_time, n_series, case["dtype"])
    conf_values = rng.standard_normal((n_time, 3)) + np.linspace(0, 1, n_time)[:, None]
    params = dict(FILTERS[case["filter"]])
    params.update(
        detrend=case["detrend"],
        standardize=case["standardize"],
        standardize_confounds=case["standardize_confounds"],
        extrapolate=case["extrapolate"],
    )
    mask = sample_masks(n_time, np.random.default_rng(case["seed"]))[case["mask"]]
    ours_conf = theirs_conf = numeric = None
    if case["confounds"] != "none":
        ours_conf, theirs_conf, numeric = confound_forms(
            case["confounds"], conf_values, tmp_path, n_time
        )
    theirs_signals = signals
    butterworth = params.get("filter", "butterworth") == "butterworth" and (
        "low_pass" in params or "high_pass" in params
    )
    flat_mask = mask[0] if isinstance(mask, list) else mask
    if butterworth and flat_mask is not None and not mirror_safe(flat_mask, n_time):
        # nilearn would skip censored volumes whose mirror is censored: compare with the
        # correct model (every censored volume interpolated) instead.
        t_r, extrapolate = params["t_r"], params["extrapolate"]
        theirs_signals = prefill_censored(signals, flat_mask, t_r, extrapolate)
        if numeric is not None:
            theirs_conf = prefill_censored(numeric, flat_mask, t_r, extrapolate)

    expected, expected_warnings = run_recording(
        nilearn_clean, theirs_signals, confounds=theirs_conf, sample_mask=mask, **params
    )
    ours, our_warnings = run_recording(
        clean, signals, confounds=ours_conf, sample_mask=mask, **params
    )
    if isinstance(expected, Exception):
        assert isinstance(ours, type(expected)), (case, expected, ours)
        assert str(expected).split("\n")[0][:40] in str(ours), (case, expected, ours)
        return
    assert not isinstance(ours, Exception), (case, ours)
    assert our_warnings == expected_warnings, case
    assert_same(
        ours, expected, single_precision=numeric is not None and numeric.dtype == np.float32
    )

    # Dask at seed chunkings 1, 2 and all: bitwise equal to the numpy path, same warnings.
    for chunk in sorted({1, 2, n_series}):
        lazy_signals = da.from_array(signals, chunks=(n_time, chunk))
        lazy, lazy_warnings = run_recording(
            lambda s=lazy_signals: clean(
                s, confounds=ours_conf, sample_mask=mask, **params
            ).compute()
        )
        np.testing.assert_array_equal(lazy, ours)
        assert lazy.dtype == ours.dtype
        assert lazy_warnings == our_warnings, (case, chunk)

    # xarray, numpy- and dask-backed: labels kept, time subset by the sample mask.
    times = np.arange(n_time) * 2.0
    labelled = xr.DataArray(
        signals,
        dims=("time", "seed"),
        coords={
            "time": times,
            "seed": np.arange(n_series),
            "label": ("seed", list("abcde")[:n_series]),
        },
        attrs={"units": "a.u."},
    )
    kept = np.arange(n_time) if flat_mask is None else np.asarray(flat_mask)
    kept = np.flatnonzero(kept) if kept.dtype == bool else kept
    for array in (labelled, labelled.chunk(seed=2)):
        result, _ = run_recording(
            lambda a=array: clean(a, confounds=ours_conf, sample_mask=mask, **params).compute()
        )
        np.testing.assert_array_equal(result.values, ours)
        np.testing.assert_array_equal(result["time"].values, times[kept])
        assert list(result["label"].values) == list("abcde")[:n_series]
        assert result.attrs == {"units": "a.u."}


@pytest.mark.parametrize("index", range(N_RANDOM), ids=lambda i: f"case{i}")
def test_random_combinations(index, tmp_path):
    compare_with_nilearn(draw_case(index), tmp_path)


# ---------------------------------------------------------------------------------------------
# every option on its own (and a few pairs), on a fixed input


def base_case(**overrides):
    case = {
        "n_time": 60,
        "n_series": 4,
        "dtype": np.float64,
        "detrend": False,
        "standardize": False,
        "standardize_confounds": True,
        "confounds": "none",
        "filter": "none",
        "mask": "none",
        "extrapolate": True,
        "seed": 7,
    }
    case.update(overrides)
    return case


# A pandas CSV written with its index adds the index (a ramp) as a regressor; detrending
# reduces that column to rounding noise, an ill-posed regressor in any implementation, so
# that one combination is not generated (it is not a case either library can get right).
CONFOUND_FORM_CASES = [
    (confounds, standardize_confounds, detrend)
    for confounds in CONFOUNDS
    for standardize_confounds in (True, False)
    for detrend in (True, False)
    if not (confounds == "pandas_index" and detrend)
]


@pytest.mark.parametrize(("confounds", "standardize_confounds", "detrend"), CONFOUND_FORM_CASES)
def test_confound_forms(confounds, standardize_confounds, detrend, tmp_path):
    case = base_case(
        confounds=confounds, standardize_confounds=standardize_confounds, detrend=detrend
    )
    compare_with_nilearn(case, tmp_path)


@pytest.mark.parametrize("standardize", STANDARDIZE)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16, np.int64, np.uint8])
def test_standardize_and_dtypes(standardize, dtype, tmp_path):
    compare_with_nilearn(base_case(standardize=standardize, dtype=dtype), tmp_path)


@pytest.mark.parametrize("filter_name", list(FILTERS))
@pytest.mark.parametrize("standardize", [False, "zscore_sample", "psc"])
def test_filters(filter_name, standardize, tmp_path):
    case = base_case(filter=filter_name, standardize=standardize, confounds="array")
    compare_with_nilearn(case, tmp_path)


@pytest.mark.parametrize(
    ("mask", "filter_name", "extrapolate"),
    list(
        itertools.product(
            ["interior", "interior_bool", "head", "tail", "head_tail", "scattered_bool"],
            ["none", "low", "band", "cosine"],
            [True, False],
        )
    ),
)
def test_sample_masks(mask, filter_name, extrapolate, tmp_path):
    case = base_case(
        mask=mask,
        filter=filter_name,
        extrapolate=extrapolate,
        detrend=True,
        confounds="array",
        standardize="zscore_sample",
    )
    compare_with_nilearn(case, tmp_path)


@pytest.mark.parametrize(
    ("low_pass", "high_pass", "padlen"),
    [(0.1, None, 18), (None, 0.02, 18), (0.1, 0.02, 33)],
)
@pytest.mark.parametrize("offset", [0, 1, 2])
def test_length_near_butterworth_padlen(low_pass, high_pass, padlen, offset):
    """T == padlen fails in both ("must be greater than padlen"); padlen + 1 works."""
    rng = np.random.default_rng(offset)
    signals = make_signals(rng, padlen + offset, 3)
    params = {"low_pass": low_pass, "high_pass": high_pass, "t_r": 2.0}
    expected, expected_warnings = run_recording(nilearn_clean, signals, **params)
    ours, our_warnings = run_recording(clean, signals, **params)
    if offset == 0:
        assert isinstance(expected, ValueError)
        assert isinstance(ours, ValueError)
        assert str(ours) == str(expected)
        assert f"must be greater than padlen, which is {padlen}" in str(ours)
    else:
        assert_same(ours, expected)
    assert our_warnings == expected_warnings


@pytest.mark.parametrize("standardize", ["zscore", "zscore_sample", "psc", True])
@pytest.mark.parametrize("detrend", [True, False])
def test_constant_signals(standardize, detrend):
    signals = np.column_stack([np.full(30, 5.0), np.full(30, -2.0), np.zeros(30)])
    expected, expected_warnings = run_recording(
        nilearn_clean, signals, standardize=standardize, detrend=detrend
    )
    ours, our_warnings = run_recording(clean, signals, standardize=standardize, detrend=detrend)
    assert_same(ours, expected)
    assert our_warnings == expected_warnings
    np.testing.assert_array_equal(ours, 0.0)


@pytest.mark.parametrize("case", ["all_zero_mean", "one_zero_column", "after_high_pass"])
def test_psc_zero_mean_warning(case):
    rng = np.random.default_rng(3)
    signals = make_signals(rng, 50, 3)
    params = {"standardize": "psc"}
    if case == "all_zero_mean":  # integer values summing to exactly 0 per column
        signals = np.round(signals)
        signals[-1] -= signals.sum(axis=0)
    elif case == "one_zero_column":
        signals[:, 1] = 0.0
    else:  # high-pass removes the mean: the original mean is added back (joint test)
        params.update(high_pass=0.02, t_r=2.0, detrend=True)
    expected, expected_warnings = run_recording(nilearn_clean, signals, **params)
    ours, our_warnings = run_recording(clean, signals, **params)
    assert_same(ours, expected)
    assert our_warnings == expected_warnings
    zero_warning = any("psc standardization" in message for _, message in expected_warnings)
    assert zero_warning == (case != "after_high_pass")


@pytest.mark.parametrize("collinear", [True, False])
def test_cosine_terms_in_user_confounds(collinear):
    """Confounds correlating > 0.9 with a cosine regressor replace the cosine terms."""
    n_time, t_r, high_pass = 80, 2.0, 0.02
    rng = np.random.default_rng(5)
    signals = make_signals(rng, n_time, 4)
    times = np.arange(n_time)
    confounds = rng.standard_normal((n_time, 2))
    if collinear:  # the second DCT-II regressor plus a little noise (r ~ 0.99)
        cosine = np.cos(np.pi / n_time * (times + 0.5) * 2)
        confounds[:, 1] = cosine + 0.05 * rng.standard_normal(n_time)
    params = {"filter": "cosine", "high_pass": high_pass, "t_r": t_r, "confounds": confounds}
    expected, expected_warnings = run_recording(nilearn_clean, signals, **params)
    ours, our_warnings = run_recording(clean, signals, **params)
    assert_same(ours, expected)
    assert our_warnings == expected_warnings
    assert any("Cosine filter(s) exist" in m for _, m in our_warnings) == collinear
    # lazily given confounds: the correlation rule runs (and warns) when computing
    lazy, lazy_warnings = run_recording(
        lambda: clean(signals, **{**params, "confounds": da.from_array(confounds)})
    )
    np.testing.assert_array_equal(lazy, ours)
    assert lazy_warnings == our_warnings


@pytest.mark.parametrize(
    ("high_pass", "n_time"), [(0.001, 40), (0.3, 40), (0.0, 30), (0.0125, 20)]
)
def test_cosine_order_edge_cases(high_pass, n_time):
    """Order 0 ("Cosine filter was not created"), saturation warning, tiny order."""
    signals = make_signals(np.random.default_rng(1), n_time, 3)
    params = {"filter": "cosine", "high_pass": high_pass, "t_r": 2.0, "detrend": True}
    expected, expected_warnings = run_recording(nilearn_clean, signals, **params)
    ours, our_warnings = run_recording(clean, signals, **params)
    # at saturation everything is regressed out: compare the residue on the input's scale
    assert_same(ours, expected, scale=np.abs(signals).max())
    assert our_warnings == expected_warnings


def test_band_clipped_to_equal_cutoffs_is_unfiltered():
    signals = make_signals(np.random.default_rng(2), 40, 3)
    params = {"low_pass": 0.4, "high_pass": 0.3, "t_r": 2.0, "sample_mask": np.arange(2, 40)}
    expected, expected_warnings = run_recording(nilearn_clean, signals, **params)
    ours, our_warnings = run_recording(clean, signals, **params)
    assert_same(ours, expected)
    assert our_warnings == expected_warnings
    assert any("returned unfiltered" in m for _, m in our_warnings)


@pytest.mark.parametrize("n_series", [1, 3])
def test_one_dimensional_signals(n_series):
    signals = make_signals(np.random.default_rng(4), 50, 1)[:, 0]
    for params in ({}, {"low_pass": 0.1, "t_r": 2.0}, {"detrend": True, "standardize": "psc"}):
        expected = nilearn_clean(signals, **params)
        ours = clean(signals, **params)
        assert ours.shape == (50,)
        assert_same(ours, expected)


def test_ensure_finite():
    signals = make_signals(np.random.default_rng(8), 40, 3)
    signals[5, 1] = np.nan
    signals[9, 2] = np.inf
    params = {"ensure_finite": True, "detrend": True, "standardize": "zscore_sample"}
    assert_same(clean(signals, **params), nilearn_clean(signals, **params))
    # without it NaN propagates through the series, as in nilearn
    ours = clean(signals, detrend=True)
    expected = nilearn_clean(signals, detrend=True)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))


@pytest.mark.parametrize("n_out", [1, 2])
def test_single_volume_left(n_out):
    """Detrend/standardize skipped with warnings when one volume remains, as in nilearn."""
    signals = make_signals(np.random.default_rng(9), 20, 3)
    confounds = np.random.default_rng(10).standard_normal((20, 2))
    params = {
        "detrend": True,
        "standardize": "psc",
        "confounds": confounds,
        "sample_mask": np.arange(n_out) + 3,
    }
    expected, expected_warnings = run_recording(nilearn_clean, signals, **params)
    ours, our_warnings = run_recording(clean, signals, **params)
    assert_same(ours, expected, scale=np.abs(signals).max())  # 2 detrended volumes: ~0
    assert our_warnings == expected_warnings


# ---------------------------------------------------------------------------------------------
# deliberate differences, each shown both ways


def test_scrubbing_interpolates_every_censored_volume():
    """SPEC §3.5: nilearn skips censored volumes whose mirror T-1-i is censored too.

    Volumes 20 and 39 of 60 are a mirror pair: nilearn leaves their raw spikes in the series
    it filters, so they leak into kept volumes. lazyspheres interpolates both and equals an
    independent model (spline through kept volumes, Butterworth, keep the mask).
    """
    n_time, t_r = 60, 2.0
    rng = np.random.default_rng(11)
    signals = make_signals(rng, n_time, 3)
    signals[[20, 39]] += 1e4
    mask = np.setdiff1d(np.arange(n_time), [20, 39])
    params = {"low_pass": 0.1, "t_r": t_r, "sample_mask": mask}
    theirs = nilearn_clean(signals, **params)
    ours = clean(signals, **params)
    model = correct_model = None
    from cleaning_helpers import correct_scrub_filter

    model = correct_scrub_filter(signals, mask, t_r, low_pass=0.1)
    correct_model = nilearn_clean(prefill_censored(signals, mask, t_r, True), **params)
    np.testing.assert_allclose(ours, model, rtol=1e-10, atol=1e-10 * np.abs(model).max())
    assert_same(ours, correct_model)
    assert np.abs(theirs - ours).max() > 100  # nilearn's spikes leak (~1e3)
    assert np.abs(ours - signals[mask]).max() < 60  # ours stays within the signal's range


def test_scrubbing_agrees_when_mirrors_are_kept():
    """Censored volumes 20 and 41 of 60 (mirrors 39 and 18 kept): identical to nilearn."""
    n_time = 60
    signals = make_signals(np.random.default_rng(12), n_time, 3)
    signals[[20, 41]] += 1e4
    mask = np.setdiff1d(np.arange(n_time), [20, 41])
    for extrapolate in (True, False):
        params = {"high_pass": 0.02, "t_r": 2.0, "sample_mask": mask, "extrapolate": extrapolate}
        assert_same(clean(signals, **params), nilearn_clean(signals, **params))


def test_scrubbing_both_ends_without_extrapolation():
    """Censoring volumes 0 and T-1 with extrapolate=False: nilearn returns the censored volume 0
    and drops volume T-2; lazyspheres drops both ends before filtering."""
    n_time = 40
    signals = make_signals(np.random.default_rng(13), n_time, 2)
    signals[0] += 1e4
    mask = np.arange(1, n_time - 1)
    params = {"low_pass": 0.1, "t_r": 2.0, "sample_mask": mask, "extrapolate": False}
    theirs = nilearn_clean(signals, **params)
    ours = clean(signals, **params)
    assert theirs.shape == ours.shape == (n_time - 2, 2)
    assert np.abs(theirs[0] - signals[0]).max() < 1e3  # nilearn's first row is the spike
    expected = nilearn_clean(signals[1:-1], low_pass=0.1, t_r=2.0)  # filter kept span only
    assert_same(ours, expected)


@pytest.mark.parametrize("value", [1, np.True_, 1.0])
def test_standardize_truthy_values_standardize(value):
    """SPEC §3.5: 0.12.1 silently skips standardize=1/np.True_; lazyspheres z-scores."""
    signals = make_signals(np.random.default_rng(14), 40, 3)
    theirs = nilearn_clean(signals, standardize=value)
    np.testing.assert_array_equal(theirs, signals)  # nilearn: untouched
    with pytest.warns(DeprecationWarning, match="population std"):
        ours = clean(signals, standardize=value)
    assert_same(ours, nilearn_clean(signals, standardize=True))


def test_load_confounds_pair(tmp_path):
    """nilearn's load_confounds returns (DataFrame, sample_mask); clean accepts the pair."""
    n_time = 50
    rng = np.random.default_rng(15)
    signals = make_signals(rng, n_time, 3)
    frame = pd.DataFrame(rng.standard_normal((n_time, 4)), columns=list("abcd"))
    mask = np.setdiff1d(np.arange(n_time), [10, 11, 30])
    expected = nilearn_clean(signals, confounds=frame, sample_mask=mask, detrend=True)
    assert_same(clean(signals, confounds=(frame, mask), detrend=True), expected)
    expected = nilearn_clean(signals, confounds=frame, detrend=True)
    assert_same(clean(signals, confounds=(frame, None), detrend=True), expected)


@pytest.mark.parametrize("fill", ["zero", "mean", "interpolate"])
def test_fill_na_equals_filling_first(fill, tmp_path):
    """fMRIPrep n/a cells: fill_na gives nilearn's result on the filled table."""
    n_time = 45
    rng = np.random.default_rng(16)
    signals = make_signals(rng, n_time, 3)
    frame = pd.DataFrame(rng.standard_normal((n_time, 3)), columns=["csf", "wm", "dvars"])
    frame.loc[0, "dvars"] = np.nan
    frame.loc[7, "wm"] = np.nan
    path = Path(tmp_path) / "sub-01_desc-confounds_timeseries.tsv"
    frame.to_csv(path, sep="\t", index=False, na_rep="n/a")
    filled = frame.copy()
    for name in ("dvars", "wm"):
        column = filled[name].to_numpy(copy=True)
        good = np.isfinite(column)
        if fill == "zero":
            column[~good] = 0
        elif fill == "mean":
            column[~good] = column[good].mean()
        else:
            column[~good] = np.interp(np.flatnonzero(~good), np.flatnonzero(good), column[good])
        filled[name] = column
    expected = nilearn_clean(signals, confounds=filled, detrend=True)
    assert_same(clean(signals, confounds=path, detrend=True, fill_na=fill), expected)
    assert_same(clean(signals, confounds=frame, detrend=True, fill_na=fill), expected)


def test_na_in_censored_volumes_is_harmless(tmp_path):
    """n/a only in volumes that are censored: no error (nilearn too, without a filter)."""
    n_time = 40
    rng = np.random.default_rng(17)
    signals = make_signals(rng, n_time, 2)
    frame = pd.DataFrame(rng.standard_normal((n_time, 2)), columns=["a", "a_derivative1"])
    frame.loc[0, "a_derivative1"] = np.nan
    mask = np.arange(1, n_time)
    expected = nilearn_clean(signals, confounds=frame, sample_mask=mask)
    assert_same(clean(signals, confounds=frame, sample_mask=mask), expected)
