"""Shared fixtures: small generated images written to disk in every storage variant."""

from __future__ import annotations

import os
import threading
import tracemalloc

import dask
import nibabel as nib
import numpy as np
import pytest

# The machine running CI has 2 cores; keep BLAS from oversubscribing them under xdist.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _private_index_cache(tmp_path_factory):
    """Keep the gzip indexes that streaming passes record out of the user's own cache.

    (Each xdist worker gets its own directory; subprocesses inherit it.)
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAZYSPHERES_CACHE_DIR", str(tmp_path_factory.mktemp("user-cache")))
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def random_image(
    rng,
    shape=(7, 8, 9, 12),
    dtype=np.float32,
    affine=None,
    t_r=2.0,
    scaled=False,
    nifti2=False,
):
    """A nibabel image with random values of ``dtype`` (integers span a realistic range)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        data = (rng.standard_normal(shape) * 50 + 1000).astype(dtype)
    elif dtype.kind == "u":
        data = rng.integers(0, np.iinfo(dtype).max // 2, size=shape).astype(dtype)
    else:
        data = rng.integers(-1000, 3000, size=shape).astype(dtype)
    if affine is None:
        affine = np.diag([2.0, 2.0, 2.0, 1.0])
        affine[:3, 3] = [-7.0, -8.0, -9.0]
    klass = nib.Nifti2Image if nifti2 else nib.Nifti1Image
    img = klass(data, affine)
    img.header.set_data_dtype(dtype)
    if len(shape) == 4:
        img.header.set_zooms((*img.header.get_zooms()[:3], t_r))
        img.header.set_xyzt_units("mm", "sec")
    if scaled:
        img.header.set_slope_inter(0.5, 10.0)
    return img


def write(img, path):
    nib.save(img, str(path))
    return path


class CountingArray:
    """A numpy array that records the boxes Dask reads from it, as ``((start, stop), ...)``."""

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.reads = []
        self._lock = threading.Lock()

    def __getitem__(self, key):
        with self._lock:
            self.reads.append(tuple((k.start, k.stop) for k in key))
        return self.array[key]


@pytest.fixture
def inflate_opens(monkeypatch):
    """The inflated streams the NIfTI reader opens during the test, in order.

    Counts sequential passes (plain, or recording the gzip index) and indexed reads.
    """
    from lazyspheres.io import gzindex, gzindex_isal, inflate
    from lazyspheres.io.readers import gzaccess, nifti

    opened = []

    def counting(real):
        def counting_open(*args, **kwargs):
            stream = real(*args, **kwargs)
            opened.append(stream)
            return stream

        return counting_open

    monkeypatch.setattr(nifti, "open_inflated", counting(inflate.open_inflated))
    monkeypatch.setattr(gzaccess, "open_inflated", counting(inflate.open_inflated))
    monkeypatch.setattr(gzindex, "open_indexing", counting(gzindex.open_indexing))
    monkeypatch.setattr(gzindex_isal, "open_recording", counting(gzindex_isal.open_recording))
    monkeypatch.setattr(gzindex, "open_indexed", counting(gzindex.open_indexed))
    return opened


def peak_traced_bytes(lazy):
    """Peak Python-traced memory while ``lazy`` is computed on the synchronous scheduler."""
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="sync"):
            lazy.compute()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
