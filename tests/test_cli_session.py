"""A researcher's first session with the command line, in subprocesses (issue 15).

The failing first batch (fMRIPrep's n/a rows), the corrected one, Ctrl-C then --resume,
``--workers 0`` and ``info`` on bad inputs: exit codes, flag names in every message, no
traceback, no temporary path, no DeprecationWarning the user did not ask for.

Interrupting is made deterministic with the test-only ``LAZYSPHERES_TEST_HOLD_RUN``
variable (``lazyspheres.batch.tasks.HOLD_RUN_VARIABLE``): the runs it names never finish
reading, so SIGINT arrives when exactly the other runs are complete.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from lazyspheres import datasets
from lazyspheres.batch.tasks import HOLD_RUN_VARIABLE

SHAPE = (46, 55, 46)  # 4 mm MNI grid: the named seed sets fit, the files are small
RUN_IDS = ["sub-01_task-rest_run-1", "sub-02_task-rest_run-1", "sub-03_task-rest_run-1"]
SCRIPT = [sys.executable, "-c", "import sys; from lazyspheres.cli import main; sys.exit(main())"]
# an S3 endpoint where nothing listens: "offline"
OFFLINE = [
    "--storage-option",
    "anon=true",
    "--storage-option",
    'client_kwargs={"endpoint_url": "http://127.0.0.1:9"}',
]
_DEADLINE = 240  # s: a guard against a hung subprocess, not a timing assertion


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A 3-subject fMRIPrep-like tree, and a 4th run whose data cannot be read."""
    folder = tmp_path_factory.mktemp("session")
    runs = datasets.write_dataset(folder / "derivatives", 3, 1, n_volumes=20, shape=SHAPE)
    broken = pathlib_replace(runs[0], "sub-01", "sub-04")
    broken.parent.mkdir(parents=True)
    # Header intact, data truncated (by half: a file claiming more than DEFLATE's largest
    # expansion of its size would be refused from its header alone).
    whole = runs[0].read_bytes()
    broken.write_bytes(whole[: len(whole) // 2])
    confounds = confounds_of(runs[0])
    shutil.copy(confounds, pathlib_replace(confounds, "sub-01", "sub-04"))
    return folder, [str(r) for r in runs], str(broken)


def pathlib_replace(path, old, new):
    return path.parent.parent.parent / new / "func" / path.name.replace(old, new)


def confounds_of(run):
    return run.parent / (run.name.split("_space-")[0] + "_desc-confounds_timeseries.tsv")


def command(runs, *options):
    return [
        "extract",
        *runs,
        "--seeds",
        "power2011",
        "--radius",
        "5",
        "--confounds",
        "bids",
        "--detrend",
        "--standardize",
        *options,
    ]


def start(args, cwd, hold=None):
    env = dict(os.environ)
    env.pop(HOLD_RUN_VARIABLE, None)
    if hold is not None:
        env[HOLD_RUN_VARIABLE] = hold
    return subprocess.Popen(
        [*SCRIPT, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,  # its own process group, as a terminal job
    )  # fmt: skip


def run(args, cwd):
    return finish(start(args, cwd))


def finish(process):
    """The exit code and output; a hung command fails the test and is not left behind."""
    try:
        out, err = process.communicate(timeout=_DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"{process.args} hung; stderr:\n{err}") from None
    return process.returncode, out, err


def assert_clean(err):
    """No traceback, no temporary store, no zscore warning the user did not choose."""
    assert "Traceback" not in err, err
    assert "lazyspheres-extract-" not in err, err
    assert "DeprecationWarning" not in err, err
    assert "extract_many" not in err, err  # Python advice
    assert "=True" not in err, err


def complete_flags(store):
    try:
        return int(np.asarray(zarr.open_group(str(store), mode="r")["complete"][:]).sum())
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return -1


def interrupt_when(process, store, n_complete, group=False):
    """SIGINT as soon as ``n_complete`` runs are complete in ``store``.

    ``group``: to the whole process group (workers included), as a terminal's Ctrl-C.
    """
    started = time.monotonic()
    # n_complete=0: as soon as the store appears, possibly while its template is written
    while (complete_flags(store) < n_complete) if n_complete else not store.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() - started < _DEADLINE, "the batch never got there"
        time.sleep(0.1)
    if group:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)
    return finish(process)


def test_first_batch_fails_on_na_rows_before_reading_any_image(tree):
    folder, runs, broken = tree
    # The broken run's data cannot be read: had any image been read, its
    # TruncatedImageError would be among the problems.
    code, _, err = run(command([*runs, broken], "--out", "results.zarr"), folder)
    assert code == 2, err
    assert_clean(err)
    assert "Truncated" not in err
    lines = err.strip().splitlines()
    assert lines[0] == "lazyspheres extract: error: 4 problem(s) found before reading any image:"
    for run_id in [*RUN_IDS, "sub-04_task-rest_run-1"]:
        assert any(line.startswith(f"  {run_id}: n/a in ") for line in lines), err
    assert all(len(line) < 200 for line in lines)
    assert lines[-1] == "Next: run the same command with --fill-na zero (or mean, interpolate)."
    assert "The other runs are complete" not in err
    assert not (folder / "results.zarr").exists()  # nothing written

    # the same with tables: the message names no temporary store either
    code, _, err = run(command(runs, "--out", "tables/{run}.tsv"), folder)
    assert code == 2
    assert_clean(err)
    assert "--fill-na zero" in err.strip().splitlines()[-1]
    assert not (folder / "tables").exists()


def test_corrected_batch_interrupted_then_resumed(tree):
    folder, runs, _ = tree
    store = folder / "resumed.zarr"
    corrected = command(runs, "--fill-na", "zero", "--out", store.name)

    # Ctrl-C before any run is complete: the store left behind blocks nothing
    code, _, err = interrupt_when(start(corrected, folder, hold="*"), store, 0)
    assert code == 130
    assert_clean(err)
    assert err.strip().splitlines()[-1] == (
        f"interrupted: 0 of 3 runs complete in {store.name}; rerun with --resume"
    )
    other = command(runs, "--fill-na", "mean", "--out", store.name, "--no-progress")
    code, out, err = run(other, folder)  # other parameters, no --resume, no --overwrite
    assert code == 0, err
    assert_clean(err)
    assert f"{store.name}: 3 of 3 run(s) complete" in out

    # Ctrl-C when two runs of three are complete
    code, _, err = run([*corrected, "--overwrite", "--no-progress"], folder)
    assert code == 0, err
    shutil.rmtree(store)
    code, _, err = interrupt_when(start(corrected, folder, hold=RUN_IDS[1]), store, 2)
    assert code == 130, err
    assert_clean(err)
    assert err.strip().splitlines()[-1] == (
        f"interrupted: 2 of 3 runs complete in {store.name}; rerun with --resume"
    )
    # the store has complete runs now: a refusal names the flags
    code, _, err = run(corrected, folder)
    assert code == 2
    assert_clean(err)
    assert "--resume" in err
    assert "--overwrite" in err
    # other parameters on --resume: refused, naming --overwrite
    code, _, err = run(command(runs, "--fill-na", "mean", "--out", store.name, "--resume"), folder)
    assert code == 2
    assert_clean(err)
    assert "fill_na" in err  # the differing stored parameter, named
    assert "--overwrite" in err.strip().splitlines()[-1]
    code, out, err = run([*corrected, "--resume"], folder)
    assert code == 0, err
    assert_clean(err)
    assert f"{store.name}: 3 of 3 run(s) complete" in out
    group = zarr.open_group(str(store), mode="r")
    assert group.attrs["complete"] is True


def test_ctrl_c_on_a_local_cluster_stops_workers_quietly(tree):
    folder, runs, _ = tree
    store = folder / "cluster.zarr"
    corrected = command(runs, "--fill-na", "zero", "--out", store.name, "--workers", "2")
    process = start(corrected, folder, hold=RUN_IDS[0])
    code, _, err = interrupt_when(process, store, 2, group=True)
    assert code == 130, err
    assert_clean(err)
    assert err.strip().splitlines()[-1] == (
        f"interrupted: 2 of 3 runs complete in {store.name}; rerun with --resume"
    )
    assert "KeyboardInterrupt" not in err


def test_failed_runs_say_how_many_are_complete(tree):
    folder, runs, broken = tree
    code, _, err = run(
        command([*runs, broken], "--fill-na", "zero", "--out", "partial.zarr", "--no-progress"),
        folder,
    )
    assert code == 1
    assert_clean(err)
    lines = err.strip().splitlines()
    assert lines[0] == "lazyspheres extract: 1 run(s) failed:"
    assert lines[1].startswith("  sub-04_task-rest_run-1: TruncatedImageError: ")
    assert lines[-1] == (
        "3 of 4 run(s) are complete in partial.zarr. Next: fix the failed runs and run the "
        "same command with --resume (complete runs are not redone)."
    )


def test_workers_below_one_is_a_usage_error(tree):
    folder, runs, _ = tree
    for value in ("0", "-2"):
        code, _, err = run(
            command(runs, "--fill-na", "zero", "--out", "w.zarr", "--workers", value), folder
        )
        assert code == 2
        assert_clean(err)
        assert "argument --workers: must be at least 1" in err
    assert not (folder / "w.zarr").exists()


def test_workers_run_quietly_and_verbose_shows_our_lines(tree):
    folder, runs, _ = tree
    base = command(runs[:2], "--fill-na", "zero", "--no-progress")
    code, _, err = run([*base, "--out", "q.zarr", "--workers", "1"], folder)
    assert code == 0, err
    assert err == ""  # no distributed INFO lines
    code, _, err = run(["-v", *base, "--out", "v.zarr"], folder)
    assert code == 0, err
    for run_id in RUN_IDS[:2]:
        assert f"INFO lazyspheres.batch: run {run_id} opened: " in err
        assert f"INFO lazyspheres.batch: run {run_id} written: 20 volumes, " in err
    code, _, err = run(["-vv", *base, "--out", "vv.zarr"], folder)
    assert code == 0, err
    noisy = [
        line
        for line in err.splitlines()
        if not line.startswith(("INFO lazyspheres", "DEBUG lazyspheres"))
    ]
    assert noisy == [], noisy[:5]  # no zarr / numcodecs / fsspec DEBUG flood


@pytest.mark.parametrize(
    ("source", "options", "phrase"),
    [
        ("missing.nii.gz", [], "File not found"),
        ("derivatives/dataset_description.json", [], "NIfTI header"),
        (
            "s3://lazyspheres-nowhere/bold.nii.gz",
            OFFLINE,
            "Could not connect",
        ),
        (
            "s3://lazyspheres-nowhere/results.zarr",
            OFFLINE,
            "Could not connect",
        ),
    ],
)
def test_info_speaks_like_extract_on_bad_inputs(tree, source, options, phrase):
    folder = tree[0]
    code, out, err = run(["info", source, *options], folder)
    assert code == 2
    assert out == ""
    assert err.startswith("lazyspheres info: error: "), err
    assert phrase in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert "Exception ignored" not in err


def test_info_without_s3fs_names_the_extra(tree):
    hide = "import sys; sys.modules['s3fs'] = None; " + SCRIPT[-1]
    for source in ("s3://bucket/bold.nii.gz", "s3://bucket/results.zarr"):
        done = subprocess.run(
            [sys.executable, "-c", hide, "info", source],
            cwd=tree[0], capture_output=True, text=True, timeout=_DEADLINE, check=False,
        )  # fmt: skip
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            line
            for line in done.stderr.strip().splitlines()
            if line.startswith("lazyspheres info: error:")
        ]
        assert "pip install 'lazyspheres[cloud]'" in done.stderr
        assert "Traceback" not in done.stderr


def test_store_time_is_in_seconds(tree):
    folder, runs, _ = tree
    code, _, err = run(
        command(runs[:1], "--fill-na", "zero", "--out", "t.zarr", "--no-progress"), folder
    )
    assert code == 0, err
    code, out, _ = run(["info", "t.zarr", "--json"], folder)
    assert json.loads(out)["time"] == 20
    group = zarr.open_group(str(folder / "t.zarr"), mode="r")
    np.testing.assert_array_equal(group["time"][:], np.arange(20) * 2.0)  # TR 2 s
    np.testing.assert_array_equal(group["volume"][:], np.arange(20))
