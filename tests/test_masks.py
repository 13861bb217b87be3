"""Tests of lazyspheres.masks: resampling to the image grid and binarisation rules."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lazyspheres.errors import DimensionError
from lazyspheres.masks import binarize_fit_mask, binarize_mask_values, resample_mask_to_grid

NON_FINITE = "Non-finite values detected. These values will be replaced with zeros."
EMPTY = "The mask is invalid as it is empty: it masks all data."


# --------------------------------------------------------------------------------------
# binarize_mask_values


@pytest.mark.parametrize(
    "values",
    [
        np.array([0, 1], dtype=np.uint8),
        np.array([0, 5], dtype=np.int16),
        np.array([0.0, 0.25], dtype=np.float32),
        np.array([-3.0, 0.0]),
        np.array([False, True]),
    ],
)
def test_two_values_with_zero(values):
    data = np.resize(values, (3, 4, 5))
    got = binarize_mask_values(data)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, data != 0)


def test_single_nonzero_value_is_a_full_mask():
    assert binarize_mask_values(np.full((2, 3, 4), 7.0)).all()


def test_empty_mask():
    with pytest.raises(ValueError, match=EMPTY) as info:
        binarize_mask_values(np.zeros((2, 3, 4)), context="mask 'brain.nii'")
    assert "mask 'brain.nii' of shape (2, 3, 4) has no nonzero voxel" in str(info.value)


def test_background_not_zero():
    data = np.resize(np.array([1, 2], dtype=np.int16), (2, 3, 4))
    with pytest.raises(ValueError) as info:
        binarize_mask_values(data)
    assert str(info.value).startswith(
        "Background of the mask must be represented with 0. Given mask contains: [1 2]."
    )


def test_more_than_two_values():
    data = np.resize(np.array([0.0, 0.5, 1.0]), (2, 3, 4))
    with pytest.raises(ValueError) as info:
        binarize_mask_values(data)
    assert str(info.value).startswith(
        "Given mask is not made of 2 values: [0.  0.5 1. ]. Cannot interpret as true or false."
    )


def test_non_finite_values_become_zero_with_warning():
    data = np.ones((2, 3, 4))
    data[0, 0, 0] = np.nan
    data[1, 1, 1] = np.inf
    data[1, 2, 3] = 0
    with pytest.warns(UserWarning, match=NON_FINITE):
        got = binarize_mask_values(data)
    assert got.sum() == 24 - 3
    assert not got[0, 0, 0]
    assert not got[1, 1, 1]
    assert np.isnan(data[0, 0, 0])  # the input is untouched


def test_non_finite_only_is_empty():
    with pytest.warns(UserWarning, match=NON_FINITE), pytest.raises(ValueError, match=EMPTY):
        binarize_mask_values(np.full((2, 2, 2), np.nan))


# --------------------------------------------------------------------------------------
# binarize_fit_mask


def test_fit_mask_4d_is_nonzero_in_all_volumes():
    data = np.ones((3, 3, 3, 4), dtype=np.float32)
    data[0, 0, 0, 2] = 0
    data[1, 1, 1, :] = [0.5, 2.0, -1.0, 3.0]  # many distinct values are fine at fit
    got = binarize_fit_mask(data)
    assert got.shape == (3, 3, 3)
    assert got.dtype == bool
    assert got.sum() == 26
    assert not got[0, 0, 0]
    assert got[1, 1, 1]


def test_fit_mask_3d():
    data = np.zeros((3, 3, 3), dtype=np.int16)
    data[1, :, 2] = [1, 2, 3]
    np.testing.assert_array_equal(binarize_fit_mask(data), data != 0)


def test_fit_mask_non_finite():
    data = np.ones((2, 2, 2, 2))
    data[0, 0, 0, 1] = np.nan
    with pytest.warns(UserWarning, match=NON_FINITE):
        got = binarize_fit_mask(data)
    assert got.sum() == 7


def test_fit_mask_empty():
    data = np.ones((2, 2, 2, 2))
    data[..., 0] = 0
    with pytest.raises(ValueError, match=EMPTY) as info:
        binarize_fit_mask(data, context="mask_img")
    assert "nonzero in every volume" in str(info.value)


@pytest.mark.parametrize("shape", [(3, 3), (2, 2, 2, 2, 2)])
def test_fit_mask_dimensions(shape):
    with pytest.raises(DimensionError, match="Input data has incompatible dimensionality"):
        binarize_fit_mask(np.ones(shape))


# --------------------------------------------------------------------------------------
# resample_mask_to_grid: behaviour without nilearn


def test_same_grid_returns_input():
    data = np.zeros((4, 5, 6), dtype=np.int8)
    data[1, 2, 3] = 1
    assert resample_mask_to_grid(data, np.eye(4), np.eye(4), (4, 5, 6)) is data


def test_nearly_equal_affine_is_not_corrected():
    # allclose (rtol 1e-5, atol 1e-8) counts as the same grid, as in nilearn, even though a
    # strict resampling would move this mask by a voxel
    data = np.zeros((4, 5, 6), dtype=np.uint8)
    data[1, 2, 3] = 1
    mask_affine = np.eye(4)
    mask_affine[0, 3] = 5e-9
    # 5 µm voxels 1 m from the origin: 9 µm (almost 2 voxels) is within rtol of 1000 mm
    fine = np.diag([0.005, 0.005, 0.005, 1.0])
    fine[0, 3] = 1000.0
    shifted = fine.copy()
    shifted[0, 3] = 1000.009
    assert resample_mask_to_grid(data, mask_affine, np.eye(4), (4, 5, 6)) is data
    assert resample_mask_to_grid(data, shifted, fine, (4, 5, 6)) is data
    # beyond the tolerance it is resampled: the voxel moves by 2
    shifted[0, 3] = 1000.011
    moved = resample_mask_to_grid(data, shifted, fine, (4, 5, 6))
    assert np.argwhere(moved).tolist() == [[3, 2, 3]]


def test_same_affine_other_shape_crops_and_pads():
    data = np.arange(1, 5 * 5 * 5 + 1, dtype=np.int32).reshape(5, 5, 5)
    got = resample_mask_to_grid(data, np.eye(4), np.eye(4), (3, 6, 5))
    assert got.shape == (3, 6, 5)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got[:, :5], data[:3])
    assert (got[:, 5] == 0).all()


def test_integer_shift_placed_by_index_arithmetic():
    rng = np.random.default_rng(3)
    for _ in range(20):
        data = (rng.random((6, 7, 5)) < 0.5).astype(np.uint8)
        b = rng.integers(-4, 5, 3)
        affine = np.diag([2.0, 3.0, 2.5, 1.0])
        mask_affine = affine.copy()
        mask_affine[:3, 3] = -affine[:3, :3] @ b  # image voxel v <-> mask voxel v + b
        target_shape = (5, 6, 7)
        got = resample_mask_to_grid(data, mask_affine, affine, target_shape)
        expected = np.zeros(target_shape, dtype=np.uint8)
        for v in np.ndindex(target_shape):
            m = np.asarray(v) + b
            if (m >= 0).all() and (m < data.shape).all():
                expected[v] = data[tuple(m)]
        np.testing.assert_array_equal(got, expected)


def test_flip_and_coarser_grid():
    data = np.zeros((4, 4, 4), dtype=np.uint8)
    data[0, 1, 2] = 1
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0])
    flipped[0, 3] = 3.0  # mask voxel i sits at world 3 - i
    got = resample_mask_to_grid(data, flipped, np.eye(4), (4, 4, 4))
    assert np.argwhere(got).tolist() == [[3, 1, 2]]
    coarse = np.diag([2.0, 2.0, 2.0, 1.0])  # 2 mm mask on a 1 mm grid: each voxel -> 2^3
    got = resample_mask_to_grid(data, coarse, np.eye(4), (8, 8, 8))
    assert got.sum() > 0
    assert got[0, 2, 4] == 1


def test_bool_mask_stays_bool():
    data = np.zeros((3, 3, 3), dtype=bool)
    data[1, 1, 1] = True
    shifted = np.eye(4)
    shifted[:3, 3] = 1.0
    got = resample_mask_to_grid(data, shifted, np.eye(4), (3, 3, 3))
    assert got.dtype == bool
    assert np.argwhere(got).tolist() == [[2, 2, 2]]


def test_big_endian_mask():
    data = np.zeros((3, 3, 3), dtype=">f4")
    data[0, 0, 0] = 1
    shifted = np.eye(4)
    shifted[:3, 3] = 1.0
    got = resample_mask_to_grid(data, shifted, np.eye(4), (3, 3, 3))
    assert got.dtype == np.dtype("float32")
    assert np.argwhere(got).tolist() == [[1, 1, 1]]


def test_single_volume_4d_is_squeezed_and_others_rejected():
    data = np.ones((3, 3, 3, 1), dtype=np.uint8)
    assert resample_mask_to_grid(data, np.eye(4), np.eye(4), (3, 3, 3)).shape == (3, 3, 3)
    with pytest.raises(DimensionError, match="incompatible dimensionality"):
        resample_mask_to_grid(np.ones((3, 3, 3, 2)), np.eye(4), np.eye(4), (3, 3, 3))
    with pytest.raises(DimensionError, match="incompatible dimensionality"):
        resample_mask_to_grid(np.ones((3, 3)), np.eye(4), np.eye(4), (3, 3, 3))


def test_mask_entirely_before_the_grid():
    far = np.eye(4)
    far[0, 3] = -100.0
    with pytest.raises(ValueError, match="The field of view given by the target affine does not"):
        resample_mask_to_grid(np.ones((3, 3, 3)), far, np.eye(4), (3, 3, 3))


def test_non_finite_mask_values_resample_to_nan():
    data = np.ones((4, 4, 4))
    data[1, 1, 1] = np.inf
    data[2, 2, 2] = np.nan
    shifted = np.eye(4)
    shifted[:3, 3] = -1.0
    with pytest.warns(RuntimeWarning, match="NaNs or infinite values are present in the data"):
        got = resample_mask_to_grid(data, shifted, np.eye(4), (4, 4, 4))
    assert np.argwhere(np.isnan(got)).tolist() == [[0, 0, 0], [1, 1, 1]]
    assert np.isinf(data[1, 1, 1])


# --------------------------------------------------------------------------------------
# differential against nilearn 0.12.1


def _nilearn_resample(data, mask_affine, target_affine, target_shape):
    nib = pytest.importorskip("nibabel")
    from nilearn.image import resample_img

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = resample_img(
            nib.Nifti1Image(data, mask_affine),
            target_affine=target_affine,
            target_shape=target_shape,
            interpolation="nearest",
            copy_header=True,
            force_resample=False,
        )
    return np.asanyarray(out.dataobj)


def _resampling_case(index):
    rng = np.random.default_rng([77, index])
    kind = ("coarser", "finer", "fractional", "flipped", "oblique", "integer")[index % 6]
    target = np.diag(np.r_[rng.choice([1.0, 2.0, 2.5], 3), 1.0])
    target[:3, 3] = rng.uniform(-20, 20, 3)
    target_shape = tuple(int(s) for s in rng.integers(6, 15, 3))
    mask_shape = tuple(int(s) for s in rng.integers(5, 15, 3))
    mask_affine = target.copy()
    if kind == "coarser":
        mask_affine[:3, :3] = np.diag(rng.choice([3.0, 4.0, 1.5], 3))
        mask_affine[:3, 3] += rng.normal(size=3) * 3
    elif kind == "finer":
        mask_affine[:3, :3] *= 0.5
        mask_affine[:3, 3] += rng.normal(size=3)
    elif kind == "fractional":
        mask_affine[:3, 3] += target[:3, :3] @ rng.uniform(-3, 3, 3)
    elif kind == "flipped":
        mask_affine[:3, :3] = np.diag(rng.choice([-1.0, 1.0], 3) * rng.choice([2.0, 3.0], 3))
        mask_affine[:3, 3] += rng.normal(size=3) * 5
    elif kind == "oblique":
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        mask_affine[:3, :3] = q * rng.uniform(1.5, 3.0)
        mask_affine[:3, 3] += rng.normal(size=3) * 3
    dtype = rng.choice([np.uint8, np.int16, np.float32, np.float64])
    data = ((rng.random(mask_shape) < 0.6) * rng.choice([1, 3])).astype(dtype)
    if kind == "integer":
        # whole-voxel shifts that nilearn 0.12.1's shortcut places correctly: the nonzero box
        # starts at a mask index >= b (deltas §4 covers the clipped case)
        b = rng.integers(-3, 4, 3)
        mask_affine[:3, 3] = target[:3, 3] - target[:3, :3] @ b
        for axis in range(3):
            index = [slice(None)] * 3
            index[axis] = slice(0, max(int(b[axis]), 0))
            data[tuple(index)] = 0
    return data, mask_affine, target, target_shape


@pytest.mark.nilearn
@pytest.mark.parametrize("index", range(240))
def test_resampling_matches_nilearn(index):
    data, mask_affine, target, target_shape = _resampling_case(index)
    from nilearn.image.resampling import BoundingBoxError

    try:
        theirs = _nilearn_resample(data, mask_affine, target, target_shape)
    except BoundingBoxError:  # the mask lies entirely before the grid
        with pytest.raises(ValueError, match="does not contain any of the data"):
            resample_mask_to_grid(data, mask_affine, target, target_shape)
        return
    ours = resample_mask_to_grid(data, mask_affine, target, target_shape)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.nilearn
def test_resampling_cases_are_not_trivial():
    nonzero = 0
    for index in range(240):
        data, mask_affine, target, target_shape = _resampling_case(index)
        try:
            out = resample_mask_to_grid(data, mask_affine, target, target_shape)
        except ValueError:
            continue
        nonzero += bool(np.count_nonzero(out))
    assert nonzero >= 180


@pytest.mark.nilearn
@pytest.mark.parametrize(
    "values",
    [
        [0, 1],
        [0, 7],
        [3, 3],
        [0, 0],
        [1, 2],
        [0, 1, 2],
        [0.0, 0.5, np.nan],
        [np.nan, 1.0],
        [np.inf, 0.0, 2.0],
        list(np.linspace(0, 1, 30)),
    ],
)
def test_binarize_matches_nilearn_load_mask_img(values):
    nib = pytest.importorskip("nibabel")
    from nilearn.masking import load_mask_img

    dtype = np.float64 if any(isinstance(v, float) for v in values) else np.int16
    data = np.resize(np.asarray(values, dtype=dtype), (4, 5, 6))
    with warnings.catch_warnings(record=True) as theirs_warnings:
        warnings.simplefilter("always")
        try:
            theirs = load_mask_img(nib.Nifti1Image(data.copy(), np.eye(4)))[0]
        except ValueError as exc:
            theirs = exc
    with warnings.catch_warnings(record=True) as our_warnings:
        warnings.simplefilter("always")
        try:
            ours = binarize_mask_values(data)
        except ValueError as exc:
            ours = exc
    assert [str(w.message) for w in our_warnings] == [
        str(w.message) for w in theirs_warnings if "Non-finite" in str(w.message)
    ]
    if isinstance(theirs, Exception):
        assert isinstance(ours, ValueError)
        assert str(ours).startswith(str(theirs))
    else:
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.nilearn
@pytest.mark.parametrize("kind", ["binary", "values", "4d", "4d_nan", "empty"])
def test_fit_mask_matches_nilearn_mask_img_(kind):
    nib = pytest.importorskip("nibabel")
    from nilearn.maskers import NiftiSpheresMasker

    rng = np.random.default_rng(5)
    if kind == "binary":
        data = (rng.random((5, 6, 7)) < 0.5).astype(np.uint8)
    elif kind == "values":
        data = rng.integers(0, 4, (5, 6, 7)).astype(np.int16)
    elif kind == "4d":
        data = rng.random((5, 6, 7, 3)) * (rng.random((5, 6, 7, 3)) < 0.9)
    elif kind == "4d_nan":
        data = rng.random((5, 6, 7, 2))
        data[0, 0, 0, 1] = np.nan
    else:
        data = np.zeros((5, 6, 7, 2))
    # nilearn zeroes non-finite values in place: give it a copy
    image = nib.Nifti1Image(data.copy(), np.eye(4))
    masker = NiftiSpheresMasker([(1.0, 1.0, 1.0)], mask_img=image)
    with warnings.catch_warnings(record=True) as theirs_warnings:
        warnings.simplefilter("always")
        try:
            theirs = np.asanyarray(masker.fit().mask_img_.dataobj) != 0
        except ValueError as exc:
            theirs = exc
    with warnings.catch_warnings(record=True) as our_warnings:
        warnings.simplefilter("always")
        try:
            ours = binarize_fit_mask(data)
        except ValueError as exc:
            ours = exc
    assert [str(w.message) for w in our_warnings] == [
        str(w.message) for w in theirs_warnings if "Non-finite" in str(w.message)
    ]
    if isinstance(theirs, Exception):
        assert isinstance(ours, ValueError)
        assert str(ours).startswith(str(theirs))
    else:
        np.testing.assert_array_equal(ours, theirs)
