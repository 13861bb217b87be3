"""Differential tests: ``high_variance_confounds`` against nilearn 0.12.1.

Images are generated with a few strong latent time courses in ~3 % of the voxels (as in
fMRI: vessels, edges, global signals), so the top eigenvalues are well separated and both
the 5-dimensional subspace and each eigenvector are well conditioned; the other voxels are
noise, NaN columns or constant. Every case runs through NumPy, Dask (small chunks, time
split), the streamed ``.nii.gz`` and the memory-mapped ``.nii``.

What is compared, and why these tolerances:

* Eigenvector signs are LAPACK's choice, so we compare the projector ``Q Qᵀ`` onto the
  confound space (what cleaning uses) and each column after aligning its sign.
* float64 images: nilearn computes in float64 too; only rounding differs (its two-pass
  detrend vs our one-pass moments; BLAS summation order), ~1e-15 relative in ``S Sᵀ``, so
  the vectors differ by ~1e-15 / (relative eigengap ≥ 1e-2 here): atol 1e-9 has margin.
* float32 and int16 images: nilearn computes in float32 (its detrended variances carry
  ~1e-6 relative error, its ``eigh`` runs in single precision). We compute in float64 and
  round the result to float32: equal to nilearn on the same data cast to float64 up to that
  final rounding (atol 1e-6 on unit vectors), and within 5e-5 of nilearn's float32 result.
  The voxel selection itself is exactly nilearn's float64 one; against nilearn's float32
  selection it may differ only for voxels within float32 rounding (1e-5 relative) of the
  threshold — ``test_selection_matches_nilearn_except_within_float32_rounding``.
"""

from __future__ import annotations

import warnings

import dask
import nibabel as nib
import numpy as np
import pytest

import lazyspheres as ls
from lazyspheres.high_variance import high_variance_confounds
from lazyspheres.high_variance.moments import VoxelMoments, percentile_threshold
from lazyspheres.testing import raise_if_dask_computes

pytestmark = pytest.mark.nilearn
nilearn_image = pytest.importorskip("nilearn.image")
nilearn_signal = pytest.importorskip("nilearn.signal")
nilearn_maskers = pytest.importorskip("nilearn.maskers")

N_CASES = 16


