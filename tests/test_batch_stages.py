"""extract_many's stages on their own: the store policy and the resume policy."""

from __future__ import annotations

import pytest

from lazyspheres.batch.runs import RunSpec
from lazyspheres.batch.stages import _store_policy, runs_to_do
from lazyspheres.batch.tasks import Failure, Opened


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
