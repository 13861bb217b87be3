"""Extraction from an image the user changed first (isel, astype, chunk, xarray's engine).

The file is a ``.nii.gz`` large enough to hold several seek points of its gzip index, so
chunk reads that ignored the index (inflating from byte 0) would show. Values are compared
with nilearn 0.12.1's ``NiftiSpheresMasker`` on the same file.
"""

from __future__ import annotations

import dask
import nibabel as nib
import numpy as np
import pytest
import xarray as xr
from conftest import random_image, write

import lazyspheres as ls
from lazyspheres.io import gzindex, gzindex_isal
from lazyspheres.io.readers.base import ImageReader
from lazyspheres.io.readers.lazy import reader_of
from lazyspheres.io.readers.view import ViewReader
from lazyspheres.testing import raise_if_dask_computes

# 40³ × 96 float32 of noise: ~24 MB, which rapidgzip indexes with seek points ~4 MB apart.
SHAPE = (40, 40, 40, 96)
SEEDS = [[-20.0, -10.0, 4.0], [10.0, 12.0, -6.0], [30.0, 30.0, 30.0], [-36.0, 0.0, 20.0]]
RADIUS = 6.0

# What the user does, and the rows of the unmodified run it keeps. All but "arithmetic" are
# views of the file (the image keeps its reader); arithmetic gives a plain Dask array.
MODIFICATIONS = {
    "isel": (lambda img: img.isel(time=slice(5, None)), slice(5, None)),
    "astype": (lambda img: img.astype("float64"), slice(None)),
    "chunk": (lambda img: img.chunk({"time": 10}), slice(None)),
    "sel": (lambda img: img.sel(time=img.time[::3]).chunk({"time": 8}), slice(None, None, 3)),
    "reversed": (lambda img: img.isel(time=slice(None, None, -1)), slice(None, None, -1)),
    "cast-slice": (
        lambda img: img.isel(time=slice(7, 90, 2)).astype("float64").chunk({"time": 5}),
        slice(7, 90, 2),
    ),
    "arithmetic": (lambda img: (img * 1.0).isel(time=slice(90, None)), slice(90, None)),
}
VIEWS = sorted(name for name in MODIFICATIONS if name != "arithmetic")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The file, nilearn's signals for it, and its gzip index."""
    from nilearn.maskers import NiftiSpheresMasker

    folder = tmp_path_factory.mktemp("modified")
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -40.0
    img = random_image(np.random.default_rng(11), SHAPE, np.float32, affine=affine)
    path = write(img, folder / "run.nii.gz")
    expected = NiftiSpheresMasker(SEEDS, radius=RADIUS).fit_transform(nib.load(path))
    index = gzindex.build_index(lambda: path.open("rb"))  # (build_index closes what it opens)
    assert len(index.points) >= 4  # several seek points: a read from 0 would be visible
    return path, np.asarray(expected, dtype=np.float64), index


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAZYSPHERES_CACHE_DIR", str(tmp_path / "cache"))


def _check_reads(reads, index):
    """Every indexed read started at the seek point just before it, never at byte 0 for no
    reason: it inflated O(its range + one spacing)."""
    assert reads
    first = min(d for _, d in index.points if d > 0)  # the first seek point past byte 0
    for read in reads:
        assert read.inflate_from == index.seek_point(read.start)[1]
        if read.start >= first:
            assert read.inflate_from > 0


@pytest.mark.nilearn
@pytest.mark.parametrize("name", VIEWS)
def test_extract_of_a_view_is_one_pass_and_equals_nilearn(run, name, inflate_opens):
    """A sliced/cast/rechunked image keeps its reader: one streaming pass, no chunk reads."""
    path, expected, _ = run
    modify, rows = MODIFICATIONS[name]
    image = ls.open_nifti(path, chunks={"time": 16})  # 6 chunks of ~4 MB
    whole = ls.extract(image, SEEDS, RADIUS)
    np.testing.assert_allclose(whole.values, expected, rtol=1e-6)
    assert len(inflate_opens) == 1  # the whole image: one streaming pass

    modified = modify(image)
    assert isinstance(reader_of(modified), ImageReader)
    inflate_opens.clear()
    with gzindex.observe_reads() as reads:
        signals = ls.extract(modified, SEEDS, RADIUS)
        values = signals.values
    np.testing.assert_allclose(values, expected[rows], rtol=1e-6)
    assert signals.dtype == ls.extraction.output_dtype(modified.dtype)
    assert len(inflate_opens) == 1  # the file's own streaming pass
    assert reads == []  # no chunk-sized reads


