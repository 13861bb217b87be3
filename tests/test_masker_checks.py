"""nilearn's own tests of its spheres masker and its generic estimator checks, reimplemented.

nilearn 0.12.1 runs ``test_nifti_spheres_masker.py`` and ``nilearn_check_estimator`` on
``NiftiSpheresMasker(seeds=[(1, 1, 1)])``. This file checks the same properties against
lazyspheres' masker (written from their intent; see reference §6.1-6.2), on both estimators
nilearn uses (one seed, two seeds). Two checks are deliberately different: 0.12.1's
``check_transformer_set_output`` expects NotImplementedError (lazyspheres implements
``set_output``: see test_masker_api.py) and the surface-image checks do not apply.
"""

from __future__ import annotations

import inspect
import pickle
import re
import warnings
from copy import deepcopy

import joblib
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline

from lazyspheres import NiftiSpheresMasker
from lazyspheres.errors import DimensionError

ESTIMATORS = [NiftiSpheresMasker(seeds=[(1, 1, 1)]),
              NiftiSpheresMasker(seeds=[(1, 1, 1), (1, 2, 3)])]  # fmt: skip
LARGE = (29, 30, 31)
NOT_FITTED = "This NiftiSpheresMasker instance is not fitted yet."


def rng():
    return np.random.default_rng(42)


def img_3d(shape=(7, 8, 9)):
    return nib.Nifti1Image(rng().random(shape), np.eye(4))


def img_4d(n=5, shape=(7, 8, 9)):
    return nib.Nifti1Image(rng().random((*shape, n)), np.eye(4))


def fit_data():
    return nib.Nifti1Image(rng().random(LARGE) + 10, np.eye(4))


@pytest.fixture(params=ESTIMATORS, ids=["one_seed", "two_seeds"])
def estimator(request):
    return clone(request.param)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as nilearn's @ignore_warnings on these checks
        yield


# ---------------------------------------------------------------------------- generic
def test_tags(estimator):
    tags = estimator.__sklearn_tags__()
    assert estimator._more_tags() == tags
    assert tags.input_tags.niimg_like
    assert tags.input_tags.masker
    assert not tags.input_tags.surf_img
    assert not tags.input_tags.multi_masker
    assert tags.requires_fit
    assert tags.transformer_tags.preserves_dtype == ["float64"]


def test_cache_warning(estimator, tmp_path):
    mask = nib.Nifti1Image(np.ones(LARGE), np.eye(4))
    for memory, level in ((None, 0), (str(tmp_path / "cache"), 1)):
        masker = clone(estimator).set_params(mask_img=mask, memory=memory, memory_level=level)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            masker.fit(fit_data()).transform(fit_data())
        assert not any("memory_level is currently set to 0" in str(w.message) for w in caught)
    masker = clone(estimator).set_params(mask_img=mask, memory=str(tmp_path), memory_level=0)
    with pytest.warns(UserWarning, match="memory_level is currently set to 0 but a Memory"):
        masker.fit(fit_data()).transform(fit_data())


def test_doc_attributes(estimator):
    numpydoc = pytest.importorskip("numpydoc.docscrape")
    doc = numpydoc.NumpyDocString(type(estimator).__doc__)
    documented = [p.name for p in doc["Parameters"]]
    public = [k for k in estimator.__dict__ if not k.startswith("_") and k != "clean_kwargs"]
    assert documented[: len(public)] == list(inspect.signature(type(estimator)).parameters)[:18]
    assert set(public) <= set(documented)
    attributes = {a.name for a in doc["Attributes"]}
    fitted = clone(estimator).fit(fit_data())
    added = {k for k in fitted.__dict__ if k.endswith("_") and not k.startswith("_")}
    assert added == attributes
    assert "verbose : int, default=0" in type(estimator).__doc__


def test_fit_returns_self(estimator):
    assert estimator.fit(fit_data()) is estimator


def test_transform_leaves_the_estimator_unchanged(estimator):
    estimator.fit(fit_data())
    before = dict(estimator.__dict__)
    estimator.transform(fit_data())
    assert estimator.__dict__.keys() == before.keys()
    for key, value in before.items():
        assert estimator.__dict__[key] is value, key


