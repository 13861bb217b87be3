"""``seed_to_voxel``: laziness, bounded memory, one inflate pass, scaled images, bad input."""

from __future__ import annotations

import warnings

import dask
import nibabel as nib
import numpy as np
import pytest

import lazyspheres as ls
from lazyspheres.connectivity import staging
from tests.conftest import peak_traced_bytes, random_image


def _raising_scheduler(*args, **kwargs):
    raise AssertionError("the graph was computed while it was being built")


def _seed(img):
    centre = np.array(img.shape[:3]) // 2
    return [tuple((img.affine @ [*centre, 1])[:3])]


@pytest.mark.parametrize("storage", ["nii.gz", "zarr"])
def test_building_the_graph_reads_no_voxel(tmp_path, rng, storage):
    img = random_image(rng, shape=(8, 9, 10, 30))
    source = tmp_path / "bold.nii.gz"
    nib.save(img, str(source))
    if storage == "zarr":
        source = ls.to_zarr_image(source, tmp_path / "bold.zarr")
    with dask.config.set(scheduler=_raising_scheduler):
        result = ls.seed_to_voxel(source, _seed(img), 4.0, detrend=True)
    assert result.shape == (1, 8, 9, 10)
    assert result.data.npartitions == 1


def _long_run(tmp_path, n_time):
    rng = np.random.default_rng(n_time)
    img = random_image(rng, shape=(24, 24, 24, n_time), dtype=np.float64)
    path = tmp_path / f"bold_{n_time}.nii.gz"
    nib.save(img, str(path))
    return img, path


def test_memory_does_not_grow_with_the_run(tmp_path, monkeypatch, inflate_opens):
    monkeypatch.setattr(staging, "VOXEL_BLOCK_BYTES", 2**19)
    monkeypatch.setattr(staging, "TIME_BLOCK_BYTES", 2**18)
    peaks = {}
    for n_time in (100, 100, 600):  # the first run imports what the computation needs
        img, path = _long_run(tmp_path, n_time)
        lazy = ls.seed_to_voxel(path, _seed(img), 4.0, detrend=True, low_pass=0.1, t_r=2.0)
        peaks[n_time] = peak_traced_bytes(lazy)
    # nilearn's route holds the (T, voxels) float64 matrix, and copies of it; the reader's
    # inflate stream buffers ~10 MB whatever T.
    whole = 24**3 * 600 * 8
    assert peaks[600] < whole / 3, peaks
    assert peaks[600] < 1.5 * peaks[100], peaks
    assert len(inflate_opens) == 3  # one streaming inflate pass per computation


def test_scaled_integer_image_equals_nilearn(tmp_path, rng):
    from nilearn.maskers import NiftiMasker, NiftiSpheresMasker

    img = random_image(rng, shape=(9, 10, 8, 40), dtype=np.int16, scaled=True)
    path = tmp_path / "scaled.nii.gz"
    nib.save(img, str(path))
    seeds = _seed(img)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        voxels = NiftiMasker(
            nib.Nifti1Image(np.ones(img.shape[:3], np.uint8), img.affine), detrend=True
        ).fit_transform(path)
        spheres = NiftiSpheresMasker(seeds, radius=4.0, detrend=True).fit_transform(path)
    result = ls.seed_to_voxel(path, seeds, 4.0, detrend=True).values
    spheres = spheres - spheres.mean(0)
    voxels = voxels - voxels.mean(0)
    expected = (spheres.T @ voxels) / np.outer(
        np.linalg.norm(spheres, axis=0), np.linalg.norm(voxels, axis=0)
    )
    np.testing.assert_allclose(result.reshape(1, -1), expected, rtol=1e-6, atol=1e-10)


def test_constant_voxels_are_nan(rng):
    img = random_image(rng, shape=(6, 7, 8, 20), dtype=np.float64)
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 5.0
    result = ls.seed_to_voxel(nib.Nifti1Image(data, img.affine), _seed(img), 3.0).values
    assert np.isnan(result[0, 0, 0, 0])
    assert np.isfinite(result[0, 1:]).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"detrending": True}, TypeError, r"unknown keyword\(s\) \['detrending'\]"),
        ({"low_pass": 0.1}, ValueError, "t_r"),
        ({"confounds": np.ones((7, 2))}, ValueError, "confounds"),
    ],
)
def test_bad_cleaning_is_refused_at_call_time(rng, kwargs, error, match):
    img = random_image(rng, shape=(6, 7, 8, 20))
    with pytest.raises(error, match=match):
        ls.seed_to_voxel(img, _seed(img), 3.0, **kwargs)


def test_3d_image_is_refused(rng):
    img = random_image(rng, shape=(6, 7, 8))
    with pytest.raises(TypeError, match="4D"):
        ls.seed_to_voxel(img, _seed(img), 3.0)