@pytest.mark.nilearn
def test_extract_of_a_tail_view_reads_by_index(run, inflate_opens):
    """A view of the last volumes reads only them, through the index, never from byte 0."""
    path, expected, index = run
    image = ls.open_nifti(path, chunks={"time": 16})
    reader_of(image).keep_index(index)
    tail = image.isel(time=slice(70, None)).astype("float64")
    with gzindex.observe_reads() as reads:
        values = ls.extract(tail, SEEDS, RADIUS).values
    np.testing.assert_allclose(values, expected[70:], rtol=1e-6)
    _check_reads(reads, index)
    assert len(inflate_opens) == len(reads)  # indexed reads only, no sequential pass
    volume_bytes = int(np.prod(SHAPE[:3])) * 4
    assert sum(r.stop - r.start for r in reads) == (SHAPE[3] - 70) * volume_bytes


@pytest.mark.nilearn
def test_extract_after_arithmetic_reads_chunks_by_index(run, inflate_opens):
    """Arithmetic leaves a plain Dask array: its chunk tasks read through the index."""
    path, expected, index = run
    modify, rows = MODIFICATIONS["arithmetic"]
    image = ls.open_nifti(path, chunks={"time": 16})
    modified = modify(image)
    assert reader_of(modified) is None
    with gzindex.observe_reads() as reads:
        signals = ls.extract(modified, SEEDS, RADIUS).values
    np.testing.assert_allclose(signals, expected[rows], rtol=1e-6)
    _check_reads(reads, index)
    # indexed reads only, but for a chunk starting at volume 0 (read from the start anyway)
    assert len(inflate_opens) - len(reads) <= 1
    assert sum(r.stop - r.start for r in reads) <= image.nbytes  # each volume at most once


@pytest.mark.nilearn
def test_xarray_engine_image_is_read_by_index(run, monkeypatch):
    path, expected, index = run
    monkeypatch.setattr(gzindex_isal, "SPACING", 2 * 2**20)  # checkpoints ~8 volumes apart
    image = xr.open_dataarray(path, engine="nifti")  # lazily indexed, no Dask
    with gzindex.observe_reads() as reads:
        signals = ls.extract(image, SEEDS, RADIUS).values
    np.testing.assert_allclose(signals, expected, rtol=1e-6)
    if reads:  # (one ~64 MB chunk here: read from volume 0, no index needed)
        _check_reads(reads, index)
    # that pass recorded ISA-L checkpoints (the default where available) and cached them
    recorded = reader_of(ls.open_nifti(path)).index
    assert isinstance(recorded, gzindex.CheckpointIndex)
    chunked = xr.open_dataarray(path, engine="nifti", chunks={})
    with gzindex.observe_reads() as reads:
        signals = ls.extract(chunked.isel(time=slice(50, None)), SEEDS, RADIUS).values
    np.testing.assert_allclose(signals, expected[50:], rtol=1e-6)
    _check_reads(reads, recorded)


def test_one_volume_reads_one_volume(run):
    """``isel(time=t).values`` on an indexed file inflates about one volume, not a chunk."""
    path, _, index = run
    image = ls.open_nifti(path)
    reader_of(image).keep_index(index)
    volume_bytes = int(np.prod(SHAPE[:3])) * 4
    for t in (0, 47, 95):
        with gzindex.observe_reads() as reads:
            values = image.isel(time=t).values
        np.testing.assert_array_equal(values, np.asanyarray(nib.load(path).dataobj[..., t]))
        if t:
            assert [r.stop - r.start for r in reads] == [volume_bytes]
            _check_reads(reads, index)


def test_graphs_of_modified_images_compute_and_read_nothing(run, inflate_opens):
    path, _, _ = run
    image = ls.open_nifti(path)
    with raise_if_dask_computes(), gzindex.observe_reads() as reads:
        for modify, _ in MODIFICATIONS.values():
            ls.extract(modify(image), SEEDS, RADIUS)
        ls.extract(xr.open_dataarray(path, engine="nifti"), SEEDS, RADIUS)
    assert reads == []
    assert inflate_opens == []


