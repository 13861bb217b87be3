"""Random access into .nii.gz through the seek-point index (lazyspheres.io.gzindex).

Usage::

    python benchmarks/bench_gzindex.py                    # T=300 and T=1200, 2 repeats
    python benchmarks/bench_gzindex.py --volumes 300 --repeat 3

Data: the synthetic MNI 2 mm float32 runs of benchmarks/run.py (``bold_T{T}.nii.gz`` in
``--data``, generated once if missing). Every figure is a ratio or a time measured in this
run, best of ``--repeat`` (passes alternate so machine load hits both sides alike):

* first pass recording the index / the fastest plain pass (``open_inflated``), target ≤ 1.10;
* on-demand parallel build / the same plain pass;
* index size / compressed file size, target ≤ 2 %;
* one volume through ``read_range`` at t = 0, T/2, T-1 (includes opening the file and
  importing the index), target ≤ 0.1 s at T=1200;
* a 64 MB read at the end of the file / the same read at the start (should be ~1).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import pathlib
import sys
import time

import nibabel as nib

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CHUNK = 64 * 2**20


def _drain(stream) -> int:
    buffer = memoryview(bytearray(8 * 2**20))
    total = 0
    while count := stream.readinto(buffer):
        total += count
    return total


def plain_pass(path: pathlib.Path) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest plain pass the project uses (open_inflated)."""
    from lazyspheres.io.inflate import open_inflated

    started, cpu = time.perf_counter(), time.process_time()
    with open(path, "rb") as raw, contextlib.closing(open_inflated(raw)) as stream:
        _drain(stream)
    return time.perf_counter() - started, time.process_time() - cpu


def indexing_pass(path: pathlib.Path):
    """(wall, CPU) seconds and the index of the pass recording the index."""
    from lazyspheres.io.gzindex import open_indexing

    started, cpu = time.perf_counter(), time.process_time()
    with open(path, "rb") as raw, open_indexing(raw) as stream:
        _drain(stream)
        index = stream.index
    return (time.perf_counter() - started, time.process_time() - cpu), index


def extract(path: pathlib.Path, *, record_index: bool) -> float:
    """Wall seconds of ``ls.extract`` (Power 264, r=5), its stream recording the index or not.

    ``LAZYSPHERES_GZINDEX_BYPRODUCT=1`` makes the streaming pass record the index (off by
    default: this is what it would cost).
    """
    import os

    import dask

    import lazyspheres as ls

    previous = os.environ.get("LAZYSPHERES_GZINDEX_BYPRODUCT")
    os.environ["LAZYSPHERES_GZINDEX_BYPRODUCT"] = "1" if record_index else "0"
    try:
        started = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            ls.extract(str(path), "power2011", radius=5).values  # noqa: B018
        return time.perf_counter() - started
    finally:
        if previous is None:
            del os.environ["LAZYSPHERES_GZINDEX_BYPRODUCT"]
        else:
            os.environ["LAZYSPHERES_GZINDEX_BYPRODUCT"] = previous


def build_on_demand(path: pathlib.Path):
    from lazyspheres.io.gzindex import build_index

    started = time.perf_counter()
    index = build_index(functools.partial(open, path, "rb"))
    return time.perf_counter() - started, index


def timed_read(path: pathlib.Path, index, start: int, stop: int) -> float:
    from lazyspheres.io.gzindex import read_range

    started = time.perf_counter()
    read_range(functools.partial(open, path, "rb"), index, start, stop)
    return time.perf_counter() - started


def bench(path: pathlib.Path, repeat: int) -> list[str]:
    from lazyspheres.io.inflate import choose_engine

    header = nib.load(path).header
    offset = int(header.get_data_offset())
    shape = header.get_data_shape()
    volume = int(header.get_data_dtype().itemsize * shape[0] * shape[1] * shape[2])
    n_volumes = shape[3]
    plain, first, built = [], [], []
    index = None
    for _ in range(repeat):
        plain.append(plain_pass(path))
        seconds, index = indexing_pass(path)
        first.append(seconds)
        seconds, _ = build_on_demand(path)
        built.append(seconds)
    assert index is not None
    size = path.stat().st_size
    base = min(wall for wall, _ in plain)
    base_cpu = min(cpu for _, cpu in plain)
    first_wall = min(wall for wall, _ in first)
    first_cpu = min(cpu for _, cpu in first)
    lines = [
        f"T={n_volumes}: plain pass ({choose_engine()}) {base:.2f} s wall, {base_cpu:.2f} s CPU",
        f"T={n_volumes}: first pass with index / plain = {first_wall / base:.3f} wall, "
        f"{first_cpu / base_cpu:.3f} CPU  (≤ 1.10)",
        f"T={n_volumes}: on-demand build (parallel) {min(built):.2f} s = "
        f"{min(built) / base:.2f} × plain",
        f"T={n_volumes}: index {index.nbytes / 1e3:.0f} kB = "
        f"{100 * index.nbytes / size:.3f} % of the file (≤ 2 %), "
        f"{len(index.points)} seek points",
    ]
    plain_extract, indexing_extract = [], []
    for _ in range(repeat):
        plain_extract.append(extract(path, record_index=False))
        indexing_extract.append(extract(path, record_index=True))
    lines.append(
        f"T={n_volumes}: extract recording the index / plain extract = "
        f"{min(indexing_extract) / min(plain_extract):.3f} "
        f"({min(indexing_extract):.2f} s / {min(plain_extract):.2f} s)"
    )
    for t in (0, n_volumes // 2, n_volumes - 1):
        start = offset + t * volume
        best = min(timed_read(path, index, start, start + volume) for _ in range(repeat))
        lines.append(f"T={n_volumes}: one volume at t={t}: {best:.3f} s  (≤ 0.1 s)")
    end = index.uncompressed_size
    heads, tails = [], []
    for _ in range(repeat):  # alternate, so that load and caches hit both alike
        heads.append(timed_read(path, index, 0, CHUNK))
        tails.append(timed_read(path, index, end - CHUNK, end))
    head, tail = min(heads), min(tails)
    lines.append(
        f"T={n_volumes}: 64 MB read at the end / at the start = {tail / head:.2f} "
        f"({tail:.3f} s / {head:.3f} s)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, nargs="+", default=[300, 1200])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--data", type=pathlib.Path, default=HERE.parent / "bench-data")
    args = parser.parse_args(argv)
    from run import ensure_data

    for n_volumes in args.volumes:
        gz = args.data / f"bold_T{n_volumes}.nii.gz"
        if not gz.exists():
            gz = ensure_data(args.data, n_volumes)["gz"]
        for line in bench(gz, args.repeat):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
