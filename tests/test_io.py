"""open_nifti and the xarray backend: values, geometry, laziness and bad input."""

from __future__ import annotations

import functools
import gzip
import io
import pickle
import re
import zlib

import dask
import nibabel as nib
import numpy as np
import pytest
import xarray as xr
from conftest import random_image, write

import lazyspheres as ls
from lazyspheres.errors import (
    DimensionError,
    ImageFormatError,
    LazySpheresWarning,
    TruncatedImageError,
)
from lazyspheres.io.inflate import available_engines
from lazyspheres.io.open import NIFTI_META
from lazyspheres.io.reader import NiftiFile
from lazyspheres.io.readers.lazy import reader_of
from lazyspheres.testing import raise_if_dask_computes

OPENERS = {
    "open_nifti": ls.open_nifti,
    "open_nifti_nochunks": functools.partial(ls.open_nifti, chunks=None),
    "open_nifti_small_chunks": functools.partial(
        ls.open_nifti, chunks={"i": 3, "j": 5, "time": 4}
    ),
    "xarray_engine": functools.partial(xr.open_dataarray, engine="nifti"),
    "xarray_engine_chunked": functools.partial(xr.open_dataarray, engine="nifti", chunks={}),
}


@pytest.fixture(params=sorted(OPENERS))
def opener(request):
    return OPENERS[request.param]


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize(
    ("dtype", "scaled", "shape"),
    [
        (np.float32, False, (7, 8, 9, 12)),
        (np.float64, False, (7, 8, 9, 5)),
        (np.int16, False, (7, 8, 9, 6)),
        (np.int16, True, (7, 8, 9, 6)),
        (np.uint8, False, (5, 4, 3, 2)),
        (np.float32, False, (7, 8, 9)),
        (np.int32, False, (6, 5, 4, 1)),
    ],
)
def test_values_equal_nibabel(tmp_path, rng, opener, suffix, dtype, scaled, shape):
    path = write(random_image(rng, shape, dtype, scaled=scaled), tmp_path / f"img{suffix}")
    reference = nib.load(path)
    expected = np.asanyarray(reference.dataobj)
    image = opener(path)
    assert image.dims == ("i", "j", "k", "time")[: len(shape)]
    assert image.dtype == expected.dtype
    np.testing.assert_array_equal(image.values, expected)
    np.testing.assert_array_equal(image.nifti.affine, reference.affine)
    # a box read touches the right voxels
    box = image.isel(i=slice(1, 4), j=slice(2, None), k=[0, 2])
    np.testing.assert_array_equal(box.values, expected[1:4, 2:][:, :, [0, 2]])
    if len(shape) == 4:
        np.testing.assert_allclose(image["time"].values, np.arange(shape[3]) * 2.0)


def test_scaled_file_really_is_scaled(tmp_path, rng):
    path = write(random_image(rng, (4, 4, 4, 3), np.int16, scaled=True), tmp_path / "s.nii")
    assert nib.load(path).dataobj.slope == 0.5
    image = ls.open_nifti(path)
    assert image.dtype == np.float64
    raw = np.asanyarray(nib.load(path).dataobj.get_unscaled())
    np.testing.assert_array_equal(image.values, raw * 0.5 + 10.0)


@pytest.mark.parametrize("nifti2", [False, True])
def test_nifti2_and_big_endian(tmp_path, rng, nifti2):
    img = random_image(rng, (5, 6, 7, 4), np.float32, nifti2=nifti2)
    big = img.__class__(
        img.get_fdata().astype(">f4"), img.affine, header=img.header.as_byteswapped(">")
    )
    path = write(big, tmp_path / "big.nii.gz")
    expected = np.asanyarray(nib.load(path).dataobj)
    image = ls.open_nifti(path)
    assert image.dtype == np.dtype("float32")  # native order once read
    np.testing.assert_array_equal(image.values, expected)


def test_affine_and_codes_survive_slicing_and_arithmetic(tmp_path, rng):
    affine = np.array(
        [[-1.5, 0.1, 0.0, 90.0], [0.0, 2.0, 0.3, -126.0], [0.2, 0.0, 2.5, -72.0], [0, 0, 0, 1]]
    )
    img = random_image(rng, (6, 7, 8, 5), np.float32, affine=affine)
    img.set_sform(affine, code=4)
    img.set_qform(affine, code=1)
    image = ls.open_nifti(write(img, tmp_path / "o.nii.gz"))
    derived = (image.isel(i=slice(2, 5), k=slice(1, None, 2)) * 2 - 1).mean("time")
    meta = derived.coords[NIFTI_META].attrs
    assert meta["sform_code"] == 4
    assert meta["qform_code"] == 1
    np.testing.assert_allclose(derived.nifti.affine, nib.load(tmp_path / "o.nii.gz").affine)
    # The grid affine of the slice maps its own index 0 to voxel (2, 0, 1) of the original.
    grid = derived.nifti.grid_affine
    np.testing.assert_allclose(grid @ [0, 0, 0, 1], image.nifti.affine @ [2, 0, 1, 1])
    np.testing.assert_allclose(grid @ [0, 0, 1, 1], image.nifti.affine @ [2, 0, 3, 1])
    world = image.nifti.world_coords()
    expected = image.nifti.affine @ [3, 4, 5, 1]
    got = [float(world[c].sel(i=3, j=4, k=5)) for c in "xyz"]
    np.testing.assert_allclose(got, expected[:3])
    ijk = image.nifti.world_to_voxel(image.nifti.voxel_to_world([[3, 4, 5]]))
    np.testing.assert_allclose(ijk, [[3, 4, 5]], atol=1e-12)


