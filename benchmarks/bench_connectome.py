"""Connectome throughput: 100 runs × 264 seeds on a 2-worker LocalCluster vs 1 worker.

Usage::

    python benchmarks/bench_connectome.py               # 100 runs, T up to 1200, 2 repeats
    python benchmarks/bench_connectome.py --quick       # 20 runs, T up to 200, 1 repeat

Data: a result store laid out as :func:`lazyspheres.extract_many` writes it
(``signals(run, time, seed)`` float32, one chunk per run, NaN padding after each run's
``n_volumes``; consolidated metadata), with random network-structured signals, written once
into a temporary folder. Workload:
``lazyspheres.connectome(store, "correlation", store=store)``, as
``lazyspheres connectome results.zarr`` runs it: the workers write the 100 matrices into (a
fresh copy of) the store, nothing large comes back to this process (``--output gather``:
``.compute()`` into this process instead, 56 MB; ``--input dataset``: on
``xr.open_zarr(store)``, whose chunks hold one run each). Ledoit-Wolf per run; one
task per group of runs, the same 16 groups on 1 and 2 workers (see
``lazyspheres.connectivity.connectome.partition``); opening and graph building are timed.

Each configuration gets a fresh ``distributed.LocalCluster`` of worker processes with one
thread each (BLAS limited to one thread per worker), lazyspheres, zarr and scikit-learn
imported in the workers and in this process before the clock starts. Besides the wall time,
the CPU seconds spent in this process (client and scheduler) and in the workers are printed,
also by thread (this process: client = main thread, scheduler = ``IO loop``; workers: the
tasks, the event loop = main thread, zarr's I/O threads): where the time goes when the work
per run is small, and what a second worker adds besides tasks. Configurations alternate and repeat;
the best time of each counts. Before each one, two busy-loop processes measure the free
cores (2.00 on an idle machine). Printed as ``name: ratio (1-worker s / 2-worker s)``;
target >= 1.7.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable

import numpy as np

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # inherited by the worker processes

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _cases import peak_rss_mb  # noqa: E402
from bench_batch import available_cores  # noqa: E402

from lazyspheres.batch.store import STORE_FORMAT  # noqa: E402


def write_store(path: pathlib.Path, n_runs: int, n_seeds: int, max_volumes: int) -> None:
    """A result-store-like Zarr: signals(run, time, seed) with NaN padding, n_volumes(run)."""
    import xarray as xr

    rng = np.random.default_rng(0)
    lengths = rng.integers(max_volumes * 3 // 4, max_volumes + 1, size=n_runs)
    mixing = rng.standard_normal((8, n_seeds))
    signals = np.full((n_runs, max_volumes, n_seeds), np.nan, dtype=np.float32)
    for run, length in enumerate(lengths):
        latent = rng.standard_normal((length, 8))
        signals[run, :length] = latent @ mixing + rng.standard_normal((length, n_seeds))
    dataset = xr.Dataset(
        {
            "signals": (("run", "time", "seed"), signals),
            "n_volumes": ("run", lengths.astype(np.int64)),
        },
        coords={  # run ids as extract_many stores them (variable-length strings)
            "run": np.array([f"sub-{i:03d}" for i in range(n_runs)], dtype=object),
            "seed": np.arange(n_seeds),
        },
        # what open_results checks: the format and a complete store
        attrs={"store_format": STORE_FORMAT, "complete": True},
    )
    encoding = {"signals": {"chunks": (1, max_volumes, n_seeds)}, "n_volumes": {"chunks": (1,)}}
    with warnings.catch_warnings():  # consolidated, as extract_many writes it (zarr: not v3 spec)
        warnings.filterwarnings("ignore", message="Consolidated metadata", module="zarr")
        dataset.to_zarr(path, mode="w", zarr_format=3, consolidated=True, encoding=encoding)


def _warm() -> None:
    import sklearn.covariance  # noqa: F401
    import zarr  # noqa: F401

    import lazyspheres.connectivity  # noqa: F401


def run_once(store: pathlib.Path, n_workers: int, form: str, output: str = "store") -> dict:
    """Time one connectome of the store on a fresh cluster of ``n_workers`` workers.

    ``output="store"``: written into (a fresh copy of) the store by the workers, as the CLI
    does; ``"gather"``: computed into the client's memory (``.compute()``).
    """
    import shutil

    import xarray as xr
    from distributed import Client, LocalCluster

    import lazyspheres as ls

    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_warm)
        if output == "store":  # the store as extract_many left it: no connectome yet
            target = store.with_name("written.zarr")
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(store, target)
            store = target
        workers_cpu = sum(client.run(_cpu_seconds).values())
        workers_threads = client.run(_thread_cpu)
        main_threads = _thread_cpu()
        main_cpu = time.process_time()
        started = time.perf_counter()
        signals = store if form == "path" else xr.open_zarr(store)
        if output == "store":
            matrices = ls.connectome(signals, "correlation", store=store)
        else:
            matrices = ls.connectome(signals, "correlation").compute()
        seconds = time.perf_counter() - started
        main_cpu = time.process_time() - main_cpu
        workers_cpu = sum(client.run(_cpu_seconds).values()) - workers_cpu
        main_threads = _since(main_threads, _thread_cpu())
        after = client.run(_thread_cpu)
        workers_threads = _since(_summed(workers_threads.values()), _summed(after.values()))
        peaks = sorted(client.run(peak_rss_mb).values())
    return {
        "seconds": seconds,
        "peaks_mb": peaks,
        "checksum": float(matrices.sum().compute()),
        "main_cpu": main_cpu,
        "workers_cpu": workers_cpu,
        "main_threads": main_threads,
        "workers_threads": workers_threads,
    }


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads by role (Linux ``/proc``; empty elsewhere).

    In this process the main thread is the client and the ``IO loop`` thread runs the
    scheduler (and the client's messages); in a worker the main thread runs its event loop
    and the executor thread the tasks; ``zarr_io`` and ``asyncio`` threads do zarr's I/O.
    """
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    roles: dict[str, float] = {}
    tasks = pathlib.Path("/proc/self/task")
    for entry in tasks.iterdir() if tasks.exists() else []:
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        name = names.get(int(entry.name), "")
        role = next((label for key, label in _ROLES.items() if key in name), "other")
        roles[role] = roles.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return roles


