"""Deliberate differences from nilearn 0.12.1 (SPEC §3.5), each shown both ways.

For every difference the test computes nilearn's number (or exception) and ours, and
checks each against an independent expectation: what nilearn does, and what the right
result is. ``docs`` list the same items under "Differences from nilearn".
"""

from __future__ import annotations

import re
import warnings

import nibabel as nib
import numpy as np
import pytest
from masker_cases import AFFINE, SHAPE, bold, run_masker

import lazyspheres as ls
from lazyspheres import NiftiSpheresMasker

nilearn_maskers = pytest.importorskip("nilearn.maskers")
NilearnMasker = nilearn_maskers.NiftiSpheresMasker

SEEDS = [(0.0, 0.0, 0.0), (6.0, -6.0, 4.0)]


@pytest.fixture(autouse=True)
def _no_forced_gc(monkeypatch):
    """nilearn calls gc.collect() twice per transform; it changes no result (speed only)."""
    import gc

    monkeypatch.setattr(gc, "collect", lambda *args: 0)


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def exact_means(data, seeds, radius, affine=AFFINE, mask=None):
    """Sphere means computed independently: float64 mean of each sphere's voxels."""
    spheres = ls.sphere_voxels(seeds, affine, data.shape[:3], radius=radius, mask=mask,
                               allow_overlap=True)  # fmt: skip
    columns = []
    for i in range(len(seeds)):
        ijk = spheres.sphere(i)
        columns.append(data[ijk[:, 0], ijk[:, 1], ijk[:, 2]].astype(np.float64).mean(axis=0))
    return np.stack(columns, axis=-1)


# ---------------------------------------------------------------------------- numbers
def test_integer_images_give_exact_means(rng):
    img = bold(rng, 10, np.int16)
    data = np.asanyarray(img.dataobj)
    exact = exact_means(data, SEEDS, 4.0)
    assert not np.array_equal(exact, np.trunc(exact))  # the means are not integers
    ours = NiftiSpheresMasker(SEEDS, radius=4.0).fit_transform(img)
    theirs = quiet(NilearnMasker(SEEDS, radius=4.0).fit_transform, img)
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours, exact.astype(np.float32))  # lazyspheres: exact
    np.testing.assert_array_equal(theirs, np.trunc(exact).astype(np.float32))  # truncated


def test_the_callers_image_is_never_modified(rng):
    data = rng.standard_normal((*SHAPE, 8)) + 100
    data[5, 5, 5, 3] = np.nan  # inside sphere 0: (0, 0, 0) mm is voxel (5, 6, 4)
    data[5, 6, 4, 2] = np.nan
    outputs, images = [], []
    for factory in (NiftiSpheresMasker, NilearnMasker):
        img = nib.Nifti1Image(data.copy(), AFFINE)
        _ = img.get_fdata()  # in memory, as nilearn needs to show its in-place zeroing
        images.append(img)
        outcome = run_masker(factory, {"seeds": SEEDS, "radius": 4.0}, None, img)
        outputs.append(outcome)
    ours, theirs = outputs
    np.testing.assert_allclose(ours.output, theirs.output, rtol=1e-12)
    assert ours.warnings == theirs.warnings  # the same two nilearn warnings
    assert len(ours.warnings) == 2
    assert np.isnan(np.asanyarray(images[0].dataobj)).sum() == 2  # untouched
    assert np.isnan(np.asanyarray(images[1].dataobj)).sum() == 0  # nilearn zeroed them


def test_butterworth_scrubbing_interpolates_every_censored_volume(rng):
    """nilearn interpolates a censored volume only if its mirror T-1-t is kept: a spike in
    a censored volume whose mirror is censored too leaks into its filtered output."""
    n = 40
    base = rng.standard_normal((*SHAPE, n)) + 1000
    keep = np.ones(n, dtype=bool)
    keep[[12, n - 1 - 12]] = False  # a censored pair of mirror volumes
    results = {}
    for spike in (0.0, 1e6):
        data = base.copy()
        data[..., 12] += spike
        img = nib.Nifti1Image(data, AFFINE)
        params = {"seeds": SEEDS, "radius": 4.0, "low_pass": 0.1, "t_r": 2.0}
        results[spike] = [
            quiet(factory(**params).fit_transform, img, sample_mask=keep)
            for factory in (NiftiSpheresMasker, NilearnMasker)
        ]
    ours_clean, theirs_clean = results[0.0]
    ours_spiked, theirs_spiked = results[1e6]
    np.testing.assert_allclose(ours_spiked, ours_clean, rtol=1e-9)  # censored: no effect
    assert np.abs(theirs_spiked - theirs_clean).max() > 1e3  # nilearn: the spike leaks


