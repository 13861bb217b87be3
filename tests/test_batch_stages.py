"""extract_many's stages on their own: validate, plan (store and resume policies), schedule,
write."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from batch_helpers import run_affine, world_seeds, write_runs

from lazyspheres.batch import extract_many
from lazyspheres.batch.runs import RunSpec
from lazyspheres.batch.stages import (
    BatchError,
    _store_policy,
    plan,
    runs_to_do,
    schedule,
    validate,
    write,
)
from lazyspheres.batch.store import ResultStore
from lazyspheres.batch.tasks import Failure, Opened, RunOutcome
from lazyspheres.cleaning.options import CleaningParams
from lazyspheres.errors import StoreMismatchError


def _run(index: int) -> RunSpec:
    return RunSpec(index=index, run_id=f"r{index}", source=f"/data/r{index}.nii.gz")


def test_resume_policy_keeps_failed_new_and_changed_runs():
    runs = [_run(i) for i in range(4)]
    failure = Failure("OSError", "unreadable")
    probes = [
        Opened("facts0", "fp0"),
        Opened("facts1", "fp1"),
        Opened("facts2", "fp2-new"),
        failure,
    ]
    complete = {"r0": "fp0", "r2": "fp2-old", "r3": "fp3"}
    todo = runs_to_do(runs, probes, complete)
    assert [(run.run_id, probe) for run, probe in todo] == [
        ("r1", ("facts1", "fp1")),
        ("r2", ("facts2", "fp2-new")),
        ("r3", failure),
    ]


class _Store:
    store = "results.zarr"

    def __init__(self, unfinished: bool) -> None:
        self.unfinished = unfinished

    def is_unfinished_start(self) -> bool:
        return self.unfinished


def test_store_policy():
    assert _store_policy(_Store(False), False, resume=False, overwrite=False) is False
    assert _store_policy(_Store(False), True, resume=True, overwrite=False) is False
    assert _store_policy(_Store(True), True, resume=False, overwrite=False) is True
    with pytest.raises(FileExistsError, match=r"results\.zarr exists"):
        _store_policy(_Store(False), True, resume=False, overwrite=False)


# ------------------------------------------------------------------ each stage on its own
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Two small runs and four seeds inside them."""
    root = tmp_path_factory.mktemp("bids")
    runs = write_runs(root, n_subjects=2, n_runs=1, n_volumes=12)
    return runs, world_seeds(run_affine(runs[0]))


def _validate(runs, seeds, store, **options):
    return validate(runs, seeds, 3.0, store=store, progress=False, **options)


def test_validate_gives_runs_and_one_frozen_params_and_writes_nothing(small, tmp_path):
    runs, seeds = small
    store = tmp_path / "r.zarr"
    specs, params = _validate(runs, seeds, store, clean={"detrend": True}, smoothing_fwhm=5)
    assert [spec.run_id for spec in specs] == ["sub-01_task-rest_run-1", "sub-02_task-rest_run-1"]
    assert params.n_seeds == 4
    assert params.radii.tolist() == [3.0] * 4
    assert params.clean == CleaningParams.from_options({"detrend": True})
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.on_empty = "nan"  # type: ignore[misc]
    record = params.record()
    assert record["radius"] == 3.0
    assert record["smoothing_fwhm"] == 5
    assert record["clean"] == {"detrend": True}
    assert record["mask_img"] is None
    assert record["confounds"] is None
    assert not store.exists()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"on_empty": "skip"}, "on_empty must be"),
        ({"errors": "ignore"}, "errors must be"),
        ({"clean": {"confounds": "x.tsv"}}, "differ per run"),
        ({"clean": {"detrnd": True}}, "unexpected keyword"),
        ({"run_ids": ["a"]}, "run_ids must be 2 unique strings"),
    ],
)
def test_validate_refuses_bad_arguments(small, tmp_path, options, match):
    runs, seeds = small
    with pytest.raises((ValueError, TypeError), match=match):
        _validate(runs, seeds, tmp_path / "r.zarr", **options)


def test_plan_probes_and_decides_but_writes_nothing(small, tmp_path):
    runs, seeds = small
    store = tmp_path / "r.zarr"
    batch = plan(*_validate(runs, seeds, store), client=None)
    assert [run.run_id for run, _ in batch.todo] == batch.run_ids
    assert all(isinstance(probe, Opened) for _, probe in batch.todo)
    assert batch.n_time == 12
    assert not batch.resuming
    assert batch.params.dtype == "float32"  # the generated runs are float32
    assert not store.exists()


def test_plan_refuses_when_no_run_opens(small, tmp_path):
    broken = tmp_path / "sub-09_task-rest_bold.nii.gz"
    broken.write_bytes(b"not a nifti")
    store = tmp_path / "r.zarr"
    with pytest.raises(BatchError, match="No run could be opened; nothing was written"):
        plan(*_validate([broken], small[1], store), client=None)
    assert not store.exists()


