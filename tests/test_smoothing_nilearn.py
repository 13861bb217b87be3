"""Differential tests: smoothing (``smoothing_fwhm``) against nilearn 0.12.1.

Two levels:

* the kernel: :class:`~lazyspheres.smoothing.SmoothingPlan` computes smoothed values at chosen
  voxels from the raw values around them; they must equal ``nilearn.image.smooth_img`` on the
  whole image **bit for bit** (same scipy arithmetic, same per-pass rounding to the working
  dtype), for every affine kind, fwhm form, dtype, and voxels on or near the borders;
* the pipeline: ``extract(..., smoothing_fwhm=...)`` through every read path (numpy, Dask with
  chunks smaller than the kernel halo, streamed ``.nii.gz``, memory-mapped ``.nii``) against
  ``NiftiSpheresMasker(smoothing_fwhm=...)``. float64: the smoothed values are bit-equal and
  the sphere sums run in nilearn's order, so we assert rtol 1e-12 (equality in practice).
  float32 (float32 and int16 images): the smoothed float32 values are bit-equal but nilearn
  accumulates each sphere mean in float32 while we accumulate in float64, so the difference is
  bounded by float32 summation error, n_voxels · eps32 relative for same-sign values; spheres
  here have < 150 voxels of positive values: rtol 2e-6 is that bound with margin.

Unsigned integers are the documented difference (SPEC §3.5): 0.12.1 smooths them in their own
dtype, truncating after each axis pass; we smooth in float32, which equals nilearn given the
image as float32 first (``dtype="float32"``). Both numbers are shown.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import lazyspheres as ls
from lazyspheres.smoothing import SmoothingPlan, kernel_halo, smoothing_sigmas

pytestmark = pytest.mark.nilearn
nilearn_image = pytest.importorskip("nilearn.image")
nilearn_maskers = pytest.importorskip("nilearn.maskers")

N_KERNEL_CASES = 120
N_EXTRACT_CASES = 24


def _affine(rng, kind):
    zooms = {
        "diagonal": np.full(3, rng.choice([1.0, 2.0, 3.0])),
        "anisotropic": rng.uniform(0.8, 3.5, 3),
        "flipped": rng.uniform(1.0, 3.0, 3) * rng.choice([-1, 1], 3),
        "oblique": rng.uniform(1.0, 3.0, 3),
    }[kind]
    linear = np.diag(zooms)
    if kind == "oblique":
        linear = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix() @ linear
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = rng.uniform(-20, 20, 3).round(1)
    return affine


def _fwhm(rng):
    kind = rng.choice(
        ["scalar", "per-axis", "fast", "wide", "negative"], p=[0.4, 0.25, 0.15, 0.1, 0.1]
    )
    if kind == "scalar":
        return float(rng.uniform(0.5, 8.0))
    if kind == "per-axis":
        values = [float(rng.uniform(0.5, 8.0)) for _ in range(3)]
        values[rng.integers(3)] = rng.choice([None, -1.0, 0.0, values[0]])
        return values
    if kind == "wide":  # kernel wider than the small axes: repeated reflection
        return float(rng.uniform(15.0, 30.0))
    if kind == "negative":
        return -float(rng.uniform(0.5, 4.0))
    return "fast"


def _data(rng, shape, dtype, with_nan):
    values = rng.standard_normal(shape) * 40 + 600
    if np.dtype(dtype).kind == "u":
        values = np.clip(values / 4, 0, 255)
    data = values.astype(dtype)
    if with_nan and data.dtype.kind == "f":
        flat = data.reshape(-1, order="F")
        picks = rng.choice(flat.size, size=max(1, flat.size // 50), replace=False)
        flat[picks] = rng.choice([np.nan, np.inf, -np.inf], size=picks.size)
        data = flat.reshape(shape, order="F")
    return data


def _border_voxels(rng, shape, n):
    """Random voxels, half of them on a face of the grid (where reflection matters)."""
    voxels = np.stack([rng.integers(0, s, n) for s in shape], axis=1)
    on_face = rng.random(n) < 0.5
    axis = rng.integers(0, 3, n)
    side = rng.integers(0, 2, n)
    voxels[on_face, axis[on_face]] = np.where(
        side[on_face] == 0, 0, np.array(shape)[axis[on_face]] - 1
    )
    unique = np.unique(voxels, axis=0)
    return unique[rng.permutation(len(unique))]


def _nilearn_smooth(img, fwhm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asanyarray(nilearn_image.smooth_img(img, fwhm).dataobj)


def _kernel_case(index):
    rng = np.random.default_rng(5000 + index)
    kind = ["diagonal", "anisotropic", "flipped", "oblique"][index % 4]
    shape = tuple(int(s) for s in rng.integers(1, 16, 3))
    n_volumes = int(rng.integers(1, 4))
    dtype = [np.float32, np.float64, np.int16, np.uint8][index % 4]
    data = _data(rng, (*shape, n_volumes), dtype, with_nan=rng.random() < 0.4)
    affine = _affine(rng, kind)
    voxels = _border_voxels(rng, shape, int(rng.integers(1, 40)))
    return data, affine, _fwhm(rng), voxels


@pytest.mark.parametrize("index", range(N_KERNEL_CASES))
def test_kernel_equals_nilearn_smooth_img_bitwise(index):
    data, affine, fwhm, voxels = _kernel_case(index)
    shape, n_volumes = data.shape[:3], data.shape[3]
    img = nib.Nifti1Image(data, affine)
    if data.dtype.kind == "u":
        # Documented difference: nilearn 0.12.1 would filter uint8 in place as uint8
        # (and fails outright on "fast"); we smooth in float32 = nilearn on a float32 copy.
        img = nib.Nifti1Image(data.astype(np.float32), affine)
    expected = _nilearn_smooth(img, fwhm)[tuple(voxels.T)]
    plan = SmoothingPlan.build(voxels, shape, affine, fwhm, data.dtype)
    raw = data.reshape(-1, n_volumes, order="F")[plan.read_flat]
    ours = plan.smooth(raw, axis=0)
    assert ours.dtype == expected.dtype
    np.testing.assert_array_equal(ours, expected)
    # same numbers with volumes first (the streaming readers' layout)
    np.testing.assert_array_equal(plan.smooth(np.ascontiguousarray(raw.T), axis=1).T, ours)


def _form(fwhm):
    if isinstance(fwhm, str):
        return "fast"
    if isinstance(fwhm, list):
        return "per-axis"
    return "negative" if fwhm < 0 else "wide" if fwhm > 14 else "scalar"


def test_kernel_cases_cover_what_matters():
    """The generator hits every fwhm form, tiny axes, NaN/inf and kernels wider than axes."""
    cases = [_kernel_case(index) for index in range(N_KERNEL_CASES)]
    assert {_form(fwhm) for _, _, fwhm, _ in cases} == {
        "fast", "per-axis", "negative", "wide", "scalar"
    }  # fmt: skip
    assert sum(min(data.shape[:3]) <= 3 for data, *_ in cases) >= 10
    assert sum(np.isnan(data).any() for data, *_ in cases if data.dtype.kind == "f") >= 10


# --------------------------------------------------------------------------- extract vs masker
def _extract_case(index):
    rng = np.random.default_rng(7000 + index)
    kind = ["diagonal", "anisotropic", "flipped", "oblique"][index % 4]
    shape = tuple(int(s) for s in rng.integers(7, 13, 3))
    dtype = [np.float32, np.float64, np.int16][index % 3]
    n_volumes = int(rng.choice([0, 5, 9]))  # 0: a 3D image
    full = shape + ((n_volumes,) if n_volumes else ())
    data = _data(rng, full, dtype, with_nan=rng.random() < 0.3)
    affine = _affine(rng, kind)
    voxels = _border_voxels(rng, shape, int(rng.integers(1, 4)))
    seeds = (np.c_[voxels, np.ones(len(voxels))] @ affine.T)[:, :3].round(3)
    vox = float(np.min(np.linalg.norm(affine[:3, :3], axis=0)))
    radius = float(rng.choice([None, vox, 1.7 * vox, 2.5 * vox]) or 0) or None
    fwhm = _fwhm(rng) if rng.random() < 0.8 else float(rng.uniform(3, 7))
    if not isinstance(fwhm, str) and np.ndim(fwhm) == 0 and fwhm > 14:
        fwhm = 6.0
    if index % 8 == 5:
        fwhm = "fast"
    return nib.Nifti1Image(data, affine), seeds, radius, fwhm


def _read_paths(img, tmp_path):
    gz, nii = tmp_path / "img.nii.gz", tmp_path / "img.nii"
    nib.save(img, gz)
    nib.save(img, nii)
    on_disk = nib.load(nii)  # the affine as stored (float32 header fields)
    # chunks of 2-3 voxels: smaller than most cases' kernel halos (checked below)
    small = {"i": 3, "j": 2, "k": 3, "time": 4}
    return {
        "numpy": (ls.open_nifti(img, chunks=None), img),
        "dask-small-chunks": (ls.open_nifti(img, chunks=small), img),
        "nii.gz-stream": (gz, on_disk),
        "nii-memmap": (nii, on_disk),
    }


@pytest.mark.parametrize("index", range(N_EXTRACT_CASES))
def test_extract_with_smoothing_equals_nilearn(index, tmp_path):
    img, seeds, radius, fwhm = _extract_case(index)
    expected = {}
    for name, (image, reference) in _read_paths(img, tmp_path).items():
        key = id(reference)
        if key not in expected:
            masker = nilearn_maskers.NiftiSpheresMasker(
                [tuple(s) for s in seeds], radius=radius, smoothing_fwhm=fwhm, allow_overlap=True
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected[key] = np.atleast_1d(masker.fit_transform(reference))
        want = expected[key]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # smoothing zeroes NaN silently: no warning
            out = ls.extract(image, seeds, radius, smoothing_fwhm=fwhm, allow_overlap=True)
            values = out.values
        assert out.dtype == want.dtype, name
        rtol = 1e-12 if want.dtype == np.float64 else 2e-6
        np.testing.assert_allclose(values, want, rtol=rtol, atol=0, err_msg=name)


def test_extract_cases_cover_what_matters():
    cases = [_extract_case(index) for index in range(N_EXTRACT_CASES)]
    halos = []
    for img, _, _, fwhm in cases:
        if isinstance(fwhm, str):
            continue
        widths = np.array([0.0 if v is None else v for v in np.ravel([fwhm])], dtype=float)
        halos.append(max(kernel_halo(s) for s in smoothing_sigmas(img.affine, widths)))
    assert sum(h > 3 for h in halos) >= N_EXTRACT_CASES // 3  # halos wider than the chunks
    assert sum(img.ndim == 3 for img, *_ in cases) >= 3
    assert {_form(fwhm) for *_, fwhm in cases} >= {"fast", "per-axis", "negative", "scalar"}
    assert sum(not np.isfinite(img.get_fdata()).all() for img, *_ in cases) >= 2


def test_unsigned_images_smoothed_in_float_both_ways(tmp_path):
    """Documented difference (SPEC §3.5): nilearn 0.12.1 truncates uint8 after each pass."""
    rng = np.random.default_rng(11)
    data = rng.integers(60, 200, size=(10, 11, 12, 4)).astype(np.uint8)
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    seeds = [(6.0, 8.0, 10.0), (2.0, 2.0, 20.0)]
    ours = ls.extract(img, seeds, 4.0, smoothing_fwhm=5.0).values
    assert ours.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nilearn_0121 = nilearn_maskers.NiftiSpheresMasker(
            seeds, radius=4.0, smoothing_fwhm=5.0
        ).fit_transform(img)
        as_float = nilearn_maskers.NiftiSpheresMasker(
            seeds, radius=4.0, smoothing_fwhm=5.0, dtype="float32"
        ).fit_transform(img)
    np.testing.assert_allclose(ours, as_float, rtol=2e-6)  # = nilearn on a float32 copy
    # 0.12.1: integer arithmetic, and sphere means truncated into uint8 -> whole numbers
    assert nilearn_0121.dtype == np.float32
    np.testing.assert_array_equal(nilearn_0121, np.trunc(nilearn_0121))
    assert np.abs(ours - nilearn_0121).max() > 0.5
    # smooth_img itself keeps uint8 in 0.12.1 and differs from the float result
    smoothed = nilearn_image.smooth_img(img, 5.0)
    assert smoothed.get_data_dtype() == np.uint8


def test_fast_smoothing_of_unsigned_images_works_where_nilearn_fails():
    rng = np.random.default_rng(12)
    data = rng.integers(0, 255, size=(6, 7, 8, 3)).astype(np.uint8)
    img = nib.Nifti1Image(data, np.eye(4))
    with pytest.raises(TypeError, match="Cannot cast ufunc"):  # numpy's casting error
        nilearn_image.smooth_img(img, "fast")
    ours = ls.extract(img, [(3.0, 3.0, 3.0)], 1.5, smoothing_fwhm="fast").values
    expected = nilearn_maskers.NiftiSpheresMasker(
        [(3.0, 3.0, 3.0)], radius=1.5, smoothing_fwhm="fast", dtype="float32"
    ).fit_transform(img)
    np.testing.assert_allclose(ours, expected, rtol=2e-6)


def test_zero_fwhm_warns_like_nilearn_and_still_floats_the_image():
    rng = np.random.default_rng(13)
    data = rng.integers(900, 1100, size=(8, 8, 8, 5)).astype(np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    seeds = [(4.0, 4.0, 4.0)]
    message = r"The parameter 'fwhm' for smoothing is specified as 0\. Setting it to None"
    with pytest.warns(UserWarning, match=message):
        expected = nilearn_maskers.NiftiSpheresMasker(
            seeds, radius=2.0, smoothing_fwhm=0
        ).fit_transform(img)
    with pytest.warns(UserWarning, match=message) as record:
        ours = ls.extract(img, seeds, 2.0, smoothing_fwhm=0).values
    assert len(record) == 1
    # nilearn's image became float32, so its means are not truncated: same numbers as ours
    assert ours.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=2e-6)
    assert np.any(expected != np.trunc(expected))


def test_negative_fwhm_means_no_filtering_but_a_float_image():
    rng = np.random.default_rng(14)
    data = rng.integers(900, 1100, size=(8, 8, 8, 5)).astype(np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    seeds = [(4.0, 4.0, 4.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ours = ls.extract(img, seeds, 2.0, smoothing_fwhm=-3.0).values
        expected = nilearn_maskers.NiftiSpheresMasker(
            seeds, radius=2.0, smoothing_fwhm=-3.0
        ).fit_transform(img)
    np.testing.assert_allclose(ours, expected, rtol=2e-6)
    np.testing.assert_allclose(ours, ls.extract(img, seeds, 2.0).values, rtol=2e-7)


def test_scaled_image_smoothed_in_float64(tmp_path):
    rng = np.random.default_rng(15)
    data = rng.integers(-500, 500, size=(9, 8, 10, 4)).astype(np.int16)
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.5, 1.0]))
    img.header.set_slope_inter(0.37, -12.5)
    path = tmp_path / "scaled.nii.gz"
    nib.save(img, path)
    seeds = [(4.0, 6.0, 8.0), (0.0, 0.0, 0.0)]
    expected = nilearn_maskers.NiftiSpheresMasker(
        seeds, radius=3.0, smoothing_fwhm=[4.0, 3.0, 5.0]
    ).fit_transform(path)
    ours = ls.extract(path, seeds, 3.0, smoothing_fwhm=[4.0, 3.0, 5.0])
    assert ours.dtype == expected.dtype == np.float64
    np.testing.assert_allclose(ours.values, expected, rtol=1e-12)


def test_sigma_is_nilearns_formula():
    affine = np.array([[0.0, -2.5, 0, 0], [1.5, 0, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]])
    sigmas = smoothing_sigmas(affine, np.array([6.0]))
    expected = 6.0 / (np.sqrt(8 * np.log(2)) * np.array([1.5, 2.5, 3.0]))
    np.testing.assert_array_equal(sigmas, expected)
    assert [kernel_halo(s) for s in sigmas] == [int(4 * s + 0.5) for s in expected]


@pytest.mark.parametrize("mask_kind", ["same-grid", "other-grid"])
def test_smoothing_happens_before_masking(mask_kind, tmp_path):
    """The whole image is smoothed (masked-out voxels contribute), then spheres are masked."""
    rng = np.random.default_rng(16)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    data = rng.standard_normal((12, 11, 10, 6)) * 30 + 400
    img = nib.Nifti1Image(data, affine)
    mask_data = (rng.random((12, 11, 10)) > 0.3).astype(np.uint8)
    mask = nib.Nifti1Image(mask_data, affine)
    if mask_kind == "other-grid":
        coarse = np.diag([3.0, 3.0, 3.0, 1.0])
        coarse[:3, 3] = [0.4, -0.3, 0.2]
        mask = nib.Nifti1Image((rng.random((9, 8, 8)) > 0.3).astype(np.uint8), coarse)
    seeds = [(4.0, 4.0, 4.0), (16.0, 12.0, 10.0), (0.0, 20.0, 18.0)]
    path = tmp_path / "img.nii.gz"
    nib.save(img, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = nilearn_maskers.NiftiSpheresMasker(
            seeds, radius=3.0, mask_img=mask, smoothing_fwhm=5.0
        ).fit_transform(nib.load(path))
    for source in (path, ls.open_nifti(nib.load(path), chunks={"i": 3, "k": 4, "time": 2})):
        ours = ls.extract(source, seeds, 3.0, mask_img=mask, smoothing_fwhm=5.0).values
        np.testing.assert_allclose(ours, expected, rtol=1e-12)
    unsmoothed = ls.extract(path, seeds, 3.0, mask_img=mask).values
    assert np.abs(unsmoothed - expected).max() > 1.0  # smoothing did something
