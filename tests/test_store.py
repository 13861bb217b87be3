"""The result store itself: refusal of foreign stores, a longer resumed run, opening checks."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr
from batch_helpers import world_seeds

import lazyspheres as ls
from lazyspheres import datasets
from lazyspheres.batch.store import ResultStore
from lazyspheres.errors import IncompleteStoreError, StoreMismatchError


@pytest.fixture
def two_runs(tmp_path):
    paths = []
    for index, n_volumes in enumerate((12, 16)):
        path = tmp_path / f"sub-0{index + 1}_task-rest_bold.nii.gz"
        datasets.write_bold(path, n_volumes, shape=(20, 24, 20), seeds=None, random_state=index)
        paths.append(path)
    return paths


@pytest.fixture
def seeds(two_runs):
    import nibabel as nib

    return world_seeds(nib.load(two_runs[0]).affine)


def test_a_resumed_run_longer_than_the_store_grows_its_time_axis(tmp_path, two_runs, seeds):
    store = tmp_path / "r.zarr"
    first = ls.extract_many(two_runs, seeds, 3.0, store=store, progress=False)
    assert first.sizes["time"] == 16
    datasets.write_bold(two_runs[0], 20, shape=(20, 24, 20), seeds=None, random_state=7)

    ds = ls.extract_many(two_runs, seeds, 3.0, store=store, progress=False)
    assert ds.sizes["time"] == 20
    assert ds.n_volumes.values.tolist() == [20, 16]
    np.testing.assert_array_equal(ds.signals.values[0], ls.extract(two_runs[0], seeds, 3.0).values)
    np.testing.assert_array_equal(ds.signals.values[1, :16], first.signals.values[1])
    assert np.isnan(ds.signals.values[1, 16:]).all()
    assert ds.volume.values.tolist() == list(range(20))
    t_r = float(ds.t_r.values[0])  # the runs' header TR: time is in seconds
    np.testing.assert_array_equal(ds.time.values, np.arange(20) * t_r)
    assert ds.time.attrs["units"] == "s"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert xr.open_zarr(store).sizes["time"] == 20  # consolidated metadata follows


def test_foreign_stores_are_refused_and_missing_ones_named(tmp_path, two_runs, seeds):
    other = tmp_path / "other.zarr"
    xr.Dataset({"v": ("x", np.arange(3))}).to_zarr(other, consolidated=False)
    with pytest.raises(StoreMismatchError, match="is not a lazyspheres result store"):
        ls.extract_many(two_runs, seeds, 3.0, store=other, progress=False)
    with pytest.raises(StoreMismatchError, match="is not a lazyspheres result store"):
        ls.open_results(other)
    with pytest.raises(FileNotFoundError, match="no result store at"):
        ls.open_results(tmp_path / "missing.zarr")
    image = tmp_path / "image.zarr"
    ls.to_zarr_image(two_runs[0], image)
    with pytest.raises(StoreMismatchError, match="is not a lazyspheres result store"):
        ls.extract_many(two_runs, seeds, 3.0, store=image, progress=False)


def test_flags_are_the_truth_when_opening(tmp_path, two_runs, seeds):
    store = tmp_path / "r.zarr"
    ls.extract_many(two_runs, seeds, 3.0, store=store, progress=False)
    ResultStore(store).clear_flags([1])  # as after a crash while rewriting run 1
    ResultStore(store).set_attrs(complete=False)
    with pytest.raises(IncompleteStoreError, match=r"1 of 2 run\(s\) are not complete"):
        ls.open_results(store)
    partial = ls.open_results(store, allow_partial=True)
    assert np.isnan(partial.signals.values[1]).all()
    assert not np.isnan(partial.signals.values[0, :12]).any()

    ds = ls.extract_many(two_runs, seeds, 3.0, store=store, progress=False)
    assert ds.attrs["complete"] is True
    assert set(json.loads(ds.attrs["inputs"])) == {"sub-01_task-rest", "sub-02_task-rest"}


@pytest.mark.parametrize("block", [1, 1024])
def test_signals_are_one_object_per_run_and_the_state_one_per_block(
    tmp_path, two_runs, seeds, monkeypatch, block
):
    from lazyspheres.batch import store as store_module

    monkeypatch.setattr(store_module, "RUN_BLOCK", block)  # 1: as in a batch of many runs
    store = tmp_path / "r.zarr"
    ls.extract_many(two_runs, seeds, 3.0, store=store, progress=False)
    group = zarr.open_group(store, mode="r")
    assert group["signals"].chunks == (1, 16, 4)
    size = min(block, 2)
    for name in ("n_volumes", "t_r", "complete"):
        assert group[name].chunks == (size,)
    assert group["n_voxels"].chunks == (size, 4)
    assert "fingerprint" not in group  # the runs' input identities are the inputs attribute
    inputs = json.loads(group.attrs["inputs"])
    assert sorted(inputs) == ["sub-01_task-rest", "sub-02_task-rest"]
    assert inputs["sub-01_task-rest"]["image"]["location"].endswith("sub-01_task-rest_bold.nii.gz")
    assert group["complete"][:].tolist() == [True, True]
    assert group["n_volumes"][:].tolist() == [12, 16]
    # One radius for every seed: the radius array's fill value, with no chunk written.
    assert not (store / "radius" / "c").exists()
    assert (store / "x" / "c" / "0").exists()
    assert xr.open_zarr(store).radius.values.tolist() == [3.0] * 4


class FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, option, value):
        self.calls.append(("mallopt", option, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_recycle_buffers_only_under_distributed_malloc_settings(monkeypatch):
    from lazyspheres import _malloc

    fake = FakeLibc()
    monkeypatch.setattr(_malloc, "_libc", fake)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with _malloc.recycle_buffers():
        pass
    assert fake.calls == []  # glibc's dynamic thresholds already recycle: leave them

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # what distributed sets
    with _malloc.recycle_buffers():
        with _malloc.recycle_buffers():  # a second reading task in the same process
            pass
        assert fake.calls == [("mallopt", -3, 32 * 2**20), ("mallopt", -1, 256 * 2**20)]
    assert fake.calls[2:] == [
        ("mallopt", -3, 128 * 1024),  # glibc's fixed threshold once the variable is set
        ("mallopt", -1, 65536),
        ("malloc_trim", 0),  # freed memory back to the OS, as distributed wants
    ]


def test_a_template_interrupted_half_written_counts_as_unfinished(tmp_path, two_runs, seeds):
    import zarr

    from lazyspheres.batch.store import STORE_FORMAT, ResultStore

    empty = tmp_path / "empty.zarr"
    zarr.open_group(empty, mode="w")
    assert ResultStore(empty).is_unfinished_start()
    half = tmp_path / "half.zarr"
    zarr.open_group(half, mode="w").attrs["store_format"] = STORE_FORMAT  # no arrays yet
    assert ResultStore(half).is_unfinished_start()
    ds = ls.extract_many(two_runs, seeds, 3.0, store=half, resume=False, progress=False)
    assert bool(ds.attrs["complete"])
    assert not ResultStore(half).is_unfinished_start()  # complete runs: kept from now on
    foreign = tmp_path / "foreign.zarr"
    xr.Dataset({"v": ("x", np.arange(3))}).to_zarr(foreign, consolidated=False)
    assert not ResultStore(foreign).is_unfinished_start()


@pytest.mark.parametrize(("version", "block"), [(1, 1), (2, 1024)])
def test_a_store_in_a_previous_layout_opens_and_resumes(
    tmp_path, two_runs, seeds, monkeypatch, version, block
):
    """``lazyspheres-results/1`` and ``/2``: fingerprints in a ``fingerprint(run)`` array
    (``/1``: per-run state one run per object); still read and resumed."""
    from lazyspheres.batch import store as store_module

    store = tmp_path / f"v{version}.zarr"
    with monkeypatch.context() as patched:
        patched.setattr(store_module, "RUN_BLOCK", block)
        reference = ls.extract_many(two_runs, seeds, 3.0, store=store, progress=False).load()
    # The older layout: the fingerprints as an array chunked like the state, not an attribute.
    group = zarr.open_group(store, mode="r+")
    inputs = json.loads(group.attrs["inputs"])
    runs = [str(r) for r in group["run"][:]]
    prints = np.array([json.dumps(inputs[r], sort_keys=True) for r in runs], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: consolidated metadata is not in the v3 spec
        group = zarr.open_group(store, mode="r+")
        array = group.create_array(
            "fingerprint", shape=(2,), chunks=(min(block, 2),), dtype=str, fill_value="",
            dimension_names=["run"],
        )  # fmt: skip
        array[:] = prints
        group.attrs.update({"store_format": f"lazyspheres-results/{version}", "inputs": "{}"})
        zarr.consolidate_metadata(store)
    ResultStore(store).clear_flags([1])  # as after a crash while rewriting run 1
    ResultStore(store).set_attrs(complete=False)
    with pytest.raises(IncompleteStoreError, match=r"1 of 2 run\(s\)"):
        ls.open_results(store)
    assert ResultStore(store).complete_runs() == {runs[0]: prints[0]}

    resumed = ls.extract_many(two_runs, seeds, 3.0, store=store, progress=False)
    assert resumed.attrs["store_format"] == f"lazyspheres-results/{version}"
    assert zarr.open_group(store, mode="r")["complete"].chunks == (min(block, 2),)
    assert resumed.fingerprint.values.tolist() == prints.tolist()
    xr.testing.assert_identical(
        resumed.load().drop_vars("fingerprint").drop_attrs(deep=False),
        reference.drop_attrs(deep=False),
    )
    assert xr.open_zarr(store).complete.values.tolist() == [True, True]


def test_runs_are_written_only_once_the_store_is_prepared(tmp_path, two_runs, seeds, monkeypatch):
    """The template is written alongside the first reads; no run's data comes before it."""
    import time

    from lazyspheres.batch import store as store_module

    events = []
    create = ResultStore.create

    def slow_create(self, **kwargs):
        time.sleep(0.5)  # longer than reading these runs
        create(self, **kwargs)
        events.append("created")

    monkeypatch.setattr(ResultStore, "create", slow_create)
    monkeypatch.setattr(store_module, "fault_hook", lambda stage, run: events.append(stage))
    store = tmp_path / "r.zarr"
    ds = ls.extract_many(two_runs, seeds, 3.0, store=store, progress=False)
    writes = [event for event in events if event in ("created", "before_data")]
    assert writes == ["created", "before_data", "before_data"]
    assert bool(ds.attrs["complete"])
    np.testing.assert_array_equal(ds.signals.values[0, :12], ls.extract(two_runs[0], seeds, 3.0))


