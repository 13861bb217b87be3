"""Progress inside one ``.nii.gz`` run: the streaming pass as a chain of step tasks (#15)."""

from __future__ import annotations

import pickle
import warnings

import dask
import numpy as np
import pytest
from conftest import peak_traced_bytes, random_image, write
from dask.callbacks import Callback
from nilearn.maskers import NiftiSpheresMasker

import lazyspheres as ls
from lazyspheres import stream_chain
from lazyspheres.errors import LazySpheresWarning
from lazyspheres.io import reader as io_reader
from lazyspheres.io.readers import nifti as nifti_readers

SEEDS = [[-1.0, 0.0, -1.0], [7.0, 8.0, 7.0], [-5.0, 8.0, 3.0]]  # voxels (3,4,4) (7,8,8) (1,8,6)
VOLUME_BYTES = 10 * 10 * 10 * 4  # float32 volumes of the test images


@pytest.fixture
def small_blocks(monkeypatch):
    """Reader blocks of 4 volumes, so that small test files stream in many blocks."""

    def set_blocks(volumes, chain_volumes=None):
        monkeypatch.setattr(io_reader, "STREAM_BLOCK_BYTES", volumes * VOLUME_BYTES)
        chain = volumes if chain_volumes is None else chain_volumes
        monkeypatch.setattr(nifti_readers, "STREAM_BLOCK_BYTES", chain * VOLUME_BYTES)

    set_blocks(4)
    return set_blocks


def _gz(tmp_path, rng, n_volumes, name="run.nii.gz"):
    return write(random_image(rng, shape=(10, 10, 10, n_volumes)), tmp_path / name)


class _Finished(Callback):
    """Records the keys of finished tasks, in order (what Dask's ProgressBar counts)."""

    def __init__(self):
        super().__init__()
        self.keys = []

    def _posttask(self, key, result, dsk, state, worker_id):
        self.keys.append(key)


def _step_keys(keys):
    return [k for k in keys if isinstance(k, tuple) and "-step-" in str(k[0])]


def test_progress_moves_step_by_step_in_one_run(tmp_path, rng, small_blocks, inflate_opens):
    path = _gz(tmp_path, rng, 60)
    signals = ls.extract(path, SEEDS, 3.0)
    assert inflate_opens == []  # building reads nothing
    with _Finished() as finished:
        signals.compute()
    steps = _step_keys(finished.keys)
    assert len(steps) == 15  # 60 volumes in blocks of 4: one step each
    assert [k[1] for k in steps] == list(range(15))  # in order, one at a time
    assert len(finished.keys) > 2 * len(steps)  # each step also hands out its rows
    assert len(inflate_opens) == 1  # one pass, never re-inflated


def test_progress_bar_reaches_the_end(tmp_path, rng, small_blocks, capsys):
    from dask.diagnostics import ProgressBar

    path = _gz(tmp_path, rng, 24)
    with ProgressBar(minimum=0, dt=0.001):
        ls.extract(path, SEEDS, 3.0).compute()
    assert "100% Completed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("reader_block", "chain_block", "n_volumes"),
    [(4, 4, 60), (4, 4, 61), (3, 4, 50), (4, 3, 50), (1, 1, 9)],
)
def test_chained_values_equal_single_task(
    tmp_path, rng, small_blocks, reader_block, chain_block, n_volumes
):
    path = _gz(tmp_path, rng, n_volumes)
    small_blocks(reader_block, chain_block)  # misaligned steps hand over partial blocks
    chained = ls.extract(path, SEEDS, 3.0)
    assert chained.data.npartitions == 1
    with dask.config.set(scheduler="sync"):
        chained = chained.values
    small_blocks(10**6)  # one block: the single-task pass
    single = ls.extract(path, SEEDS, 3.0).values
    np.testing.assert_array_equal(chained, single)


def test_chained_values_equal_nilearn(tmp_path, rng, small_blocks):
    path = _gz(tmp_path, rng, 33)
    ours = ls.extract(path, SEEDS, 3.0).values
    theirs = NiftiSpheresMasker(SEEDS, radius=3.0).fit_transform(str(path))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_memory_as_the_single_task_pass(tmp_path, rng, small_blocks, monkeypatch):
    path = _gz(tmp_path, rng, 1000)  # 4 MB of volumes, in 100 steps of 10 reader blocks
    # ISA-L's threaded reader queues inflated blocks in its own thread, and how many are
    # alive at the peak depends on timing (up to ~1 MB more in CI); the single-threaded
    # inflater leaves only what the chain itself holds to compare.
    monkeypatch.setenv("LAZYSPHERES_INFLATE", "zlib")
    chained = peak_traced_bytes(ls.extract(path, SEEDS, 3.0))
    monkeypatch.setattr(stream_chain, "MAX_STEPS", 1)
    single = ls.extract(path, SEEDS, 3.0)
    assert not _step_keys(single.data.__dask_graph__().keys())
    # the chain keeps one reader block at a time too: only its graph and rows (~0.4 MB) add
    assert chained - peak_traced_bytes(single) < 1_000_000, (chained, single)


def test_nonfinite_warned_once_with_the_total(tmp_path, rng, small_blocks):
    img = random_image(rng, shape=(10, 10, 10, 20))
    data = np.asarray(img.dataobj).copy()
    data[7, 8, 8, [1, 9, 17]] = np.nan  # the centre of seed #1, in three steps
    path = write(type(img)(data, img.affine, img.header), tmp_path / "nan.nii.gz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ls.extract(path, SEEDS, 3.0).compute()
    messages = [str(w.message) for w in caught if "Non-finite" in str(w.message)]
    assert len(messages) == 1
    assert "3 NaN/inf value(s)" in messages[0]


def test_one_task_when_built_for_processes(tmp_path, rng, small_blocks):
    path = _gz(tmp_path, rng, 60)
    with dask.config.set(scheduler="processes"):
        signals = ls.extract(path, SEEDS, 3.0)
        assert not _step_keys(signals.data.__dask_graph__().keys())
        values = signals.values
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(values, ls.extract(path, SEEDS, 3.0).values)


def test_pickled_cursor_reopens_at_its_position(tmp_path, rng, small_blocks, inflate_opens):
    path = _gz(tmp_path, rng, 20)
    expected = ls.extract(path, SEEDS, 3.0).values
    signals = ls.extract(path, SEEDS, 3.0)
    graph = dict(signals.data.__dask_graph__())
    first = next(k for k in _step_keys(graph) if k[1] == 0)
    cursor, rows = dask.get(graph, first)
    moved = pickle.loads(pickle.dumps(cursor))  # as if sent to another process
    cursor.close()
    with warnings.catch_warnings():  # reopening past volume 0 may warn of the cost
        warnings.simplefilter("ignore", LazySpheresWarning)
        rest = moved.advance(20)
    assert moved.reopened
    joined = np.concatenate([rows, rest]).astype(expected.dtype)  # extract's output dtype
    np.testing.assert_array_equal(joined, expected)


def test_step_bounds_cap_and_cover():
    assert stream_chain.step_bounds(300, 8) == [*range(0, 300, 8), 300]
    bounds = stream_chain.step_bounds(10_000, 3)
    assert len(bounds) - 1 <= stream_chain.MAX_STEPS
    assert bounds[0] == 0
    assert bounds[-1] == 10_000
    assert all(b % 3 == 0 for b in bounds[:-1])  # steps end on reader blocks
    assert stream_chain.step_bounds(50, 4, max_steps=1) == [0, 50]