def test_fit_only_adds_private_or_fitted_attributes(estimator):
    before = dict(estimator.__dict__)
    estimator.fit(fit_data())
    for key, value in estimator.__dict__.items():
        if key in before:
            assert value is before[key], f"fit changed {key}"
        else:
            assert key.startswith("_") or key.endswith("_"), f"fit added {key}"


def test_fit_does_not_mutate_parameters(estimator):
    estimator.set_params(mask_img=nib.Nifti1Image(np.ones(LARGE), np.eye(4)), clean_args={})
    original = deepcopy(estimator.get_params())
    estimator.fit(fit_data())
    for name, value in estimator.get_params().items():
        assert joblib.hash(value) == joblib.hash(original[name]), name


def test_not_fitted(estimator):
    assert estimator.__sklearn_is_fitted__() is False
    for method, arg in (("transform", img_3d()), ("transform_single_imgs", img_3d()),
                        ("inverse_transform", np.ones((10, 11)))):  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(NOT_FITTED)):
            getattr(estimator, method)(arg)
    with pytest.raises(NotFittedError):
        estimator.get_feature_names_out()
    assert estimator.fit(fit_data()).__sklearn_is_fitted__()


def test_fit_idempotent(estimator):
    data = fit_data()
    first = estimator.fit(data).transform(data)
    second = estimator.fit(data).transform(data)
    np.testing.assert_allclose(first, second, atol=2 * np.finfo(np.float64).eps)


def test_pickle(estimator):
    mask = nib.Nifti1Image(np.ones(LARGE), np.eye(4))
    estimator.set_params(mask_img=mask).fit(fit_data())
    restored = pickle.loads(pickle.dumps(estimator))
    assert_array_equal(restored.transform(fit_data()), estimator.transform(fit_data()))
    signals = rng().random((1, estimator.n_elements_))
    assert_array_equal(
        restored.inverse_transform(signals).get_fdata(),
        estimator.inverse_transform(signals).get_fdata(),
    )


def test_y_is_accepted_and_ignored(estimator):
    estimator.fit(fit_data(), y=None)
    assert estimator.fit_transform(fit_data(), y=None).shape == (estimator.n_elements_,)


def test_n_elements(estimator):
    assert not hasattr(estimator, "n_features_in_")
    estimator.fit(fit_data())
    assert isinstance(estimator.n_elements_, int)
    assert estimator.n_elements_ == len(estimator.seeds)
    with pytest.raises(ValueError, match=r"Input to 'inverse_transform' has wrong shape\."):
        estimator.inverse_transform(rng().random((1, estimator.n_elements_ + 1)))


def test_pipeline_consistency(estimator):
    data = img_4d(10)
    assert_array_equal(make_pipeline(clone(estimator)).fit_transform(data),
                       clone(estimator).fit_transform(data))  # fmt: skip


def test_sample_order_invariance(estimator):
    data = rng().random((*LARGE, 30))
    permutation = rng().permutation(30)
    estimator.fit(fit_data())
    direct = estimator.transform(nib.Nifti1Image(data, np.eye(4)))
    permuted = estimator.transform(nib.Nifti1Image(data[..., permutation], np.eye(4)))
    np.testing.assert_allclose(permuted, direct[permutation], atol=1e-9)


# ---------------------------------------------------------------------------- masker
def test_clean_args_default(estimator):
    assert estimator.clean_args is None
    assert estimator.fit().clean_args_ == {}


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_input_dtypes(estimator, dtype):
    data = np.zeros((*LARGE, 20))
    data[1:28, 1:28, 1:28] = rng().random((27, 27, 27, 20)) + 2.0
    data = nib.Nifti1Image(data.astype(dtype), np.eye(4))
    out = estimator.fit(data).transform(data)
    assert out.shape == (20, estimator.n_elements_)
    assert out.dtype == (np.float64 if dtype == np.float64 else np.float32)


