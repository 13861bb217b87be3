"""The masker's public API against nilearn 0.12.1: signature, attributes, tags, routing,
deprecations, validation, shapes, output containers, pickling, clone, Pipeline, verbose
messages and caching."""

from __future__ import annotations

import inspect
import pickle
import re
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from joblib import Memory
from masker_cases import AFFINE, SHAPE, bold, run_masker, warning_key
from sklearn import config_context
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline

import lazyspheres as ls
from lazyspheres import NiftiSpheresMasker

nilearn_maskers = pytest.importorskip("nilearn.maskers")
NilearnMasker = nilearn_maskers.NiftiSpheresMasker

SEEDS = [(0.0, 0.0, 0.0), (6.0, -6.0, 4.0), (-6.0, 6.0, 6.0)]
NON_FINITE = "Non-finite values detected. These values will be replaced with zeros."
NOT_FITTED = (
    "This NiftiSpheresMasker instance is not fitted yet. Call 'fit' with appropriate "
    "arguments before using this estimator."
)


@pytest.fixture(autouse=True)
def _no_forced_gc(monkeypatch):
    """nilearn calls gc.collect() twice per transform; it changes no result (speed only)."""
    import gc

    monkeypatch.setattr(gc, "collect", lambda *args: 0)


@pytest.fixture
def img(rng):
    return bold(rng, 12, np.float64)


@pytest.fixture
def mask():
    data = np.zeros(SHAPE, dtype=np.uint8)
    data[1:-1, 1:-1, 1:-1] = 1
    return nib.Nifti1Image(data, AFFINE)


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


# ---------------------------------------------------------------------------- signature
def test_constructor_is_nilearns():
    ours = inspect.signature(NiftiSpheresMasker.__init__).parameters
    theirs = inspect.signature(NilearnMasker.__init__).parameters
    assert [(p.name, p.default, p.kind) for p in ours.values()] == [
        (p.name, p.default, p.kind) for p in theirs.values()
    ]
    assert list(ours)[1:19] == [
        "seeds", "radius", "mask_img", "allow_overlap", "smoothing_fwhm", "standardize",
        "standardize_confounds", "high_variance_confounds", "detrend", "low_pass",
        "high_pass", "t_r", "dtype", "memory", "memory_level", "verbose", "reports",
        "clean_args",
    ]  # fmt: skip
    assert list(ours)[-1] == "kwargs"


@pytest.mark.parametrize(
    "method",
    ["fit", "fit_transform", "transform", "transform_single_imgs", "inverse_transform",
     "generate_report"],
)  # fmt: skip
def test_method_signatures_are_nilearns(method):
    ours = inspect.signature(getattr(NiftiSpheresMasker, method))
    theirs = inspect.signature(getattr(NilearnMasker, method))
    assert [(p.name, p.default) for p in ours.parameters.values()] == [
        (p.name, p.default) for p in theirs.parameters.values()
    ]


def test_get_params_repr_and_clone_as_nilearn():
    params = {"seeds": [(1, 2, 3)], "radius": 6, "other": 1}
    ours = quiet(NiftiSpheresMasker, **params)
    theirs = quiet(NilearnMasker, **params)
    assert ours.get_params() == theirs.get_params()
    assert len(ours.get_params()) == 18
    assert repr(ours) == repr(theirs) == "NiftiSpheresMasker(radius=6, seeds=[(1, 2, 3)])"
    assert ours.clean_kwargs == {"other": 1}
    assert clone(ours).clean_kwargs == {}  # clone drops the kwargs, as nilearn's
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        ours.set_params(nope=1)


def test_tags_and_identity_as_nilearn():
    ours, theirs = NiftiSpheresMasker([(1, 1, 1)]), NilearnMasker([(1, 1, 1)])
    assert repr(ours.__sklearn_tags__()) == repr(theirs.__sklearn_tags__())
    assert ours._more_tags() == ours.__sklearn_tags__()
    assert not hasattr(ours, "_estimator_type")
    assert not ours.__sklearn_is_fitted__()


