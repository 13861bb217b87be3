"""High-variance confounds: parameters, streaming maths, laziness, I/O and bounded memory.

Values against nilearn are in ``test_hv_confounds_nilearn.py``.
"""

from __future__ import annotations

import pickle

import dask
import dask.array as da
import nibabel as nib
import numpy as np
import pytest
from conftest import peak_traced_bytes

import lazyspheres as ls
from lazyspheres.errors import DimensionError
from lazyspheres.high_variance import high_variance_confounds, moments, reads, store
from lazyspheres.high_variance.moments import (
    VoxelMoments,
    confounds_dtype,
    gram_of_blocks,
    select_voxels,
)
from lazyspheres.high_variance.store import RowStore
from lazyspheres.io import reader
from lazyspheres.testing import raise_if_dask_computes


def _run(rng, shape=(10, 9, 8), n_volumes=20, dtype=np.float32):
    data = rng.standard_normal((*shape, n_volumes)) * 10 + 500
    data[:2] += rng.standard_normal((2, *shape[1:], n_volumes)) * 60  # high-variance slab
    return nib.Nifti1Image(data.astype(dtype), np.eye(4))


# ------------------------------------------------------------------------------ parameters
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"detrend": 1}, TypeError, r"'detrend' should be of type '<class 'bool'>'.\nGot: "),
        ({"detrend": "yes"}, TypeError, "'detrend' should be of type"),
        ({"percentile": 150.0}, ValueError, r"Percentiles must be in the range \[0, 100\]"),
        ({"percentile": -1}, ValueError, "Percentiles must be in the range"),
        ({"percentile": "2"}, TypeError, "'percentile' must be a number"),
        ({"n_confounds": 0}, ValueError, "'n_confounds' must be at least 1"),
        ({"n_confounds": 2.5}, TypeError, "'n_confounds' must be an integer"),
    ],
)
def test_bad_parameters(rng, kwargs, error, match):
    with pytest.raises(error, match=match):
        high_variance_confounds(_run(rng), **kwargs)


def test_three_d_images_are_refused_with_nilearns_phrase(rng):
    volume = nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4))
    with pytest.raises(DimensionError, match="Expected dimension is 4D and you provided a 3D"):
        high_variance_confounds(volume)
    with pytest.raises(DimensionError, match="Item 1 of the list is a 4D image"):
        high_variance_confounds([volume, _run(rng, (4, 5, 6), 3)])
    with pytest.raises(ValueError, match="must share one grid"):
        high_variance_confounds([volume, nib.Nifti1Image(np.zeros((4, 5, 7)), np.eye(4))])
    with pytest.raises(TypeError, match="Cannot concatenate empty objects"):
        high_variance_confounds([])


def test_dtypes_are_nilearns():
    for dtype, expected in {
        np.float32: np.float32,
        np.float64: np.float64,
        np.int16: np.float32,
        np.uint8: np.float32,
        np.int32: np.float32,
        np.int64: np.float64,
        np.float16: np.float64,  # as_float_array: not float32/64 -> float64
    }.items():
        assert confounds_dtype(np.dtype(dtype)) == expected


# ------------------------------------------------------------------------------ streaming maths
def test_moments_give_the_detrended_mean_of_squares(rng):
    n_volumes = 37
    series = rng.standard_normal((n_volumes, 50)) * 3 + 1e4  # large offset: no cancellation
    series += np.outer(np.arange(n_volumes), rng.standard_normal(50))
    times = np.arange(n_volumes) - (n_volumes - 1) / 2
    design = np.stack([np.ones(n_volumes), times], axis=1)
    residual = series - design @ np.linalg.lstsq(design, series, rcond=None)[0]
    expected = np.mean(residual**2, axis=0)
    # any split of the volumes, added in any order, gives the same numbers
    for splits in ([37], [5, 12, 20], [1] * 37):
        parts = []
        start = 0
        for size in splits:
            part = VoxelMoments.start(series[0], n_volumes, detrend=True)
            part.update(start, series[start : start + size])
            parts.append(part)
            start += size
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        np.testing.assert_allclose(total.mean_square(), expected, rtol=1e-10)
        kept = total.selected(np.ones(50, dtype=bool))
        np.testing.assert_allclose(kept.detrended(0, series), residual, atol=1e-8)


