"""One conformance suite for every image reader (as zarr tests every store alike).

Each reader of :mod:`lazyspheres.io.readers` must give nibabel's ``dataobj`` values for
shape/dtype/scaling, voxel reads (flat and ``(n, 3)``), box reads and time ranges at the
boundaries, and keep doing so after a pickle round trip.
"""

from __future__ import annotations

import pickle

import dask.array as da
import nibabel as nib
import numpy as np
import pytest
from conftest import random_image, write

from lazyspheres.io import gzindex
from lazyspheres.io.reader import NiftiFile
from lazyspheres.io.readers import nifti as nifti_readers
from lazyspheres.io.readers.array import ArrayReader
from lazyspheres.io.readers.base import ImageReader, ReaderArray
from lazyspheres.io.readers.lazy import reader_of
from lazyspheres.io.readers.view import ViewReader, cast_view, view_of

SHAPE = (9, 10, 11, 23)
KINDS = ["nii-memmap", "nii-ranges", "gz-indexed", "gz-stream", "zarr-chunks", "dask-array"]
# Views (io/readers/view.py): a larger stored image seen through a selection that leaves
# an image of SHAPE; "cast" views read float32 values cast to float64 (what nibabel's
# float64 dataobj holds too, values scaled first).
VIEW_KINDS = ["view-nii", "view-gz", "view-gz-reversed", "view-cast-gz"]
KINDS += VIEW_KINDS
# The stored image of the views, and where in it the view's image lies.
PADDED = (11, 10, 13, 30)
VIEW_KEY = (slice(1, 10), slice(None), slice(2, 13), slice(3, 26))


def _build(kind: str, tmp_path, img) -> ImageReader:
    import lazyspheres as ls

    if kind == "nii-memmap":
        return NiftiFile.open(write(img, tmp_path / "r.nii")).reader
    if kind == "nii-ranges":
        import fsspec

        path = write(img, tmp_path / "r.nii")
        url = f"memory://conformance/{tmp_path.name}/r.nii"
        with fsspec.open(url, "wb") as handle:
            handle.write(path.read_bytes())
        return NiftiFile.open(url).reader
    if kind in ("gz-indexed", "gz-stream"):
        return NiftiFile.open(write(img, tmp_path / "r.nii.gz")).reader
    if kind == "zarr-chunks":
        source = write(img, tmp_path / "r.nii.gz")
        store = ls.to_zarr_image(source, tmp_path / "r.zarr", chunks=(4, 3, 5, 6))
        return reader_of(ls.open_nifti(store))
    data = da.from_array(np.asanyarray(img.dataobj), chunks=(5, 4, 6, 7))
    return ArrayReader(data)


@pytest.fixture(params=KINDS)
def case(request, tmp_path, monkeypatch):
    """(kind, reader, expected values) for one reader kind, on a scaled int16 image."""
    return _case(request.param, tmp_path, monkeypatch)


def _view(kind: str, tmp_path, padded) -> tuple[ImageReader, np.ndarray]:
    """A view reader over a stored ``padded`` image, and its expected values."""
    path = write(padded, tmp_path / ("v.nii" if "nii" in kind else "v.nii.gz"))
    base = NiftiFile.open(path)
    stored = np.asanyarray(nib.load(path).dataobj)
    key = VIEW_KEY
    if kind == "view-gz-reversed":  # time runs backwards through stored volumes 25..3
        key = (*VIEW_KEY[:3], slice(25, 2, -1))
    view = view_of(base.reader, key)
    expected = stored[key]
    if kind == "view-cast-gz":
        view = cast_view(view, np.float64)
        expected = expected.astype(np.float64)
    return view, expected


@pytest.fixture(params=[kind for kind in KINDS if kind.startswith(("nii", "gz"))])
def nifti_case(request, tmp_path, monkeypatch):
    """The same, for the NIfTI readers only (those that stream time blocks)."""
    return _case(request.param, tmp_path, monkeypatch)


