"""One streaming pass as a chain of step tasks, so Dask can show progress inside it.

A ``.nii.gz`` is read in one sequential pass: volume ``t`` cannot be reached without
inflating every volume before it. As a single Dask task, that pass sits at "0/1" for the
whole run. Here the pass is cut into at most :data:`MAX_STEPS` *step* tasks, chained:

* step ``s`` receives a :class:`StreamCursor` from step ``s - 1``: the open file, the live
  inflater and the position reached, plus the buffers it reuses;
* it pulls the next blocks of volumes through the cursor, and hands the cursor on;
* a small task per step picks out that step's ``(b, n)`` rows, which are concatenated.

The stream is still opened once, inflated once, front to back, with one block in memory:
a step never re-reads what an earlier step inflated.

Where the chain cannot work: a zlib/ISA-L decompressor cannot be pickled, so a cursor
cannot follow its chain into another process. :func:`chain_allowed` therefore chains only
when the graph is built for Dask's local threaded or synchronous scheduler (the default);
with a ``distributed`` client or the ``"processes"`` scheduler the pass stays one task.
Should a cursor be pickled anyway (a graph built for threads, computed elsewhere), it
travels *detached*, as its position only: the receiving step reopens the stream there,
which is correct but inflates the file again from its start (or jumps there through a
seek-point index if one exists).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import dask
import dask.array as da
import numpy as np
from dask.base import get_scheduler, tokenize
from dask.highlevelgraph import HighLevelGraph

if TYPE_CHECKING:
    from dask.typing import Key

__all__ = ["MAX_STEPS", "StreamCursor", "chain_allowed", "chained_pass", "step_bounds"]

#: At most this many step tasks per pass: enough for a smooth bar, few enough that the
#: scheduler's per-task cost stays far below the inflate time of a step.
MAX_STEPS = 100

#: ``opener(start, stop)`` -> iterator of ``(t0, rows, n_bad)`` in time order, ``rows`` of
#: shape ``(b, n)`` covering volumes ``t0:t0 + b``.
Opener = Callable[[int, int], Iterator[tuple[int, np.ndarray, int]]]


class StreamCursor:
    """The state of one streaming pass, handed from each step task to the next.

    Parameters
    ----------
    opener : callable
        ``opener(start, stop)`` starts the pass at volume ``start`` (picklable).
    stop : int
        The volume the pass ends at.
    """

    def __init__(self, opener: Opener, stop: int) -> None:
        self.opener = opener
        self.stop = stop
        self.position = 0  # first volume not yet handed out
        self.n_bad = 0  # non-finite values met so far
        self.reopened = False  # whether this cursor had to restart its stream
        self._blocks: Iterator[tuple[int, np.ndarray, int]] | None = None
        self._pending: np.ndarray | None = None  # rows read past the last step's end

    def advance(self, t1: int) -> np.ndarray:
        """The rows of volumes ``position:t1``, read on from where the last step stopped."""
        if self._blocks is None:
            self.reopened = self.position > 0
            self._blocks = iter(self.opener(self.position, self.stop))
        parts = []
        need = t1 - self.position
        if self._pending is not None:
            parts.append(self._pending[:need])
            self._pending = self._pending[need:] if len(self._pending) > need else None
            need -= len(parts[-1])
        while need > 0:
            _, rows, bad = next(self._blocks)
            self.n_bad += bad
            parts.append(rows[:need])
            if len(rows) > need:
                self._pending = rows[need:]
            need -= len(parts[-1])
        self.position = t1
        if t1 >= self.stop:
            self.close()
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        """End the pass: run the reader to its end (checks, index kept) and close the file."""
        blocks, self._blocks = self._blocks, None
        if blocks is not None:
            for _ in blocks:  # nothing is left at the stop; this runs the reader's epilogue
                pass

    def __getstate__(self) -> dict[str, object]:
        # A live decompressor cannot be pickled: travel as a position, reopened on arrival.
        state = dict(self.__dict__)
        state["_blocks"] = None
        return state


def chain_allowed() -> bool:
    """Whether the graph being built will run on Dask's local threaded or sync scheduler."""
    scheduler = get_scheduler()
    return scheduler is None or scheduler in (dask.threaded.get, dask.local.get_sync)


def step_bounds(n_volumes: int, per_block: int, max_steps: int | None = None) -> list[int]:
    """Step edges ``[0, ..., n_volumes]``: whole reader blocks, at most ``max_steps`` steps.

    ``max_steps`` defaults to :data:`MAX_STEPS` (set it to 1 for a single-task pass).
    """
    max_steps = MAX_STEPS if max_steps is None else max_steps
    n_blocks = max(1, math.ceil(n_volumes / per_block))
    per_step = per_block * math.ceil(n_blocks / max_steps)
    return [*range(0, n_volumes, per_step), n_volumes]


def _first(opener: Opener, stop: int, t1: int) -> tuple[StreamCursor, np.ndarray]:
    cursor = StreamCursor(opener, stop)
    return cursor, cursor.advance(t1)


def _next(previous: tuple[StreamCursor, np.ndarray], t1: int) -> tuple[StreamCursor, np.ndarray]:
    cursor = previous[0]
    return cursor, cursor.advance(t1)


def _last(
    previous: tuple[StreamCursor, np.ndarray], finish: Callable[[int], None] | None
) -> np.ndarray:
    rows = previous[1]
    if finish is not None:
        finish(previous[0].n_bad)
    return rows


def _rows(step: tuple[StreamCursor, np.ndarray]) -> np.ndarray:
    return step[1]


def chained_pass(
    opener: Opener,
    bounds: list[int],
    n_columns: int,
    *,
    token: str,
    finish: Callable[[int], None] | None = None,
    name: str = "stream",
) -> da.Array:
    """A lazy ``(bounds[-1], n_columns)`` float64 array read by one chained streaming pass.

    Parameters
    ----------
    opener : callable
        ``opener(start, stop)`` yields ``(t0, rows, n_bad)`` blocks (see :data:`Opener`).
    bounds : list of int
        Step edges, from :func:`step_bounds`; one step task per interval.
    n_columns : int
        Columns of every block of rows.
    token : str
        A deterministic token of what is read (names the graph's keys).
    finish : callable, optional
        Called by the last step with the total count of non-finite values met.
    name : str
        Prefix of the key names.

    Returns
    -------
    dask.array.Array
        One chunk per step; computing it runs the steps in order, each handing its cursor on.
    """
    steps = f"{name}-step-{tokenize(token, bounds)}"
    rows = f"{name}-rows-{tokenize(token, bounds)}"
    stop = bounds[-1]
    dsk: dict[Key, object] = {}
    n = len(bounds) - 1
    for s in range(n):
        t1 = bounds[s + 1]
        if s == 0:
            dsk[(steps, s)] = (_first, opener, stop, t1)
        else:
            dsk[(steps, s)] = (_next, (steps, s - 1), t1)
        if s == n - 1:
            dsk[(rows, s, 0)] = (_last, (steps, s), finish)
        else:
            dsk[(rows, s, 0)] = (_rows, (steps, s))
    graph = HighLevelGraph.from_collections(rows, dsk, dependencies=())
    chunks = (tuple(b - a for a, b in itertools.pairwise(bounds)), (n_columns,))
    return da.Array(graph, rows, chunks, dtype=np.float64)