def test_to_nifti_round_trip(tmp_path, rng):
    img = random_image(rng, (5, 6, 7, 4), np.float32)
    image = ls.open_nifti(write(img, tmp_path / "r.nii"))
    back = image.isel(j=slice(1, 4)).nifti.to_nifti()
    np.testing.assert_array_equal(back.get_fdata(), img.get_fdata()[:, 1:4])
    np.testing.assert_allclose(back.affine, img.affine @ _translation(0, 1, 0))
    assert back.header.get_zooms()[3] == pytest.approx(2.0)


def _translation(i, j, k):
    matrix = np.eye(4)
    matrix[:3, 3] = [i, j, k]
    return matrix


def test_open_reads_header_only(tmp_path, rng):
    """A .nii.gz whose data is cut off opens fine: only the header is read at open."""
    path = write(random_image(rng, (9, 9, 9, 20), np.float32), tmp_path / "t.nii.gz")
    raw = gzip.decompress(path.read_bytes())
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with raise_if_dask_computes():
        image = ls.open_nifti(cut)
        lazy = image.isel(time=slice(0, 3)) * 2
    assert float(lazy.isel(i=0, j=0, k=0, time=0)) == pytest.approx(
        2 * float(np.asanyarray(nib.load(path).dataobj)[0, 0, 0, 0])
    )
    with pytest.raises(TruncatedImageError, match=r"cut\.nii\.gz.*truncated"):
        image.isel(time=-1).values  # noqa: B018


def test_truncated_uncompressed_file_is_refused_at_open(tmp_path, rng):
    path = write(random_image(rng, (6, 6, 6, 10), np.float32), tmp_path / "t.nii")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(TruncatedImageError, match=r"needs \d+; only 8 complete volume\(s\)"):
        ls.open_nifti(path)


@pytest.mark.parametrize("engine", available_engines())
def test_truncated_gzip_stream(tmp_path, rng, monkeypatch, engine):
    monkeypatch.setenv("LAZYSPHERES_INFLATE", engine)
    path = write(random_image(rng, (8, 8, 8, 10), np.float32), tmp_path / "t.nii.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    image = ls.open_nifti(path)
    with pytest.raises(TruncatedImageError, match="truncated"):
        image.values  # noqa: B018


@pytest.mark.parametrize("engine", available_engines())
@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_gzip_error_names_the_real_offsets(tmp_path, rng, monkeypatch, engine, keep):
    """How far the file really inflates, not where the engine (decoding ahead) gave up."""
    monkeypatch.setenv("LAZYSPHERES_INFLATE", engine)
    shape = (40, 40, 30, 10)  # 2.4 MB of float32: more than isal's 1 MB read-ahead block
    path = write(random_image(rng, shape, np.float32), tmp_path / "t.nii.gz")
    cut = path.read_bytes()
    cut = cut[: int(len(cut) * keep)]
    path.write_bytes(cut)
    inflates_to = len(zlib.decompressobj(wbits=31).decompress(cut))
    needed = 352 + int(np.prod(shape)) * 4
    for read in (
        lambda: ls.open_nifti(path).values,
        lambda: ls.extract(path, [(0.0, 0.0, 0.0)], 6.0).values,
    ):
        with pytest.raises(TruncatedImageError) as caught:
            read()
        message = str(caught.value)
        assert f"all {len(cut)} compressed bytes of the file inflate to {inflates_to}" in message
        # when named, the data needed by the read that failed: past what the file holds
        for at_least in re.findall(r"at least (\d+) are needed", message):
            assert inflates_to < int(at_least) <= needed


def test_truncated_gzip_file_object_says_what_it_knows(tmp_path, rng):
    path = write(random_image(rng, (8, 8, 8, 10), np.float32), tmp_path / "t.nii.gz")
    cut = path.read_bytes()[:3000]
    with pytest.raises(TruncatedImageError, match=r"after \d+ decompressed bytes"):
        ls.open_nifti(io.BytesIO(cut)).values  # noqa: B018


@pytest.mark.parametrize("engine", available_engines())
@pytest.mark.parametrize("where", ["middle", "crc"])
def test_corrupt_gzip_stream(tmp_path, rng, monkeypatch, engine, where):
    monkeypatch.setenv("LAZYSPHERES_INFLATE", engine)
    path = write(random_image(rng, (8, 8, 8, 10), np.float32), tmp_path / "t.nii.gz")
    data = bytearray(path.read_bytes())
    if where == "middle":
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(64)
    else:
        data[-6] ^= 0xFF  # the stored CRC32 of the uncompressed data
    path.write_bytes(bytes(data))
    image = ls.open_nifti(path)
    with pytest.raises(
        (ImageFormatError, TruncatedImageError), match=r"t\.nii\.gz.*compressed byte"
    ):
        image.values  # noqa: B018
    # the streaming reader used by extraction must refuse it too
    nifti = NiftiFile.of_reader(reader_of(image))
    with pytest.raises((ImageFormatError, TruncatedImageError), match=r"t\.nii\.gz"):
        for _ in nifti.iter_volume_blocks():
            pass


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty or truncated"),
        (b"hello world" * 100, "not a NIfTI file"),
    ],
)
def test_not_nifti(tmp_path, content, match):
    path = tmp_path / "bad.nii"
    path.write_bytes(content)
    with pytest.raises(ImageFormatError, match=match):
        ls.open_nifti(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="File not found"):
        ls.open_nifti(tmp_path / "missing.nii.gz")