def test_empty_images_and_masks(estimator):
    with pytest.raises(ValueError, match="The image is empty"):  # 0.14.1's message, at fit
        clone(estimator).fit(nib.Nifti1Image(np.zeros((64, 64, 0)), np.eye(4)))
    with pytest.raises(ValueError, match="The image is empty"):
        clone(estimator).fit().transform(nib.Nifti1Image(np.zeros((64, 64, 0)), np.eye(4)))
    empty = nib.Nifti1Image(np.zeros((7, 8, 9)), np.eye(4))
    with pytest.raises(ValueError, match="The mask is invalid as it is empty: it masks all"):
        clone(estimator).set_params(mask_img=empty).fit([img_3d()])


def test_non_finite_values_in_mask(estimator):
    mask = np.ones(LARGE)
    mask[:, :, 7] = np.nan
    mask[:, :, 4] = np.inf
    estimator.set_params(mask_img=nib.Nifti1Image(mask, np.eye(4)))
    with pytest.warns(UserWarning, match="Non-finite values detected."):
        estimator.fit()
    assert np.isfinite(estimator.transform(img_3d())).all()


def test_inverse_transform_is_on_the_mask_grid(estimator):
    data = nib.Nifti1Image(rng().random((28, 29, 30)), np.eye(4))
    mask = nib.Nifti1Image(np.ones((15, 16, 17)), np.eye(4))
    n = len(estimator.seeds)
    cases = (((n,), (15, 16, 17)), ((1, n), (15, 16, 17, 1)), ((10, n), (15, 16, 17, 10)))
    for signal_shape, shape in cases:
        signals = rng().random(signal_shape)
        masker = clone(estimator).set_params(mask_img=mask).fit(data)
        image = masker.inverse_transform(signals)
        assert image.shape == shape
        np.testing.assert_array_almost_equal(image.affine, data.affine)
        masker.transform(data)
        assert_array_equal(masker.inverse_transform(signals).get_fdata(), image.get_fdata())


def test_joblib_cache(estimator, tmp_path):
    data = fit_data()
    estimator.set_params(mask_img=nib.Nifti1Image(np.ones(LARGE), np.eye(4))).fit(data)
    digest = joblib.hash(estimator.mask_img_)  # the cache key must not move when read
    np.asanyarray(estimator.mask_img_.dataobj)
    assert joblib.hash(estimator.mask_img_) == digest
    estimator.set_params(memory=joblib.Memory(location=tmp_path, mmap_mode="r")).fit(data)
    signals = estimator.transform(data)
    assert_array_equal(estimator.transform(data), signals)  # from the (memmapped) cache
    estimator.inverse_transform(signals)
    estimator.inverse_transform(signals).to_filename(tmp_path / "inverse.nii")


def test_mask_img_(estimator):
    assert not hasattr(estimator, "mask_img_")
    assert clone(estimator).fit().mask_img_ is None
    assert clone(estimator).fit(fit_data()).mask_img_ is None
    binary = np.zeros(LARGE, dtype=np.int8)
    binary[2:-2, 2:-2, 2:-2] = 1
    binary_img = nib.Nifti1Image(binary, np.eye(4))
    non_binary = nib.Nifti1Image(rng().random((*LARGE, 2)), np.eye(4))
    for mask in (binary_img, non_binary):
        fitted = clone(estimator).set_params(mask_img=mask).fit()
        assert isinstance(fitted.mask_img_, nib.Nifti1Image)
        assert set(np.unique(fitted.mask_img_.get_fdata())) <= {0.0, 1.0}
    reference = clone(estimator).set_params(mask_img=binary_img).fit().mask_img_
    with_imgs = clone(estimator).set_params(mask_img=binary_img).fit(fit_data()).mask_img_
    assert_array_equal(reference.get_fdata(), with_imgs.get_fdata())
    other = np.zeros(LARGE, dtype=np.int8)
    other[3:-3, 3:-3, 3:-3] = 1
    estimator.set_params(mask_img=binary_img).fit()
    first = estimator.mask_img_
    estimator.set_params(mask_img=nib.Nifti1Image(other, np.eye(4))).fit()
    assert not np.array_equal(first.get_fdata(), estimator.mask_img_.get_fdata())  # refit


