"""scikit-learn's estimator checks on lazyspheres' masker.

Every check passes except those below, which feed the estimator numpy arrays (1D, 2D,
sparse, complex, object, memory-mapped...) as ``X``. The masker's ``X`` is an image: 0.12.1
refuses an array with a TypeError ("... is not an image"), so these checks cannot pass
without breaking nilearn's semantics. Each is a strict expected failure (it fails the suite
the day it starts passing) with the reason specific to it and, where there is one, the
image-based check that replaces it (nilearn's, run in ``test_nilearn_own_tests.py``, or
ours in ``test_masker_checks.py``).

Compared with nilearn 0.12.1's own list, five checks pass here: the two that nilearn's
``**kwargs`` deprecation cycle breaks (``__init__`` sets only parameters and
``set_params(kwargs=...)`` is accepted; SPEC §3.5 validates at ``fit``) and the three sparse
checks (the TypeError for a sparse matrix says that sparse input is not supported).
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from lazyspheres import NiftiSpheresMasker

_ARRAY = "the masker takes images; a numpy array X raises 0.12.1's TypeError"
EXPECTED_FAILURES = {
    "check_complex_data": f"fits complex X expecting a ValueError; {_ARRAY}",
    "check_dict_unchanged": (
        f"transforms 2D X; {_ARRAY} (image version: check_img_estimator_dict_unchanged)"
    ),
    "check_dont_overwrite_parameters": (
        f"fits 2D X; {_ARRAY} (image version: check_img_estimator_dont_overwrite_parameters)"
    ),
    "check_dtype_object": f"fits an object-dtype X expecting a TypeError on str; {_ARRAY}",
    "check_estimators_dtypes": (
        f"fits float32/int32/int64 2D X; {_ARRAY} (image version: check_masker_dtypes)"
    ),
    "check_estimators_empty_data_messages": (
        "fits an empty (0, 3) X expecting a ValueError; an array is not an image, 0.12.1's "
        "TypeError (empty images: test_empty_images_and_masks)"
    ),
    "check_estimators_fit_returns_self": (
        f"fits 2D X; {_ARRAY} (image version: check_fit_returns_self)"
    ),
    "check_estimators_nan_inf": (
        "expects fit to refuse NaN/inf in 2D X; 0.12.1 accepts non-finite images (zeroed, "
        "with a warning) and refuses arrays with a TypeError"
    ),
    "check_estimators_overwrite_params": (
        f"fits 2D X; {_ARRAY} (image version: check_img_estimator_overwrite_params)"
    ),
    "check_estimators_pickle": (
        f"fits 2D X (also memory-mapped); {_ARRAY} (image version: check_img_estimator_pickle)"
    ),
    "check_f_contiguous_array_estimator": f"fits a Fortran-ordered 2D X; {_ARRAY}",
    "check_fit1d": f"fits a 1D X expecting a ValueError; {_ARRAY}",
    "check_fit2d_1feature": f"fits a (10, 1) X; {_ARRAY}",
    "check_fit2d_1sample": f"fits a (1, 10) X; {_ARRAY}",
    "check_fit2d_predict1d": f"fits 2D X then calls transform on 1D rows; {_ARRAY}",
    "check_fit_check_is_fitted": (
        f"fits 2D X; {_ARRAY} (image version: check_img_estimator_fit_check_is_fitted)"
    ),
    "check_fit_idempotent": (
        f"fits 2D X twice; {_ARRAY} (image version: check_img_estimator_fit_idempotent)"
    ),
    "check_fit_score_takes_y": (
        f"fits 2D X with y; {_ARRAY} (image version: check_img_estimator_fit_score_takes_y)"
    ),
    "check_methods_sample_order_invariance": (
        f"transforms permuted 2D X; {_ARRAY} "
        "(image version: check_nilearn_methods_sample_order_invariance)"
    ),
    "check_methods_subset_invariance": (
        f"transforms 2D X by row batches; {_ARRAY} (volumes: test_sample_order_invariance)"
    ),
    "check_n_features_in": (
        f"expects n_features_in_ after fitting 2D X; {_ARRAY} (masker: n_elements_, "
        "check_img_estimator_n_elements)"
    ),
    "check_n_features_in_after_fitting": (
        f"expects X-column checks on 2D X; {_ARRAY} (check_img_estimator_n_elements)"
    ),
    "check_pipeline_consistency": (
        f"fits a pipeline on 2D X; {_ARRAY} "
        "(image version: check_img_estimator_pipeline_consistency)"
    ),
    "check_positive_only_tag_during_fit": (f"fits negative 2D X expecting success; {_ARRAY}"),
    "check_readonly_memmap_input": f"fits read-only memory-mapped 2D X; {_ARRAY}",
    "check_transformer_data_not_an_array": (
        f"transforms an array-like wrapper of 2D X; {_ARRAY} (check_masker_transformer)"
    ),
    "check_transformer_general": (
        f"fit_transform on 2D X (also memory-mapped); {_ARRAY} (check_masker_transformer)"
    ),
    "check_transformer_preserve_dtypes": (
        f"transforms float32/float64 2D X; {_ARRAY} (image version: check_masker_dtypes)"
    ),
}

# The checks nilearn 0.12.1 expects to fail for its masker and that pass for ours.
PASSING_HERE_NOT_IN_NILEARN = {
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_no_attributes_set_in_init",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
}

ESTIMATORS = [NiftiSpheresMasker(seeds=[(1, 1, 1)]),
              NiftiSpheresMasker(seeds=[(1, 1, 1), (1, 2, 3)])]  # fmt: skip


def _expected(estimator):
    return EXPECTED_FAILURES


# xfail_strict: an expected failure that passes is reported as a failure.
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected, xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_each_expected_failure_has_its_own_reason():
    assert len(set(EXPECTED_FAILURES.values())) == len(EXPECTED_FAILURES)


def _yielded_check_names():
    from sklearn.utils.estimator_checks import estimator_checks_generator

    names = set()
    for _, check in estimator_checks_generator(ESTIMATORS[0], legacy=True):
        names.add(getattr(check, "func", check).__name__)
    return names


def test_expected_failures_are_nilearns_minus_those_we_fixed():
    """Ours are nilearn's expected failures (those scikit-learn still runs) minus five."""
    nilearn_checks = pytest.importorskip("nilearn._utils.estimator_checks")
    from nilearn.maskers import NiftiSpheresMasker as NilearnMasker

    theirs = nilearn_checks.return_expected_failed_checks(NilearnMasker(seeds=[(1, 1, 1)]))
    run = _yielded_check_names()
    assert set(EXPECTED_FAILURES) <= run
    assert set(theirs) & run == set(EXPECTED_FAILURES) | PASSING_HERE_NOT_IN_NILEARN


def test_kwargs_round_trip_through_set_params():
    """``set_params(kwargs=...)`` replaces the deprecated kwargs; checked at fit, not before."""
    masker = NiftiSpheresMasker(seeds=[(1, 1, 1)], clean__filter="cosine")
    assert masker.clean_kwargs == {"clean__filter": "cosine"}
    assert "clean_kwargs" not in vars(masker)
    assert NiftiSpheresMasker(seeds=[(1, 1, 1)]).clean_kwargs == {}
    masker.set_params(kwargs={"clean__filter": "butterworth"}, radius=2.0)
    assert masker.clean_kwargs == {"clean__filter": "butterworth"}
    assert masker.radius == 2.0
    masker.set_params(kwargs=-1)
    with pytest.raises(TypeError, match=r"'kwargs' .* must be a dict; got int: -1"):
        masker.fit()
    with pytest.raises(ValueError, match="Invalid parameter 'nonsense'"):
        masker.set_params(nonsense=1)