def test_without_detrend_the_mean_of_squares_is_raw(rng):
    series = rng.standard_normal((9, 7)) + 2
    moments = VoxelMoments.start(series[0], 9, detrend=False)
    moments.update(0, series)
    np.testing.assert_allclose(moments.mean_square(), np.mean(series**2, axis=0), rtol=1e-13)


def test_nan_voxels_are_never_selected():
    values = np.array([1.0, np.nan, 5.0, 3.0, np.nan, 10.0])
    assert select_voxels(values, 20.0).tolist() == [False, False, False, False, False, True]
    assert not select_voxels(np.full(4, np.nan), 2.0).any()


def test_gram_of_blocks_equals_the_full_product(rng):
    rows = rng.standard_normal((23, 11))
    bounds = [(0, 5), (5, 6), (6, 17), (17, 23)]
    loads = []

    def load(block):
        loads.append(block)
        return rows[slice(*bounds[block])]

    np.testing.assert_allclose(gram_of_blocks(4, load, 23), rows @ rows.T, rtol=1e-13)
    assert sorted(loads) == [0, 0, 0, 0, 1, 1, 1, 2, 2, 3]  # block a loaded a + 1 times


@pytest.mark.parametrize("budget", [10**9, 100])
def test_row_store_in_memory_and_spilled(rng, budget):
    rows = rng.standard_normal((30, 7)).astype(">f4")  # big-endian as in some NIfTI files
    with RowStore(7, rows.dtype, memory_bytes=budget) as rowstore:
        for start in range(0, 30, 4):
            rowstore.append(rows[start : start + 4])
        assert rowstore.spilled == (budget == 100)
        np.testing.assert_array_equal(rowstore.rows(0, 30), rows)
        np.testing.assert_array_equal(rowstore.rows(9, 13), rows[9:13])
        with pytest.raises(IndexError):
            rowstore.rows(25, 31)
        spill = rowstore._file
    assert spill is None or spill.closed


# ------------------------------------------------------------------------------ laziness and I/O
@pytest.fixture
def files(tmp_path, rng):
    img = _run(rng, (14, 13, 12), 30)
    gz, nii = tmp_path / "a.nii.gz", tmp_path / "a.nii"
    nib.save(img, gz)
    nib.save(img, nii)
    return {"gz": gz, "nii": nii, "img": img}


@pytest.mark.parametrize("kind", ["gz", "nii", "dask", "list"])
def test_building_the_graph_computes_nothing(files, kind):
    expected = high_variance_confounds(ls.open_nifti(files["img"], chunks=None))
    assert isinstance(expected, np.ndarray)
    with raise_if_dask_computes():
        if kind in ("gz", "nii"):
            result = high_variance_confounds(files[kind])
        elif kind == "dask":
            image = ls.open_nifti(files["img"], chunks={"i": 5, "j": 4, "time": 8})
            result = high_variance_confounds(image)
        else:
            volumes = [files["img"].slicer[..., t] for t in range(30)]
            result = high_variance_confounds(volumes)
        assert isinstance(result, da.Array)
        assert result.shape == (30, 5)
    with dask.config.set(scheduler="threads"):
        values = result.compute()
    projector = values.astype(float) @ values.T.astype(float)
    np.testing.assert_allclose(projector, expected.astype(float) @ expected.T, atol=1e-6)


def test_gzip_is_one_task_and_two_inflates(files, inflate_opens):
    opened = inflate_opens
    result = high_variance_confounds(files["gz"])
    graph = dict(result.__dask_graph__())
    reading = [key for key in graph if "_stream_confounds" in str(key)]
    assert len(reading) == 1  # one task holds the whole stream
    assert opened == []
    with dask.config.set(scheduler="threads"):
        result.compute()
    assert len(opened) == 2  # moments, then the kept voxels