def test_mask_img_is_one_object_per_fit(estimator):
    """Reads (nilearn's get_data included) keep the object and its joblib hash; refit renews."""
    from nilearn.image import get_data

    estimator.set_params(mask_img=nib.Nifti1Image(np.ones(LARGE), np.eye(4))).fit()
    first = estimator.mask_img_
    digest = joblib.hash(first)
    get_data(estimator.mask_img_)
    np.asanyarray(estimator.mask_img_.dataobj)
    assert estimator.mask_img_ is first
    assert joblib.hash(estimator.mask_img_) == digest
    estimator.fit(fit_data())
    assert estimator.mask_img_ is not first
    assert joblib.hash(estimator.mask_img_) == digest  # same mask, same cache key


def test_mask_from_3d_image_fits_on_list(estimator):
    estimator.set_params(mask_img=nib.Nifti1Image(np.ones(LARGE), np.eye(4)))
    estimator.fit([img_3d()])
    assert hasattr(estimator, "mask_img_")


def test_transformer(estimator):
    for method in ("fit", "transform", "fit_transform"):
        parameters = list(inspect.signature(getattr(estimator, method)).parameters)
        assert parameters[0] == "imgs"
        assert "X" not in parameters
    data = img_4d(100)
    assert_array_equal(clone(estimator).fit_transform(data),
                       clone(estimator).fit(data).transform(data))  # fmt: skip


def test_high_variance_confounds_change_the_output(estimator, tmp_path):
    data = nib.Nifti1Image(rng().random((7, 8, 9, 10)), np.eye(4))
    plain = clone(estimator).fit_transform(data)
    hv = clone(estimator).set_params(high_variance_confounds=True).fit_transform(data)
    assert not np.array_equal(plain, hv)
    array = rng().random((10, 3))
    frame = pd.DataFrame(array)
    frame.to_csv(tmp_path / "confounds.csv")
    for confounds in (array, frame, tmp_path / "confounds.csv"):
        without = clone(estimator).fit_transform(data, confounds=confounds)
        with_hv = (
            clone(estimator)
            .set_params(high_variance_confounds=True)
            .fit_transform(data, confounds=confounds)
        )
        assert not np.array_equal(without, with_hv)


def test_cleaning_options_change_the_output(estimator):
    data = img_4d(100)
    plain = clone(estimator).fit_transform(data)
    cosine = clone(estimator).set_params(t_r=2.0, high_pass=1 / 128,
                                         clean_args={"filter": "cosine"})  # fmt: skip
    assert not np.array_equal(cosine.fit_transform(data), plain)
    assert not np.array_equal(clone(estimator).set_params(detrend=True).fit_transform(data),
                              plain)  # fmt: skip


def test_sample_mask_forms(estimator):
    data = img_4d(5)
    estimator.fit(data)
    full = estimator.transform(data)
    indices = estimator.transform(data, sample_mask=np.asarray([1, 2, 4]))
    assert indices.shape[0] == 3
    assert not np.array_equal(full[[1, 2, 4]] * 0, full[[1, 2, 4]])
    boolean = np.ones(5, dtype=bool)
    boolean[[0, 3]] = False
    for sample_mask in (boolean, [[1, 2, 4]], [[False, True, True, False, True]]):
        assert_array_equal(estimator.transform(data, sample_mask=sample_mask), indices)


def test_confound_forms(estimator, tmp_path):
    data = nib.Nifti1Image(rng().random((4, 5, 6, 20)), np.eye(4))
    plain = estimator.fit_transform(data)
    array = rng().random((20, 3))
    frame = pd.DataFrame(array)
    np.savetxt(tmp_path / "spm_like.txt", array)  # whitespace separated, no header
    frame.to_csv(tmp_path / "c.csv")
    frame.to_csv(tmp_path / "c.tsv", sep="\t")
    for confounds in (array, frame, tmp_path / "spm_like.txt", str(tmp_path / "spm_like.txt"),
                      tmp_path / "c.csv", tmp_path / "c.tsv"):  # fmt: skip
        assert not np.array_equal(estimator.fit_transform(data, confounds=confounds), plain)
    with pytest.raises(FileNotFoundError):
        estimator.fit_transform(data, confounds="not_a_file.txt")
    with pytest.raises(ValueError, match="Confound signal has an incorrect length"):
        estimator.fit_transform(data, confounds=rng().random((40, 3)))


