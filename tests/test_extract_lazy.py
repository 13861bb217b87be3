"""Laziness, I/O economy and bounded memory of ``lazyspheres.extract``."""

from __future__ import annotations

import pickle

import dask
import dask.array as da
import nibabel as nib
import numpy as np
import pytest
import xarray as xr
from conftest import CountingArray, peak_traced_bytes, random_image, write

import lazyspheres as ls
from lazyspheres.errors import DimensionError, SeedError
from lazyspheres.io import reader
from lazyspheres.io.open import image_from_array
from lazyspheres.testing import raise_if_dask_computes

SEEDS = [(0.0, 0.0, 0.0), (8.0, -6.0, 2.0), (-8.0, 6.0, -2.0)]


@pytest.fixture
def files(tmp_path, rng):
    img = random_image(rng, (12, 13, 14, 20), np.float32)
    mask = nib.Nifti1Image((rng.random((12, 13, 14)) > 0.1).astype(np.uint8), img.affine)
    return {
        "gz": write(img, tmp_path / "a.nii.gz"),
        "nii": write(img, tmp_path / "a.nii"),
        "mask": write(mask, tmp_path / "mask.nii.gz"),
        "img": img,
    }


@pytest.mark.parametrize("kind", ["gz", "nii", "dask", "dask-mask", "xarray-engine"])
def test_building_the_graph_computes_nothing(files, kind):
    with raise_if_dask_computes():
        if kind in ("gz", "nii"):
            out = ls.extract(files[kind], SEEDS, 4.0)
        elif kind == "xarray-engine":
            image = xr.open_dataarray(files["gz"], engine="nifti", chunks={})
            out = ls.extract(image, SEEDS, 4.0)
        else:
            image = ls.open_nifti(files["img"], chunks={"i": 4, "time": 7})
            mask = files["mask"] if kind == "dask-mask" else None
            out = ls.extract(image, SEEDS, 4.0, mask_img=mask)
        assert isinstance(out.data, da.Array)
        lazy = out.mean("time")  # further lazy work is fine too
    assert lazy.shape == (3,)
    expected = ls.extract(files["img"], SEEDS, 4.0, mask_img=None).values.mean(axis=0)
    if kind != "dask-mask":
        np.testing.assert_allclose(lazy.values, expected, rtol=1e-6)


