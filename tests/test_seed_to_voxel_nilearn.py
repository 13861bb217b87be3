"""Differential tests: ``seed_to_voxel`` against nilearn 0.12.1's route.

nilearn's route: ``NiftiMasker(mask_img, **cleaning).fit_transform(img)`` for the voxels,
``NiftiSpheresMasker(seeds, radius, **cleaning).fit_transform(img)`` for the seeds, then
Pearson r in float64. 24 generated float64 cases vary the grid (oblique and flipped
affines), the storage (.nii, .nii.gz, Zarr image, in-memory), the mask, the radius and the
cleaning (detrending, Butterworth and cosine filters, confounds, scrubbing,
standardisation). Tolerance: rtol 1e-6 plus atol 1e-10, since many r are close to 0.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest

import lazyspheres as ls
from lazyspheres.connectivity import staging

CLEANINGS = [
    {},
    {"detrend": True},
    {"standardize": "zscore_sample"},
    {"standardize": True, "detrend": True},
    {"standardize": "psc"},
    {"low_pass": 0.2, "high_pass": 0.02, "t_r": 2.0},
    {"detrend": True, "low_pass": 0.15, "t_r": 1.5},
    {"filter": "cosine", "high_pass": 0.02, "t_r": 2.0},
    {"confounds": 3, "detrend": True},
    {"confounds": 6, "detrend": True, "low_pass": 0.1, "high_pass": 0.01, "t_r": 2.0},
    {"sample_mask": 0.8, "detrend": True},
    {"confounds": 2, "standardize_confounds": False, "standardize": "zscore_sample"},
]
STORAGE = ["nii", "nii.gz", "zarr", "memory"]


def _affine(rng, kind):
    affine = np.diag([2.0, 2.5, 3.0, 1.0])
    affine[:3, 3] = [-12.0, -15.0, -14.0]
    if kind == "oblique":
        angle = rng.uniform(0.1, 0.5)
        c, s = np.cos(angle), np.sin(angle)
        affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ affine[:3, :3]
    elif kind == "flipped":
        affine[0, 0] = -affine[0, 0]
        affine[0, 3] = 12.0
    return affine


def _case(index, tmp_path):
    rng = np.random.default_rng(500 + index)
    shape = tuple(int(n) for n in rng.integers(8, 13, size=3))
    n_time = int(rng.integers(40, 70))
    affine = _affine(rng, ("straight", "oblique", "flipped")[index % 3])
    latent = rng.standard_normal((n_time, 3)).cumsum(axis=0)
    weights = rng.standard_normal((*shape, 3))
    data = 1000 + 20 * (weights @ latent.T) + rng.standard_normal((*shape, n_time)) * 30
    data += np.linspace(0, 40, n_time)  # a drift for detrending to remove
    img = nib.Nifti1Image(data.astype(np.float64), affine)
    img.header.set_zooms((*img.header.get_zooms()[:3], 2.0))
    centre = np.array(shape) // 2
    voxels = [centre, centre - np.array([2, 2, 1]), centre + np.array([2, 1, 2])][: 1 + index % 3]
    seeds = [tuple((affine @ [*v, 1])[:3] + rng.uniform(-0.4, 0.4, 3)) for v in voxels]
    radius = (None, 3.0, 5.0)[index % 3]
    cleaning = dict(CLEANINGS[index % len(CLEANINGS)])
    if "confounds" in cleaning:
        cleaning["confounds"] = rng.standard_normal((n_time, cleaning["confounds"]))
    if "sample_mask" in cleaning:
        keep = np.sort(rng.choice(n_time, int(n_time * cleaning["sample_mask"]), replace=False))
        cleaning["sample_mask"] = keep
    mask = None
    if index % 4 != 3:
        mean = data.mean(axis=-1) + rng.standard_normal(shape) * 10
        mask = nib.Nifti1Image((mean > np.percentile(mean, 30)).astype(np.uint8), affine)
    storage = STORAGE[index % len(STORAGE)]
    source = img
    if storage in ("nii", "nii.gz"):
        source = tmp_path / f"bold.{storage}"
        nib.save(img, str(source))
    elif storage == "zarr":
        source = ls.to_zarr_image(img, tmp_path / "bold.zarr", chunks=(5, 6, 4, 16))
    return img, source, seeds, radius, mask, cleaning


def _pearson(seeds, voxels):
    seeds = seeds - seeds.mean(axis=0)
    voxels = voxels - voxels.mean(axis=0)
    norms = np.outer(np.linalg.norm(seeds, axis=0), np.linalg.norm(voxels, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (seeds.T @ voxels) / norms


MASKER_KEYS = {"detrend", "standardize", "standardize_confounds", "low_pass", "high_pass", "t_r"}
TRANSFORM_KEYS = {"confounds", "sample_mask"}


def _nilearn(img, seeds, radius, mask, cleaning):
    """nilearn's route, with each cleaning keyword where the maskers take it."""
    from nilearn.maskers import NiftiMasker, NiftiSpheresMasker

    masker_kw = {k: v for k, v in cleaning.items() if k in MASKER_KEYS}
    transform_kw = {k: v for k, v in cleaning.items() if k in TRANSFORM_KEYS}
    clean_args = {k: v for k, v in cleaning.items() if k not in MASKER_KEYS | TRANSFORM_KEYS}
    if mask is None:
        mask = nib.Nifti1Image(np.ones(img.shape[:3], dtype=np.uint8), img.affine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        voxels = NiftiMasker(mask, clean_args=clean_args, **masker_kw).fit_transform(
            img, **transform_kw
        )
        spheres = NiftiSpheresMasker(
            seeds, radius=radius, allow_overlap=True, clean_args=clean_args, **masker_kw
        ).fit_transform(img, **transform_kw)
    return _pearson(spheres, voxels), np.asarray(mask.get_fdata(), dtype=bool)


@pytest.mark.parametrize("index", range(24))
def test_seed_to_voxel_equals_nilearn(index, tmp_path, monkeypatch):
    # small blocks, so that every case crosses voxel-block and time-block boundaries
    monkeypatch.setattr(staging, "VOXEL_BLOCK_BYTES", 8 * 60 * 97)
    monkeypatch.setattr(staging, "TIME_BLOCK_BYTES", 8 * 12**3 * 7)
    img, source, seeds, radius, mask, cleaning = _case(index, tmp_path)
    expected, inside = _nilearn(img, seeds, radius, mask, cleaning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn's own deprecation notices, mirrored
        result = ls.seed_to_voxel(
            source, seeds, radius, mask_img=mask, allow_overlap=True, **cleaning
        )
        values = result.values
    assert result.dims == ("seed", "i", "j", "k")
    assert values.shape == (len(seeds), *img.shape[:3])
    np.testing.assert_allclose(values[:, inside], expected, rtol=1e-6, atol=1e-10)
    assert np.isnan(values[:, ~inside]).all()


def test_fisher_z_and_nifti_map(tmp_path):
    img, source, seeds, radius, mask, cleaning = _case(1, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = ls.seed_to_voxel(source, seeds, radius, mask_img=mask, **cleaning)
        z = ls.seed_to_voxel(source, seeds, radius, mask_img=mask, fisher_z=True, **cleaning)
    np.testing.assert_allclose(z.values, np.arctanh(r.values), rtol=1e-12, equal_nan=True)
    nifti = z.isel(seed=0).nifti.to_nifti()
    np.testing.assert_allclose(nifti.affine, img.affine)
    np.testing.assert_array_equal(np.asarray(nifti.dataobj), z.values[0])
