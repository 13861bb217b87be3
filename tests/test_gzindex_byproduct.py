"""The gzip index as a by-product of extract's first pass (``LAZYSPHERES_GZINDEX_BYPRODUCT``).

Both recording engines are tested: checkpoints of ISA-L's inflater (the default for local
files) and rapidgzip's sequential pass. The run is float32 noise (it barely compresses);
seek points are made dense (1 MiB of output apart for ISA-L, 2 MiB of input for rapidgzip)
and stream blocks are cut to 7 volumes, so reads cross both kinds of boundary. Values
are compared with nilearn 0.12.1 (extraction) and nibabel (single volumes).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import random_image, write

import lazyspheres as ls
from lazyspheres.errors import LazySpheresWarning
from lazyspheres.io import gzindex, gzindex_isal
from lazyspheres.io.readers import gzaccess, nifti
from lazyspheres.io.readers.lazy import reader_of

SHAPE = (40, 40, 40, 60)
SEEDS = [[-20.0, -10.0, 4.0], [10.0, 12.0, -6.0], [30.0, 30.0, 30.0]]
RADIUS = 6.0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The file and nilearn's signals for it."""
    from nilearn.maskers import NiftiSpheresMasker

    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -40.0
    img = random_image(np.random.default_rng(5), SHAPE, np.float32, affine=affine)
    path = write(img, tmp_path_factory.mktemp("byproduct") / "run.nii.gz")
    expected = NiftiSpheresMasker(SEEDS, radius=RADIUS).fit_transform(nib.load(path))
    return path, np.asarray(expected, dtype=np.float64)


