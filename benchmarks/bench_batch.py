"""Batch throughput: 8 ``.nii.gz`` runs on a 2-worker LocalCluster vs 1 worker, same run.

Usage::

    python benchmarks/bench_batch.py                  # 8 runs T=300, 2 runs T=1200, 2 repeats
    python benchmarks/bench_batch.py --quick          # 4 runs T=60, no T=1200 (smoke test)

Data: synthetic MNI 2 mm float32 runs (91×109×91, Power 264 network structure) written once
by ``lazyspheres.datasets.write_bold`` into ``bench-data/batch/`` (each run its own random
state). Workload: ``extract_many(runs, "power2011", 5.0)`` into a fresh Zarr store.

Each configuration gets its own ``distributed.LocalCluster`` of worker processes with one
thread each (the baseline: 1 worker, i.e. the runs one after the other on one thread; the
contender: 2 workers). Workers import lazyspheres before the clock starts, so the times are
the batch only. Per-worker peak memory is each worker process's ``VmHWM`` (peak resident
set) read from ``/proc`` at the end, so it includes the imports (~150-200 MB). Configurations
alternate and repeat; the best time of each is used. The machine's load average is printed:
on a shared machine other processes take cores from both sides.

Before each batch two busy-loop processes measure how many cores are free (2.00 on an idle
two-core machine). Printed as ``name: ratio (a s / b s)``; the throughput ratio is baseline
time / contender time (target >= 1.7), the memory ratio T=1200 / T=300 per-worker peak
(flat: about 1).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

from _cases import peak_rss_mb  # benchmarks/ is on sys.path (the script's folder)

HERE = pathlib.Path(__file__).resolve().parent
SEEDS = "power2011"
RADIUS = 5.0


def ensure_runs(folder: pathlib.Path, n_runs: int, n_volumes: int) -> list[pathlib.Path]:
    """Generate (once) ``n_runs`` runs of ``n_volumes`` volumes, random states 0..n-1."""
    from lazyspheres import datasets

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n_runs):
        path = folder / f"sub-{index + 1:02d}_task-rest_T{n_volumes}_bold.nii.gz"
        if not path.exists():
            print(f"generating {path} ...", flush=True)
            datasets.write_bold(path, n_volumes=n_volumes, random_state=index)
        paths.append(path)
    return paths


def _warm() -> None:
    # imports out of the clock: everything a batch task touches
    import xarray.backends.zarr  # noqa: F401
    import zarr  # noqa: F401

    import lazyspheres.batch.tasks
    import lazyspheres.cleaning
    import lazyspheres.extraction  # noqa: F401


def _burn(seconds: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        pass
    return time.process_time()


def available_cores(seconds: float = 1.0) -> float:
    """CPU time two busy processes get in ``seconds`` of wall time: the free cores now."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        return sum(pool.map(_burn, [seconds, seconds])) / seconds


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_batch(runs: list[pathlib.Path], n_workers: int, scratch: pathlib.Path) -> dict:
    """Time one batch on a fresh cluster of ``n_workers`` single-thread worker processes."""
    from distributed import Client, LocalCluster

    import lazyspheres as ls

    store = scratch / f"results-{n_workers}w-{time.monotonic_ns()}.zarr"
    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_warm)
        cpu_before = sum(client.run(_cpu_seconds).values())
        started = time.perf_counter()
        ds = ls.extract_many(runs, SEEDS, RADIUS, store=store, client=client, progress=False)
        seconds = time.perf_counter() - started
        cpu = sum(client.run(_cpu_seconds).values()) - cpu_before
        peaks = sorted(client.run(peak_rss_mb).values())
        assert bool(ds.complete.all()), "batch incomplete"
        checksum = float(abs(ds.signals).sum())
    shutil.rmtree(store, ignore_errors=True)
    return {"seconds": seconds, "cpu": cpu, "peaks_mb": peaks, "checksum": checksum}


_CONVERT = """
import json, resource, sys, time
import lazyspheres as ls
source, target = sys.argv[1], sys.argv[2]
started = time.perf_counter()
ls.to_zarr_image(source, target, overwrite=True)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak}))
"""


def convert(source: pathlib.Path, scratch: pathlib.Path) -> dict:
    """``to_zarr_image`` of one run in a fresh process: time and peak RSS."""
    import json
    import subprocess

    target = scratch / (source.name + ".zarr")
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT, str(source), str(target)],
        capture_output=True,
        text=True,
        check=True,
    )
    shutil.rmtree(target, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print ratio lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--volumes", type=int, default=300)
    parser.add_argument("--long-runs", type=int, default=2, help="runs at T=1200 (0: skip)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="4 runs of T=60, no T=1200")
    parser.add_argument(
        "--no-convert", action="store_true", help="skip the to_zarr_image memory check"
    )
    parser.add_argument("--data", type=pathlib.Path, default=HERE.parent / "bench-data" / "batch")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.volumes, args.long_runs, args.repeat = 4, 60, 0, 1
    runs = ensure_runs(args.data, args.runs, args.volumes)
    long_runs = ensure_runs(args.data, args.long_runs, 1200) if args.long_runs else []
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}", flush=True)
    results: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as folder:
        scratch = pathlib.Path(folder)
        for repeat in range(args.repeat):
            for n_workers in (1, 2):
                free = available_cores()
                record = run_batch(runs, n_workers, scratch)
                results[n_workers].append(record)
                print(
                    f"  repeat {repeat}: {n_workers} worker(s): {record['seconds']:.2f} s "
                    f"(workers' CPU {record['cpu']:.1f} s = "
                    f"{record['cpu'] / record['seconds']:.2f} cores), per-worker peak RSS "
                    f"{[round(p) for p in record['peaks_mb']]} MB, "
                    f"free cores before {free:.2f}",
                    flush=True,
                )
        long = run_batch(long_runs, 2, scratch) if long_runs else None
        conversions = {}
        if not args.no_convert:
            for run in (runs[0], *long_runs[:1]):
                conversions[run.name] = convert(run, scratch)
    print(f"load average after: {os.getloadavg()}")
    one = min(results[1], key=lambda r: r["seconds"])
    two = min(results[2], key=lambda r: r["seconds"])
    assert one["checksum"] == two["checksum"], "1 and 2 workers disagree"
    n = len(runs)
    print()
    print(
        f"batch {n} runs T={args.volumes} nii.gz, 2 workers vs 1 worker throughput: "
        f"{one['seconds'] / two['seconds']:.2f} ({one['seconds']:.2f} s / {two['seconds']:.2f} s)"
    )
    print(
        f"runs per minute: 1 worker {60 * n / one['seconds']:.1f}, "
        f"2 workers {60 * n / two['seconds']:.1f}"
    )
    print(
        f"per-worker peak RSS T={args.volumes}: 1 worker {max(one['peaks_mb']):.0f} MB, "
        f"2 workers {max(two['peaks_mb']):.0f} MB; ratio 2w/1w "
        f"{max(two['peaks_mb']) / max(one['peaks_mb']):.2f}"
    )
    if long is not None:
        print(
            f"per-worker peak RSS 2 workers, T=1200 vs T={args.volumes}: "
            f"{max(long['peaks_mb']) / max(two['peaks_mb']):.2f} "
            f"({max(long['peaks_mb']):.0f} MB / {max(two['peaks_mb']):.0f} MB)"
        )
        print(f"  ({len(long_runs)} runs T=1200 on 2 workers: {long['seconds']:.2f} s)")
    for name, record in conversions.items():
        print(
            f"to_zarr_image {name}: {record['seconds']:.1f} s, "
            f"peak RSS {record['peak_rss_mb']:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