_ROLES = {
    "MainThread": "main thread",
    "IO loop": "IO loop",
    "Dask-Default-Threads": "tasks",
    "zarr_io": "zarr",
    "asyncio": "zarr",
}


def _summed(parts: Iterable[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for role, seconds in part.items():
            total[role] = total.get(role, 0.0) + seconds
    return total


def _since(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {role: round(after[role] - before.get(role, 0.0), 2) for role in after}


def _cpu_seconds() -> float:
    return time.process_time()


def _no_dask_runs(store: str) -> float:
    """Seconds to compute the first (up to) 48 runs' matrices in this process, without Dask.

    The same reads (:class:`~lazyspheres.connectivity.reads.StoredRuns`) and the same group
    function as the tasks, in groups of 6 runs.
    """
    from lazyspheres.connectivity.connectome import _estimator, _group_matrices
    from lazyspheres.connectivity.inputs import as_runs

    runs = as_runs(store)
    stored = runs.stored
    if stored is None:
        raise RuntimeError(f"{store} is not read by the tasks themselves")
    estimator = _estimator(None)
    started = time.perf_counter()
    for first in range(0, min(48, runs.n_runs), 6):
        last = min(first + 6, runs.n_runs)
        signals, counts = stored.read(first, last)
        ids = [str(r) for r in range(first, last)]
        _group_matrices(signals, counts, ids, estimator, "correlation")
    return time.perf_counter() - started


def ceiling(store: pathlib.Path) -> float:
    """The machine's own 2-process speed-up on this work: no Dask, no transfer, no scheduler.

    Two processes each compute 48 runs, alone and then at the same time; the ratio is
    ``2 * alone / together`` (2.00 if the two cores are free and nothing is shared).
    """
    from multiprocessing import get_context

    with get_context("spawn").Pool(2) as pool:
        pool.map(_no_dask_runs, [str(store)] * 2, chunksize=1)  # imports, caches
        alone = pool.map(_no_dask_runs, [str(store)])[0]
        together = max(pool.map(_no_dask_runs, [str(store)] * 2, chunksize=1))
    return 2 * alone / together


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the ratio line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=264)
    parser.add_argument("--volumes", type=int, default=1200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--input",
        choices=("path", "dataset"),
        default="path",
        help="connectome(store path), as the CLI does (default), or connectome(xr.open_zarr())",
    )
    parser.add_argument(
        "--output",
        choices=("store", "gather"),
        default="store",
        help="write the matrices into the store from the workers, as `lazyspheres "
        "connectome` does (default), or gather them into this process (.compute())",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.volumes, args.repeat = 20, 200, 1
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}", flush=True)
    _warm()
    results: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="bench-connectome-") as folder:
        store = pathlib.Path(folder) / "results.zarr"
        write_store(store, args.runs, args.seeds, args.volumes)
        for repeat in range(args.repeat):
            for n_workers in (1, 2):
                free = available_cores()
                record = run_once(store, n_workers, args.input, args.output)
                results[n_workers].append(record)
                print(
                    f"  repeat {repeat}: {n_workers} worker(s): {record['seconds']:.2f} s, "
                    f"CPU s: main process {record['main_cpu']:.2f}, workers "
                    f"{record['workers_cpu']:.2f} (by thread: main {record['main_threads']}, "
                    f"workers {record['workers_threads']}); per-worker peak RSS "
                    f"{[round(p) for p in record['peaks_mb']]} MB, free cores before {free:.2f}",
                    flush=True,
                )
        limits = [ceiling(store) for _ in range(args.repeat)]
    print(f"load average after: {os.getloadavg()}")
    one = min(results[1], key=lambda r: r["seconds"])
    two = min(results[2], key=lambda r: r["seconds"])
    assert np.isclose(one["checksum"], two["checksum"], rtol=1e-12), "1 and 2 workers disagree"
    print()
    print(
        f"connectome {args.runs} runs x {args.seeds} seeds (T<={args.volumes}, {args.input} "
        f"input, {args.output} output), 2 workers vs "
        f"1 worker throughput: {one['seconds'] / two['seconds']:.2f} "
        f"({one['seconds']:.2f} s / {two['seconds']:.2f} s)"
    )
    print(
        "the machine's 2-process ceiling on the same work without Dask (2 x alone / both at "
        f"once, per repeat): {[round(x, 2) for x in limits]}"
    )
    print(
        f"runs per second: 1 worker {args.runs / one['seconds']:.1f}, "
        f"2 workers {args.runs / two['seconds']:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
