"""The masker is lazy: fit reads headers only, transform reads a ``.nii.gz`` in one streaming
pass (one Dask compute), and memory stays flat as the number of volumes grows."""

from __future__ import annotations

import tracemalloc

import dask
import nibabel as nib
import numpy as np
import pytest
from dask.callbacks import Callback

from lazyspheres import NiftiSpheresMasker
from lazyspheres.io import backend, reader

SEEDS = [(10.0, 10.0, 10.0), (20.0, 12.0, 16.0), (6.0, 24.0, 20.0)]


class CountComputes(Callback):
    """Counts the Dask graphs executed."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def _start(self, dsk):
        self.count += 1


@pytest.fixture
def counters(monkeypatch, inflate_opens):
    """Inflate passes opened (the shared fixture's list) and chunks read by Dask tasks."""
    counts = {"inflate": inflate_opens, "chunks": 0}
    real_getitem = backend.NiftiChunkReader.__getitem__

    def counting_getitem(self, key):
        counts["chunks"] += 1
        return real_getitem(self, key)

    monkeypatch.setattr(backend.NiftiChunkReader, "__getitem__", counting_getitem)
    return counts


@pytest.fixture
def gz_path(tmp_path, rng):
    path = tmp_path / "run.nii.gz"
    data = rng.standard_normal((32, 32, 32, 24)).astype(np.float32) + 100
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def test_fit_reads_headers_only(gz_path, counters):
    masker = NiftiSpheresMasker(SEEDS, radius=4.0, reports=True).fit(gz_path)
    assert counters == {"inflate": [], "chunks": 0}  # not even the report's middle volume
    assert masker.n_elements_ == 3


@pytest.mark.parametrize(
    "params",
    [{}, {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.2, "t_r": 2.0},
     {"smoothing_fwhm": 4.0}],
)  # fmt: skip
def test_transform_inflates_the_file_once_in_one_compute(gz_path, counters, params):
    masker = NiftiSpheresMasker(SEEDS, radius=4.0, **params).fit()
    with CountComputes() as computes, dask.config.set(scheduler="threads"):
        signals = masker.transform(str(gz_path))
    assert len(counters["inflate"]) == 1  # one streaming pass over the DEFLATE stream
    assert counters["chunks"] == 0  # no per-chunk re-inflation
    assert computes.count == 1
    reference = NiftiSpheresMasker(SEEDS, radius=4.0, **params).fit_transform(nib.load(gz_path))
    np.testing.assert_array_equal(signals, reference)


def test_high_variance_confounds_stream_the_file_too(gz_path, counters):
    masker = NiftiSpheresMasker(SEEDS, radius=4.0, high_variance_confounds=True).fit()
    with (
        dask.config.set(scheduler="threads"),
        pytest.warns(DeprecationWarning, match="The default strategy for standardize"),
    ):  # confounds are z-scored with nilearn 0.12.1's population std, which it deprecates
        masker.transform(gz_path)
    # two passes for the confounds (moments, then the kept voxels), one for the spheres
    assert len(counters["inflate"]) == 3
    assert counters["chunks"] == 0


def _peak(path, monkeypatch):
    monkeypatch.setattr(reader, "STREAM_BLOCK_BYTES", 4 * 40**3 * 4)
    masker = NiftiSpheresMasker(
        [(20.0, 20.0, 20.0), (10.0, 30.0, 12.0)], radius=5.0, detrend=True
    ).fit()
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="sync"):
            masker.transform(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_flat_in_the_number_of_volumes(tmp_path, rng, monkeypatch):
    peaks = {}
    for n_volumes in (40, 160):
        data = rng.standard_normal((40, 40, 40, n_volumes)).astype(np.float32)
        path = tmp_path / f"t{n_volumes}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        del data
        peaks[n_volumes] = _peak(path, monkeypatch)
    # (the streaming reader's own buffers are a constant ~15 MB, as for extract alone)
    image_bytes = 40**3 * 160 * 4
    assert peaks[160] < image_bytes / 2, peaks  # never the whole image
    assert peaks[160] < 1.3 * peaks[40] + 2**20, peaks  # 4x the volumes, same peak


def test_in_memory_images_are_not_copied_whole(rng):
    """In-memory images (and lists of them) are gathered in place, without a whole copy."""
    data = rng.standard_normal((40, 40, 40, 30))  # float64, 15 MB
    img = nib.Nifti1Image(data, np.eye(4))
    volumes = [nib.Nifti1Image(data[..., t], np.eye(4)) for t in range(30)]
    masker = NiftiSpheresMasker([(20.0, 20.0, 20.0)], radius=5.0).fit()
    expected = masker.transform(img)  # also warms up imports and caches
    for imgs in (img, volumes):
        tracemalloc.start()
        try:
            out = masker.transform(imgs)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < data.nbytes / 4
        np.testing.assert_array_equal(out, expected)
