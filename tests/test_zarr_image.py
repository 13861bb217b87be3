"""to_zarr_image: NIfTI runs as Zarr v3 images chunked for time series, read by open_nifti."""

from __future__ import annotations

import gzip
import threading
import warnings

import nibabel as nib
import numpy as np
import pytest
import xarray as xr
import zarr
from batch_helpers import SEED_VOXELS, world_seeds
from conftest import random_image, write

import lazyspheres as ls
from lazyspheres.errors import ImageFormatError, IncompleteStoreError
from lazyspheres.geometry import sphere_voxels
from lazyspheres.io import zarr_image


@pytest.fixture
def bold_gz(tmp_path):
    img = random_image(np.random.default_rng(0), shape=(21, 18, 19, 13), dtype=np.float32)
    return write(img, tmp_path / "bold.nii.gz")


def _open_no_warnings(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return xr.open_zarr(store)


@pytest.mark.parametrize(
    ("dtype", "scaled", "chunks", "expected"),
    [
        (np.float32, False, 16, (16, 16, 16, 13)),
        (np.int16, True, 8, (8, 8, 8, 13)),
        (np.float64, False, (5, 7, 19, 4), (5, 7, 19, 4)),
        (np.uint8, False, (40, 40, 40), (21, 18, 19, 13)),  # clipped to the image
    ],
)
def test_round_trip_values_affine_header(tmp_path, dtype, scaled, chunks, expected):
    affine = np.array([[-2.0, 0.3, 0, 20], [0.1, 2.5, 0, -30], [0, 0, 3, -10], [0, 0, 0, 1]])
    img = random_image(
        np.random.default_rng(1), shape=(21, 18, 19, 13), dtype=dtype, affine=affine, scaled=scaled
    )
    source = write(img, tmp_path / "bold.nii.gz")
    store = tmp_path / "bold.zarr"
    assert ls.to_zarr_image(source, store, chunks=chunks) == store

    reference = ls.open_nifti(source)
    converted = ls.open_nifti(store)
    assert converted.dims == reference.dims == ("i", "j", "k", "time")
    assert converted.chunks == tuple(
        tuple(min(c, n - a) for a in range(0, n, c))
        for c, n in zip(expected, converted.shape, strict=True)
    )
    assert converted.dtype == reference.dtype
    np.testing.assert_array_equal(converted.values, reference.values)  # scaling included
    np.testing.assert_array_equal(converted.nifti.affine, nib.load(source).affine)
    np.testing.assert_array_equal(converted.time.values, reference.time.values)
    assert converted.nifti.t_r == reference.nifti.t_r == 2.0
    meta = converted.coords["nifti_meta"].attrs
    with gzip.open(source) as raw:
        assert bytes.fromhex(meta["header"]) == raw.read(348)  # the raw header bytes
    assert meta["sform_code"] == int(img.header["sform_code"])
    assert meta["qform_code"] == int(img.header["qform_code"])
    assert meta["source"] == str(store)

    # plain xarray: no warnings, the affine intact, the same (decoded) values
    dataset = _open_no_warnings(store)
    image = dataset["image"]
    np.testing.assert_array_equal(image.nifti.affine, nib.load(source).affine)
    np.testing.assert_array_equal(image.values, reference.values)
    stored = zarr.open_array(store / "image", mode="r")
    assert stored.dtype == np.dtype(dtype)  # raw values kept, scaled on read
    if scaled:
        assert stored.attrs["scale_factor"] == 0.5
        assert stored.attrs["add_offset"] == 10.0


def test_three_d_image_and_in_memory_sources(tmp_path):
    rng = np.random.default_rng(2)
    volume = random_image(rng, shape=(9, 10, 11), dtype=np.int16)
    ls.to_zarr_image(write(volume, tmp_path / "mask.nii"), tmp_path / "mask.zarr")
    back = ls.open_nifti(tmp_path / "mask.zarr")
    assert back.dims == ("i", "j", "k")
    np.testing.assert_array_equal(back.values, np.asarray(volume.dataobj))
    np.testing.assert_array_equal(back.nifti.affine, volume.affine)

    in_memory = random_image(rng, shape=(9, 10, 11, 5), dtype=np.float32)
    ls.to_zarr_image(in_memory, tmp_path / "mem.zarr")  # nibabel image, no file
    np.testing.assert_array_equal(
        ls.open_nifti(tmp_path / "mem.zarr").values, np.asarray(in_memory.dataobj)
    )


class CountingStore(zarr.storage.WrapperStore):
    """Counts chunk reads of the image array (thread safe)."""

    def __init__(self, store):
        super().__init__(store)
        self.keys = []
        self.lock = threading.Lock()

    async def get(self, key, prototype, byte_range=None):
        if key.startswith("image/c/"):
            with self.lock:
                self.keys.append(key)
        return await self._store.get(key, prototype, byte_range)


def test_extraction_reads_only_the_chunks_spheres_touch(tmp_path):
    img = random_image(np.random.default_rng(3), shape=(40, 36, 30, 9), dtype=np.float32)
    source = write(img, tmp_path / "bold.nii.gz")
    ls.to_zarr_image(source, tmp_path / "bold.zarr", chunks=8)
    seeds = world_seeds(img.affine, [[3, 3, 3], [20, 20, 14], [35, 30, 25]])
    counting = CountingStore(zarr.storage.LocalStore(tmp_path / "bold.zarr", read_only=True))

    signals = ls.extract(ls.open_nifti(counting), seeds, radius=4.0).values

    spheres = sphere_voxels(seeds, img.affine, img.shape[:3], radius=4.0)
    touched = {tuple(v) for v in spheres.voxels // 8}
    expected = {f"image/c/{i}/{j}/{k}/0" for i, j, k in touched}
    assert sorted(counting.keys) == sorted(expected)  # each touched chunk read once
    assert len(expected) < 0.2 * (5 * 5 * 4)
    np.testing.assert_array_equal(signals, ls.extract(source, seeds, radius=4.0).values)


def test_interrupted_conversion_is_refused_then_overwritten(tmp_path, bold_gz, monkeypatch):
    store = tmp_path / "bold.zarr"

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(zarr_image, "write_blocks", crash)
    with pytest.raises(KeyboardInterrupt):
        ls.to_zarr_image(bold_gz, store)
    monkeypatch.undo()
    with pytest.raises(IncompleteStoreError, match=r"(?s)incomplete .*overwrite=True"):
        ls.open_nifti(store)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ls.to_zarr_image(bold_gz, store)
    ls.to_zarr_image(bold_gz, store, overwrite=True)
    np.testing.assert_array_equal(ls.open_nifti(store).values, ls.open_nifti(bold_gz).values)


def test_errors_name_the_problem(tmp_path, bold_gz):
    with pytest.raises(ValueError, match="chunks must be an int or a tuple of 3 or 4 ints"):
        ls.to_zarr_image(bold_gz, tmp_path / "a.zarr", chunks=(4, 4))
    with pytest.raises(ValueError, match="chunk sizes must be positive"):
        ls.to_zarr_image(bold_gz, tmp_path / "b.zarr", chunks=(4, 0, 4))
    xr.Dataset({"v": ("x", np.arange(3))}).to_zarr(tmp_path / "other.zarr", consolidated=False)
    with pytest.raises(ImageFormatError, match="holds no NIfTI image"):
        ls.open_nifti(tmp_path / "other.zarr")
    with pytest.raises(FileNotFoundError, match="File not found"):
        ls.open_nifti(tmp_path / "missing.zarr")


def test_batch_reads_zarr_runs_like_nifti(tmp_path, bold_gz):
    """extract_many on a Zarr image gives the NIfTI run's numbers."""
    ls.to_zarr_image(bold_gz, tmp_path / "bold.zarr", chunks=8)
    seeds = world_seeds(nib.load(bold_gz).affine, SEED_VOXELS[:, :] % 13)
    ds = ls.extract_many(
        [tmp_path / "bold.zarr"], seeds, 3.0, store=tmp_path / "r.zarr", progress=False
    )
    expected = ls.extract(bold_gz, seeds, 3.0).values
    np.testing.assert_array_equal(ds.signals.values[0], expected)
    assert ds.run.values.tolist() == ["bold"]
