"""extract_many on the local threaded scheduler: numbers, store contents, failures, resume."""

from __future__ import annotations

import json
import shutil
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from batch_helpers import chunk_mtimes, run_affine, touch_later, world_seeds, write_runs

import lazyspheres as ls
from lazyspheres import datasets
from lazyspheres.batch import BatchError, open_results, tasks
from lazyspheres.batch import store as store_module
from lazyspheres.errors import (
    EmptySphereError,
    IncompleteStoreError,
    OverlapError,
    SeedError,
    StoreMismatchError,
)

# nilearn 0.12.1 warns on every confound standardisation; test_warnings_are_shown_once
# checks it, the other tests do not need to see it again.
pytestmark = pytest.mark.filterwarnings("ignore:The default strategy for standardize")

CLEAN = {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.1, "t_r": 2.0}
COLUMNS = ["trans_?", "rot_?", "csf"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    return write_runs(root, n_subjects=2, n_runs=2, n_volumes=30)


@pytest.fixture
def runs(dataset, tmp_path):
    """A private copy of the dataset (tests that modify files)."""
    root = dataset[0].parents[2]
    shutil.copytree(root, tmp_path / "bids")
    return [tmp_path / "bids" / p.relative_to(root) for p in dataset]


@pytest.fixture
def seeds(dataset):
    frame = pd.DataFrame(world_seeds(run_affine(dataset[0])), columns=["x", "y", "z"])
    frame["label"] = ["motor", "visual", "default", "salience"]
    return frame


@pytest.fixture
def reads(monkeypatch):
    """Count the runs read by batch tasks (their locations)."""
    counter: Counter = Counter()
    original = tasks.block_means

    def counting(image, facts, *args, **kwargs):
        counter[facts.location] += 1
        return original(image, facts, *args, **kwargs)

    monkeypatch.setattr(tasks, "block_means", counting)
    return counter


def confounds_of(run):
    path = str(run).split("_space-")[0] + "_desc-confounds_timeseries.tsv"
    table = pd.read_csv(path, sep="\t")
    return table[[c for c in table.columns if c[:-1] in ("trans_", "rot_") or c == "csf"]]


def expected_signals(run, seeds, radius=3.0, **options):
    signals = ls.extract(run, seeds[["x", "y", "z"]].to_numpy(), radius).values
    return ls.clean(signals, confounds=confounds_of(run), **CLEAN, **options)


def batch(runs, seeds, store, **options):
    defaults = {"progress": False, "store": store}
    return ls.extract_many(runs, seeds, options.pop("radius", 3.0), **{**defaults, **options})


def test_batch_equals_extract_then_clean_and_store_layout(dataset, seeds, tmp_path):
    store = tmp_path / "results.zarr"
    ds = batch(dataset, seeds, store, clean=CLEAN, confounds="bids", confound_columns=COLUMNS)

    assert ds.run.values.tolist() == [
        "sub-01_task-rest_run-1",
        "sub-01_task-rest_run-2",
        "sub-02_task-rest_run-1",
        "sub-02_task-rest_run-2",
    ]
    for i, run in enumerate(dataset):
        # same code path as extract + clean on one run: bit for bit
        np.testing.assert_array_equal(ds.signals.values[i], expected_signals(run, seeds))
    assert ds.signals.dims == ("run", "time", "seed")
    assert ds.signals.dtype == np.float32  # float32 runs
    spheres = ls.sphere_voxels(seeds[["x", "y", "z"]], run_affine(dataset[0]), (20, 24, 20), 3.0)
    np.testing.assert_array_equal(ds.n_voxels.values, np.tile(spheres.n_voxels, (4, 1)))
    assert ds.n_volumes.values.tolist() == [30] * 4
    assert ds.t_r.values.tolist() == [2.0] * 4
    assert ds.complete.values.all()
    assert ds.source.values.tolist() == [str(p) for p in dataset]
    assert ds.label.values.tolist() == seeds.label.tolist()
    np.testing.assert_array_equal(ds.x.values, seeds.x.values)
    params = json.loads(ds.attrs["parameters"])
    assert params["clean"] == CLEAN
    assert params["radius"] == 3.0
    assert params["confounds"] == "bids"
    assert params["confound_columns"] == COLUMNS
    inputs = json.loads(ds.attrs["inputs"])
    first = inputs["sub-01_task-rest_run-1"]
    assert first["image"]["location"] == str(dataset[0])
    assert first["image"]["size"] == dataset[0].stat().st_size
    assert str(dataset[0].stat().st_mtime_ns) in first["image"]["version"]
    assert first["confounds"]["location"].endswith("run-1_desc-confounds_timeseries.tsv")
    assert ds.attrs["complete"] is True
    assert ds.attrs["lazyspheres_version"] == ls.__version__
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # plain xarray: no warning at all
        plain = xr.open_zarr(store)
        assert plain.label.values.tolist() == seeds.label.tolist()
        xr.testing.assert_identical(plain.load(), open_results(store).load())


def test_shorter_runs_are_nan_padded_and_sample_masks_shorten_runs(tmp_path, seeds):
    short = datasets.write_bold(tmp_path / "short.nii.gz", 18, shape=(20, 24, 20), seeds=None)
    long = datasets.write_bold(tmp_path / "long.nii.gz", 25, shape=(20, 24, 20), seeds=None)
    keep = np.arange(2, 25, 2)
    ds = batch([short, long], seeds, tmp_path / "r.zarr", sample_mask=[None, keep])
    xyz = seeds[["x", "y", "z"]].to_numpy()
    assert ds.sizes["time"] == 25
    assert ds.n_volumes.values.tolist() == [18, keep.size]
    np.testing.assert_array_equal(ds.signals.values[0, :18], ls.extract(short, xyz, 3.0).values)
    assert np.isnan(ds.signals.values[0, 18:]).all()
    np.testing.assert_array_equal(
        ds.signals.values[1, : keep.size],
        ls.clean(ls.extract(long, xyz, 3.0).values, sample_mask=keep),
    )
    assert np.isnan(ds.signals.values[1, keep.size :]).all()


def test_per_seed_radii_match_single_radius_extractions(dataset, seeds, tmp_path):
    radii = [2.0, None, 4.0, 2.0]
    ds = batch(dataset[:1], seeds, tmp_path / "r.zarr", radius=radii)
    xyz = seeds[["x", "y", "z"]].to_numpy()
    for seed, radius in enumerate(radii):
        alone = ls.extract(dataset[0], xyz[[seed]], radius).values[:, 0]
        np.testing.assert_array_equal(ds.signals.values[0, :, seed], alone)
    assert np.isnan(ds.radius.values[1])
    assert ds.radius.values[0] == 2.0
    assert json.loads(ds.attrs["parameters"])["radius"] == [2.0, None, 4.0, 2.0]

    close = np.vstack([xyz[0], xyz[0] + [2.0, 0, 0]])
    with pytest.raises(
        OverlapError, match=r"(?s)Overlap detected between spheres.*seeds #0 .* and #1 "
    ):
        batch(dataset[:1], close, tmp_path / "o.zarr", radius=[4.0, 2.0])
    assert not (tmp_path / "o.zarr").exists()  # refused before anything is written
    ds = batch(dataset[:1], close, tmp_path / "o.zarr", radius=[4.0, 2.0], allow_overlap=True)
    np.testing.assert_array_equal(
        ds.signals.values[0, :, 1], ls.extract(dataset[0], close[[1]], 2.0).values[:, 0]
    )
    with pytest.raises(ValueError, match=r"radius has 3 values but there are 4 seeds"):
        batch(dataset[:1], seeds, tmp_path / "x.zarr", radius=[1, 2, 3])
    with pytest.raises(ValueError, match=r"radius\[1\] must be a float in the range"):
        batch(dataset[:1], seeds, tmp_path / "x.zarr", radius=[1, -2, 3, 4])


def _mask_without_seed0(run, seeds, tmp_path):
    import nibabel as nib

    affine = run_affine(run)
    data = np.ones((20, 24, 20), dtype=np.uint8)
    xyz = seeds[["x", "y", "z"]].to_numpy(dtype=float)[0]
    ijk = np.round(np.linalg.solve(affine, np.r_[xyz, 1.0])[:3])
    i, j, k = ijk.astype(int)
    data[i - 3 : i + 4, j - 3 : j + 4, k - 3 : k + 4] = 0
    path = tmp_path / "mask_hole.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_empty_sphere_fails_its_run_or_gives_nan_with_coverage(runs, seeds, tmp_path):
    hole = _mask_without_seed0(runs[0], seeds, tmp_path)
    masks = [hole, None, None, None]
    with pytest.raises(BatchError, match=r"1 run\(s\) failed") as caught:
        batch(runs, seeds, tmp_path / "raise.zarr", mask_img=masks)
    message = str(caught.value)
    assert f"{runs[0]}: EmptySphereError: These spheres are empty: [0]" in message
    assert "sub-01_task-rest_run-1" in caught.value.failures
    partial = open_results(tmp_path / "raise.zarr", allow_partial=True)
    assert partial.complete.values.tolist() == [False, True, True, True]
    assert partial.attrs["complete"] is False
    assert "EmptySphereError" in json.loads(partial.attrs["failed"])["sub-01_task-rest_run-1"]
    with pytest.raises(IncompleteStoreError, match=r"1 of 4 run\(s\) are not complete"):
        open_results(tmp_path / "raise.zarr")

    ds = batch(runs, seeds, tmp_path / "nan.zarr", mask_img=masks, on_empty="nan")
    assert ds.attrs["complete"] is True
    assert np.isnan(ds.signals.values[0, :, 0]).all()
    assert ds.n_voxels.values[0, 0] == 0
    assert (ds.n_voxels.values[:, 1:] > 0).all()
    xyz = seeds[["x", "y", "z"]].to_numpy()
    np.testing.assert_array_equal(
        ds.signals.values[0, :, 1:], ls.extract(runs[0], xyz[1:], 3.0, mask_img=hole).values
    )
    np.testing.assert_array_equal(ds.signals.values[1], ls.extract(runs[1], xyz, 3.0).values)


def test_failing_run_is_reported_others_complete_then_resume_redoes_it(
    runs, seeds, tmp_path, reads
):
    store = tmp_path / "r.zarr"
    good = runs[2].read_bytes()
    runs[2].write_bytes(good[: len(good) // 2])  # a truncated gzip stream
    with pytest.raises(BatchError) as caught:
        batch(runs, seeds, store)
    assert str(runs[2]) in str(caught.value)
    assert "TruncatedImageError" in str(caught.value) or "corrupt" in str(caught.value)
    assert "complete runs are not recomputed" in str(caught.value)
    partial = open_results(store, allow_partial=True)
    assert partial.complete.values.tolist() == [True, True, False, True]
    assert np.isnan(partial.signals.values[2]).all()  # masked: not trusted
    before = chunk_mtimes(store, "signals")
    reads.clear()

    runs[2].write_bytes(good)
    ds = batch(runs, seeds, store)
    assert reads == Counter({str(runs[2]): 1})  # only the failed run is read again
    after = chunk_mtimes(store, "signals")
    assert {k: v for k, v in after.items() if k != "2/0/0"} == {
        k: v for k, v in before.items() if k != "2/0/0"
    }
    assert ds.attrs["complete"] is True
    assert json.loads(ds.attrs["failed"]) == {}
    np.testing.assert_array_equal(
        ds.signals.values[2], ls.extract(runs[2], seeds[["x", "y", "z"]].to_numpy(), 3.0).values
    )


def test_interrupted_between_data_and_flag_resumes_to_the_same_store(
    runs, seeds, tmp_path, monkeypatch, reads
):
    reference = batch(runs, seeds, tmp_path / "reference.zarr", clean=CLEAN).load()
    store = tmp_path / "r.zarr"

    def interrupt(stage, run_id):
        if stage == "before_flag" and run_id == "sub-02_task-rest_run-1":
            raise KeyboardInterrupt  # the batch is killed after this run's data

    monkeypatch.setattr(store_module, "fault_hook", interrupt)
    with dask_single_thread(), pytest.raises(KeyboardInterrupt):
        batch(runs, seeds, store, clean=CLEAN)
    monkeypatch.setattr(store_module, "fault_hook", None)
    partial = xr.open_zarr(store)
    flags = partial.complete.values
    assert partial.attrs["complete"] is False
    assert not flags[2]
    assert 0 < flags.sum() < 3
    assert not np.isnan(partial.signals.values[2]).all()  # its data was written, not its flag
    with pytest.raises(IncompleteStoreError, match="sub-02_task-rest_run-1"):
        open_results(store)
    before = chunk_mtimes(store, "signals")
    reads.clear()

    resumed = batch(runs, seeds, store, clean=CLEAN).load()
    assert reads == Counter({str(runs[i]): 1 for i in np.flatnonzero(~flags)})
    after = chunk_mtimes(store, "signals")
    for i in range(4):  # complete runs untouched, the others rewritten
        assert (after[f"{i}/0/0"] == before.get(f"{i}/0/0")) == bool(flags[i])
    xr.testing.assert_identical(resumed.drop_attrs(deep=False), reference.drop_attrs(deep=False))
    for name in ("parameters", "inputs", "failed", "complete"):
        assert resumed.attrs[name] == reference.attrs[name]


def dask_single_thread():
    import dask

    # One run at a time: the interruption lands while other runs are complete or pending.
    return dask.config.set(scheduler="synchronous")


def test_parameter_mismatch_is_refused_naming_each_difference(dataset, seeds, tmp_path):
    store = tmp_path / "r.zarr"
    batch(dataset, seeds, store, clean={"detrend": True})
    before = chunk_mtimes(store, "signals")
    with pytest.raises(StoreMismatchError) as caught:
        batch(dataset, seeds, store, radius=4.0, clean={"detrend": False})
    message = str(caught.value)
    assert "radius: stored 3.0, requested 4.0" in message
    assert "clean: stored {'detrend': True}, requested {'detrend': False}" in message
    assert "overwrite=True" in message
    moved = seeds.assign(x=seeds.x + 2)
    with pytest.raises(StoreMismatchError, match="seed coordinate 'x' differs"):
        batch(dataset, moved, store, clean={"detrend": True})
    with pytest.raises(StoreMismatchError, match=r"runs: 4 stored, 3 requested"):
        batch(dataset[:3], seeds, store, clean={"detrend": True})
    assert chunk_mtimes(store, "signals") == before  # nothing rewritten
    with pytest.raises(FileExistsError, match="resume=True"):
        batch(dataset, seeds, store, resume=False)
    ds = batch(dataset, seeds, store, radius=4.0, overwrite=True)
    assert json.loads(ds.attrs["parameters"])["radius"] == 4.0
    assert ds.attrs["complete"]


def test_changed_input_recomputes_that_run_only(runs, seeds, tmp_path, reads):
    store = tmp_path / "r.zarr"
    batch(runs, seeds, store, confounds="bids", confound_columns=COLUMNS, clean=CLEAN)
    reads.clear()
    before = chunk_mtimes(store, "signals")

    again = batch(runs, seeds, store, confounds="bids", confound_columns=COLUMNS, clean=CLEAN)
    assert reads == Counter()
    assert chunk_mtimes(store, "signals") == before
    assert again.attrs["complete"] is True

    touch_later(runs[1])  # new mtime: a new fingerprint
    confounds = str(runs[3]).split("_space-")[0] + "_desc-confounds_timeseries.tsv"
    table = pd.read_csv(confounds, sep="\t")
    table["csf"] = table["csf"][::-1].to_numpy()
    table.to_csv(confounds, sep="\t", index=False, na_rep="n/a")
    ds = batch(runs, seeds, store, confounds="bids", confound_columns=COLUMNS, clean=CLEAN)
    assert reads == Counter({str(runs[1]): 1, str(runs[3]): 1})
    after = chunk_mtimes(store, "signals")
    assert [after[k] != before[k] for k in sorted(before)] == [False, True, False, True]
    np.testing.assert_array_equal(ds.signals.values[3], expected_signals(runs[3], seeds))


def test_uncompressed_runs_in_time_blocks_and_smoothing(tmp_path, seeds):
    nii = datasets.write_bold(tmp_path / "bold.nii", 26, shape=(20, 24, 20), seeds=None)
    xyz = seeds[["x", "y", "z"]].to_numpy()
    ds = batch([nii], seeds, tmp_path / "blocks.zarr", time_blocks=3)
    np.testing.assert_array_equal(ds.signals.values[0], ls.extract(nii, xyz, 3.0).values)
    ds = batch([nii], seeds, tmp_path / "smooth.zarr", time_blocks=2, smoothing_fwhm=5.0)
    expected = ls.extract(nii, xyz, 3.0, smoothing_fwhm=5.0).values
    np.testing.assert_array_equal(ds.signals.values[0], expected)
    assert json.loads(ds.attrs["parameters"])["smoothing_fwhm"] == 5.0


def test_bad_arguments_fail_before_anything_is_written(dataset, seeds, tmp_path):
    store = tmp_path / "r.zarr"
    with pytest.raises(TypeError, match=r"unexpected keyword\(s\) \['detrendd'\]"):
        batch(dataset, seeds, store, clean={"detrendd": True})
    with pytest.raises(TypeError, match="cannot hold \\['confounds'\\]"):
        batch(dataset, seeds, store, clean={"confounds": None})
    with pytest.raises(ValueError, match=r"Repetition time \(t_r\) must be specified"):
        batch(dataset, seeds, store, clean={"low_pass": 0.1})
    with pytest.raises(SeedError):
        batch(dataset, np.zeros((3, 2)), store)
    far = seeds[["x", "y", "z"]].to_numpy() + np.array([500.0, 0, 0])
    with pytest.raises(EmptySphereError, match="These spheres are empty"):
        batch(dataset, far, store)
    with pytest.raises(ValueError, match="on_empty must be 'raise' or 'nan'"):
        batch(dataset, seeds, store, on_empty="skip")
    with pytest.raises(ValueError, match=r"one entry per run \(4 runs\)"):
        batch(dataset, seeds, store, confounds=[None])
    with pytest.raises(FileNotFoundError, match="File not found: no file matches"):
        batch(str(tmp_path / "nothing-*.nii.gz"), seeds, store)
    assert not store.exists()


def test_missing_bids_confounds_and_unreadable_runs(tmp_path, seeds):
    plain = datasets.write_bold(tmp_path / "bold.nii.gz", 10, shape=(20, 24, 20), seeds=None)
    with pytest.raises(ValueError, match="not a BIDS file name"):
        batch([plain], seeds, tmp_path / "r.zarr", confounds="bids")
    bids = tmp_path / "sub-09_task-rest_bold.nii.gz"
    shutil.copy(plain, bids)
    with pytest.raises(FileNotFoundError, match="sub-09_task-rest_desc-confounds_timeseries"):
        batch([bids], seeds, tmp_path / "r.zarr", confounds="bids")
    (tmp_path / "junk.nii.gz").write_bytes(b"not an image at all")
    with pytest.raises(BatchError, match=r"No run could be opened; nothing was written"):
        batch([tmp_path / "junk.nii.gz"], seeds, tmp_path / "r.zarr")
    assert not (tmp_path / "r.zarr").exists()


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        (
            [
                "d/sub-01/ses-2/func/sub-01_ses-2_task-rest_acq-mb_run-3_space-T1w_desc-preproc_bold.nii.gz"
            ],
            ["sub-01_ses-2_task-rest_acq-mb_run-3"],
        ),
        (["a/bold.nii.gz", "b/other.nii"], ["bold", "other"]),
        (["a/x/bold.nii.gz", "a/y/bold.nii.gz"], ["x_bold", "y_bold"]),
        (
            [
                "s3://b/sub-01_task-a_space-A_bold.nii.gz",
                "s3://b/sub-01_task-a_space-B_bold.nii.gz",
            ],
            ["sub-01_task-a_space-A_bold", "sub-01_task-a_space-B_bold"],
        ),
    ],
)
def test_run_ids_are_stable_and_unique(sources, expected):
    from lazyspheres.batch.runs import build_runs

    assert [r.run_id for r in build_runs(sources)] == expected


def test_explicit_run_ids_and_duplicates():
    from lazyspheres.batch.runs import build_runs

    assert [r.run_id for r in build_runs(["a.nii", "b.nii"], run_ids=["x", "y"])] == ["x", "y"]
    with pytest.raises(ValueError, match="run_ids must be 2 unique strings"):
        build_runs(["a.nii", "b.nii"], run_ids=["x", "x"])
    with pytest.raises(ValueError, match="the same file is listed twice"):
        build_runs(["a/bold.nii", "a/bold.nii"])
    with pytest.raises(ValueError, match="names unknown run ids"):
        build_runs(["a.nii"], confounds={"b": "c.tsv"})


@pytest.mark.filterwarnings("error")
def test_warnings_are_shown_once_per_batch(dataset, seeds, tmp_path):
    with pytest.warns(DeprecationWarning, match="default strategy for standardize") as record:
        batch(dataset, seeds, tmp_path / "r.zarr", confounds="bids", confound_columns=COLUMNS)
    assert len(record) == 1  # shown at call time, not once per run

    nan_run = datasets.write_bold(
        tmp_path / "nan.nii.gz", 10, shape=(20, 24, 20), seeds=None, nan_background=True
    )
    corner = world_seeds(run_affine(nan_run), [[0, 0, 0], [10, 12, 10]])  # background: NaN
    with pytest.warns(UserWarning, match=r"Non-finite values detected.*\[run\(s\) nan\]"):
        batch([nan_run], corner, tmp_path / "n.zarr", radius=None)


# ---------------------------------------------------------------------------- checked first
def test_na_confounds_are_refused_before_any_image_is_read(runs, seeds, tmp_path, reads):
    """fMRIPrep's n/a first rows: every run named, Python advice, nothing read or written."""
    from lazyspheres.batch import BatchInputError
    from lazyspheres.batch.checks import FILL_NA_ADVICE

    store = tmp_path / "na.zarr"
    with pytest.raises(BatchInputError) as caught:
        batch(runs, seeds, store, confounds="bids", clean=CLEAN)
    lines = str(caught.value).splitlines()
    assert lines[0] == "4 problem(s) found before reading any image:"
    for run in runs:
        run_id = run.name.split("_space-")[0]
        assert any(
            line.startswith(f"  {run_id}: n/a in ") and "volume(s) 0" in line for line in lines
        )
    assert lines[-1] == FILL_NA_ADVICE
    assert "clean={'fill_na': 'zero'}" in lines[-1]
    assert sum(reads.values()) == 0
    assert not store.exists()

    done = batch(runs, seeds, store, confounds="bids", clean={**CLEAN, "fill_na": "zero"})
    assert bool(done.attrs["complete"])
    assert sum(reads.values()) == len(runs)


def test_confound_problems_are_listed_one_line_each(runs, seeds, tmp_path, reads):
    short = tmp_path / "short.tsv"
    pd.read_csv(confounds_of_path(runs[1]), sep="\t").iloc[:10].to_csv(
        short, sep="\t", index=False
    )
    confounds = [
        confounds_of_path(runs[0]),
        short,
        tmp_path / "missing.tsv",
        confounds_of_path(runs[3]),
    ]
    with pytest.raises(ValueError, match="2 problem") as caught:
        batch(runs, seeds, tmp_path / "c.zarr", confounds=confounds, confound_columns=["csf"])
    text = str(caught.value)
    assert "incorrect length" in text
    assert f"  {runs[2].name.split('_space-')[0]}: confounds file not found: " in text
    assert text.splitlines()[-1] == "Fix them and call extract_many again."
    with pytest.raises(ValueError, match="No confound column matches"):
        batch(runs[:1], seeds, tmp_path / "c.zarr", confounds="bids", confound_columns=["nope*"])
    assert sum(reads.values()) == 0


def confounds_of_path(run):
    return str(run).split("_space-")[0] + "_desc-confounds_timeseries.tsv"


def test_a_store_without_complete_runs_never_blocks(runs, seeds, tmp_path):
    """A first attempt that wrote the template but no run: other parameters, resume=False."""
    store = tmp_path / "r.zarr"
    original = store_module.fault_hook

    def fail(stage, run_id):
        raise OSError("disk full (simulated)")

    store_module.fault_hook = fail
    try:
        with pytest.raises(BatchError, match="0 of 2 run"):
            batch(runs[:2], seeds, store)
    finally:
        store_module.fault_hook = original
    assert store.exists()
    ds = batch(runs[:2], seeds, store, resume=False, radius=2.0, clean={"detrend": True})
    assert bool(ds.attrs["complete"])
    assert json.loads(ds.attrs["parameters"])["radius"] == 2.0


def test_time_is_the_volume_index_when_runs_have_other_trs(tmp_path, seeds):
    a = datasets.write_bold(tmp_path / "a_bold.nii.gz", 12, shape=(20, 24, 20), seeds=None)
    b = datasets.write_bold(
        tmp_path / "b_bold.nii.gz", 12, shape=(20, 24, 20), seeds=None, t_r=1.5
    )
    ds = batch([a, b], seeds, tmp_path / "r.zarr")
    assert ds.t_r.values.tolist() == [2.0, 1.5]
    assert ds.time.attrs["units"] == "volume index"
    np.testing.assert_array_equal(ds.time.values, np.arange(12))
    np.testing.assert_array_equal(ds.volume.values, np.arange(12))


def test_progress_moves_inside_a_single_run(dataset, seeds, tmp_path, monkeypatch, capsys):
    """A one-run batch reports the volumes read block by block (one gzip pass)."""
    from lazyspheres.batch.execute import Progress
    from lazyspheres.io import reader

    events = []
    monkeypatch.setattr(reader, "STREAM_BLOCK_BYTES", 20 * 24 * 20 * 4 * 7)  # 7 volumes
    monkeypatch.setattr(Progress, "read", lambda self, run, n: events.append(("read", n)))
    original = Progress.update
    monkeypatch.setattr(
        Progress, "update", lambda self, **kw: (events.append(("done", 0)), original(self, **kw))
    )
    batch(dataset[:1], seeds, tmp_path / "p.zarr", progress=True)
    reads = [n for kind, n in events if kind == "read"]
    assert len(reads) >= 4  # 30 volumes in blocks of 7
    assert sum(reads) == 30
    assert events[-1] == ("done", 0)  # every count arrived before the run finished
    assert "1/1 runs" in capsys.readouterr().err