def test_transform_uses_the_binarised_mask(rng):
    img = bold(rng, 8, np.float64)
    labels = np.where(rng.random(SHAPE) > 0.2, rng.choice([1, 2], SHAPE), 0).astype(np.int16)
    four_d = np.stack([labels > 0, rng.random(SHAPE) > 0.1], axis=-1).astype(np.uint8)
    for mask_data, error in ((labels, "Given mask is not made of 2 values"),
                             (four_d, "Input data has incompatible dimensionality")):  # fmt: skip
        mask = nib.Nifti1Image(mask_data, AFFINE)
        theirs = run_masker(NilearnMasker, {"seeds": SEEDS, "radius": 4.0, "mask_img": mask},
                            None, img)  # fmt: skip
        assert error in str(theirs.error)  # nilearn: fit works, transform fails
        ours = NiftiSpheresMasker(SEEDS, radius=4.0, mask_img=mask).fit()
        binary = ours.mask_img_  # nonzero in every volume, as nilearn's mask_img_
        expected = quiet(NilearnMasker(SEEDS, radius=4.0, mask_img=binary).fit_transform, img)
        np.testing.assert_array_equal(ours.transform(img), expected)


def test_inverse_transform_uses_the_sphere_rules_of_transform():
    """radius=None on a grid whose world coordinates never truncate to the seed's: nilearn's
    inverse (no nearest-voxel rule) finds nothing; ours paints the voxel transform uses."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-9.0, -11.0, -13.0]  # odd world coordinates
    mask = nib.Nifti1Image(np.ones((10, 11, 12), dtype=np.uint8), affine)
    seeds = [(0.0, 0.0, 0.0), (3.0, -3.0, 4.5)]
    theirs = quiet(NilearnMasker(seeds, mask_img=mask).fit)
    with pytest.raises(ValueError, match=re.escape("These spheres are empty")):
        theirs.inverse_transform(np.array([1.0, 2.0]))
    ours = NiftiSpheresMasker(seeds, mask_img=mask).fit()
    painted = ours.inverse_transform(np.array([1.0, 2.0])).get_fdata()
    assert painted.dtype == np.float64
    # exactly the voxels transform averages (nearest voxel, half to even)
    assert np.argwhere(painted == 1.0).tolist() == [[4, 6, 6]]
    assert np.argwhere(painted == 2.0).tolist() == [[6, 4, 9]]
    data = np.zeros((10, 11, 12, 1))
    data[4, 6, 6], data[6, 4, 9] = 5.0, 7.0
    np.testing.assert_array_equal(ours.transform(nib.Nifti1Image(data, affine)), [[5.0, 7.0]])


def test_a_mask_shifted_past_the_image_start_is_placed_where_its_affine_says(rng):
    """0.12.1's crop-and-paste shortcut misplaces a whole-voxel-shifted mask whose nonzero
    box starts before the image's first voxel (deltas §4)."""
    img = bold(rng, 6, np.float64)
    mask_affine = AFFINE.copy()
    mask_affine[:3, 3] -= 2.0 * np.array([2, 1, 0])  # starts 2 and 1 voxels before the image
    mask_data = np.zeros(SHAPE, dtype=np.uint8)
    # a patterned box starting before the image's first voxel (x and y)
    mask_data[0:8, 0:9, 2:9] = rng.random((8, 9, 7)) > 0.3
    mask_data[0, 0, 2] = 1
    mask = nib.Nifti1Image(mask_data, mask_affine)
    placed = np.zeros(SHAPE, dtype=np.uint8)  # image voxel i shows mask voxel i + (2, 1, 0)
    placed[:8, :10, :] = mask_data[2:, 1:, :]
    seeds = [(-4.0, -6.0, 2.0), (0.0, 2.0, 6.0)]
    common = {"seeds": seeds, "radius": 5.0, "allow_overlap": True}
    ours = NiftiSpheresMasker(**common, mask_img=mask).fit_transform(img)
    correct = quiet(NilearnMasker(**common, mask_img=nib.Nifti1Image(placed, AFFINE))
                    .fit_transform, img)  # fmt: skip
    theirs = quiet(NilearnMasker(**common, mask_img=mask).fit_transform, img)
    np.testing.assert_array_equal(ours, correct)
    assert not np.allclose(theirs, correct)  # nilearn shifted the mask


