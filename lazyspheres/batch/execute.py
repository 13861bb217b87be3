"""Running a batch's tasks: Dask's local scheduler by default, or a ``distributed`` Client.

Each run is a small graph (block reads → finish); its final task returns a
:class:`~lazyspheres.batch.tasks.RunOutcome` and never raises for a bad input, so a local
``dask.compute`` over all runs finishes every run it can. On a ``distributed`` cluster the
runs are submitted as futures and collected as they complete; a run whose worker died
(``KilledWorker``) is a failed run, the others go on. Progress is the count of finished
runs, drawn on stderr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import dask
from dask.callbacks import Callback

__all__ = ["Progress", "active_client", "collect", "compute_all", "n_workers"]


def active_client(client: Any = None) -> Any:
    """The given client, else the default ``distributed`` client if one is active."""
    if client is not None:
        return client
    scheduler = dask.config.get("scheduler", None)
    if scheduler not in (None, "dask.distributed", "distributed"):
        return None  # the user chose a local scheduler explicitly
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:
        return None


def n_workers(client: Any) -> int:
    """Number of threads that will run tasks."""
    if client is not None:
        threads = client.nthreads()
        return max(1, sum(threads.values()))
    import os

    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


class Progress:
    """A one-line progress bar of finished runs on stderr (or nothing)."""

    def __init__(self, total: int, *, enabled: bool, label: str = "runs") -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.enabled = enabled and total > 0
        self.label = label
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, *, failed: bool = False) -> None:
        """Count one finished run and redraw (at most 10 times a second)."""
        self.done += 1
        self.failed += int(failed)
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.1 or self.done == self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        width = 30
        filled = int(width * self.done / self.total)
        failed = f", {self.failed} failed" if self.failed else ""
        sys.stderr.write(
            f"\r[{'#' * filled}{' ' * (width - filled)}] {self.done}/{self.total} "
            f"{self.label}{failed} | {now - self.started:6.1f} s"
        )
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class _Finished(Callback):
    """Local-scheduler callback calling ``on_done(position, result)`` for each final task."""

    def __init__(self, positions: dict[Any, int], on_done: Callable[[int, Any], None]) -> None:
        super().__init__()
        self.positions = positions
        self.on_done = on_done

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        if key in self.positions:
            self.on_done(self.positions[key], result)


def compute_all(
    tasks: Sequence[Any],
    *,
    client: Any,
    on_done: Callable[[int, Any], None],
    on_error: Callable[[int, BaseException], None],
) -> None:
    """Compute delayed ``tasks``, calling ``on_done(i, result)`` as each one finishes.

    On a distributed client a task that raises (e.g. ``KilledWorker``) calls
    ``on_error(i, exc)`` and the others continue. Locally, tasks are expected not to raise;
    an interruption (KeyboardInterrupt) propagates.
    """
    if not tasks:
        return
    if client is None:
        with _Finished({task.key: i for i, task in enumerate(tasks)}, on_done):
            dask.compute(*tasks)
        return
    collect(client.compute(list(tasks)), client=client, on_done=on_done, on_error=on_error)


def collect(
    futures: Sequence[Any],
    *,
    client: Any,
    on_done: Callable[[int, Any], None],
    on_error: Callable[[int, BaseException], None],
) -> None:
    """Wait for ``distributed`` futures, calling ``on_done(i, result)`` as each finishes.

    A future that raises calls ``on_error(i, exc)`` and the others continue; an
    interruption cancels them all and propagates.
    """
    from distributed import as_completed

    position = {future.key: i for i, future in enumerate(futures)}
    try:
        for future in as_completed(futures):
            i = position[future.key]
            try:
                result = future.result()
            except Exception as error:
                on_error(i, error)
            else:
                on_done(i, result)
            future.release()
    except BaseException:
        client.cancel(futures)
        raise