def test_metadata_routing_as_nilearn():
    ours, theirs = NiftiSpheresMasker([(1, 1, 1)]), NilearnMasker([(1, 1, 1)])
    for name in ("set_fit_request", "set_transform_request", "set_inverse_transform_request"):
        assert list(inspect.signature(getattr(ours, name)).parameters) == list(
            inspect.signature(getattr(theirs, name)).parameters
        )
    assert str(ours.get_metadata_routing()) == str(theirs.get_metadata_routing())
    with config_context(enable_metadata_routing=True):
        ours.set_transform_request(confounds=True)
        assert ours.get_metadata_routing().transform.requests["confounds"] is True


# ---------------------------------------------------------------------------- fit
def test_fitted_attributes_as_nilearn(img, rng):
    mask4d = np.stack([np.ones(SHAPE), (rng.random(SHAPE) > 0.2) * 2.0], axis=-1)
    mask_img = nib.Nifti1Image(mask4d.astype(np.int8), AFFINE * np.array([1, 1, 1, 1]))
    seeds = [(0, 0, 0), np.array([6.0, -6.0, 4.0])]
    args = {"seeds": seeds, "radius": 4.0, "mask_img": mask_img, "clean_args": {"a": 1}}
    ours = NiftiSpheresMasker(**args).fit(img)
    theirs = quiet(NilearnMasker(**args).fit, img)
    assert ours.seeds_ == theirs.seeds_ == [[0, 0, 0], [6.0, -6.0, 4.0]]
    assert [type(v) for row in ours.seeds_ for v in row] == [int] * 3 + [float] * 3
    assert ours.n_elements_ == theirs.n_elements_ == 2
    assert ours.clean_args_ is args["clean_args"]
    assert ours.clean_kwargs_ == theirs.clean_kwargs_ == {}
    assert isinstance(ours.memory_, Memory)
    assert ours.memory_.location is None
    for attr in ("mask_img_",):
        a, b = getattr(ours, attr), getattr(theirs, attr)
        assert a.shape == b.shape == SHAPE
        np.testing.assert_array_equal(a.affine, b.affine)
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        assert np.asarray(a.dataobj).dtype == np.uint8
        assert a.get_data_dtype() == b.get_data_dtype() == np.uint8
    assert NiftiSpheresMasker([(0, 0, 0)]).fit().mask_img_ is None


def test_fit_mask_with_non_finite_values_warns_like_nilearn(img):
    data = np.ones(SHAPE)
    data[0] = np.nan

    def params():  # nilearn zeroes the NaNs of the mask object it is given, in place
        return {"seeds": SEEDS, "radius": 4.0, "mask_img": nib.Nifti1Image(data.copy(), AFFINE)}

    ours = run_masker(NiftiSpheresMasker, params(), img, img)
    theirs = run_masker(NilearnMasker, params(), img, img)
    assert ours.error is None
    assert theirs.error is None
    key = ("UserWarning", warning_key(NON_FINITE))
    # Once each: nilearn zeroes the NaNs of the caller's mask at fit, so its transform does
    # not see them again; lazyspheres transforms with mask_img_ and leaves the mask alone.
    assert ours.warnings[key] == theirs.warnings[key] == 1
    assert np.isnan(ours.masker.mask_img.get_fdata()).any()
    assert not np.isnan(theirs.masker.mask_img.get_fdata()).any()
    assert ours.masker.mask_img_.get_fdata()[0].sum() == 0
    np.testing.assert_array_equal(ours.output, theirs.output)