def test_unsigned_images_are_smoothed_in_floating_point(rng):
    """0.12.1 smooths uint8 images in place in uint8, truncating after each axis pass
    (deltas §5); lazyspheres smooths them in float32, as nilearn does signed integers."""
    data = rng.integers(50, 200, (*SHAPE, 6)).astype(np.uint8)
    img = nib.Nifti1Image(data, AFFINE, dtype=np.uint8)
    params = {"seeds": SEEDS, "radius": 4.0, "smoothing_fwhm": 4.0}
    ours = NiftiSpheresMasker(**params).fit_transform(img)
    in_float = quiet(NilearnMasker(**params, dtype="float32").fit_transform, img)
    theirs = quiet(NilearnMasker(**params).fit_transform, img)
    assert ours.dtype == in_float.dtype == theirs.dtype == np.float32
    np.testing.assert_allclose(ours, in_float, rtol=2e-6)
    assert np.abs(theirs - in_float).max() > 0.5  # truncation in uint8 arithmetic


@pytest.mark.parametrize("value", [1, np.True_])
def test_standardize_one_standardizes(rng, value):
    img = bold(rng, 10, np.float64)
    ours = quiet(NiftiSpheresMasker(SEEDS, radius=4.0, standardize=value).fit_transform, img)
    as_true = quiet(NiftiSpheresMasker(SEEDS, radius=4.0, standardize=True).fit_transform, img)
    theirs = quiet(NilearnMasker(SEEDS, radius=4.0, standardize=value).fit_transform, img)
    raw = quiet(NilearnMasker(SEEDS, radius=4.0, standardize=False).fit_transform, img)
    np.testing.assert_array_equal(ours, as_true)
    np.testing.assert_allclose(ours.std(axis=0), 1.0, rtol=1e-12)  # population z-score
    np.testing.assert_array_equal(theirs, raw)  # nilearn 0.12.1 silently does nothing


def test_dtype_auto_works_with_lists_of_3d_images(rng):
    """Not in SPEC §3.5: nilearn 0.12.1 crashes on dtype="auto" with a list of 3D images
    (its concatenation passes "auto" to numpy); the documented option works here."""
    img = bold(rng, 5, np.float64)
    volumes = [nib.Nifti1Image(np.asanyarray(img.dataobj)[..., t], AFFINE) for t in range(5)]
    theirs = run_masker(NilearnMasker, {"seeds": SEEDS, "dtype": "auto"}, None, volumes)
    assert isinstance(theirs.error, TypeError)
    assert "data type 'auto' not understood" in str(theirs.error)
    ours = NiftiSpheresMasker(SEEDS, dtype="auto").fit_transform(volumes)
    expected = quiet(NilearnMasker(SEEDS, dtype="auto").fit_transform, img)
    assert ours.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


# ---------------------------------------------------------------------------- validation
# (parameters, nilearn's exception type, its key phrase): nilearn 0.12.1 fits and then
# fails at transform; lazyspheres fails at fit with the same type and phrase.
LATE_ERRORS = [
    ({"detrend": "yes"}, TypeError, "'detrend' should be of type '<class 'bool'>'"),
    ({"standardize_confounds": 1}, TypeError, "'standardize_confounds' should be of type"),
    ({"t_r": "2"}, TypeError, "'t_r' should be of type 'float | int | numpy.floating"),
    ({"low_pass": True, "t_r": 2.0}, TypeError, "high/low pass must be float or None"),
    ({"low_pass": 0.1}, ValueError, "Repetition time (t_r) must be specified for butterworth"),
    ({"high_pass": 0.01, "clean_args": {"filter": "cosine"}}, ValueError,
     "Repetition time (t_r) and low cutoff frequency (high_pass) must be specified"),
    ({"clean_args": {"filter": "foo"}, "low_pass": 0.1, "t_r": 2.0}, ValueError,
     "Filter method foo not implemented."),
    ({"clean_args": {"t_r": 2.0}}, TypeError, "got multiple values for keyword argument 't_r'"),
    ({"clean_args": {"ensure_finite": 1}}, ValueError,
     "'ensure_finite' must be boolean type True or False"),
    ({"standardize": "foo"}, ValueError, "foo is no valid standardize strategy."),
    ({"memory": 5}, TypeError, "'memory' argument must be a string or a joblib.Memory object."),
    ({"memory_level": 1.5}, ValueError,
     "Reference and user memory levels must be both None or both integers."),
    ({"radius": -1.0}, ValueError, "must be a float in the range [0.0, inf] or None"),
    ({"dtype": bool}, nib.spatialimages.HeaderDataError,
     "data dtype \"<class 'bool'>\" not supported"),
    ({"seeds": []}, ValueError, "Expected 2D array, got 1D array instead"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "error", "phrase"), LATE_ERRORS)
