"""Differential tests: ``lazyspheres.extract`` against nilearn 0.12.1's NiftiSpheresMasker.

Each generated case (grid, affine, seeds, radius, mask, dtype, 3D/4D) goes to nilearn once
and to lazyspheres through every read path: numpy in memory, Dask with chunks smaller than a
sphere, the streaming ``.nii.gz`` reader and the memory-mapped ``.nii`` reader.

Tolerances. float64 images: nilearn's mean is a sequential sum over the sphere's voxels in
C order divided by the count; lazyspheres adds in the same order in float64, so results are
equal to the last bit (asserted with rtol 1e-12 to stay robust to BLAS differences in the
affine maths that decide nothing here). float32 images: nilearn accumulates in float32, we
in float64 before rounding once, so the difference is bounded by float32 accumulation
error, n_voxels · eps32 relative; we assert rtol 2e-6 (spheres here have < 200 voxels and
values of one sign, so cancellation cannot amplify it). Integer images: nilearn truncates
each mean to the integer dtype (a documented difference); we compare with nilearn run at
``dtype="float64"`` (exact means), and separately show the truncation both ways.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import lazyspheres as ls
from lazyspheres.errors import EmptySphereError, OverlapError
from lazyspheres.io.readers.zarr import chunk_source_of

pytestmark = pytest.mark.nilearn
nilearn_maskers = pytest.importorskip("nilearn.maskers")

N_CASES = 100


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
        linear[0, 1] += rng.uniform(-0.2, 0.2)  # a little shear too
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = rng.uniform(-20, 20, 3).round(rng.choice([0, 1, 3]))
    return affine


def _seeds(rng, affine, shape, n):
    """Seeds on voxel centres, half-voxels, random points, borders and just outside."""
    kinds = rng.choice(["centre", "half", "random", "border", "outside"], size=n)
    ijk = []
    for kind in kinds:
        base = np.array([rng.integers(0, s) for s in shape], dtype=float)
        if kind == "half":
            base += rng.choice([0.0, 0.5], 3)
        elif kind == "random":
            base += rng.uniform(-0.5, 0.5, 3)
        elif kind == "border":
            axis = rng.integers(3)
            base[axis] = rng.choice([0, shape[axis] - 1])
        elif kind == "outside":
            axis = rng.integers(3)
            base[axis] = rng.choice([-0.6, shape[axis] - 0.4])
        ijk.append(base)
    world = np.c_[np.array(ijk), np.ones(n)] @ affine.T
    return world[:, :3].round(rng.choice([2, 6]))


def _mask(rng, affine, shape, kind):
    if kind == "none":
        return None
    data = (rng.random(shape) > 0.15).astype(rng.choice([np.uint8, np.int16, np.float32]))
    if kind == "same":
        return nib.Nifti1Image(data, affine)
    # another grid: coarser or finer voxels and a non-integer shift (scipy order-0 path)
    scale = rng.choice([0.7, 1.5])
    other = affine.copy()
    other[:3, :3] = affine[:3, :3] * scale
    other[:3, 3] = affine[:3, 3] + rng.uniform(0.1, 0.9, 3)
    other_shape = tuple(int(np.ceil(s / scale)) + 1 for s in shape)
    data = (rng.random(other_shape) > 0.15).astype(np.uint8)
    return nib.Nifti1Image(data, other)


def _case(index):
    rng = np.random.default_rng(1000 + index)
    kind = ["diagonal", "anisotropic", "flipped", "oblique"][index % 4]
    shape = tuple(int(s) for s in rng.integers(6, 12, 3))
    affine = _affine(rng, kind)
    n_volumes = int(rng.choice([0, 1, 7, 12]))  # 0 means a 3D image
    dtype = [np.float64, np.float32, np.int16][index % 3]
    full_shape = shape + ((n_volumes,) if n_volumes else ())
    data = rng.standard_normal(full_shape) * 40 + 900
    if dtype is np.int16:
        data = np.round(data)
    img = nib.Nifti1Image(data.astype(dtype), affine)
    vox = float(np.min(np.linalg.norm(affine[:3, :3], axis=0)))
    radius = rng.choice(
        [None, 0.0, np.sqrt(2) * vox, np.sqrt(3) * vox, vox, float(rng.uniform(0.5, 3.5) * vox)],
        p=[0.15, 0.1, 0.15, 0.15, 0.15, 0.3],
    )
    seeds = _seeds(rng, affine, shape, int(rng.integers(1, 5)))
    mask = _mask(rng, affine, shape, rng.choice(["none", "same", "other"], p=[0.5, 0.25, 0.25]))
    allow_overlap = bool(rng.random() < 0.8)
    return {
        "img": img,
        "seeds": seeds,
        "radius": None if radius is None else float(radius),
        "mask": mask,
        "allow_overlap": allow_overlap,
        "kind": kind,
    }


def _nilearn(case, dtype=None, img=None):
    masker = nilearn_maskers.NiftiSpheresMasker(
        [tuple(s) for s in case["seeds"]],
        radius=case["radius"],
        mask_img=case["mask"],
        allow_overlap=case["allow_overlap"],
        dtype=dtype,
        reports=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return masker.fit_transform(case["img"] if img is None else img)


def _ours(case, image):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = ls.extract(
            image,
            case["seeds"],
            case["radius"],
            mask_img=case["mask"],
            allow_overlap=case["allow_overlap"],
        )
        return out, np.asarray(out.values)


def _paths(case, tmp_path):
    """Each read path, with the image nilearn must see for it.

    A file stores the affine in float32, so nilearn is run on the reloaded file for the
    file paths (and on the in-memory float64 affine for the in-memory paths).
    """
    img = case["img"]
    gz, nii = tmp_path / "img.nii.gz", tmp_path / "img.nii"
    nib.save(img, gz)
    nib.save(img, nii)
    on_disk = nib.load(gz)
    paths = {
        "numpy": (ls.open_nifti(img, chunks=None), img),
        "dask-small-chunks": (
            ls.open_nifti(img, chunks={"i": 2, "j": 3, "k": 2, "time": 3}),
            img,
        ),
        "nii.gz-stream": (gz, on_disk),
        "nii-memmap": (nii, on_disk),
    }
    # a Zarr image with small chunks, read chunk file by chunk file (lazyspheres.io.zarr_chunks)
    store = ls.to_zarr_image(gz, tmp_path / "img.zarr", chunks=(3, 4, 3, 5))
    zarr_image = ls.open_nifti(store)
    assert chunk_source_of(zarr_image) is not None
    paths["zarr-direct"] = (zarr_image, on_disk)
    if img.ndim == 4:
        # nilearn concatenates a list of 3D images into a run: same numbers as the 4D image
        data = np.asanyarray(img.dataobj)
        volumes = [nib.Nifti1Image(data[..., t], img.affine) for t in range(data.shape[3])]
        paths["list-of-3d"] = (volumes, img)
    return paths


@pytest.mark.parametrize("index", range(N_CASES))
def test_extract_equals_nilearn(index, tmp_path):
    case = _case(index)
    for name, (image, reference) in _paths(case, tmp_path).items():
        _compare(case, name, image, reference)


def _compare(case, name, image, reference):
    dtype = case["img"].get_data_dtype()
    is_int = dtype.kind in "iu"
    cache = case.setdefault("expected", {})
    key = id(reference)
    if key not in cache:
        try:
            cache[key] = _nilearn(case, dtype="float64" if is_int else None, img=reference)
        except ValueError as error:
            cache[key] = error
    expected = cache[key]
    if isinstance(expected, ValueError):
        error = expected
        # nilearn refuses the case: we must refuse it the same way, on every path
        expected_error = type(error)
        phrase = (
            "These spheres are empty"
            if "empty" in str(error)
            else "Overlap detected"
            if "Overlap" in str(error)
            else None
        )
        assert phrase is not None, f"unexpected nilearn error: {error}"
        ours_class = EmptySphereError if "empty" in phrase else OverlapError
        with pytest.raises(ours_class, match=phrase):
            _ours(case, image)
        assert issubclass(ours_class, expected_error)
        return
    if case["img"].ndim == 3:
        expected = np.atleast_1d(expected)
    rtol = 2e-6 if dtype == np.float32 else 1e-12
    out, values = _ours(case, image)
    assert values.shape == expected.shape, name
    np.testing.assert_allclose(values, expected, rtol=rtol, atol=0, err_msg=name)
    assert out.dtype == (np.float32 if dtype == np.float32 else np.float64)
    np.testing.assert_array_equal(out["x"].values, case["seeds"][:, 0])


def test_cases_cover_errors_and_values():
    """The generator must exercise both successful extractions and refused cases.

    Our outcome equals nilearn's case by case (test above), so ours is counted here: it is
    two orders of magnitude cheaper than rerunning nilearn.
    """
    outcomes = {"ok": 0, "error": 0}
    for index in range(N_CASES):
        case = _case(index)
        try:
            _ours(case, ls.open_nifti(case["img"], chunks=None))
            outcomes["ok"] += 1
        except (EmptySphereError, OverlapError):
            outcomes["error"] += 1
    assert outcomes["ok"] > outcomes["error"] >= 5, outcomes


def test_integer_images_exact_means_vs_nilearn_truncation(tmp_path):
    """Documented difference: nilearn truncates int sphere means; lazyspheres does not."""
    rng = np.random.default_rng(7)
    data = rng.integers(900, 1100, size=(9, 9, 9, 6)).astype(np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    seeds = [(4.0, 4.0, 4.0), (1.0, 2.0, 6.0)]
    masker = nilearn_maskers.NiftiSpheresMasker(seeds, radius=2.0)
    truncated = masker.fit_transform(img)
    ours = ls.extract(img, seeds, 2.0).values
    exact = np.stack(
        [
            data[
                [i for i, j, k in _ball(s, 2.0)],
                [j for i, j, k in _ball(s, 2.0)],
                [k for i, j, k in _ball(s, 2.0)],
            ].mean(axis=0)
            for s in seeds
        ],
        axis=1,
    )
    np.testing.assert_array_equal(ours, exact)
    np.testing.assert_array_equal(truncated, np.trunc(exact))
    assert np.any(truncated != ours)


def _ball(seed, radius):
    centre = np.array(seed)
    return [
        (i, j, k)
        for i in range(9)
        for j in range(9)
        for k in range(9)
        if np.sum((np.array([i, j, k]) - centre) ** 2) <= radius**2
    ]


def test_scaled_images_equal_nilearn(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(-500, 500, size=(8, 9, 10, 5)).astype(np.int16)
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    img.header.set_slope_inter(0.37, -12.5)
    path = tmp_path / "scaled.nii.gz"
    nib.save(img, path)
    seeds = [(4.0, 6.0, 8.0), (10.0, 2.0, 2.0)]
    expected = nilearn_maskers.NiftiSpheresMasker(seeds, radius=3.0).fit_transform(path)
    assert expected.dtype == np.float64
    np.testing.assert_allclose(ls.extract(path, seeds, 3.0).values, expected, rtol=1e-12)


def test_nan_background_zeroed_like_nilearn(tmp_path):
    """nilearn's no-mask path zeroes non-finite values; sphere means count them as 0.

    Documented difference: nilearn zeroes them *in the caller's image*; we never modify it.
    """
    rng = np.random.default_rng(5)
    data = rng.standard_normal((10, 10, 10, 4)).astype(np.float32) + 5
    data[9] = np.nan
    img = nib.Nifti1Image(data, np.eye(4))
    seeds = [(8.0, 5.0, 5.0), (2.0, 2.0, 2.0)]
    with pytest.warns(UserWarning, match="Non-finite values detected"):
        ours = ls.extract(img, seeds, 2.0).values
    assert np.isnan(data[9]).all()  # the caller's array is untouched by lazyspheres
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = nilearn_maskers.NiftiSpheresMasker(seeds, radius=2.0).fit_transform(img)
    np.testing.assert_allclose(ours, expected, rtol=2e-6)
    assert not np.isnan(data[9]).any()  # ... while nilearn zeroed it in place