def test_schedule_writes_runs_and_write_records_the_outcome(small, tmp_path):
    runs, seeds = small
    store = tmp_path / "r.zarr"
    batch = plan(*_validate(runs, seeds, store), client=None)
    outcomes = schedule(batch, client=None)
    assert sorted(o.run_id for o in outcomes) == batch.run_ids
    assert all(o.failure is None and o.n_volumes == 12 for o in outcomes)
    handle = ResultStore(store)
    assert sorted(handle.complete_runs()) == batch.run_ids  # the flags are written...
    assert not handle.attrs().get("complete")  # ...the batch's outcome is not, yet
    ds = write(batch, outcomes)
    assert bool(ds.attrs["complete"])
    assert ds.signals.shape == (2, 12, 4)
    assert json.loads(ds.attrs["parameters"]) == batch.params.record()


def test_plan_of_a_complete_store_has_nothing_to_do_and_checks_parameters(small, tmp_path):
    runs, seeds = small
    store = tmp_path / "r.zarr"
    first = plan(*_validate(runs, seeds, store), client=None)
    write(first, schedule(first, client=None))
    again = plan(*_validate(runs, seeds, store), client=None)
    assert again.resuming
    assert again.todo == []
    with pytest.raises(StoreMismatchError, match="allow_overlap"):
        plan(*_validate(runs, seeds, store, allow_overlap=True), client=None)


@pytest.mark.parametrize("errors", ["raise", "warn"])
def test_write_reports_failed_runs_by_the_error_policy(small, tmp_path, errors):
    runs, seeds = small
    store = tmp_path / "r.zarr"
    batch = plan(*_validate(runs, seeds, store, errors=errors), client=None)
    schedule(batch, client=None)
    failed = RunOutcome(0, batch.run_ids[0], str(runs[0]), failure=Failure("OSError", "gone"))
    if errors == "raise":
        with pytest.raises(BatchError, match=r"1 run\(s\) failed") as caught:
            write(batch, [failed])
        assert list(caught.value.failures) == [batch.run_ids[0]]
    else:
        with pytest.warns(UserWarning, match="OSError: gone"):
            ds = write(batch, [failed])
        assert json.loads(ds.attrs["failed"]) == {batch.run_ids[0]: f"{runs[0]}: OSError: gone"}


def test_progress_draws_runs_and_volumes_and_is_silent_when_off(small, tmp_path, capsys):
    runs, seeds = small
    extract_many(runs, seeds, 3.0, store=tmp_path / "quiet.zarr", progress=False)
    assert capsys.readouterr().err == ""
    extract_many(runs, seeds, 3.0, store=tmp_path / "shown.zarr", progress=True)
    last = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert last.startswith("[" + "#" * 30 + "] 2/2 runs, 24/24 volumes read |")


def test_progress_on_a_distributed_client_counts_every_run(small, tmp_path, capsys):
    from distributed import Client, LocalCluster

    runs, seeds = small
    options = {"processes": False, "n_workers": 1, "threads_per_worker": 2}
    with LocalCluster(**options, dashboard_address=None) as cluster, Client(cluster) as client:
        extract_many(runs, seeds, 3.0, store=tmp_path / "d.zarr", progress=True, client=client)
    last = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert last.startswith("[" + "#" * 30 + "] 2/2 runs, ")
    assert last.endswith(" s")


def test_record_keeps_the_stored_parameters_format(small, tmp_path):
    """Stores written before BatchParams hold this JSON for these arguments: they resume."""
    runs, seeds = small
    _, params = validate(
        runs,
        seeds,
        [2, None, np.float64(3.5), 4],
        store=tmp_path / "r.zarr",
        mask_img="bids",
        allow_overlap=True,
        confounds="bids",
        confound_columns=["trans_?", "csf"],
        sample_mask=[None, None],
        clean={"detrend": True, "standardize": "zscore_sample", "low_pass": 0.1, "t_r": 2.0},
        smoothing_fwhm=[4, 5.5, None],
        on_empty="nan",
    )
    stored = (
        '{"allow_overlap": true, "clean": {"detrend": true, "low_pass": 0.1, "standardize": '
        '"zscore_sample", "t_r": 2.0}, "confound_columns": ["trans_?", "csf"], "confounds": '
        '"bids", "mask_img": "bids", "on_empty": "nan", "radius": [2.0, null, 3.5, 4.0], '
        '"sample_mask": "per-run", "smoothing_fwhm": [4, 5.5, null]}'
    )
    assert json.dumps(params.record(), sort_keys=True) == stored
