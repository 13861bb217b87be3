"""Cost of the chained streaming pass (progress inside a run) against the single-task pass.

Usage::

    python benchmarks/bench_progress.py --data /work/bench-data --volumes 300 --repeat 7

``extract(path, "power2011", 5).compute()`` of a ``.nii.gz`` on Dask's default threaded
scheduler, two ways, alternated in one process (so the page cache and load are shared):

* ``single``: the whole pass as one task (``stream_chain.MAX_STEPS = 1``, the old graph);
* ``chain``: the pass as a chain of step tasks (the default, at most 100 steps).

Prints the median wall and CPU time of each, and their ratio. Values are compared (they
must be bit-equal) and a mismatch fails loudly.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import numpy as np

import lazyspheres as ls
from lazyspheres import stream_chain


def _timed(path: pathlib.Path, max_steps: int) -> tuple[float, float, np.ndarray, int]:
    stream_chain.MAX_STEPS = max_steps
    signals = ls.extract(path, "power2011", 5.0)
    n_tasks = len(signals.data.__dask_graph__())
    wall, cpu = time.perf_counter(), time.process_time()
    values = signals.values
    return time.perf_counter() - wall, time.process_time() - cpu, values, n_tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=pathlib.Path("/work/bench-data"))
    parser.add_argument("--volumes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    path = args.data / f"bold_T{args.volumes}.nii.gz"
    default_steps = stream_chain.MAX_STEPS
    _timed(path, default_steps)  # warm-up: imports, geometry cache, page cache
    times: dict[str, list[tuple[float, float]]] = {"single": [], "chain": []}
    tasks, reference = {}, None
    for _ in range(args.repeat):
        for name, steps in (("single", 1), ("chain", default_steps)):
            wall, cpu, values, tasks[name] = _timed(path, steps)
            if reference is None:
                reference = values
            elif not np.array_equal(values, reference):
                raise SystemExit(f"{name}: values differ from the first pass")
            times[name].append((wall, cpu))
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in times.items()
    }
    print(f"{path.name}, {args.repeat} alternated repeats (median), threaded scheduler")
    print(f"{'pass':8} {'tasks':>6} {'wall s':>8} {'cpu s':>8}")
    for name, (wall, cpu) in med.items():
        print(f"{name:8} {tasks[name]:6d} {wall:8.3f} {cpu:8.3f}")
    ratio = med["chain"][0] / med["single"][0]
    print(f"chain / single wall: {ratio:.3f} (cpu {med['chain'][1] / med['single'][1]:.3f})")
    for name in ("chain", "single"):
        walls = sorted(w for w, _ in times[name])
        print(f"{name} wall range {walls[0]:.3f}-{walls[-1]:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