def test_deprecated_kwargs_error_and_warning(estimator):
    data = img_4d(100)
    signal = clone(estimator).fit_transform(data)
    masker = clone(estimator)
    masker.t_r, masker.high_pass = 2.0, 1 / 128
    masker.clean_kwargs = {"clean__filter": "cosine"}
    masker.clean_args = {"filter": "cosine"}
    with pytest.raises(ValueError, match="mutually exclusive with using 'clean_args'"):
        masker.fit(data)
    masker.clean_args = None
    with pytest.warns(DeprecationWarning, match="You passed some kwargs"):
        masker.fit(data)
    assert not np.array_equal(masker.transform(data), signal)


def test_output_dtypes(estimator):
    for data in (np.float32, np.float64):
        img = nib.Nifti1Image(rng().random((7, 8, 9)).astype(data), np.eye(4))
        assert clone(estimator).set_params(dtype="auto").fit_transform(img).dtype == np.float32
        out = clone(estimator).set_params(dtype="float64").fit_transform(img)
        assert out.dtype == np.float64


def test_fit_transform_shapes(estimator):
    n = len(estimator.seeds)
    estimator.fit(img_3d())
    signal = estimator.transform(img_3d())
    assert signal.shape == (n,)  # (1,) for one seed: nilearn 0.12.1 (deltas §8)
    assert_array_equal(signal, estimator.fit_transform(img_3d()))
    assert estimator.transform([img_3d(), img_3d()]).shape == (2, n)
    assert estimator.transform(img_4d()).shape == (5, n)
    five_d = [img_4d() for _ in range(3)]
    for call in (estimator.transform, estimator.fit_transform):
        with pytest.raises(DimensionError, match=re.escape(
            "Input data has incompatible dimensionality: Expected dimension is 4D and you "
            "provided a list of 4D images (5D)."
        )):  # fmt: skip
            call(five_d)


def test_files(estimator, tmp_path):
    path = tmp_path / "img.nii.gz"
    img_4d().to_filename(path)
    estimator.fit(path)
    assert_array_equal(estimator.transform(path), estimator.fit_transform(path))


# ---------------------------------------------------------------------------- 6.1
def test_seed_extraction():
    data = rng().random((3, 3, 3, 5))
    out = NiftiSpheresMasker([(1, 1, 1)]).fit().transform(nib.Nifti1Image(data, np.eye(4)))
    assert_array_equal(out[:, 0], data[1, 1, 1])


def test_sphere_extraction():
    data = rng().random((3, 3, 3, 5))
    img = nib.Nifti1Image(data, np.eye(4))
    masker = NiftiSpheresMasker([(1, 1, 1)], radius=1).fit()
    assert masker.n_elements_ == 1
    cross = np.zeros((3, 3, 3), dtype=bool)
    cross[1, 1, :] = cross[1, :, 1] = cross[:, 1, 1] = True
    assert_array_equal(masker.transform(img)[:, 0], np.mean(data[cross], axis=0))
    mask = np.zeros((3, 3, 3))
    mask[1, :, :] = 1
    masked = NiftiSpheresMasker([(1, 1, 1)], radius=1, mask_img=nib.Nifti1Image(mask, np.eye(4)))
    assert_array_equal(masked.fit().transform(img)[:, 0],
                       np.mean(data[cross & (mask > 0)], axis=0))  # fmt: skip


def test_anisotropic_sphere_extraction():
    data = rng().random((3, 3, 3, 5))
    affine = np.diag([2.0, 1.0, 2.0, 1.0])
    img = nib.Nifti1Image(data, affine)
    out = NiftiSpheresMasker([(2, 1, 2)], radius=1).fit().transform(img)
    assert_array_equal(out[:, 0], np.mean(data[1, 0:3, 1], axis=0))
    mask = np.zeros((3, 2, 3))
    mask[1, 0, 1] = 1
    mask_img = nib.Nifti1Image(mask, np.diag([4.0, 1.0, 2.0, 1.0]))
    masked = NiftiSpheresMasker([(2, 1, 2)], radius=1, mask_img=mask_img).fit()
    assert_array_equal(masked.transform(img)[:, 0], data[1, 0, 1])


def test_seed_errors():
    with pytest.raises(ValueError, match=r"Seeds must be a list .+"):
        NiftiSpheresMasker(([1, 2]), radius=0.2).fit()