def test_deprecated_kwargs_as_nilearn(rng):
    img = bold(rng, 30, np.float64)
    with pytest.warns(DeprecationWarning, match=re.escape(
        "You passed some kwargs to NiftiSpheresMasker: ['clean__extrapolate, other']. "
        "This behavior is deprecated and will be removed in version >0.13."
    )):  # fmt: skip
        masker = NiftiSpheresMasker(SEEDS, clean__extrapolate=False, other=1).fit()
    assert masker.clean_kwargs_ == {"extrapolate": False}
    with (
        pytest.warns(DeprecationWarning, match="You passed some kwargs"),
        pytest.raises(ValueError, match="mutually exclusive with using 'clean_args'"),
    ):
        NiftiSpheresMasker(SEEDS, clean__filter="cosine", clean_args={"a": 1}).fit()
    NiftiSpheresMasker(SEEDS, clean_args={}).fit()  # {} counts as not given, no warning
    # clean__ kwargs replace clean_args at transform
    sample_mask = np.arange(2, 30)
    common = {"seeds": SEEDS, "radius": 4.0, "low_pass": 0.2, "t_r": 2.0}
    via_kwargs = quiet(NiftiSpheresMasker(**common, clean__extrapolate=False).fit_transform,
                       img, sample_mask=sample_mask)  # fmt: skip
    via_args = quiet(NiftiSpheresMasker(**common, clean_args={"extrapolate": False})
                     .fit_transform, img, sample_mask=sample_mask)  # fmt: skip
    default = quiet(NiftiSpheresMasker(**common).fit_transform, img, sample_mask=sample_mask)
    np.testing.assert_array_equal(via_kwargs, via_args)
    assert not np.allclose(via_kwargs, default)


def test_fit_x_is_deprecated_as_nilearn(img):
    with pytest.warns(DeprecationWarning, match='The parameter "X" will be removed in 0.13.0'):
        masker = NiftiSpheresMasker(SEEDS).fit(X=img)
    assert masker.n_elements_ == 3
    with pytest.raises(TypeError, match="got multiple values for argument 'imgs'"):
        NiftiSpheresMasker(SEEDS).fit(img, X=img)


def test_not_fitted_errors(img):
    masker = NiftiSpheresMasker(SEEDS)
    for call in (
        lambda: masker.transform(img),
        lambda: masker.transform_single_imgs(img),
        lambda: masker.inverse_transform(np.zeros(3)),
        lambda: masker.get_feature_names_out(),
    ):
        with pytest.raises(NotFittedError, match=re.escape(NOT_FITTED)):
            call()


# ---------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    ("kind", "n_seeds", "expected"),
    [("4d", 3, (12, 3)), ("4d", 1, (12, 1)), ("3d", 1, (1,)), ("3d", 3, (3,)),
     ("one-volume", 3, (1, 3)), ("list-3d", 2, (4, 2))],
)  # fmt: skip
def test_output_shapes_and_dtypes_as_nilearn(img, kind, n_seeds, expected):
    data = np.asanyarray(img.dataobj)
    inputs = {
        "4d": img,
        "3d": nib.Nifti1Image(data[..., 0], AFFINE),
        "one-volume": nib.Nifti1Image(data[..., :1], AFFINE),
        "list-3d": [nib.Nifti1Image(data[..., t], AFFINE) for t in range(4)],
    }
    params = {"seeds": SEEDS[:n_seeds], "radius": 4.0}
    ours = run_masker(NiftiSpheresMasker, params, None, inputs[kind])
    theirs = run_masker(NilearnMasker, params, None, inputs[kind])
    assert ours.output.shape == theirs.output.shape == expected
    assert ours.output.dtype == theirs.output.dtype
    # With one volume nilearn's np.mean runs numpy's pairwise summation (a contiguous row)
    # instead of the sequential sum of longer runs: the last bit may differ.
    np.testing.assert_allclose(ours.output, theirs.output, rtol=1e-14)


