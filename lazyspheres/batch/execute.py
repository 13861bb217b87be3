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
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

import dask
from dask.callbacks import Callback
from dask.delayed import Delayed
from dask.typing import Key

if TYPE_CHECKING:
    from distributed import Client, Future

#: What one task computes (a probe, a run's outcome): the caller's ``on_done`` knows.
T = TypeVar("T")

__all__ = ["Progress", "active_client", "collect", "compute_all", "n_workers"]


def active_client(client: Client | None = None) -> Client | None:
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


def n_workers(client: Client | None) -> int:
    """Number of threads that will run tasks."""
    if client is not None:
        threads = client.nthreads()
        return max(1, sum(threads.values()))
    import os

    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


class Progress:
    """A one-line progress bar on stderr (or nothing): runs finished and volumes read.

    ``read`` is called from worker threads (or distributed events) as blocks of volumes are
    read, so a single long run moves the bar too.
    """

    def __init__(
        self, total: int, *, enabled: bool, label: str = "runs", volumes: int = 0
    ) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.volumes, self.volumes_read = volumes, 0
        self.enabled = enabled and total > 0
        self.label = label
        self.started = time.perf_counter()
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self, *, failed: bool = False) -> None:
        """Count one finished run and redraw (at most 10 times a second)."""
        with self._lock:
            self.done += 1
            self.failed += int(failed)
            self._redraw(final=self.done == self.total)

    def read(self, run_id: str, n_volumes: int) -> None:
        """Count ``n_volumes`` more volumes read (of run ``run_id``) and redraw."""
        with self._lock:
            self.volumes_read += n_volumes
            self._redraw(final=False)

    def _redraw(self, *, final: bool) -> None:
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.1 or final):
            self._last = now
            self._draw(now, final)

    def _draw(self, now: float, final: bool) -> None:
        width = 30
        if self.volumes and not final:
            fraction = min(1.0, self.volumes_read / self.volumes)
        else:
            fraction = self.done / self.total
        filled = int(width * fraction)
        failed = f", {self.failed} failed" if self.failed else ""
        volumes = (
            f", {min(self.volumes_read, self.volumes)}/{self.volumes} volumes read"
            if self.volumes
            else ""
        )
        sys.stderr.write(
            f"\r[{'#' * filled}{' ' * (width - filled)}] {self.done}/{self.total} "
            f"{self.label}{failed}{volumes} | {now - self.started:6.1f} s"
        )
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


class _Finished(Callback, Generic[T]):
    """Local-scheduler callback calling ``on_done(position, result)`` for each final task."""

    def __init__(self, positions: dict[Key, int], on_done: Callable[[int, T], None]) -> None:
        super().__init__()
        self.positions = positions
        self.on_done = on_done

    def _posttask(
        self, key: Key, result: T, dsk: Mapping[Key, object], state: object, worker_id: int
    ) -> None:
        if key in self.positions:
            self.on_done(self.positions[key], result)


def compute_all(
    tasks: Sequence[Delayed],
    *,
    client: Client | None,
    on_done: Callable[[int, T], None],
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
    futures: Sequence[Future],
    *,
    client: Client,
    on_done: Callable[[int, T], None],
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
