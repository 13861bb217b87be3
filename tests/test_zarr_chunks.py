"""Extraction from local Zarr images reads chunk files directly: same numbers as zarr/xarray."""

from __future__ import annotations

import pickle
import warnings

import dask
import numpy as np
import pytest
import zarr
from batch_helpers import world_seeds
from conftest import random_image, write

import lazyspheres as ls
from lazyspheres.dask_gather import gather_voxels
from lazyspheres.errors import ImageFormatError
from lazyspheres.geometry import sphere_voxels
from lazyspheres.io.readers.zarr import chunk_source_of
from lazyspheres.io.zarr_chunks import ZarrChunkReader

SHAPE = (21, 18, 19, 13)
SEEDS_VOX = [[3, 3, 3], [10, 9, 9], [18, 15, 16], [7, 14, 4]]

CODECS = {
    "default": "default",
    "none": None,
    "zstd": zarr.codecs.ZstdCodec(level=3, checksum=True),
    "gzip": zarr.codecs.GzipCodec(level=1),
    "blosc-zstd": zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
}


def _convert(tmp_path, img, name="bold", **options):
    source = write(img, tmp_path / f"{name}.nii.gz")
    store = tmp_path / f"{name}.zarr"
    ls.to_zarr_image(source, store, **options)
    return source, store


def _through_zarr(image, voxels):
    """The same gather through the image's xarray/zarr graph (no direct reader)."""
    return gather_voxels(image.data, voxels).compute(scheduler="synchronous")


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize(
    ("dtype", "scaled", "chunks"),
    [
        (np.float32, False, (8, 8, 8, 5)),  # edge chunks on every axis
        (np.int16, True, (16, 16, 16, 256)),  # scaled: float64 values, as xarray decodes
        (np.float64, False, (5, 7, 19, -1)),  # whole time axis (the first format)
        (np.uint8, False, (4, 4, 4, 4)),
    ],
)
def test_direct_reads_equal_zarr_and_the_nifti(tmp_path, codec, dtype, scaled, chunks):
    img = random_image(np.random.default_rng(4), shape=SHAPE, dtype=dtype, scaled=scaled)
    source, store = _convert(tmp_path, img, chunks=chunks, compressors=CODECS[codec])
    image = ls.open_nifti(store)
    reader = chunk_source_of(image)
    assert reader is not None
    expected_codec = {"default": "blosc", "blosc-zstd": "blosc", "none": None}.get(codec, codec)
    assert reader.compressor == expected_codec

    voxels = np.random.default_rng(5).integers(0, SHAPE[:3], size=(40, 3))
    direct = gather_voxels(image.data, voxels, reader).compute(scheduler="threads")
    expected = _through_zarr(image, voxels)
    assert direct.dtype == expected.dtype == image.dtype
    np.testing.assert_array_equal(direct, expected)

    seeds = world_seeds(img.affine, SEEDS_VOX)
    signals = ls.extract(store, seeds, 4.0)
    np.testing.assert_array_equal(signals.values, ls.extract(source, seeds, 4.0).values)