def test_only_chunks_holding_sphere_voxels_are_read(rng):
    data = rng.standard_normal((20, 20, 20, 6))
    counting = CountingArray(data)
    chunks = (5, 5, 5, 3)
    lazy = da.from_array(counting, chunks=chunks, meta=np.empty((0,) * 4, data.dtype))
    image = image_from_array(lazy, np.eye(4))
    seeds = [(2.0, 2.0, 2.0), (17.0, 12.0, 7.0)]
    out = ls.extract(image, seeds, radius=1.5)
    assert counting.reads == []  # nothing read while building
    values = out.values
    touched = {read[:3] for read in counting.reads}
    # sphere 0 lies in chunk (0,0,0); sphere 1 (16..18, 11..13, 6..8) in (3,2,1) and
    # (3,2,1)'s neighbours along j and k only where the ball crosses 10/5 boundaries.
    expected_blocks = set()
    for seed in seeds:
        centre = np.array(seed)
        for offset in np.ndindex(3, 3, 3):
            voxel = centre.astype(int) + np.array(offset) - 1
            if np.sum((voxel - centre) ** 2) <= 1.5**2:
                expected_blocks.add(tuple((v // 5 * 5, v // 5 * 5 + 5) for v in voxel))
    assert touched == expected_blocks
    assert len(touched) < 64 // 8  # a small fraction of the 64 spatial chunks
    reference = ls.extract(ls.open_nifti(nib.Nifti1Image(data, np.eye(4))), seeds, 1.5)
    np.testing.assert_array_equal(values, reference.values)


@pytest.mark.parametrize("opener", ["path", "open_nifti", "xarray-engine"])
def test_gzip_is_inflated_exactly_once(files, inflate_opens, opener):
    opened = inflate_opens
    image = {
        "path": lambda: files["gz"],
        "open_nifti": lambda: ls.open_nifti(files["gz"], chunks={"time": 3}),
        "xarray-engine": lambda: xr.open_dataarray(files["gz"], engine="nifti", chunks={}),
    }[opener]()
    out = ls.extract(image, SEEDS, 4.0)
    assert opened == []
    with dask.config.set(scheduler="threads"):
        out.values  # noqa: B018
    assert len(opened) == 1


def _peak_bytes(path, seeds):
    return peak_traced_bytes(ls.extract(path, seeds, 4.0))


@pytest.mark.parametrize(
    ("suffix", "engine"),
    [(".nii.gz", "zlib"), (".nii.gz", "auto"), (".nii.gz", "record"), (".nii", "auto")],
)
def test_memory_is_flat_in_the_number_of_volumes(tmp_path, rng, suffix, engine, monkeypatch):
    # Small stream blocks so that the short run already spans several blocks.
    monkeypatch.setattr(reader, "STREAM_BLOCK_BYTES", 4 * 40 * 40 * 40 * 4)
    if engine == "record":  # the pass that records the gzip index (its read-ahead pieces)
        monkeypatch.setenv("LAZYSPHERES_GZINDEX_BYPRODUCT", "1")
        monkeypatch.setenv("LAZYSPHERES_CACHE_DIR", str(tmp_path / "cache"))
    else:
        monkeypatch.setenv("LAZYSPHERES_INFLATE", engine)
    peaks = {}
    for n_volumes in (40, 160):
        data = rng.standard_normal((40, 40, 40, n_volumes)).astype(np.float32)
        path = tmp_path / f"t{n_volumes}{suffix}"
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        del data
        peaks[n_volumes] = _peak_bytes(path, [(20.0, 20.0, 20.0), (10.0, 30.0, 12.0)])
    image_bytes_160 = 40**3 * 160 * 4
    assert peaks[160] < image_bytes_160 / 2, peaks
    if engine == "record":  # both passes recorded (and stored) their file's index
        assert len(list((tmp_path / "cache").rglob("*.*"))) >= 2
    if engine in ("zlib", "record") or suffix == ".nii":
        # Deterministic buffering: 4x the volumes, (almost) the same peak.
        assert peaks[160] < 1.3 * peaks[40] + 2**20, peaks


def test_graph_pickles_without_open_files(files):
    out = ls.extract(files["gz"], SEEDS, 4.0)
    clone = pickle.loads(pickle.dumps(out))
    np.testing.assert_array_equal(clone.values, out.values)


def test_labels_and_coordinates(files):
    import pandas as pd

    table = pd.DataFrame(
        {"x": [0.0, 8.0], "y": [0.0, -6.0], "z": [0.0, 2.0], "label": ["a", "b"], "net": [1, 2]}
    )
    out = ls.extract(files["nii"], table, 4.0)
    assert out.dims == ("time", "seed")
    assert list(out["label"].values) == ["a", "b"]
    assert list(out["net"].values) == [1, 2]
    np.testing.assert_allclose(out["time"].values, np.arange(20) * 2.0)
    assert out["n_voxels"].dtype == np.int64
    assert out.attrs["radius"] == 4.0


def test_three_d_images(tmp_path, rng):
    img = random_image(rng, (9, 9, 9), np.float64)
    path = write(img, tmp_path / "three.nii.gz")
    out = ls.extract(path, SEEDS, 4.0)
    assert out.dims == ("seed",)
    dask_out = ls.extract(ls.open_nifti(img, chunks={"i": 2}), SEEDS, 4.0)
    np.testing.assert_array_equal(out.values, dask_out.values)


def test_bad_input_messages(files, rng):
    with pytest.raises(SeedError, match="Seed #1 is of length 2 instead of 3"):
        ls.extract(files["gz"], [(0, 0, 0), (1, 2)], 4.0)
    mask4d = nib.Nifti1Image(np.ones((12, 13, 14, 2), np.uint8), files["img"].affine)
    with pytest.raises(DimensionError, match="The mask has 2 volumes"):
        ls.extract(files["gz"], SEEDS, 4.0, mask_img=mask4d)
    plain = xr.DataArray(np.zeros((3, 3, 3)), dims=("x", "y", "z"))
    with pytest.raises(ValueError, match="no 'nifti_meta' coordinate"):
        ls.extract(plain, SEEDS, 4.0)
    with pytest.raises(FileNotFoundError, match="File not found"):
        ls.extract(files["gz"].with_name("nope.nii.gz"), SEEDS, 4.0)


def test_result_saves_to_netcdf_and_zarr(tmp_path, files):
    """No None-valued attrs (netCDF cannot store them): radius None is an absent attr."""
    out = ls.extract(files["nii"], SEEDS, None)
    assert "radius" not in out.attrs
    out.to_netcdf(tmp_path / "signals.nc")
    back = xr.open_dataarray(tmp_path / "signals.nc")
    np.testing.assert_array_equal(back.values, out.values)
    out.to_dataset().to_zarr(tmp_path / "signals.zarr", consolidated=False)
    reopened = xr.open_zarr(tmp_path / "signals.zarr", consolidated=False)["signals"]
    np.testing.assert_array_equal(reopened.values, out.values)