@pytest.mark.parametrize("shape", [(5, 6), (4, 5, 6, 7, 2)])
def test_wrong_dimensionality(tmp_path, shape):
    path = tmp_path / "d.nii"
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), path)
    with pytest.raises(DimensionError, match="Input data has incompatible dimensionality"):
        ls.open_nifti(path)


def test_trailing_singleton_dims_are_dropped(tmp_path):
    path = tmp_path / "d.nii"
    data = np.arange(4 * 5 * 6 * 3, dtype=np.float32).reshape(4, 5, 6, 3, 1)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    image = ls.open_nifti(path)
    assert image.shape == (4, 5, 6, 3)
    np.testing.assert_array_equal(image.values, data[..., 0])


def test_empty_image(tmp_path):
    path = tmp_path / "e.nii"
    nib.save(nib.Nifti1Image(np.zeros((64, 64, 0), np.float32), np.eye(4)), path)
    with pytest.raises(ImageFormatError, match="The image is empty"):
        ls.open_nifti(path)


def test_nibabel_images(tmp_path, rng):
    img = random_image(rng, (5, 6, 7, 4), np.int16)
    in_memory = ls.open_nifti(img)
    np.testing.assert_array_equal(in_memory.values, np.asanyarray(img.dataobj))
    assert in_memory.nifti.t_r == 2.0
    path = write(img, tmp_path / "n.nii.gz")
    proxied = ls.open_nifti(nib.load(path))
    # A file-backed nibabel image is read lazily from its file by lazyspheres' reader.
    assert reader_of(proxied) is not None
    np.testing.assert_array_equal(proxied.values, np.asanyarray(img.dataobj))


def test_file_objects(tmp_path, rng):
    img = random_image(rng, (5, 6, 7, 4), np.float32)
    path = write(img, tmp_path / "f.nii.gz")
    with open(path, "rb") as handle:
        image = ls.open_nifti(handle)
        np.testing.assert_array_equal(image.values, np.asanyarray(img.dataobj))
    buffer = io.BytesIO(path.read_bytes())
    # a file object cannot be indexed: reading volume 2 inflates from the start, and says so
    with pytest.warns(LazySpheresWarning, match="opened from a file object"):
        volume = ls.open_nifti(buffer).isel(time=2).values
    np.testing.assert_array_equal(volume, np.asanyarray(img.dataobj)[..., 2])


def test_pickle_round_trip_and_threaded_compute(tmp_path, rng):
    img = random_image(rng, (6, 7, 8, 9), np.float32)
    image = ls.open_nifti(write(img, tmp_path / "p.nii.gz"), chunks={"time": 2})
    clone = pickle.loads(pickle.dumps(image))
    with dask.config.set(scheduler="threads"):
        np.testing.assert_array_equal(clone.values, np.asanyarray(img.dataobj))


@pytest.mark.parametrize("engine", available_engines())
def test_every_inflate_engine_gives_the_same_bytes(tmp_path, rng, monkeypatch, engine):
    img = random_image(rng, (11, 12, 13, 7), np.float32)
    path = write(img, tmp_path / "e.nii.gz")
    monkeypatch.setenv("LAZYSPHERES_INFLATE", engine)
    np.testing.assert_array_equal(ls.open_nifti(path).values, np.asanyarray(img.dataobj))


def test_chunks_argument(tmp_path, rng):
    path = write(random_image(rng, (6, 7, 8, 10), np.float32), tmp_path / "c.nii")
    assert ls.open_nifti(path).chunks == ((6,), (7,), (8,), (10,))
    assert ls.open_nifti(path, chunks={"time": 3}).chunks[3] == (3, 3, 3, 1)
    with pytest.raises(ValueError, match="unknown dimension"):
        ls.open_nifti(path, chunks={"t": 3})


def test_xarray_backend_metadata(tmp_path, rng):
    path = write(random_image(rng, (6, 7, 8, 10), np.float32), tmp_path / "x.nii.gz")
    dataset = xr.open_dataset(path, engine="nifti")
    assert list(dataset.data_vars) == ["image"]
    assert dataset["image"].encoding["preferred_chunks"] == {"i": 6, "j": 7, "k": 8, "time": 10}
    assert NIFTI_META in dataset.coords
    assert "nifti" in xr.backends.list_engines()