@pytest.mark.parametrize(
    ("image_dtype", "dtype"),
    [(np.int16, None), (np.int16, "auto"), (np.int16, "int16"), (np.float32, "int32"),
     (np.float32, "float64"), (np.float64, "float32"), (np.int64, None), (np.uint8, "auto")],
)  # fmt: skip
def test_output_dtype_has_no_final_cast(rng, image_dtype, dtype):
    """deltas §6: the output dtype is cleaning's (float32/float64), never cast back."""
    img = (
        bold(rng, 8, image_dtype)
        if image_dtype != np.uint8
        else nib.Nifti1Image(rng.integers(0, 200, (*SHAPE, 8)).astype(np.uint8), AFFINE)
    )
    params = {"seeds": SEEDS, "radius": 4.0, "dtype": dtype}
    ours = run_masker(NiftiSpheresMasker, params, None, img)
    theirs = run_masker(NilearnMasker, params, None, img)
    assert ours.error is None
    assert theirs.error is None
    assert ours.output.dtype == theirs.output.dtype


def test_list_of_4d_images_and_5d_images_fail_as_nilearn(img):
    five = nib.Nifti1Image(np.zeros((*SHAPE, 2, 1)), AFFINE)
    for imgs in ([img, img], five):
        ours = run_masker(NiftiSpheresMasker, {"seeds": SEEDS}, None, imgs)
        theirs = run_masker(NilearnMasker, {"seeds": SEEDS}, None, imgs)
        assert type(ours.error).__mro__[-3] is TypeError or isinstance(ours.error, TypeError)
        assert "Input data has incompatible dimensionality" in str(ours.error)
        assert "Input data has incompatible dimensionality" in str(theirs.error)
    assert "list of 4D images (5D)" in str(
        run_masker(NiftiSpheresMasker, {"seeds": SEEDS}, None, [img, img]).error
    )


# ---------------------------------------------------------------------------- inputs
def test_input_kinds_give_the_same_numbers(img, tmp_path):
    path = tmp_path / "run.nii.gz"
    img.to_filename(path)
    data = np.asanyarray(img.dataobj)
    folder = tmp_path / "vols"
    folder.mkdir()
    for t in range(data.shape[3]):
        nib.save(nib.Nifti1Image(data[..., t], AFFINE), folder / f"v{t:02d}.nii")
    masker = NiftiSpheresMasker(SEEDS, radius=4.0).fit()
    reference = masker.transform(img)
    for imgs in (
        str(path),
        path,
        nib.load(path),
        ls.open_nifti(path),
        ls.open_nifti(img, chunks={"i": 3, "time": 5}),
        str(folder / "v*.nii"),
        sorted(str(p) for p in folder.iterdir()),
        f"file://{path}",
    ):
        np.testing.assert_allclose(masker.transform(imgs), reference, rtol=1e-6)


def test_urls_are_read_through_fsspec(img):
    fsspec = pytest.importorskip("fsspec")
    with fsspec.open("memory://bucket/run.nii.gz", "wb") as handle:
        handle.write(nib.Nifti1Image(np.asanyarray(img.dataobj), AFFINE).to_bytes())
    masker = NiftiSpheresMasker(SEEDS, radius=4.0).fit()
    # to_bytes() writes an uncompressed image; the masker only sees a URL
    np.testing.assert_allclose(
        masker.transform("memory://bucket/run.nii.gz"), masker.transform(img), rtol=1e-12
    )