def test_uncompressed_file_is_read_blockwise(files):
    result = high_variance_confounds(files["nii"])
    names = [str(key) for key in dict(result.__dask_graph__())]
    assert sum("_moments_of_volumes" in name for name in names) == reads._LOCAL_TIME_BLOCKS
    assert any("_gram_of_kept_chunk" in name for name in names)


def test_graph_pickles_without_open_files(files):
    result = high_variance_confounds(files["gz"])
    clone = pickle.loads(pickle.dumps(result))
    np.testing.assert_array_equal(clone.compute(), result.compute())


def test_kept_voxels_spill_to_disk_beyond_the_budget(files, monkeypatch):
    reference = high_variance_confounds(files["gz"]).compute()
    spilled = []
    real_append = RowStore.append

    def spy(self, rows):
        real_append(self, rows)
        spilled.append(self.spilled)

    monkeypatch.setattr(store, "STORE_MEMORY_BYTES", 64)
    monkeypatch.setattr(reads, "GRAM_BLOCK_BYTES", 8 * 40 * 7)  # 7 rows per block
    monkeypatch.setattr(RowStore, "append", spy)
    monkeypatch.setattr(reader, "STREAM_BLOCK_BYTES", 3 * 14 * 13 * 12 * 4)
    result = high_variance_confounds(files["gz"]).compute()
    assert spilled
    assert spilled[-1]
    np.testing.assert_allclose(result @ result.T, reference @ reference.T, atol=1e-6)


def _peak_bytes(path):
    return peak_traced_bytes(high_variance_confounds(path))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_memory_is_flat_in_the_number_of_volumes(tmp_path, rng, suffix, monkeypatch):
    """3x the volumes: the same peak, up to the T x T matrices (T² · 8 bytes, a few)."""
    shape = (40, 40, 40)
    monkeypatch.setattr(reader, "STREAM_BLOCK_BYTES", 4 * 40**3 * 4)
    monkeypatch.setattr(reads, "_LOCAL_BLOCK_BYTES", 4 * 40**3 * 4)
    monkeypatch.setattr(store, "STORE_MEMORY_BYTES", 2**20)
    monkeypatch.setattr(moments, "_STEP_BYTES", 2**20)
    monkeypatch.setenv("LAZYSPHERES_INFLATE", "zlib")
    paths = {}
    for n_volumes in (30, 90):
        image = _run(rng, shape, n_volumes)
        paths[n_volumes] = tmp_path / f"t{n_volumes}{suffix}"
        nib.save(image, paths[n_volumes])
        del image
    _peak_bytes(paths[30])  # first call: imports and caches, not per-run memory
    peaks = {n: _peak_bytes(path) for n, path in paths.items()}
    matrices = 6 * 8 * (90**2 - 30**2)  # gram, its scaled copy, eigh work, partial sums
    assert peaks[90] < 1.2 * peaks[30] + matrices + 2**20, peaks
    assert peaks[90] < 0.75 * 40**3 * 90 * 4, peaks  # less than the image


class CountingArray:
    """A numpy array that counts how often Dask reads each of its chunks."""

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.reads = {}

    def __getitem__(self, key):
        box = tuple((k.start, k.stop) for k in key)
        self.reads[box] = self.reads.get(box, 0) + 1
        return self.array[key]


def test_dask_images_are_read_twice_not_held(rng):
    """Pass 2 re-reads every chunk: Dask does not keep pass 1's chunks for it."""
    data = np.asarray(_run(rng, (12, 10, 8), 24).dataobj)
    counting = CountingArray(data)
    lazy = da.from_array(counting, chunks=(6, 5, 8, 8), meta=np.empty((0,) * 4, data.dtype))
    image = ls.io.open.image_from_array(lazy, np.eye(4))
    with raise_if_dask_computes():
        result = high_variance_confounds(image)
    with dask.config.set(scheduler="threads"):
        values = result.compute()
    assert len(counting.reads) == 2 * 2 * 1 * 3  # every chunk ...
    assert set(counting.reads.values()) == {2}  # ... read once per pass
    expected = high_variance_confounds(
        ls.open_nifti(nib.Nifti1Image(data, np.eye(4)), chunks=None)
    )
    np.testing.assert_allclose(values @ values.T, expected @ expected.T, atol=1e-6)
