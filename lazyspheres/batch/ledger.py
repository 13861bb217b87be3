"""The client's record of finished runs, written to the result store a few objects at a time.

Workers write only their run's signals chunk. The client learns that a run is written when
its task returns, and only then records its state (``n_volumes``, ``n_voxels``, ``t_r``, and
its inputs' ``fingerprint``) and sets its ``complete`` flag. The record is written out as
whole blocks of :data:`~lazyspheres.batch.store.RUN_BLOCK` runs, state first and flags
last: by a timer :data:`FLUSH_SECONDS` after a run finishes (with every run finished
meanwhile), and once more at the end or on an interruption. So a flush costs a few requests
whatever the number of runs in it, and never more than one flush per finished run. A batch
killed outright loses at most the flags of the last few seconds: those runs are redone on
resume, never trusted without their flag.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from lazyspheres.batch.store import ResultStore

if TYPE_CHECKING:
    from lazyspheres.batch.tasks import RunOutcome

__all__ = ["FLUSH_SECONDS", "RunLedger"]

log = logging.getLogger("lazyspheres.batch")

#: Longest time a finished run waits for its flag to be written while the batch goes on.
FLUSH_SECONDS = 2.0


class RunLedger:
    """Per-run state of a batch, kept by the client and flushed in blocks.

    Parameters
    ----------
    handle : ResultStore
        The store (created or checked already).
    state : dict of str to ndarray, optional
        The stored state (a resumed store); default: nothing complete yet.
    n_runs, n_seeds : int
        Sizes, when ``state`` is not given.
    """

    def __init__(
        self,
        handle: ResultStore,
        state: dict[str, np.ndarray] | None = None,
        *,
        n_runs: int = 0,
        n_seeds: int = 0,
    ) -> None:
        self.handle = handle
        self.state = state if state is not None else _empty(n_runs, n_seeds)
        self._dirty: set[int] = set()
        self._lock = threading.Lock()  # guards the state and the pending set
        self._writing = threading.Lock()  # one flush at a time, in snapshot order
        self._timer: threading.Timer | None = None
        self.ready = False  # set once the store exists: nothing is flushed before

    def complete_runs(self, run_ids: list[str]) -> dict[str, str]:
        """``{run id: fingerprint}`` of complete runs (``run_ids`` in store order)."""
        flags = np.asarray(self.state["complete"], dtype=bool)
        return {run_ids[i]: str(self.state["fingerprint"][i]) for i in np.flatnonzero(flags)}

    def clear(self, indices: list[int]) -> None:
        """Mark runs incomplete now (before their data is rewritten)."""
        with self._lock:
            self.state["complete"][indices] = False
            self._dirty.update(indices)
        self.flush()

    def record(self, outcome: RunOutcome) -> None:
        """Note a finished run (a :class:`~lazyspheres.batch.tasks.RunOutcome`)."""
        if outcome.failure is not None:
            return
        i = outcome.index
        with self._lock:
            self.state["n_volumes"][i] = outcome.n_volumes
            self.state["n_voxels"][i] = outcome.n_voxels
            self.state["t_r"][i] = np.nan if outcome.t_r is None else float(outcome.t_r)
            self.state["fingerprint"][i] = outcome.fingerprint
            self.state["complete"][i] = True
            self._dirty.add(i)
            if self._timer is None:
                self._timer = threading.Timer(FLUSH_SECONDS, self._timed_flush)
                self._timer.daemon = True
                self._timer.start()

    def _timed_flush(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self.flush()
        except Exception as error:  # the final flush tries again, and raises
            log.warning(
                "writing run flags to %s failed (%s); retried later", self.handle.store, error
            )

    def flush(self) -> None:
        """Write the blocks of every run recorded since the last flush."""
        with self._writing:
            with self._lock:
                if not self.ready or not self._dirty:
                    return
                dirty, self._dirty = sorted(self._dirty), set()
                snapshot = {name: values.copy() for name, values in self.state.items()}
            try:
                self.handle.write_state(snapshot, dirty)
            except BaseException:
                with self._lock:  # written again by the next flush
                    self._dirty.update(dirty)
                raise

    def close(self) -> None:
        """Stop the timer and write what is left (at the end, or on an interruption)."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.flush()


def _empty(n_runs: int, n_seeds: int) -> dict[str, np.ndarray]:
    """The state of a fresh store: the fill values of its ``RUN_STATE`` and ``complete``."""
    return {
        "n_volumes": np.zeros(n_runs, np.int64),
        "n_voxels": np.zeros((n_runs, n_seeds), np.int64),
        "t_r": np.full(n_runs, np.nan),
        "fingerprint": np.array([""] * n_runs, dtype=object),
        "complete": np.zeros(n_runs, bool),
    }
