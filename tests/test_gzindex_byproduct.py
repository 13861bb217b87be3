"""The gzip index as a by-product of extract's first pass (``LAZYSPHERES_GZINDEX_BYPRODUCT``).

The run is float32 noise (it barely compresses), so the recorded index holds many seek
points; stream blocks are cut to 7 volumes, so reads cross both kinds of boundary. Values
are compared with nilearn 0.12.1 (extraction) and nibabel (single volumes).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import random_image, write

import lazyspheres as ls
from lazyspheres.io import gzindex
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


def _no_pass_from_the_start(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a read inflated the file from its start")

    monkeypatch.setattr(nifti, "skip", refuse)


@pytest.mark.nilearn
def test_first_pass_records_the_index_and_later_reads_use_it(run, monkeypatch, inflate_opens):
    path, expected = run
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_BYPRODUCT", "1")
    image = ls.open_nifti(path)
    signals = ls.extract(image, SEEDS, RADIUS).values
    np.testing.assert_allclose(signals, expected, rtol=1e-6)
    assert [type(stream) for stream in inflate_opens] == [gzindex.IndexingInflater]

    index = reader_of(image).index
    assert index is not None
    assert len(index.points) > 5  # seek points ~2 MiB of compressed bytes apart
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
    # only indexed reads were opened (rapidgzip over the index), no streaming pass
    assert inflate_opens
    assert {type(stream).__name__ for stream in inflate_opens} == {"RapidgzipFile"}


@pytest.mark.nilearn
@pytest.mark.parametrize(
    ("default", "value", "records"),
    [
        (False, None, False),  # off by default (as shipped)
        (False, "off", False),
        (False, "1", True),
        (True, None, True),  # on by default...
        (True, "0", False),  # ...the variable still turns it off
    ],
)
def test_recording_follows_the_variable_then_the_default(
    run, monkeypatch, inflate_opens, default, value, records
):
    path, expected = run
    monkeypatch.setattr(gzaccess, "RECORD_BY_DEFAULT", default)
    if value is None:
        monkeypatch.delenv("LAZYSPHERES_GZINDEX_BYPRODUCT", raising=False)
    else:
        monkeypatch.setenv("LAZYSPHERES_GZINDEX_BYPRODUCT", value)
    image = ls.open_nifti(path)
    np.testing.assert_allclose(ls.extract(image, SEEDS, RADIUS).values, expected, rtol=1e-6)
    recorded = [s for s in inflate_opens if isinstance(s, gzindex.IndexingInflater)]
    assert len(recorded) == records
    assert (reader_of(image).index is not None) == records


@pytest.mark.nilearn
def test_without_rapidgzip_the_pass_records_nothing(run, monkeypatch, inflate_opens):
    path, expected = run
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_BYPRODUCT", "1")
    monkeypatch.setattr(gzindex, "index_available", lambda: False)
    image = ls.open_nifti(path)
    np.testing.assert_allclose(ls.extract(image, SEEDS, RADIUS).values, expected, rtol=1e-6)
    assert not [s for s in inflate_opens if isinstance(s, gzindex.IndexingInflater)]
    assert reader_of(image).index is None