def make_run(rng, shape, n_volumes, dtype, *, nan_voxels=0, constant_voxels=0, scaled=False):
    """A run whose high-variance voxels follow 6 latent courses of decreasing strength."""
    n_voxels = int(np.prod(shape))
    latent = rng.standard_normal((n_volumes, 6)) * np.array([9.0, 7.0, 5.0, 3.5, 2.5, 1.5])
    data = rng.standard_normal((n_voxels, n_volumes)) * 2.0
    strong = rng.choice(n_voxels, size=max(6, n_voxels * 3 // 100), replace=False)
    data[strong] += rng.standard_normal((strong.size, 6)) @ latent.T
    data += np.linspace(0, 1, n_volumes) * rng.normal(0, 3, (n_voxels, 1))  # linear drifts
    data += 800 + rng.normal(0, 50, (n_voxels, 1))  # offsets: the detrend must remove them
    flat = data.copy()
    if constant_voxels:
        flat[rng.choice(n_voxels, constant_voxels, replace=False)] = 640.0
    if nan_voxels:
        flat[rng.choice(n_voxels, nan_voxels, replace=False), rng.integers(n_volumes)] = np.nan
    array = flat.reshape(*shape, n_volumes)
    if np.dtype(dtype).kind in "iu":
        array = np.round(array)
    img = nib.Nifti1Image(array.astype(dtype), np.diag([2.0, 2.0, 2.0, 1.0]))
    if scaled:
        img.header.set_slope_inter(0.5, 20.0)
    return img


def _case(index):
    rng = np.random.default_rng(900 + index)
    dtype = [np.float64, np.float32, np.int16][index % 3]
    shape = tuple(int(s) for s in rng.integers(8, 15, 3))
    n_volumes = int(rng.choice([12, 30, 47]))
    nan_voxels = int(rng.choice([0, 0, 5])) if dtype != np.int16 else 0
    img = make_run(
        rng, shape, n_volumes, dtype, nan_voxels=nan_voxels, constant_voxels=int(rng.integers(30))
    )
    return img, rng


def _paths(img, tmp_path):
    gz, nii = tmp_path / "run.nii.gz", tmp_path / "run.nii"
    nib.save(img, gz)
    nib.save(img, nii)
    return {
        "numpy": ls.open_nifti(img, chunks=None),
        "dask-small-chunks": ls.open_nifti(img, chunks={"i": 5, "j": 6, "k": 4, "time": 16}),
        "nii.gz-stream": gz,
        "nii-memmap": nii,
    }


def nilearn_hv(img, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nilearn_image.high_variance_confounds(img, **kwargs)


def projector(vectors):
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors @ vectors.T


def aligned(ours, theirs):
    """``ours`` with each column's sign flipped to match ``theirs``."""
    ours = np.asarray(ours, dtype=np.float64)
    signs = np.sign(np.sum(ours * np.asarray(theirs, dtype=np.float64), axis=0))
    return ours * np.where(signs == 0, 1, signs)


def assert_confounds_close(ours, theirs, atol, where=""):
    assert ours.shape == theirs.shape, where
    np.testing.assert_allclose(projector(ours), projector(theirs), atol=atol, err_msg=where)
    np.testing.assert_allclose(aligned(ours, theirs), theirs, atol=atol, err_msg=where)


def compute(result):
    with dask.config.set(scheduler="threads"):
        return np.asarray(result.compute() if hasattr(result, "compute") else result)


@pytest.mark.parametrize("index", range(N_CASES))
def test_equals_nilearn_on_every_read_path(index, tmp_path):
    img, _ = _case(index)
    expected = nilearn_hv(img)
    as_float64 = nilearn_hv(nib.Nifti1Image(img.get_fdata(), img.affine))
    for name, source in _paths(img, tmp_path).items():
        with raise_if_dask_computes():
            result = high_variance_confounds(source)
        ours = compute(result)
        assert ours.dtype == expected.dtype, name
        if expected.dtype == np.float64:
            assert_confounds_close(ours, expected, 1e-9, name)
        else:
            assert_confounds_close(ours, as_float64, 1e-6, name)
            assert_confounds_close(ours, expected, 5e-5, name)


def test_selection_matches_nilearn_except_within_float32_rounding():
    """The kept voxels are nilearn's (float64); float32 rounding only moves near-ties."""
    differing = 0
    for index in range(N_CASES):
        img, _ = _case(index)
        data = np.asarray(img.dataobj)
        series = data.reshape(-1, data.shape[-1]).T  # (T, V) as nilearn lays it out
        moments = VoxelMoments.start(series[0], series.shape[0], detrend=True)
        moments.update(0, series)
        ours = moments.mean_square()
        threshold = percentile_threshold(ours, 2.0)
        for working in (np.float64, np.float32):
            if working == np.float64 and data.dtype != np.float64:
                theirs = nilearn_signal._mean_of_squares(
                    nilearn_signal._detrend(series.astype(np.float64))
                )
            else:
                theirs = nilearn_signal._mean_of_squares(nilearn_signal._detrend(series))
            their_threshold = np.nanpercentile(theirs, 98.0)
            disagree = (ours > threshold) != (theirs > their_threshold)
            if working == np.float64 or data.dtype == np.float64:
                np.testing.assert_allclose(ours, theirs, rtol=1e-9)
                assert not disagree.any(), index
            else:
                np.testing.assert_allclose(ours, theirs, rtol=2e-5)
                near = np.abs(ours - threshold) <= 1e-5 * threshold
                assert not (disagree & ~near).any(), index
                differing += int(disagree.sum())
    assert differing <= 2  # rare: these runs have few near-ties


@pytest.mark.parametrize(
    ("kwargs", "n_volumes"),
    [
        ({"detrend": False}, 25),
        ({"percentile": 10.0}, 25),
        ({"percentile": 50.0, "n_confounds": 3}, 25),
        ({"n_confounds": 8}, 6),  # more than T: T columns
        ({"n_confounds": 1, "percentile": 0.5}, 40),
    ],
)
def test_parameters_equal_nilearn(kwargs, n_volumes, tmp_path):
    rng = np.random.default_rng(4)
    img = make_run(rng, (10, 11, 9), n_volumes, np.float64)
    expected = nilearn_hv(img, **kwargs)
    nib.save(img, tmp_path / "p.nii.gz")
    for source in (img, tmp_path / "p.nii.gz"):
        ours = compute(high_variance_confounds(source, **kwargs))
        atol = 1e-9
        if kwargs.get("detrend") is False or n_volumes < 8:
            atol = 1e-7  # raw offsets (no detrend) / tiny T: smaller relative eigengaps
        assert_confounds_close(ours, expected, atol, str(kwargs))


def test_scaled_int16_and_nan_voxels(tmp_path):
    rng = np.random.default_rng(5)
    img = make_run(rng, (9, 10, 11), 20, np.int16, scaled=True)
    path = tmp_path / "scaled.nii.gz"
    nib.save(img, path)
    expected = nilearn_hv(nib.load(path))  # nibabel scales into float64
    assert expected.dtype == np.float64
    assert_confounds_close(compute(high_variance_confounds(path)), expected, 1e-9)
    with_nan = make_run(rng, (9, 10, 11), 20, np.float64, nan_voxels=40)
    assert_confounds_close(
        compute(high_variance_confounds(with_nan)), nilearn_hv(with_nan), 1e-9, "NaN voxels"
    )


def test_single_volume_warns_and_skips_the_detrend_like_nilearn():
    rng = np.random.default_rng(6)
    img = make_run(rng, (8, 8, 8), 1, np.float64)
    message = "Detrending of 3D signal has been requested but would lead to zero values"
    with pytest.warns(UserWarning, match=message):
        expected = nilearn_image.high_variance_confounds(img)
    with pytest.warns(UserWarning, match=message):
        ours = compute(high_variance_confounds(img))
    assert ours.shape == expected.shape == (1, 1)
    np.testing.assert_allclose(np.abs(ours), np.abs(expected), atol=1e-12)


def test_no_voxel_above_the_threshold_gives_nilearns_columns():
    """A constant image keeps no voxel: nilearn decomposes a zero matrix; so do we."""
    img = nib.Nifti1Image(np.full((6, 7, 8, 9), 3.0), np.eye(4))
    expected = nilearn_hv(img)
    np.testing.assert_array_equal(compute(high_variance_confounds(img)), expected)


def test_list_of_3d_images_is_one_run():
    rng = np.random.default_rng(7)
    img = make_run(rng, (9, 8, 10), 15, np.float64)
    volumes = [nilearn_image.index_img(img, t) for t in range(15)]
    expected = nilearn_hv(volumes)
    assert_confounds_close(compute(high_variance_confounds(volumes)), expected, 1e-9)


# ------------------------------------------------------------------ with extract and clean
def _masker(path_or_img, seeds, user, options):
    masker = nilearn_maskers.NiftiSpheresMasker(
        seeds, radius=3.0, high_variance_confounds=True, **options
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return masker.fit_transform(path_or_img, confounds=user)


@pytest.mark.filterwarnings("ignore:The default strategy for standardize:DeprecationWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extract_hv_clean_equals_the_masker(dtype, tmp_path):
    """nilearn's masker with ``high_variance_confounds=True`` = extract + hv first + clean."""
    rng = np.random.default_rng(8)
    img = make_run(rng, (12, 13, 11), 40, dtype)
    path = tmp_path / "run.nii.gz"
    nib.save(img, path)
    seeds = [(4.0, 6.0, 8.0), (14.0, 10.0, 6.0), (18.0, 20.0, 12.0)]
    user = rng.standard_normal((40, 2))
    options = {"detrend": True, "standardize": "zscore_sample", "t_r": 2.0, "high_pass": 0.01}
    expected = _masker(path, seeds, user, options)
    with raise_if_dask_computes():
        signals = ls.extract(path, seeds, 3.0)
        confounds = high_variance_confounds(path)
        cleaned = ls.clean(signals, confounds=[confounds, user], **options)
    assert cleaned.dtype == expected.dtype
    with dask.config.set(scheduler="threads"):
        values = cleaned.values
    if dtype == np.float64:
        np.testing.assert_allclose(values, expected, atol=1e-8)  # rounding only
        return
    # float32: nilearn extracts, computes hv and cleans in float32; its own result moves by
    # `spread` when the same data is processed in float64. Ours (hv in float64, cleaning in
    # float32) must be within that spread of nilearn's float64 result, and within twice it
    # of nilearn's float32 one.
    exact = _masker(nib.Nifti1Image(img.get_fdata(), img.affine), seeds, user, options)
    spread = np.abs(expected - exact).max()
    assert 0 < spread < 1e-3
    assert np.abs(values - exact).max() <= spread
    assert np.abs(values - expected).max() <= 2 * spread


def test_without_detrend_integer_images_do_not_overflow():
    """Documented difference: with ``detrend=False`` nilearn squares int16 values in int16.

    Its variances and ``S Sᵀ`` then wrap around (garbage); lazyspheres computes in float64,
    which equals nilearn given the same values as floats.
    """
    rng = np.random.default_rng(9)
    img = make_run(rng, (9, 9, 9), 20, np.int16)  # values ~800: squares overflow int16
    as_float = nib.Nifti1Image(img.get_fdata(), img.affine)
    ours = compute(high_variance_confounds(img, detrend=False))
    assert ours.dtype == np.float32  # as with detrend; nilearn's overflowed result is float64
    assert_confounds_close(ours, nilearn_hv(as_float, detrend=False), 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        overflowed = nilearn_image.high_variance_confounds(img, detrend=False)
    assert np.abs(projector(overflowed) - projector(ours)).max() > 0.1