def test_only_touched_chunks_are_read_once_each(tmp_path, monkeypatch):
    img = random_image(np.random.default_rng(6), shape=(40, 36, 30, 9), dtype=np.float32)
    source, store = _convert(tmp_path, img, chunks=(8, 8, 8, 4))
    reads = []
    original = ZarrChunkReader.read
    monkeypatch.setattr(
        ZarrChunkReader, "read", lambda self, i: reads.append(i) or original(self, i)
    )
    seeds = world_seeds(img.affine, [[3, 3, 3], [20, 20, 14], [35, 30, 25]])
    signals = ls.extract(store, seeds, radius=4.0)
    assert reads == []  # building the graph reads nothing
    values = signals.values
    spheres = sphere_voxels(seeds, img.affine, img.shape[:3], radius=4.0)
    touched = {tuple(int(c) for c in v) for v in spheres.voxels // 8}
    expected = [(*block, t) for block in touched for t in range(3)]  # 9 volumes, chunks of 4
    assert sorted(reads) == sorted(expected)
    np.testing.assert_array_equal(values, ls.extract(source, seeds, radius=4.0).values)


def test_chunks_never_written_read_as_the_fill_value(tmp_path):
    rng = np.random.default_rng(7)
    img = random_image(rng, shape=(16, 16, 16, 6), dtype=np.float32)
    data = np.asarray(img.dataobj).copy()
    data[8:, 8:, 8:] = np.nan  # one whole chunk of NaN: zarr does not store it
    img = type(img)(data, img.affine, img.header)
    counts = random_image(rng, shape=(16, 16, 16, 6), dtype=np.int16)
    values = np.asarray(counts.dataobj).copy()
    values[:8, :8, :8] = 0  # int: fill value 0
    counts = type(counts)(values, counts.affine, counts.header)
    for name, image in (("nan", img), ("zero", counts)):
        source, store = _convert(tmp_path, image, name=name, chunks=8)
        missing = store / "image" / "c" / ("1/1/1/0" if name == "nan" else "0/0/0/0")
        assert not missing.exists()
        seeds = world_seeds(image.affine, [[12, 12, 12], [3, 3, 3], [12, 3, 3]])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ours = ls.extract(store, seeds, 3.0, allow_overlap=True).values
            theirs = ls.extract(source, seeds, 3.0, allow_overlap=True).values
        np.testing.assert_array_equal(ours, theirs)
        if name == "nan":  # NaN counted as 0 (nilearn's rule), and said so, on both paths
            assert sum("Non-finite values detected" in str(w.message) for w in caught) == 2


def test_a_damaged_chunk_file_is_named(tmp_path):
    img = random_image(np.random.default_rng(8), shape=(16, 16, 16, 6), dtype=np.float32)
    _, store = _convert(tmp_path, img, chunks=8)
    chunk = store / "image" / "c" / "0" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:100])  # truncated
    signals = ls.extract(store, world_seeds(img.affine, [[3, 3, 3]]), 3.0)
    with pytest.raises(ImageFormatError, match=r"Zarr chunk .*c/0/0/0/0 could not be decoded"):
        signals.compute()


def test_modified_or_unsupported_images_are_read_through_zarr(tmp_path):
    img = random_image(np.random.default_rng(9), shape=SHAPE, dtype=np.float32)
    source, store = _convert(tmp_path, img, chunks=8, compressors=zarr.codecs.Crc32cCodec())
    image = ls.open_nifti(store)
    assert chunk_source_of(image) is None  # a codec we do not decode ourselves
    seeds = world_seeds(img.affine, SEEDS_VOX)
    expected = ls.extract(source, seeds, 4.0).values
    np.testing.assert_array_equal(ls.extract(image, seeds, 4.0).values, expected)

    _, plain = _convert(tmp_path, img, name="plain", chunks=8)
    opened = ls.open_nifti(plain)
    assert chunk_source_of(opened) is not None
    shifted = opened.isel(time=slice(2, None))  # no longer the whole array
    assert chunk_source_of(shifted) is None
    np.testing.assert_array_equal(
        ls.extract(shifted, seeds, 4.0).values, ls.extract(source, seeds, 4.0).values[2:]
    )
    assert chunk_source_of(ls.open_nifti(plain, chunks=None)) is None  # no Dask, no reader


def test_reader_is_picklable_and_works_in_other_processes(tmp_path):
    img = random_image(np.random.default_rng(10), shape=(12, 12, 12, 5), dtype=np.float32)
    source, store = _convert(tmp_path, img, chunks=(6, 6, 6, 2))
    reader = chunk_source_of(ls.open_nifti(store))
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(clone.read((1, 0, 1, 2)), reader.read((1, 0, 1, 2)))
    seeds = world_seeds(img.affine, [[3, 3, 3], [8, 8, 8]])
    signals = ls.extract(store, seeds, 3.0)
    with dask.config.set(scheduler="processes", num_workers=2):
        values = signals.values
    np.testing.assert_array_equal(values, ls.extract(source, seeds, 3.0).values)


def test_only_plain_layouts_get_a_reader(tmp_path):
    path = tmp_path / "v2keys.zarr"
    array = zarr.create_array(
        path, shape=(4, 4, 4), chunks=(2, 2, 2), dtype="f4", chunk_key_encoding={"name": "v2"}
    )
    assert ZarrChunkReader.for_array(array, {}) is None
    sharded = zarr.create_array(
        tmp_path / "sharded.zarr", shape=(4, 4, 4), chunks=(2, 2, 2), shards=(4, 4, 4), dtype="f4"
    )
    assert ZarrChunkReader.for_array(sharded, {}) is None
    plain = zarr.create_array(
        tmp_path / "plain.zarr", shape=(4, 4, 4), chunks=(2, 2, 2), dtype="i2"
    )
    assert ZarrChunkReader.for_array(plain, {}) is not None
    assert ZarrChunkReader.for_array(plain, {"_FillValue": 0}) is None  # xarray would mask
    assert ZarrChunkReader.for_array(plain, {"missing_value": -1}) is None