def test_a_store_that_cannot_be_prepared_stops_the_batch_with_its_error(
    tmp_path, two_runs, seeds, monkeypatch
):
    from lazyspheres.batch import store as store_module

    def refuse(self, **kwargs):
        raise PermissionError("access denied (injected)")

    written = []
    monkeypatch.setattr(ResultStore, "create", refuse)
    monkeypatch.setattr(store_module, "fault_hook", lambda stage, run: written.append(stage))
    store = tmp_path / "r.zarr"
    with pytest.raises(PermissionError, match="injected"):
        ls.extract_many(two_runs, seeds, 3.0, store=store, progress=False)
    assert "before_data" not in written  # no run was written
    assert not store.exists()


def test_the_template_of_power_264_is_29_objects(tmp_path):
    """With the listing that finds nothing there, creating a store is 30 requests."""
    from lazyspheres.batch.params import seed_coords
    from lazyspheres.seeds import load_seeds

    coords, labels = load_seeds("power2011")
    store = tmp_path / "r.zarr"
    ResultStore(store).create(
        run_ids=["a", "b", "c"],
        sources=["a.nii.gz", "b.nii.gz", "c.nii.gz"],
        n_time=120,
        seed_coords=seed_coords(coords, np.full(264, 5.0), labels),
        dtype=np.dtype("float32"),
        parameters={"radius": 5.0},
        t_r=2.0,
    )
    objects = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
    arrays = [o for o in objects if o.endswith("/zarr.json")]
    assert len(arrays) == 17  # signals, 4 per-run state arrays, 12 coordinates
    assert len(objects) == 29  # + the root, + a chunk per coordinate but the radius
    ds = xr.open_zarr(store)
    assert ds.radius.values.tolist() == [5.0] * 264
    assert set(ds.signals.coords) >= {"run", "seed", "x", "y", "z", "radius", "network"}
