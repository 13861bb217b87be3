"""Smoothing plan rules, laziness, I/O economy and bounded memory of ``smoothing_fwhm``.

Values against nilearn are in ``test_smoothing_nilearn.py``; here: the parameter rules, that
the plan reads exactly the sphere voxels dilated by the kernel box (and filters only what the
next pass needs), and that every read path stays lazy, reads only what it needs and keeps
memory bounded.
"""

from __future__ import annotations

import pickle
import warnings

import dask
import dask.array as da
import nibabel as nib
import numpy as np
import pytest
from conftest import CountingArray, peak_traced_bytes, random_image, write
from scipy import ndimage

import lazyspheres as ls
from lazyspheres.io import reader
from lazyspheres.io.open import image_from_array
from lazyspheres.smoothing import (
    SmoothingPlan,
    check_fwhm,
    kernel_halo,
    reflect_index,
    smoothing_dtype,
    smoothing_sigmas,
)
from lazyspheres.testing import raise_if_dask_computes

SEEDS = [(0.0, 0.0, 0.0), (8.0, -6.0, 2.0), (-8.0, 6.0, -2.0)]


# ------------------------------------------------------------------------------ parameters
@pytest.mark.parametrize(
    ("fwhm", "expected"),
    [
        (6, [6.0]),
        (np.float32(2.5), [2.5]),
        ([4, None, 8], [4.0, 0.0, 8.0]),
        ((1.0, 2.0, 3.0), [1.0, 2.0, 3.0]),
        (np.array([5.0]), [5.0]),
        (-2.0, [-2.0]),
        (np.int64(0), [0.0]),  # not a Python int: nilearn does not warn, and does not filter
        (True, [1.0]),  # nilearn 0.12.1 divides True by the voxel size
    ],
)
def test_check_fwhm_widths(fwhm, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(check_fwhm(fwhm), expected)


@pytest.mark.parametrize("fwhm", [0, 0.0, False])
def test_check_fwhm_zero_warns_with_nilearns_text(fwhm):
    with pytest.warns(UserWarning, match=f"specified as {fwhm}. Setting it to None") as record:
        assert check_fwhm(fwhm).size == 0
    assert len(record) == 1


def test_check_fwhm_none_and_fast():
    assert check_fwhm(None) is None
    assert check_fwhm("fast") == "fast"


@pytest.mark.parametrize(
    ("fwhm", "error", "match"),
    [
        ("abc", TypeError, "got the string 'abc'"),
        ([1.0, "x", 2.0], TypeError, "an item of type str"),
        ({"a": 1}, TypeError, "an item of type dict"),
        ([1.0, 2.0], ValueError, "one width or one per spatial axis"),
        ([1.0, 2.0, 3.0, 4.0], ValueError, "got 4 values"),
        (np.inf, OverflowError, "must be finite"),
    ],
)
def test_check_fwhm_errors(fwhm, error, match):
    with pytest.raises(error, match=match):
        check_fwhm(fwhm)
    with pytest.raises(error, match=match):  # raised at graph-build time by extract too
        ls.extract(np.zeros((3, 3, 3)), SEEDS, smoothing_fwhm=fwhm)


def test_smoothing_dtypes():
    as_float = {
        np.float32: np.float32,
        np.float64: np.float64,
        np.int8: np.float32,
        np.int16: np.float32,
        np.int32: np.float32,
        np.int64: np.float64,
        np.uint8: np.float32,  # documented difference: 0.12.1 keeps uint8
        np.uint16: np.float32,
        np.uint64: np.float64,
    }
    for dtype, expected in as_float.items():
        assert smoothing_dtype(np.dtype(dtype)) == expected
    with pytest.raises(TypeError, match="Cannot smooth an image of dtype complex128"):
        smoothing_dtype(np.dtype(complex))


def test_nan_and_negative_widths_skip_their_axis():
    sigmas = smoothing_sigmas(np.diag([2.0, 2.0, 2.0, 1.0]), np.array([np.nan, -1.0, 4.0]))
    assert not sigmas[0] > 0
    assert not sigmas[1] > 0
    assert sigmas[2] > 0
    plan = SmoothingPlan.build(
        np.array([[2, 2, 2]]), (5, 5, 5), np.eye(4), np.array([np.nan, -1.0, 4.0]), np.float32
    )
    assert [p.axis for p in plan.passes] == [2]


def test_reflect_index_is_scipys_reflect_mode():
    for n in range(1, 12):
        line = np.arange(n, dtype=np.float64)
        for halo in range(0, 25, 3):
            for offset in range(-halo, halo + 1):
                one_hot = np.zeros(2 * halo + 1)
                one_hot[halo + offset] = 1.0  # correlate1d then reads x[i + offset]
                expected = ndimage.correlate1d(line, one_hot, mode="reflect")
                np.testing.assert_array_equal(reflect_index(np.arange(n) + offset, n), expected)


# ------------------------------------------------------------------------------ plan geometry
@pytest.mark.parametrize("seed", range(6))
def test_read_set_is_the_voxels_dilated_by_the_kernel_box(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(8, 30, 3))
    voxels = np.unique(np.stack([rng.integers(0, s, 12) for s in shape], axis=1), axis=0)
    affine = np.diag([*rng.uniform(1.0, 3.0, 3), 1.0])
    fwhm = list(rng.uniform(2.0, 9.0, 3))
    plan = SmoothingPlan.build(voxels, shape, affine, fwhm, np.float32)
    halos = [kernel_halo(s) for s in smoothing_sigmas(affine, np.array(fwhm))]
    wanted = np.zeros(shape, dtype=bool)
    wanted[tuple(voxels.T)] = True
    box = np.ones([2 * h + 1 for h in halos], dtype=bool)
    expected = ndimage.binary_dilation(wanted, structure=box)
    np.testing.assert_array_equal(plan.read_flat, np.flatnonzero(expected.ravel(order="F")))
    in_file_order = np.unravel_index(np.flatnonzero(expected.ravel(order="F")), shape, order="F")
    np.testing.assert_array_equal(plan.read_voxels, np.stack(in_file_order, axis=1))


def test_each_pass_filters_only_what_the_next_needs():
    """One sphere in a big grid: the passes shrink the box (i-pass box, j-pass slab, k rods)."""
    shape = (60, 60, 60)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    spheres = ls.sphere_voxels([(60.0, 60.0, 60.0)], affine, shape, radius=4.0)
    plan = SmoothingPlan.build(spheres.voxels, shape, affine, 6.0, np.float32)
    h = kernel_halo(smoothing_sigmas(affine, np.array([6.0]))[0])
    n = 5  # the sphere's extent in voxels along each axis
    assert np.ptp(spheres.voxels, axis=0).tolist() == [n - 1] * 3
    sizes = [p.gather.size for p in plan.passes]
    # pass i reads rows of length n + 2h over the (j, k) disc dilated by h: at most the box
    assert sizes[0] <= (n + 2 * h) ** 3
    assert sizes[1] <= n * (n + 2 * h) ** 2
    assert sizes[2] <= n * n * (n + 2 * h)
    assert plan.samples_filtered < 0.02 * 3 * np.prod(shape)  # vs whole-volume smoothing
    assert (n - 2 + 2 * h) ** 3 < plan.n_read <= (n + 2 * h) ** 3  # sphere ⊕ kernel box


# ------------------------------------------------------------------------------ read paths
@pytest.fixture
def files(tmp_path, rng):
    img = random_image(rng, (14, 13, 12, 10), np.float32)
    return {
        "gz": write(img, tmp_path / "a.nii.gz"),
        "nii": write(img, tmp_path / "a.nii"),
        "img": img,
    }


@pytest.mark.parametrize("kind", ["gz", "nii", "dask", "numpy-3d"])
def test_building_the_graph_computes_nothing(files, kind):
    reference = ls.extract(files["img"], SEEDS, 4.0, smoothing_fwhm=5.0).values
    with raise_if_dask_computes():
        if kind in ("gz", "nii"):
            out = ls.extract(files[kind], SEEDS, 4.0, smoothing_fwhm=5.0)
        elif kind == "dask":
            image = ls.open_nifti(files["img"], chunks={"i": 3, "j": 2, "time": 3})
            out = ls.extract(image, SEEDS, 4.0, smoothing_fwhm=5.0)
        else:
            volume = ls.open_nifti(files["img"], chunks={"i": 3}).isel(time=0)
            out = ls.extract(volume, SEEDS, 4.0, smoothing_fwhm=5.0)
            reference = reference[0]
        assert isinstance(out.data, da.Array)
    np.testing.assert_array_equal(out.values, reference)


def test_same_bits_for_any_chunking_and_path(files):
    outputs = [
        ls.extract(source, SEEDS, 4.0, smoothing_fwhm=[3.0, 6.0, 4.0]).values
        for source in (
            files["gz"],
            files["nii"],
            ls.open_nifti(files["img"], chunks=None),
            ls.open_nifti(files["img"], chunks={"i": 2, "j": 5, "k": 3, "time": 4}),
            ls.open_nifti(files["img"], chunks={"time": 7}),
        )
    ]
    for other in outputs[1:]:
        np.testing.assert_array_equal(other, outputs[0])


def test_dask_reads_only_chunks_the_smoothing_needs(rng):
    data = rng.standard_normal((30, 30, 30, 4))
    counting = CountingArray(data)
    chunk = 5
    lazy = da.from_array(counting, chunks=(chunk, chunk, chunk, 2), meta=np.empty((0,) * 4))
    image = image_from_array(lazy, np.eye(4))
    seeds = [(4.0, 4.0, 4.0), (24.0, 14.0, 8.0)]
    out = ls.extract(image, seeds, radius=1.0, smoothing_fwhm=3.0)  # h = int(4 * 1.27 + .5) = 5
    assert counting.reads == []
    values = out.values
    plan = SmoothingPlan.build(
        ls.sphere_voxels(seeds, np.eye(4), (30, 30, 30), radius=1.0).voxels,
        (30, 30, 30),
        np.eye(4),
        3.0,
        data.dtype,
    )
    needed = {tuple((v // chunk * chunk, v // chunk * chunk + chunk) for v in voxel)
              for voxel in plan.read_voxels}  # fmt: skip
    assert {read[:3] for read in counting.reads} == needed
    # the two dilated spheres span 3x3x3 and 3x4x3 chunks: far fewer than the 216 there are
    assert len(needed) <= 27 + 36
    whole = nib.Nifti1Image(data, np.eye(4))
    np.testing.assert_array_equal(values, ls.extract(whole, seeds, 1.0, smoothing_fwhm=3.0).values)


def test_uncompressed_file_gathers_only_the_read_set(files, monkeypatch):
    asked = []
    real = reader.NiftiFile.iter_gathered

    def spy(self, flat_indices, *args, **kwargs):
        asked.append(np.asarray(flat_indices).copy())
        return real(self, flat_indices, *args, **kwargs)

    monkeypatch.setattr(reader.NiftiFile, "iter_gathered", spy)
    ls.extract(files["nii"], SEEDS, 2.0, smoothing_fwhm=3.0).values  # noqa: B018
    spheres = ls.sphere_voxels(SEEDS, files["img"].affine, (14, 13, 12), radius=2.0)
    plan = SmoothingPlan.build(spheres.voxels, (14, 13, 12), files["img"].affine, 3.0, "f4")
    assert asked
    assert all(np.array_equal(a, plan.read_flat) for a in asked)
    assert plan.n_read < 14 * 13 * 12


def test_gzip_is_inflated_exactly_once_with_smoothing(files, inflate_opens):
    opened = inflate_opens
    out = ls.extract(files["gz"], SEEDS, 4.0, smoothing_fwhm=6.0)
    assert opened == []
    with dask.config.set(scheduler="threads"):
        out.values  # noqa: B018
    assert len(opened) == 1


def test_graph_pickles_and_records_the_width(files):
    out = ls.extract(files["gz"], SEEDS, 4.0, smoothing_fwhm=[4, None, 6])
    assert out.attrs["smoothing_fwhm"] == [4.0, None, 6.0]
    assert ls.extract(files["gz"], SEEDS, 4.0, smoothing_fwhm="fast").attrs["smoothing_fwhm"] == (
        "fast"
    )
    clone = pickle.loads(pickle.dumps(out))
    np.testing.assert_array_equal(clone.values, out.values)


def _peak_bytes(path):
    seeds = [(20.0, 20.0, 20.0), (8.0, 30.0, 12.0)]
    return peak_traced_bytes(ls.extract(path, seeds, 3.0, smoothing_fwhm=5.0))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_memory_is_flat_in_the_number_of_volumes(tmp_path, rng, suffix, monkeypatch):
    # 4 volumes per block; files > the inflater's 4 MB input pieces, so buffers are full-size
    monkeypatch.setattr(reader, "STREAM_BLOCK_BYTES", 4 * 40**3 * 4)
    monkeypatch.setenv("LAZYSPHERES_INFLATE", "zlib")
    paths = {}
    for n_volumes in (30, 90):
        data = rng.standard_normal((40, 40, 40, n_volumes)).astype(np.float32)
        paths[n_volumes] = tmp_path / f"t{n_volumes}{suffix}"
        nib.save(nib.Nifti1Image(data, np.eye(4)), paths[n_volumes])
        del data
    _peak_bytes(paths[30])  # first call: imports and caches, not per-run memory
    peaks = {n: _peak_bytes(path) for n, path in paths.items()}
    assert peaks[90] < 0.75 * 40**3 * 90 * 4, peaks  # less than the image (inflate buffers)
    assert peaks[90] < 1.2 * peaks[30] + 2**20, peaks  # 3x the volumes, ~the same peak