BAD_INPUTS = {
    "ndarray": (lambda tmp: np.zeros((7, 8, 9, 5)), TypeError,
                "iterable inputs should contain NiftiLike objects or iterables."),
    "missing": (lambda tmp: str(tmp / "nope.nii.gz"), ValueError, "File not found: '"),
    "glob": (lambda tmp: str(tmp / "nothing_*.nii"), ValueError,
             "No files matching the entered niimg expression"),
    "int": (lambda tmp: 5, TypeError,
            "input should be a NiftiLike object or an iterable of NiftiLike object. Got: int"),
    "empty-list": (lambda tmp: [], TypeError, "Cannot concatenate empty objects"),
    "list-with-int": (lambda tmp: [nib.Nifti1Image(np.zeros(SHAPE), AFFINE), 5], TypeError,
                      "iterable inputs should contain NiftiLike objects or iterables. Got: int"),
    "2d": (lambda tmp: nib.Nifti1Image(np.zeros((7, 8)), AFFINE), TypeError,
           "Input data has incompatible dimensionality"),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_inputs_fail_as_nilearn(tmp_path, kind):
    make, error, phrase = BAD_INPUTS[kind]
    imgs = make(tmp_path)
    masker = NiftiSpheresMasker(SEEDS).fit()
    with pytest.raises(error, match=re.escape(phrase)):
        masker.transform(imgs)
    theirs = run_masker(NilearnMasker, {"seeds": SEEDS}, None, imgs)
    assert isinstance(theirs.error, error), theirs.error
    if kind != "ndarray":  # nilearn names the numpy scalar type of the array's items
        assert phrase in str(theirs.error)
    if kind == "missing":
        with pytest.raises(FileNotFoundError):  # the natural type too
            masker.transform(imgs)


# ---------------------------------------------------------------------------- outputs
def test_set_output_containers(img):
    masker = NiftiSpheresMasker(SEEDS, radius=4.0).fit()
    default = masker.transform(img)
    names = masker.get_feature_names_out()
    assert list(names) == ["niftispheresmasker0", "niftispheresmasker1", "niftispheresmasker2"]
    assert masker.set_output(transform=None) is masker  # None changes nothing
    assert isinstance(masker.transform(img), np.ndarray)

    frame = masker.set_output(transform="pandas").transform(img)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(names)
    np.testing.assert_array_equal(frame.to_numpy(), default)

    polars = pytest.importorskip("polars")
    frame = masker.set_output(transform="polars").transform(img)
    assert isinstance(frame, polars.DataFrame)
    assert frame.columns == list(names)
    np.testing.assert_array_equal(frame.to_numpy(), default)

    labelled = masker.set_output(transform="xarray").transform(img)
    assert isinstance(labelled, xr.DataArray)
    assert labelled.dims == ("time", "seed")
    np.testing.assert_array_equal(labelled.values, default)
    np.testing.assert_array_equal(labelled["x"].values, [s[0] for s in SEEDS])
    assert labelled["n_voxels"].dtype == np.int64

    three_d = nib.Nifti1Image(np.asanyarray(img.dataobj)[..., 0], AFFINE)
    assert masker.transform(three_d).dims == ("seed",)
    assert masker.set_output(transform="pandas").transform(three_d).shape == (1, 3)
    assert masker.set_output(transform="default").transform(three_d).shape == (3,)
    assert masker.fit_transform(img).shape == (12, 3)
    with pytest.raises(ValueError, match="output config must be in"):
        masker.set_output(transform="arrow")


def test_global_sklearn_output_config_and_pipeline(img):
    masker = NiftiSpheresMasker(SEEDS, radius=4.0)
    with config_context(transform_output="pandas"):
        assert isinstance(masker.fit_transform(img), pd.DataFrame)
    assert isinstance(masker.fit_transform(img), np.ndarray)  # default: nilearn's ndarray
    pipe = make_pipeline(NiftiSpheresMasker(SEEDS, radius=4.0)).set_output(transform="pandas")
    out = pipe.fit_transform(img)
    assert list(out.columns) == list(pipe.get_feature_names_out())


def test_inverse_transform_accepts_every_container(img, mask):
    masker = NiftiSpheresMasker(SEEDS, radius=4.0, mask_img=mask).fit()
    signals = masker.transform(img)
    reference = masker.inverse_transform(signals).get_fdata()
    polars = pytest.importorskip("polars")
    for kind in ("pandas", "polars", "xarray"):
        out = masker.set_output(transform=kind).transform(img)
        np.testing.assert_array_equal(masker.inverse_transform(out).get_fdata(), reference)
    assert isinstance(out, xr.DataArray)
    frame = polars.DataFrame(signals)
    assert masker.inverse_transform(frame).shape == (*SHAPE, 12)


def test_pickle_clone_and_pipeline(img, mask):
    masker = NiftiSpheresMasker(SEEDS, radius=4.0, mask_img=mask, detrend=True).fit(img)
    signals = masker.transform(img)
    restored = pickle.loads(pickle.dumps(masker))
    np.testing.assert_array_equal(restored.transform(img), signals)
    np.testing.assert_array_equal(
        restored.inverse_transform(signals[:2]).get_fdata(),
        masker.inverse_transform(signals[:2]).get_fdata(),
    )
    np.testing.assert_array_equal(clone(masker).fit().transform(img), signals)
    np.testing.assert_array_equal(make_pipeline(clone(masker)).fit_transform(img), signals)


# ---------------------------------------------------------------------------- verbose
def _normalise(text):
    return re.sub(r" at 0x[0-9a-f]+", " at 0x", text)


@pytest.mark.parametrize("verbose", [0, 1, 2, 3])
def test_verbose_messages_as_nilearn(img, mask, tmp_path, capsys, verbose, monkeypatch):
    # nilearn prints through rich whenever rich is installed (the dev venv has it, through
    # import-linter), wrapping lines at the console width; its plain output is the reference.
    import builtins

    import nilearn._utils.logger as nilearn_logger

    monkeypatch.setattr(nilearn_logger, "_has_rich", lambda: False)
    monkeypatch.setattr(nilearn_logger, "print", builtins.print, raising=False)
    path = tmp_path / "a_rather_long_file_name.nii.gz"
    img.to_filename(path)
    mask_path = tmp_path / "m.nii"
    mask.to_filename(mask_path)
    volumes = []
    for t in range(4):
        volumes.append(tmp_path / f"vol{t}.nii")
        nib.Nifti1Image(np.asanyarray(img.dataobj)[..., t], AFFINE).to_filename(volumes[-1])
    outputs = []
    for factory in (NilearnMasker, NiftiSpheresMasker):
        masker = quiet(factory(SEEDS, radius=4.0, mask_img=str(mask_path), verbose=verbose).fit)
        quiet(masker.transform, str(path))
        quiet(masker.inverse_transform, np.zeros(3))
        quiet(masker.transform_single_imgs, img)
        quiet(masker.fit_transform, volumes)
        quiet(make_pipeline(clone(masker)).fit_transform, img)
        outputs.append(_normalise(capsys.readouterr().out))
    assert outputs[1] == outputs[0]
    assert bool(outputs[1]) == (verbose > 0)
    if verbose:  # the prefixes name the outermost method, as nilearn's logger does
        for prefix in ("fit", "wrapped", "inverse_transform", "transform_single_imgs"):
            assert f"[NiftiSpheresMasker.{prefix}]" in outputs[1]
        assert "[Pipeline.fit_transform] Loading data from" in outputs[1]


# ---------------------------------------------------------------------------- caching
def test_joblib_cache_is_used_at_level_1(img, tmp_path, monkeypatch):
    import lazyspheres.masker.signals as signals_module

    calls = []
    real = signals_module.extract
    monkeypatch.setattr(
        signals_module, "extract", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    masker = NiftiSpheresMasker(SEEDS, radius=4.0, memory=str(tmp_path / "cache")).fit()
    first = masker.transform(img)
    second = masker.transform(img)
    np.testing.assert_array_equal(first, second)
    assert len(calls) == 1  # the second transform came from the cache
    masker.set_params(memory_level=0)
    with pytest.warns(UserWarning, match="memory_level is currently set to 0 but a Memory"):
        masker.fit()
    assert masker.memory_level == 0  # the parameter itself is left alone
    none = NiftiSpheresMasker(SEEDS, radius=4.0).fit()
    none.transform(img)
    none.transform(img)
    assert len(calls) == 3  # no cache without memory


def test_caching_warnings_as_nilearn(img, tmp_path):
    params = {"seeds": SEEDS, "memory": str(tmp_path / "c"), "memory_level": 0}
    ours = run_masker(NiftiSpheresMasker, params, None, img)
    theirs = run_masker(NilearnMasker, params, None, img)
    assert ours.error is None
    assert theirs.error is None
    assert ours.warnings == theirs.warnings
    np.testing.assert_array_equal(ours.output, theirs.output)


def test_cache_level_without_memory_warns(img):
    """nilearn 0.12.1 crashes here (AttributeError formatting this warning for its functor
    object); lazyspheres gives the warning nilearn meant to give and works uncached."""
    params = {"seeds": SEEDS, "memory_level": 2}
    theirs = run_masker(NilearnMasker, params, None, img)
    assert isinstance(theirs.error, AttributeError)
    with pytest.warns(UserWarning, match=re.escape(
        "Caching has been enabled (memory_level = 2) but no Memory object or path has been "
        "provided (parameter memory). Caching deactivated for function"
    )):  # fmt: skip
        out = NiftiSpheresMasker(**params).fit().transform(img)
    assert out.shape == (12, 3)


def test_labelled_seed_tables_and_named_sets(img):
    """lazyspheres extension: seeds as a DataFrame (labels kept) or a named seed set."""
    table = pd.DataFrame({"x": [0.0, 6.0], "y": [0.0, -6.0], "z": [0.0, 4.0], "label": ["a", "b"]})
    masker = NiftiSpheresMasker(table, radius=4.0).fit()
    assert masker.seeds_ == [[0.0, 0.0, 0.0], [6.0, -6.0, 4.0]]
    labelled = masker.set_output(transform="xarray").transform(img)
    assert list(labelled["label"].values) == ["a", "b"]
    np.testing.assert_array_equal(
        labelled.values,
        NiftiSpheresMasker([(0.0, 0.0, 0.0), (6.0, -6.0, 4.0)], radius=4.0).fit_transform(img),
    )
    power = NiftiSpheresMasker("power2011", radius=5.0).fit()
    assert power.n_elements_ == 264
    assert len(power.get_feature_names_out()) == 264
    with pytest.raises(ValueError, match="Seeds must be a list of triplets"):
        NiftiSpheresMasker("not-a-set").fit()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, bool])