def test_overlap():
    data = nib.Nifti1Image(rng().random((5, 5, 5, 5)), np.eye(4))
    seeds = [(0, 0, 0), (2, 2, 2)]
    NiftiSpheresMasker(seeds, radius=1, allow_overlap=True).fit_transform(data)
    NiftiSpheresMasker(seeds, radius=2, allow_overlap=True).fit_transform(data)
    NiftiSpheresMasker(seeds, radius=1, allow_overlap=False).fit_transform(data)
    with pytest.raises(ValueError, match="Overlap detected"):
        NiftiSpheresMasker(seeds, radius=2, allow_overlap=False).fit_transform(data)


def test_small_radius():
    affine = np.eye(4) * 1.2
    data = nib.Nifti1Image(rng().random((3, 3, 3)), affine)
    mask = np.zeros((3, 3, 3))
    mask[1, 1, 1] = mask[2, 2, 2] = 1
    masker = NiftiSpheresMasker([(1.4, 1.4, 1.4)], radius=0.1,
                                mask_img=nib.Nifti1Image(mask, affine))  # fmt: skip
    masker.fit_transform(data)
    masker.inverse_transform(np.array([1.0]))
    mask = np.zeros((3, 3, 3))
    mask[1, 1, 0] = mask[2, 2, 2] = 1
    masker.set_params(mask_img=nib.Nifti1Image(mask, affine))
    with pytest.raises(ValueError, match="These spheres are empty"):
        masker.fit_transform(data)
    with pytest.raises(ValueError, match="These spheres are empty"):
        masker.inverse_transform(np.array([1.0]))
    masker.set_params(radius=1.6).fit()
    masker.inverse_transform(np.array([1.0]))


def test_nans_do_not_reach_the_signals():
    data = np.full((10, 10, 10), np.nan, dtype=np.float32)
    data[:9, :9, :9] = rng().random((9, 9, 9))
    img = nib.Nifti1Image(data, np.eye(4))
    assert not np.isnan(NiftiSpheresMasker([(7, 7, 7)], radius=2).fit_transform(img)).any()
    mask = nib.Nifti1Image(np.ones((9, 9, 9)), np.eye(4))
    masked = NiftiSpheresMasker([(7, 7, 7)], radius=2, mask_img=mask).fit_transform(img)
    assert not np.isnan(masked).any()


def test_inverse_transform():
    data = rng().random((3, 3, 3, 5))
    img = nib.Nifti1Image(data, np.eye(4))
    masker = NiftiSpheresMasker([(1, 1, 1)], radius=1).fit()
    with pytest.raises(ValueError, match="Please provide mask_img"):
        masker.inverse_transform(masker.transform(img))
    mask = np.zeros((3, 3, 3))
    mask[1, :, :] = 1
    masker = NiftiSpheresMasker([(1, 1, 1)], radius=1, mask_img=nib.Nifti1Image(mask, np.eye(4)))
    signal = masker.fit().transform(img)
    inverse = masker.inverse_transform(signal).get_fdata()
    nonzero = inverse[..., 0] != 0
    expected = np.zeros((3, 3, 3), dtype=bool)
    expected[1, 1, :] = expected[1, :, 1] = True
    assert_array_equal(nonzero, expected)
    assert inverse.shape[:3] == mask.shape
    assert_array_equal(inverse[nonzero].mean(axis=0), signal[:, 0])


def test_inverse_overlap():
    mask = nib.Nifti1Image(np.ones((5, 5, 5)), np.eye(4))
    seeds = [(0, 0, 0), (2, 2, 2)]
    values = np.array([1.0, 2.0])
    for radius in (1, 2):
        masker = NiftiSpheresMasker(seeds, radius=radius, allow_overlap=True, mask_img=mask)
        image = masker.fit().inverse_transform(values).get_fdata()
        if radius == 2:
            assert image[1, 1, 1] == values.mean()
    NiftiSpheresMasker(seeds, radius=1, mask_img=mask).fit().inverse_transform(values)
    with pytest.raises(ValueError, match="Overlap detected"):
        NiftiSpheresMasker(seeds, radius=2, mask_img=mask).fit().inverse_transform(values)