@pytest.fixture(autouse=True)
def small_blocks(tmp_path, monkeypatch):
    """A private index cache, and stream blocks of 7 volumes."""
    monkeypatch.setenv("LAZYSPHERES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(nifti, "STREAM_BLOCK_BYTES", 7 * int(np.prod(SHAPE[:3])) * 4)


RECORDERS = {"isal": gzindex_isal.RecordingInflater, "rapidgzip": gzindex.IndexingInflater}


@pytest.fixture(params=sorted(RECORDERS))
def engine(request, monkeypatch):
    """The recording engine: ISA-L checkpoints 1 MiB apart, or rapidgzip (ISA-L's off)."""
    if request.param == "isal":
        monkeypatch.setattr(gzindex_isal, "SPACING", 2**20)
    else:
        monkeypatch.setattr(gzindex_isal, "available", lambda: False)
    return request.param


def _recorders(opened):
    return [s for s in opened if isinstance(s, tuple(RECORDERS.values()))]


def _recorded_as_shipped(run, monkeypatch):
    """The image after extract's first pass with the defaults (ISA-L checkpoints, 1 MiB
    apart here), checked against nilearn; the index it recorded."""
    path, expected = run
    monkeypatch.delenv("LAZYSPHERES_GZINDEX_BYPRODUCT", raising=False)
    monkeypatch.setattr(gzindex_isal, "SPACING", 2**20)
    image = ls.open_nifti(path)
    np.testing.assert_allclose(ls.extract(image, SEEDS, RADIUS).values, expected, rtol=1e-6)
    index = reader_of(image).index
    assert isinstance(index, gzindex.CheckpointIndex)
    return image, index


def _no_pass_from_the_start(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a read inflated the file from its start")

    monkeypatch.setattr(nifti, "skip", refuse)


@pytest.mark.nilearn
def test_first_pass_records_the_index_and_later_reads_use_it(
    run, monkeypatch, inflate_opens, engine
):
    path, expected = run
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_BYPRODUCT", "1")
    image = ls.open_nifti(path)
    signals = ls.extract(image, SEEDS, RADIUS).values
    np.testing.assert_allclose(signals, expected, rtol=1e-6)
    assert [type(stream) for stream in inflate_opens] == [RECORDERS[engine]]
    index = reader_of(image).index
    assert index is not None
    assert len(index.points) > 5
    if engine == "isal":  # 1 MiB apart here (16 MiB as shipped): bound each checkpoint
        assert max(len(blob) for blob in index.blobs) < 48 * 1024  # ≤ 32 KiB of history
    else:
        assert len(index.to_bytes()) < 0.02 * path.stat().st_size
    fresh = ls.open_nifti(path)  # persisted: a second open finds it in the cache
    assert gzaccess.cached_index(reader_of(fresh).source) == index

    # Volumes on both sides of seek points and of stream blocks: read through the index only.
    _no_pass_from_the_start(monkeypatch)
    inflate_opens.clear()
    stored = np.asanyarray(nib.load(path).dataobj)
    volume_bytes = int(np.prod(SHAPE[:3])) * 4
    edges = [offset // volume_bytes for _, offset in index.points[1:4]] + [7, 14, 21]
    for t in sorted({t for edge in edges for t in (edge - 1, edge) if 0 <= t < SHAPE[3]}):
        with gzindex.observe_reads() as reads:
            volume = image.isel(time=t).values
        np.testing.assert_array_equal(volume, stored[..., t])
        [read] = reads
        assert read.inflate_from == index.seek_point(read.start)[1]
        assert read.start - read.inflate_from < 3 * 2**20  # from the seek point, not byte 0
    # no streaming pass; rapidgzip's index is read through rapidgzip, ISA-L's directly
    opened = {type(stream).__name__ for stream in inflate_opens}
    assert opened == ({"RapidgzipFile"} if engine == "rapidgzip" else set())


@pytest.mark.nilearn
@pytest.mark.parametrize(
    ("default", "value", "records"),
    [
        (False, None, {"isal": False, "rapidgzip": False}),
        (False, "off", {"isal": False, "rapidgzip": False}),
        (False, "1", {"isal": True, "rapidgzip": True}),
        (True, None, {"isal": True, "rapidgzip": False}),  # on by default where ISA-L records
        (True, "0", {"isal": False, "rapidgzip": False}),  # the variable still turns it off
    ],
)
def test_recording_follows_the_variable_then_the_default(
    run, monkeypatch, inflate_opens, engine, default, value, records
):
    path, expected = run
    monkeypatch.setattr(gzaccess, "RECORD_BY_DEFAULT", default)
    if value is None:
        monkeypatch.delenv("LAZYSPHERES_GZINDEX_BYPRODUCT", raising=False)
    else:
        monkeypatch.setenv("LAZYSPHERES_GZINDEX_BYPRODUCT", value)
    image = ls.open_nifti(path)
    np.testing.assert_allclose(ls.extract(image, SEEDS, RADIUS).values, expected, rtol=1e-6)
    assert len(_recorders(inflate_opens)) == records[engine]
    assert (reader_of(image).index is not None) == records[engine]


def test_recording_is_on_by_default_as_shipped(monkeypatch):
    monkeypatch.delenv("LAZYSPHERES_GZINDEX_BYPRODUCT", raising=False)
    assert gzaccess.RECORD_BY_DEFAULT
    assert gzindex_isal.available()  # python-isal is a test dependency here


@pytest.mark.nilearn
def test_without_rapidgzip_isal_still_records(run, monkeypatch, inflate_opens):
    path, expected = run
    monkeypatch.delenv("LAZYSPHERES_GZINDEX_BYPRODUCT", raising=False)
    monkeypatch.setattr(gzindex_isal, "SPACING", 2**20)
    monkeypatch.setattr(gzindex, "index_available", lambda: False)
    image = ls.open_nifti(path)
    np.testing.assert_allclose(ls.extract(image, SEEDS, RADIUS).values, expected, rtol=1e-6)
    assert [type(s) for s in inflate_opens] == [gzindex_isal.RecordingInflater]
    assert isinstance(reader_of(image).index, gzindex.CheckpointIndex)
    _no_pass_from_the_start(monkeypatch)
    t = SHAPE[3] - 2
    with gzindex.observe_reads() as reads:
        volume = image.isel(time=t).values
    np.testing.assert_array_equal(volume, np.asanyarray(nib.load(path).dataobj)[..., t])
    assert reads[0].inflate_from > 0


@pytest.mark.nilearn
def test_an_explicit_inflate_engine_is_respected(run, monkeypatch, inflate_opens):
    """``LAZYSPHERES_INFLATE=zlib`` streams with zlib: no ISA-L recording by default."""
    path, expected = run
    monkeypatch.delenv("LAZYSPHERES_GZINDEX_BYPRODUCT", raising=False)
    monkeypatch.setenv("LAZYSPHERES_INFLATE", "zlib")
    image = ls.open_nifti(path)
    np.testing.assert_allclose(ls.extract(image, SEEDS, RADIUS).values, expected, rtol=1e-6)
    assert not _recorders(inflate_opens)
    assert [type(s).__name__ for s in inflate_opens] == ["_InflateReader"]


@pytest.mark.nilearn
def test_sliced_extract_reads_through_the_recorded_index(run, monkeypatch):
    """After the recording pass, an extract of a modified image equals nilearn's and never
    inflates from the start of the file: each chunk read starts at a nearby checkpoint."""
    _, expected = run
    image, index = _recorded_as_shipped(run, monkeypatch)
    _no_pass_from_the_start(monkeypatch)
    with gzindex.observe_reads() as reads:
        # (a view skipping most of the file: indexed reads pay, view._index_pays)
        sliced = ls.extract(image.isel(time=slice(45, None)), SEEDS, RADIUS).values
    np.testing.assert_allclose(sliced, expected[45:], rtol=1e-6)
    assert reads
    for read in reads:
        assert read.inflate_from == index.seek_point(read.start)[1]
        assert read.start - read.inflate_from < 2 * 2**20


@pytest.mark.nilearn
def test_without_either_engine_the_pass_records_nothing(run, monkeypatch, inflate_opens):
    path, expected = run
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_BYPRODUCT", "1")
    monkeypatch.setattr(gzindex, "index_available", lambda: False)
    monkeypatch.setattr(gzindex_isal, "available", lambda: False)
    image = ls.open_nifti(path)
    np.testing.assert_allclose(ls.extract(image, SEEDS, RADIUS).values, expected, rtol=1e-6)
    assert not _recorders(inflate_opens)
    assert reader_of(image).index is None


@pytest.mark.nilearn
def test_stale_checkpoint_index_is_refused_and_rebuilt(run, monkeypatch):
    """An index recorded by another python-isal is never used: rapidgzip rebuilds it."""
    path, _ = run
    _recorded_as_shipped(run, monkeypatch)  # records and caches the index
    monkeypatch.setattr(gzindex_isal, "engine_signature", lambda: "isal-0.0.0/1")
    image = ls.open_nifti(path)
    assert reader_of(image).index is None  # the cached entry is stale
    with gzindex.observe_reads() as reads:
        volume = image.isel(time=30).values
    np.testing.assert_array_equal(volume, np.asanyarray(nib.load(path).dataobj)[..., 30])
    assert isinstance(reader_of(image).index, gzindex.GzipIndex)  # rebuilt on demand
    assert reads[0].inflate_from > 0


@pytest.mark.nilearn
def test_stale_pickled_index_falls_back_with_the_warning(run, monkeypatch):
    path, _ = run
    image, index = _recorded_as_shipped(run, monkeypatch)
    monkeypatch.setattr(gzindex_isal, "engine_signature", lambda: "isal-0.0.0/1")
    monkeypatch.setattr(gzindex, "_FALLBACK_WARNED", type(gzindex._FALLBACK_WARNED)())
    with pytest.warns(LazySpheresWarning, match="not usable with this python-isal"):
        data = gzindex.read_range(gzaccess.opener(reader_of(image).source), index, 10, 20)
    assert data == gzip_bytes(path)[10:20]


def gzip_bytes(path):
    import gzip

    return gzip.decompress(path.read_bytes())
