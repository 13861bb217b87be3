"""Running a batch's tasks: header probes, then block reads and each run's finishing task.

``probe_all`` reads every run's header on the workers; ``run_all`` submits the block reads
of each run (time blocks for uncompressed files when there are fewer runs than threads),
then the tasks that clean and write each run, while a progress bar counts finished runs and
volumes read. With ``-v`` on the command line, the ``lazyspheres`` logger says when a run
is opened, how much it read and when it is written.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
from dask import delayed
from dask.base import tokenize

from lazyspheres._types import StorageOptions
from lazyspheres.batch import tasks as task_module
from lazyspheres.batch.execute import Progress, collect, compute_all, n_workers
from lazyspheres.batch.params import BatchParams
from lazyspheres.batch.reading import ImageFacts
from lazyspheres.batch.runs import RunSpec
from lazyspheres.batch.store import StoreNotReadyError, StoreReady
from lazyspheres.batch.tasks import (
    BlockMeans,
    Failure,
    Probe,
    RunOutcome,
    finish_run,
    probe_run,
    read_block,
)

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["probe_all", "run_all"]

log = logging.getLogger("lazyspheres.batch")

# Uncompressed runs are split in time blocks of at least this many volumes when there are
# fewer runs than worker threads (gzip streams cannot be split; Zarr chunks hold all T).
_MIN_BLOCK_VOLUMES = 64


def probe_all(
    runs: list[RunSpec], client: Client | None, options: StorageOptions | None
) -> list[Probe]:
    """Header facts of every run, read by the workers (a Failure per unreadable run)."""
    token = tokenize(object())
    tasks = [
        delayed(probe_run, pure=False)(run, options, dask_key_name=f"probe-{run.run_id}-{token}")
        for run in runs
    ]
    results: list[Probe] = [Failure("RuntimeError", "not probed")] * len(runs)

    def done(i: int, result: Probe) -> None:
        results[i] = result

    def error(i: int, exc: BaseException) -> None:
        results[i] = Failure.of(exc)

    compute_all(tasks, client=client, on_done=done, on_error=error)
    for run, result in zip(runs, results, strict=True):
        if isinstance(result, Failure):
            log.info("run %s: cannot be opened (%s)", run.run_id, result.error_type)
        else:
            facts = result.facts
            log.info(
                "run %s opened: %s, %d volumes, %s",
                run.run_id,
                facts.location,
                facts.n_volumes,
                _size(facts.size),
            )
    return results


def _n_blocks(facts: ImageFacts, n_runs: int, workers: int, time_blocks: int | None) -> int:
    if facts.kind != "nifti":  # gzip: one stream; Zarr: one task reads the chunks it needs
        return 1
    if time_blocks is not None:
        return max(1, min(int(time_blocks), facts.n_volumes))
    if n_runs >= 2 * workers:
        return 1
    return max(1, min(workers, facts.n_volumes // _MIN_BLOCK_VOLUMES))


def run_all(
    todo: list[tuple[RunSpec, Probe]],
    params: BatchParams,
    client: Client | None,
    prepare: Callable[[], object],
    record: Callable[[RunOutcome], object],
) -> list[RunOutcome]:
    """Read and finish every run of ``todo``; ``prepare()`` runs before any run is written.

    ``prepare`` (creating the store; it returns the root ``zarr.json``) overlaps with the
    block reads: on a cluster they are submitted first; locally it runs in a thread, and
    the finishing tasks wait for it before writing. ``record(outcome)`` is called here, in
    the client, as each run finishes (after its signals are written).
    """
    outcomes: list[RunOutcome] = []
    workers = n_workers(client)
    token = tokenize(object())
    ready = StoreReady(done=False) if client is None else None
    submitted, reads = [], []
    for run, probe in todo:
        if isinstance(probe, Failure):
            outcomes.append(RunOutcome(run.index, run.run_id, run.source, failure=probe))
            continue
        n_volumes = probe.facts.n_volumes
        n = _n_blocks(probe.facts, len(todo), workers, params.time_blocks)
        edges = np.linspace(0, n_volumes, n + 1).astype(int)
        reads.append(
            [
                delayed(_read_block, pure=False)(
                    ready,
                    run,
                    params,
                    int(a),
                    int(b),
                    dask_key_name=f"read-{run.run_id}-{k}-{token}",
                )
                for k, (a, b) in enumerate(itertools.pairwise(edges))
            ]
        )
        submitted.append(run)
    facts = {run.run_id: probe.facts for run, probe in todo if not isinstance(probe, Failure)}
    bar = Progress(
        len(submitted),
        enabled=params.progress,
        volumes=sum(facts[run.run_id].n_volumes for run in submitted),
    )

    def done(i: int, outcome: RunOutcome) -> None:
        record(outcome)
        outcomes.append(outcome)
        bar.update(failed=outcome.failure is not None)
        _log_outcome(outcome, facts[outcome.run_id])

    def error(i: int, exc: BaseException) -> None:
        run = submitted[i]
        outcomes.append(RunOutcome(run.index, run.run_id, run.source, failure=Failure.of(exc)))
        bar.update(failed=True)

    keys = [f"run-{run.run_id}-{token}" for run in submitted]
    if ready is not None:
        tasks = [
            delayed(finish_run, pure=False)(run, params, ready, *blocks, dask_key_name=key)
            for run, blocks, key in zip(submitted, reads, keys, strict=True)
        ]
        try:  # an interruption still lets the template be written whole
            ready.start(prepare)
            with _volumes_reported(bar, None), bar.showing():
                compute_all(tasks, client=None, on_done=done, on_error=error)
        finally:
            ready.wait_quietly()
        ready.result()  # the store's own error, if preparing it failed
        return outcomes
    assert client is not None  # ready is None only on a cluster
    block_futures = [client.compute(blocks) for blocks in reads]
    try:
        root = prepare()
    except BaseException:
        client.cancel([future for futures in block_futures for future in futures])
        raise
    # Workers take the signals metadata from the root instead of reading it.
    prepared = StoreReady(root if isinstance(root, dict) else None)
    finals = [
        client.submit(finish_run, run, params, prepared, *futures, key=key, pure=False)
        for run, futures, key in zip(submitted, block_futures, keys, strict=True)
    ]
    # Only the finishing tasks need the blocks now: without our references the scheduler
    # frees each run's blocks as soon as its finishing task has run.
    del block_futures
    with _volumes_reported(bar, client), bar.watching():
        collect(finals, client=client, on_done=done, on_error=error)
    return outcomes


def _read_block(
    ready: StoreReady | None, run: RunSpec, params: BatchParams, start: int, stop: int
) -> BlockMeans | Failure:
    """:func:`read_block`, skipped once the store could not be prepared."""
    if ready is not None and ready.failed:
        return Failure.of(StoreNotReadyError("the result store was not prepared"))
    return read_block(run, params, start, stop)


@contextlib.contextmanager
def _volumes_reported(bar: Progress, client: Client | None) -> Iterator[None]:
    """Route the volume counts of reads to ``bar`` while the batch runs.

    Locally the reads run in this process's threads and call the bar directly; on a
    cluster they are events the workers log on a topic this client subscribes to.
    """
    if not bar.enabled:
        yield
        return
    if client is None:
        task_module.progress_sink = bar.read
        try:
            yield
        finally:
            task_module.progress_sink = None
        return
    topic = task_module.PROGRESS_TOPIC
    client.subscribe_topic(topic, lambda event: bar.read(*event[1]))
    try:
        yield
    finally:
        client.unsubscribe_topic(topic)


def _log_outcome(outcome: RunOutcome, facts: ImageFacts) -> None:
    if outcome.failure is not None:
        log.info("run %s failed: %s", outcome.run_id, outcome.failure.error_type)
        return
    read = "its sphere chunks" if facts.kind == "zarr" else _size(facts.size)
    log.info("run %s written: %d volumes, %s read", outcome.run_id, outcome.n_volumes, read)


def _size(n_bytes: int | None) -> str:
    return "size unknown" if n_bytes is None else f"{n_bytes / 2**20:.1f} MiB"
