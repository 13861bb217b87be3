"""One writer per result store (lazyspheres/batch/lock.py).

The CLI test starts two ``lazyspheres extract --out same.zarr`` processes together. Each
process runs the CLI under a test-only hook (``store.fault_hook``, the seam fault-injection
tests use) that appends ``pid run_id`` to a log before it writes a run's data, and sleeps a
little so the two batches really overlap. The log proves no run was computed twice.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from batch_helpers import run_affine, world_seeds, write_runs

import lazyspheres as ls
from lazyspheres.batch.lock import lock_path, store_lock
from lazyspheres.errors import StoreBusyError

# Runs the CLI with a hook logging each run written (and slowing it, so writers overlap).
_WRAPPER = textwrap.dedent(
    """
    import os, sys, time
    import lazyspheres.batch.store as store

    def hook(stage, run_id):
        if stage == "before_data":
            with open(os.environ["LOCK_TEST_LOG"], "a") as log:
                log.write(f"{os.getpid()} {run_id}\\n")
            time.sleep(float(os.environ.get("LOCK_TEST_SLEEP", "0")))

    store.fault_hook = hook
    from lazyspheres.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return write_runs(tmp_path_factory.mktemp("lock-runs"), n_subjects=2, n_runs=2, n_volumes=12)


@pytest.fixture(scope="module")
def seeds_csv(runs, tmp_path_factory):
    path = tmp_path_factory.mktemp("lock-seeds") / "seeds.csv"
    pd.DataFrame(seed_xyz(runs), columns=["x", "y", "z"]).to_csv(path, index=False)
    return path


def seed_xyz(runs):
    return world_seeds(run_affine(runs[0]))


def _start(runs, seeds_csv, store, log, *extra, sleep=0.3):
    env = dict(os.environ, LOCK_TEST_LOG=str(log), LOCK_TEST_SLEEP=str(sleep))
    command = [sys.executable, "-c", _WRAPPER, "extract", *map(str, runs)]
    command += ["--seeds", str(seeds_csv), "--radius", "3", "--no-progress", "--out", str(store)]
    return subprocess.Popen(
        [*command, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _logged(log):
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("extra", [(), ("--resume",)], ids=["fresh", "resume"])
def test_two_cli_writers_on_one_store(runs, seeds_csv, tmp_path, extra):
    store, log = tmp_path / "same.zarr", tmp_path / "runs.log"
    first = _start(runs, seeds_csv, store, log, *extra)
    second = _start(runs, seeds_csv, store, log, *extra)
    results = [(p.wait(timeout=300), *p.communicate()) for p in (first, second)]
    print(results)  # shown on failure: which process won, and what the other said
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0, results  # one of them wrote the store
    for code, _out, err in results:
        assert "Traceback" not in err, err
        assert "mode 'w-'" not in err, err
        if code != 0:
            assert code == 2, err
            assert str(store) in err, err
            assert "--resume" in err, err
            assert ("being written by another lazyspheres process" in err) or (
                "exists: pass --resume" in err
            ), err
    # No run computed twice: every run's data was written exactly once, by one process.
    written = _logged(log)
    assert sorted(run for _, run in written) == sorted({run for _, run in written})
    assert len(written) == len(runs)
    assert len({pid for pid, _ in written}) == 1
    assert not lock_path(store).exists()  # released
    # The store is complete and equal to a single writer's.
    alone = tmp_path / "alone.zarr"
    ls.extract_many([str(r) for r in runs], seed_xyz(runs), 3.0, store=alone, progress=False)
    ours, reference = ls.open_results(store), ls.open_results(alone)
    assert bool(ours.attrs["complete"])
    assert ours.complete.values.all()
    np.testing.assert_array_equal(ours.run.values, reference.run.values)
    np.testing.assert_array_equal(ours.signals.values, reference.signals.values)
    assert ours.attrs["inputs"] == reference.attrs["inputs"]
    # Resuming once the other has finished computes nothing again.
    again = _start(runs, seeds_csv, store, log, "--resume", sleep=0)
    code, _, err = (again.wait(timeout=300), *again.communicate())
    assert code == 0, err
    assert len(_logged(log)) == len(runs)


def test_second_writer_refuses_at_once_naming_store_and_resume(runs, seeds_csv, tmp_path):
    store = tmp_path / "busy.zarr"
    with store_lock(store) as held:
        assert held == lock_path(store)
        with pytest.raises(StoreBusyError, match="resume=True") as caught:
            ls.extract_many([str(r) for r in runs], seed_xyz(runs), 3.0, store=store)
        message = str(caught.value)
        assert str(store) in message
        assert f"pid {os.getpid()}" in message
        assert "--resume" in message
        assert not store.exists()  # refused before anything was written
    assert not held.exists()


def test_stale_lock_of_a_dead_process_is_taken_over(runs, seeds_csv, tmp_path):
    store = tmp_path / "stale.zarr"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = {"pid": dead.pid, "host": socket.gethostname(), "token": "old"}
    lock_path(store).write_text(json.dumps(record))
    ls.extract_many([str(r) for r in runs], seed_xyz(runs), 3.0, store=store, progress=False)
    assert ls.open_results(store).attrs["complete"]
    assert not lock_path(store).exists()


def test_lock_of_another_host_is_kept_and_explained(tmp_path):
    store = tmp_path / "elsewhere.zarr"
    record = {"pid": 1, "host": "another-host.invalid", "started": "then", "token": "x"}
    lock_path(store).write_text(json.dumps(record))
    with (
        pytest.raises(StoreBusyError, match=r"another-host\.invalid") as caught,
        store_lock(store),
    ):
        pass
    assert f"delete {lock_path(store)}" in str(caught.value)
    assert lock_path(store).exists()  # not ours to remove


def test_a_lock_file_that_cannot_be_read_is_not_taken(tmp_path):
    store = tmp_path / "garbled.zarr"
    lock_path(store).write_text("{not json")
    with pytest.raises(StoreBusyError, match="being written"), store_lock(store):
        pass


def test_url_and_object_stores_are_not_locked():
    assert lock_path("s3://bucket/results.zarr") is None
    assert lock_path(object()) is None
    with store_lock("memory://results.zarr") as held:
        assert held is None
