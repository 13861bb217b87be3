"""The gzip index as a by-product of extract's first pass: what it costs, by inflate engine.

Usage::

    python benchmarks/bench_byproduct.py --volumes 300 1200 --data /work/bench-data

Each mode runs ``extract(open_nifti(path), "power2011", radius=5)`` of the unmodified
``.nii.gz`` in a fresh process with an empty index cache (so its peak RSS is its own),
``--repeat`` times, modes alternating so that machine load hits them alike:

* ``isal``: the default streaming pass (ISA-L, no index);
* ``rapidgzip-1`` / ``rapidgzip-2``: the pass decoded by rapidgzip with 1 or 2 threads,
  recording the index on the way (``LAZYSPHERES_GZINDEX_BYPRODUCT=1``).

Rows: each recording mode's best time / ISA-L's best (target ≤ 1.10) and peak RSS
(target ≤ 400 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
MODES = ("isal", "rapidgzip-1", "rapidgzip-2")


def run_mode(mode: str, path: str) -> dict:
    """One extraction in this process (the environment was set by the parent)."""
    import dask

    import lazyspheres as ls
    from lazyspheres.io import gzindex
    from lazyspheres.io.readers.lazy import reader_of

    if mode.startswith("rapidgzip"):
        _, threads, mib = mode.split("-")
        plain = gzindex.open_indexing
        forced = {"threads": int(threads), "spacing": int(float(mib) * 2**20)}
        gzindex.open_indexing = lambda raw, **options: plain(raw, **{**options, **forced})
    dask.config.set(scheduler="threads")
    img = ls.open_nifti(path)
    started, cpu = time.perf_counter(), time.process_time()
    ls.extract(img, "power2011", radius=5).values  # noqa: B018
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    sys.path.insert(0, str(HERE))
    from _cases import peak_rss_mb

    recorded = reader_of(img).index is not None
    return {
        "mode": mode,
        "seconds": seconds,
        "cpu": cpu,
        "index": recorded,
        "peak_rss_mb": peak_rss_mb(),
    }


def _subprocess(mode: str, path: pathlib.Path) -> dict:
    env = dict(os.environ, LAZYSPHERES_CACHE_DIR=tempfile.mkdtemp(prefix="bench-byproduct-"))
    env["LAZYSPHERES_GZINDEX_BYPRODUCT"] = "0" if mode == "isal" else "1"
    argv = [sys.executable, str(pathlib.Path(__file__)), "--mode", mode, str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench_byproduct {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def lines(path: pathlib.Path, label: str, repeat: int, modes=MODES) -> list[str]:
    """Ratio rows for one ``.nii.gz``."""
    best: dict[str, dict] = {}
    for _ in range(repeat):
        for mode in modes:
            record = _subprocess(mode, path)
            if mode not in best or record["seconds"] < best[mode]["seconds"]:
                best[mode] = record
    base = best["isal"]
    rows = [
        f"extract, ISA-L pass, {label}: {base['seconds']:.2f} s (CPU {base['cpu']:.2f} s), "
        f"{base['peak_rss_mb']:.0f} MB"
    ]
    for mode in modes[1:]:
        record = best[mode]
        rows.append(
            f"extract recording the index ({mode}) {label} / ISA-L pass: "
            f"{record['seconds'] / base['seconds']:.3f} ({record['seconds']:.2f} s), CPU "
            f"{record['cpu'] / base['cpu']:.3f}, "
            f"peak RSS {record['peak_rss_mb']:.0f} MB, index recorded: {record['index']}"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", nargs=2, metavar=("MODE", "PATH"))
    parser.add_argument("--volumes", type=int, nargs="+", default=[300])
    parser.add_argument("--data", type=pathlib.Path, default=HERE.parent / "bench-data")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    args = parser.parse_args(argv)
    if args.mode:
        print(json.dumps(run_mode(*args.mode)))
        return 0
    for n_volumes in args.volumes:
        path = args.data / f"bold_T{n_volumes}.nii.gz"
        for line in lines(path, f"T={n_volumes}", args.repeat, args.modes):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