def test_parameters_are_validated_at_fit(rng, params, error, phrase):
    img = bold(rng, 40, np.float64)
    params = {"seeds": SEEDS, **params}
    nilearn_masker = quiet(NilearnMasker(**params).fit)  # nilearn: fit works ...
    with pytest.raises(error, match=re.escape(phrase)):  # ... transform fails
        quiet(nilearn_masker.transform, img)
    with pytest.raises(error, match=re.escape(phrase)):  # lazyspheres: fit fails
        NiftiSpheresMasker(**params).fit()


@pytest.mark.parametrize(
    ("imgs", "error", "phrase"),
    [(5, TypeError, "input should be a NiftiLike object"),
     ("/missing/run.nii.gz", ValueError, "File not found: '/missing/run.nii.gz'")],
)  # fmt: skip
def test_fit_checks_its_images(imgs, error, phrase):
    """With reports=False nilearn 0.12.1's fit ignores imgs; ours checks them."""
    quiet(NilearnMasker(SEEDS, reports=False).fit, imgs)
    with pytest.raises(error, match=re.escape(phrase)):
        quiet(NilearnMasker(SEEDS, reports=True).fit, imgs)  # nilearn's own phrase
    with pytest.raises(error, match=re.escape(phrase)):
        NiftiSpheresMasker(SEEDS, reports=False).fit(imgs)


def test_non_numeric_seeds_fail_at_fit(rng):
    img = bold(rng, 5, np.float64)
    with pytest.raises(ValueError, match="data type must provide an itemsize"):
        quiet(NilearnMasker([("a", "b", "c")]).fit().transform, img)
    with pytest.raises(ValueError, match=r"Seed #0 has a non-numeric x coordinate 'a'"):
        NiftiSpheresMasker([("a", "b", "c")]).fit()


def test_non_finite_values_are_only_seen_where_the_spheres_read(rng):
    """Not in SPEC §3.5, a consequence of reading only the sphere voxels: nilearn tests the
    whole image for NaN (and then zeroes every non-finite value); lazyspheres sees only the
    voxels it reads. NaN outside the spheres: nilearn warns, lazyspheres does not (same
    numbers). +inf alone inside a sphere: nilearn finds no NaN, keeps the inf and returns
    inf; lazyspheres zeroes it like any non-finite value, with nilearn's two warnings."""
    base = rng.standard_normal((*SHAPE, 6)) + 100
    outside = base.copy()
    outside[0, 0, 0, 2] = np.nan  # far from both spheres
    inf_inside = base.copy()
    inf_inside[5, 6, 4, 1] = np.inf  # (0, 0, 0) mm, the first seed's centre
    params = {"seeds": SEEDS, "radius": 4.0}
    results = {}
    for name, data in (("outside", outside), ("inf", inf_inside)):
        results[name] = [
            run_masker(factory, params, None, nib.Nifti1Image(data.copy(), AFFINE))
            for factory in (NiftiSpheresMasker, NilearnMasker)
        ]
    ours, theirs = results["outside"]
    np.testing.assert_allclose(ours.output, theirs.output, rtol=1e-12)
    assert len(theirs.warnings) == 2
    assert len(ours.warnings) == 0
    ours, theirs = results["inf"]
    assert np.isinf(theirs.output[1, 0])
    expected = exact_means(np.where(np.isfinite(inf_inside), inf_inside, 0.0), SEEDS, 4.0)
    np.testing.assert_allclose(ours.output, expected, rtol=1e-12)
    assert len(ours.warnings) == 2
    assert len(theirs.warnings) == 0