def _case(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("LAZYSPHERES_CACHE_DIR", str(tmp_path / "cache"))
    if kind == "gz-stream":  # no index can be built: the sequential fallback
        monkeypatch.setattr(gzindex, "index_available", lambda: False)
    if kind in VIEW_KINDS:
        dtype = np.float32 if "cast" in kind else np.int16
        padded = random_image(np.random.default_rng(4), PADDED, dtype, scaled=dtype != np.float32)
        view, expected = _view(kind, tmp_path, padded)
        assert isinstance(view, ViewReader)
        assert view.shape == SHAPE
        return kind, view, expected
    img = random_image(np.random.default_rng(3), SHAPE, np.int16, scaled=True)
    reference = write(img, tmp_path / "reference.nii")
    expected = np.asanyarray(nib.load(reference).dataobj)  # scaled: float64
    if kind == "dask-array":
        img = nib.Nifti1Image(expected, img.affine)
    reader = _build(kind, tmp_path, img)
    assert reader is not None
    return kind, reader, expected


def _quiet(kind):
    """The sequential gzip fallback warns (once) when a read starts past volume 0."""
    if kind == "gz-stream":
        return pytest.warns(Warning, match="inflates the file from its start")
    import contextlib

    return contextlib.nullcontext()


def test_shape_dtype_and_scaling(case):
    _kind, reader, expected = case
    assert tuple(reader.shape) == expected.shape
    assert np.dtype(reader.dtype) == expected.dtype
    assert reader.n_volumes == expected.shape[3]
    whole = reader.scale(reader.read_box(slice(None), slice(None), slice(None)))
    np.testing.assert_array_equal(whole, expected)
    assert whole.dtype == expected.dtype


@pytest.mark.parametrize("times", [(0, 1), (22, 23), (0, 23), (5, 17), (6, 12)])
def test_voxel_reads_at_time_boundaries(case, times):
    kind, reader, expected = case
    t0, t1 = times
    voxels = np.random.default_rng(t0 * 31 + t1).integers(0, SHAPE[:3], size=(17, 3))
    voxels[0] = (0, 0, 0)
    voxels[1] = np.array(SHAPE[:3]) - 1
    flat = np.ravel_multi_index(tuple(voxels.T), SHAPE[:3], order="F")
    want = expected[voxels[:, 0], voxels[:, 1], voxels[:, 2], t0:t1].T
    with _quiet(kind if t0 > 0 else None):
        by_ijk = reader.scale(np.asarray(reader.read_voxels(voxels, t0, t1)))
    np.testing.assert_array_equal(by_ijk, want)
    np.testing.assert_array_equal(reader.scale(np.asarray(reader.read_voxels(flat, t0, t1))), want)
    blocks = list(reader.iter_voxels(flat, t0, t1))
    assert [b[0] for b in blocks] == sorted(b[0] for b in blocks)
    assert blocks[0][0] == t0
    joined = np.concatenate([np.asarray(values) for _, values in blocks])
    np.testing.assert_array_equal(reader.scale(joined), want)


@pytest.mark.parametrize(
    "box",
    [
        (slice(0, 1), slice(None), slice(3, 7), slice(22, 23)),
        (slice(2, 9, 3), slice(1, 10, 2), slice(0, 11, 5), slice(4, 20, 3)),
        (slice(8, 9), slice(9, 10), slice(10, 11), slice(0, 23)),
        (slice(3, 3), slice(None), slice(None), slice(0, 4)),  # empty
    ],
)
def test_box_reads(case, box):
    kind, reader, expected = case
    with _quiet(kind if box[3].start else None):
        got = reader.scale(reader.read_box(*box))
    np.testing.assert_array_equal(got, expected[box])


def test_reader_array_basic_indexing(case):
    _kind, reader, expected = case
    array = ReaderArray(reader)
    assert array.shape == expected.shape
    assert array.dtype == expected.dtype
    np.testing.assert_array_equal(array[..., 0], expected[..., 0])
    np.testing.assert_array_equal(array[1, :, -1, 0:3], expected[1, :, -1, 0:3])


def test_pickle_round_trip(case):
    kind, reader, expected = case
    clone = pickle.loads(pickle.dumps(reader))
    assert type(clone) is type(reader)
    with _quiet(kind):
        got = clone.scale(clone.read_box(slice(None), slice(2, 5), slice(None), slice(3, 9)))
    np.testing.assert_array_equal(got, expected[:, 2:5, :, 3:9])


def test_gzip_reader_pickles_its_index(tmp_path, monkeypatch):
    """An indexed gzip reader carries its index: the clone reads without rebuilding it."""
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_CACHE", "0")
    img = random_image(np.random.default_rng(5), SHAPE, np.float32)
    reader = NiftiFile.open(write(img, tmp_path / "p.nii.gz")).reader
    reader.read_box(slice(None), slice(None), slice(None), slice(20, 21))  # builds the index
    assert reader.index is not None
    clone = pickle.loads(pickle.dumps(reader))
    monkeypatch.setattr(nifti_readers.gzaccess, "build_index", _forbidden)
    with gzindex.observe_reads() as reads:
        got = clone.read_box(slice(None), slice(None), slice(None), slice(20, 21))
    np.testing.assert_array_equal(got, np.asanyarray(img.dataobj)[..., 20:21])
    assert len(reads) == 1


def _forbidden(*args, **kwargs):
    raise AssertionError("the index was rebuilt")


@pytest.mark.slow
def test_reads_in_a_distributed_worker_process(tmp_path):
    """A gzip image pickled to a LocalCluster worker (processes) reads the same values."""
    distributed = pytest.importorskip("distributed")
    import lazyspheres as ls

    img = random_image(np.random.default_rng(6), SHAPE, np.int16, scaled=True)
    path = write(img, tmp_path / "w.nii.gz")
    image = ls.open_nifti(path, chunks={"time": 5})
    expected = np.asanyarray(nib.load(path).dataobj)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        reader = reader_of(image)
        got = client.submit(_read_middle, reader).result()
        np.testing.assert_array_equal(got, expected[..., 7:19])
        values = image.isel(time=slice(5, None)).compute().values
    np.testing.assert_array_equal(values, expected[..., 5:])


def _read_middle(reader):
    return reader.scale(reader.read_box(slice(None), slice(None), slice(None), slice(7, 19)))


@pytest.mark.parametrize("volumes_per_block", [1, 4, 7])
def test_reads_across_stream_blocks(nifti_case, monkeypatch, volumes_per_block):
    """Blocks of a few volumes: voxel reads and streaming passes cross block boundaries."""
    kind, reader, expected = nifti_case
    assert isinstance(reader, nifti_readers.NiftiReader)
    volume_bytes = int(np.prod(SHAPE[:3])) * reader.raw_dtype.itemsize
    monkeypatch.setattr(nifti_readers, "STREAM_BLOCK_BYTES", volumes_per_block * volume_bytes)
    small = pickle.loads(pickle.dumps(reader))  # rebuilt with the small blocks
    assert small.time_block == volumes_per_block
    voxels = np.random.default_rng(volumes_per_block).integers(0, SHAPE[:3], size=(25, 3))
    want = expected[voxels[:, 0], voxels[:, 1], voxels[:, 2]].T
    with _quiet(kind):
        got = small.scale(np.asarray(small.read_voxels(voxels, 2, 21)))
    np.testing.assert_array_equal(got, want[2:21])
    flat = np.ravel_multi_index(tuple(voxels.T), SHAPE[:3], order="F")
    starts, blocks = zip(*small.iter_gathered(flat, 0, SHAPE[3]), strict=True)
    if kind != "nii-ranges":  # byte ranges come in blocks of RANGE_BLOCK_BYTES instead
        assert list(starts) == list(range(0, SHAPE[3], volumes_per_block))
    np.testing.assert_array_equal(small.scale(np.concatenate(blocks)), want)
    whole = np.concatenate([b for _, b in small.iter_volume_blocks(0, SHAPE[3])])
    np.testing.assert_array_equal(
        small.scale(whole).reshape(SHAPE[3], -1), expected.reshape(-1, SHAPE[3], order="F").T
    )


@pytest.mark.parametrize("volumes_per_block", [1, 4, 7])
@pytest.mark.parametrize("kind", VIEW_KINDS)
def test_view_passes_across_stream_blocks(tmp_path, monkeypatch, kind, volumes_per_block):
    """A view's pass over its base file crosses the base's blocks with the right volumes."""
    monkeypatch.setenv("LAZYSPHERES_CACHE_DIR", str(tmp_path / "cache"))
    dtype = np.float32 if "cast" in kind else np.int16
    padded = random_image(np.random.default_rng(7), PADDED, dtype, scaled=dtype != np.float32)
    volume_bytes = int(np.prod(PADDED[:3])) * np.dtype(dtype).itemsize
    monkeypatch.setattr(nifti_readers, "STREAM_BLOCK_BYTES", volumes_per_block * volume_bytes)
    view, expected = _view(kind, tmp_path, padded)
    assert view.base.time_block == volumes_per_block
    voxels = np.random.default_rng(volumes_per_block).integers(0, SHAPE[:3], size=(25, 3))
    want = expected[voxels[:, 0], voxels[:, 1], voxels[:, 2]].T
    for start, stop in [(0, SHAPE[3]), (2, 21), (5, 6)]:
        blocks = list(view.iter_gathered(voxels, start, stop))
        assert blocks[0][0] == start
        got = view.scale(np.concatenate([values for _, values in blocks]))
        np.testing.assert_array_equal(got, want[start:stop])
    if kind != "view-gz-reversed":  # in order: one block out per base block touched
        starts = [t0 for t0, _ in view.iter_gathered(voxels)]
        assert len(starts) > 1 or volumes_per_block * 2 > SHAPE[3]