@pytest.mark.parametrize(
    "view",
    [
        lambda img: img.isel(time=slice(30, 60)),
        lambda img: img.astype("float64").isel(time=slice(30, 60)).chunk({"time": 4}),
        lambda img: img.sel(time=img.time[30:60]).isel(i=slice(2, 38)),
    ],
    ids=["isel", "astype-chunk", "sel-spatial"],
)
def test_gzip_chunk_reads_never_restart_from_zero_with_an_index(run, monkeypatch, view):
    """Fails if a chunk task of an indexed image, or of a view of it, inflates from the
    start of the file."""
    path, _, index = run
    image = ls.open_nifti(path, chunks={"time": 7})
    reader_of(image).keep_index(index)

    def no_sequential_pass(*args, **kwargs):
        raise AssertionError("a chunk read inflated the file from its start")

    from lazyspheres.io.readers import nifti

    monkeypatch.setattr(nifti, "skip", no_sequential_pass)
    selected = view(image)
    assert reader_of(selected) is not None  # a view: its chunks read through the base
    with gzindex.observe_reads() as reads, dask.config.set(scheduler="threads"):
        values = selected.mean("time").values
    stored = np.asanyarray(nib.load(path).dataobj)
    expected = stored[selected.i.values][..., 30:60].mean(axis=-1)  # (i keeps voxel indices)
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    _check_reads(reads, index)


@pytest.mark.nilearn
@pytest.mark.parametrize("name", ["isel", "sel", "reversed", "cast-slice"])
def test_view_extract_across_stream_blocks_equals_nilearn(run, monkeypatch, name):
    """Stream blocks of 7 volumes: a view's pass keeps the right volumes across blocks."""
    path, expected, _ = run
    from lazyspheres.io.readers import nifti

    volume_bytes = int(np.prod(SHAPE[:3])) * 4
    monkeypatch.setattr(nifti, "STREAM_BLOCK_BYTES", 7 * volume_bytes)
    modify, rows = MODIFICATIONS[name]
    image = ls.open_nifti(path)
    assert reader_of(image).time_block == 7
    signals = ls.extract(modify(image), SEEDS, RADIUS).values
    np.testing.assert_allclose(signals, expected[rows], rtol=1e-6)


@pytest.mark.nilearn
def test_view_of_an_uncompressed_file_equals_nilearn(run, tmp_path):
    """A view of a ``.nii`` is gathered through memory maps, in parallel time blocks."""
    path, expected, _ = run
    plain = write(nib.load(path), tmp_path / "run.nii")
    image = ls.open_nifti(plain).isel(time=slice(3, 95, 2)).astype("float64")
    assert isinstance(reader_of(image), ViewReader)
    signals = ls.extract(image, SEEDS, RADIUS)
    np.testing.assert_allclose(signals.values, expected[3:95:2], rtol=1e-6)


def test_a_list_of_3d_images_extracts_as_the_run_they_make_with_every_option():
    """``extract([3D, 3D, ...])`` passes its seeds and options on to each volume."""
    from lazyspheres.io.image import image_from_array

    rng = np.random.default_rng(7)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = -30.0
    data = rng.normal(size=(20, 20, 20, 4)).astype(np.float32)
    mask = np.zeros((20, 20, 20), dtype=np.uint8)
    mask[2:18, 2:18, 2:18] = 1
    options = {
        "radius": 7.0,
        "mask_img": image_from_array(mask, affine),
        "allow_overlap": True,
        "smoothing_fwhm": 5.0,
        "dtype": "float64",
    }
    volumes = [image_from_array(data[..., t], affine) for t in range(data.shape[3])]
    from_list = ls.extract(volumes, SEEDS[:2], **options).compute()
    from_run = ls.extract(image_from_array(data, affine), SEEDS[:2], **options).compute()
    assert from_list.dtype == np.float64
    assert from_list.shape == (4, 2)
    np.testing.assert_allclose(from_list.values, from_run.values, rtol=1e-6)
    unsmoothed = ls.extract(volumes, SEEDS[:2], radius=7.0).compute()
    assert not np.allclose(unsmoothed.values, from_list.values)  # the options did apply
