"""Running a batch's tasks: Dask's local scheduler by default, or a ``distributed`` Client.

Each run is a small graph (block reads → finish); its final task returns a
:class:`~lazyspheres.batch.tasks.RunOutcome` and never raises for a bad input, so a local
``dask.compute`` over all runs finishes every run it can. On a ``distributed`` cluster the
runs are submitted as futures and collected as they complete; a run whose worker died
(``KilledWorker``) is a failed run, the others go on. Progress is Dask's progress bar on
stderr, counting finished runs and the volumes read inside them.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

import dask
from dask.callbacks import Callback
from dask.delayed import Delayed
from dask.diagnostics import ProgressBar
from dask.typing import Key

from lazyspheres._scheduler import active_client, n_workers

if TYPE_CHECKING:
    from distributed import Client, Future

#: What one task computes (a probe, a run's outcome): the caller's ``on_done`` knows.
T = TypeVar("T")

__all__ = ["Progress", "active_client", "collect", "compute_all", "n_workers"]


class Progress(ProgressBar):
    """Dask's progress bar, counting a batch's finished runs and the volumes read in them.

    On the local scheduler it is a Dask callback (``with bar: dask.compute(...)``): Dask
    starts it with the computation, redraws it from its timer thread and closes it when the
    computation ends or is interrupted. On a ``distributed`` client, :meth:`watching` runs
    the same bar around the collection of futures (``as_completed``). Runs are counted by
    :meth:`update` as each one's outcome reaches the client, and volumes by :meth:`read`,
    called from the reads (worker threads, or distributed events), so a single long run
    moves the bar too. A disabled bar draws nothing.
    """

    def __init__(
        self, total: int, *, enabled: bool, label: str = "runs", volumes: int = 0
    ) -> None:
        super().__init__(minimum=0, width=30, dt=0.1, out=sys.stderr)
        self.total, self.done, self.failed = total, 0, 0
        self.volumes, self.volumes_read = volumes, 0
        self.enabled = enabled and total > 0
        self.label = label
        self._lock = threading.Lock()

    def update(self, *, failed: bool = False) -> None:
        """Count one finished run."""
        with self._lock:
            self.done += 1
            self.failed += int(failed)

    def read(self, run_id: str, n_volumes: int) -> None:
        """Count ``n_volumes`` more volumes read (of run ``run_id``)."""
        with self._lock:
            self.volumes_read += n_volumes

    def showing(self) -> contextlib.AbstractContextManager[object]:
        """The bar as a Dask callback while a local computation runs (if enabled)."""
        return self if self.enabled else contextlib.nullcontext()

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Draw this bar while ``distributed`` futures are collected (if enabled)."""
        if not self.enabled:
            yield
            return
        self._start({})
        errored = True
        try:
            yield
            errored = False
        finally:
            self._finish({}, {}, errored)

    def _update_bar(self, elapsed: float) -> None:  # Dask's timer thread, every dt
        self._draw(elapsed, final=False)

    def _draw_bar(self, frac: float, elapsed: float) -> None:  # Dask's last draw
        self._draw(elapsed, final=True)

    def _draw(self, elapsed: float, *, final: bool) -> None:
        with self._lock:
            done, failed, read = self.done, self.failed, self.volumes_read
        width = self._width
        if self.volumes and not final:
            fraction = min(1.0, read / self.volumes)
        else:
            fraction = done / self.total
        filled = int(width * fraction)
        failures = f", {failed} failed" if failed else ""
        volumes = (
            f", {min(read, self.volumes)}/{self.volumes} volumes read" if self.volumes else ""
        )
        with contextlib.suppress(ValueError):  # stderr closed (interpreter shutting down)
            self._file.write(
                f"\r[{'#' * filled}{' ' * (width - filled)}] {done}/{self.total} "
                f"{self.label}{failures}{volumes} | {elapsed:6.1f} s"
            )
            self._file.flush()


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