def test_inverse_transform_is_float64_as_nilearn(mask, dtype):
    params = {"seeds": SEEDS, "radius": 4.0, "mask_img": mask, "allow_overlap": True}
    signals = (np.arange(12).reshape(4, 3) % 2).astype(dtype)
    ours = NiftiSpheresMasker(**params).fit().inverse_transform(signals)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theirs = NilearnMasker(**params).fit().inverse_transform(signals)
    assert not [w for w in caught if issubclass(w.category, UserWarning)]
    assert ours.get_data_dtype() == theirs.get_data_dtype() == np.float64
    assert ours.shape == theirs.shape == (*SHAPE, 4)
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())
    np.testing.assert_array_equal(ours.affine, theirs.affine)


def test_metadata_routing_in_a_pipeline(img, rng):
    confounds = rng.standard_normal((12, 2))
    params = {"seeds": SEEDS, "radius": 4.0, "detrend": True, "standardize_confounds": False}
    direct = NiftiSpheresMasker(**params).fit().transform(img, confounds=confounds)
    with config_context(enable_metadata_routing=True):
        masker = NiftiSpheresMasker(**params).set_transform_request(confounds=True)
        pipe = make_pipeline(masker).fit(img)
        routed = pipe.transform(img, confounds=confounds)
    np.testing.assert_array_equal(routed, direct)
