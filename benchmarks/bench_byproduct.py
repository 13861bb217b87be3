"""The gzip index as a by-product of extract's first pass: what it costs, by inflate engine.

Usage::

    python benchmarks/bench_byproduct.py --volumes 300 1200 --repeat 3 --data /work/bench-data

Each mode runs ``extract(open_nifti(path), "power2011", radius=5)`` of the unmodified
``.nii.gz`` in a fresh process with an empty index cache (so its peak RSS is its own),
``--repeat`` times, modes alternating so that machine load hits them alike:

* ``isal``: the plain ISA-L streaming pass, recording nothing
  (``LAZYSPHERES_GZINDEX_BYPRODUCT=0``);
* ``isal-record``: the pass as shipped, ``LAZYSPHERES_GZINDEX_BYPRODUCT`` unset: ISA-L's
  inflater driven through ctypes in a read-ahead thread, recording checkpoints of its state
  every 16 MiB of output (:mod:`lazyspheres.io.gzindex_isal`);
* ``recording``: rapidgzip's recording pass (``LAZYSPHERES_GZINDEX_BYPRODUCT=1`` with the
  ISA-L engine turned off: one thread read ahead, 2 MiB seek points);
* ``rapidgzip-P-M`` (any P, M): the recording pass with P rapidgzip threads and M MiB
  chunks, e.g. ``rapidgzip-2-4``, the fastest parallel setting (and rapidgzip's defaults).

Every mode must extract the same values, to the bit (it fails loudly otherwise). Rows: each
recording mode's best wall time / ISA-L's best (target ≤ 1.10), the CPU time ratio (less
sensitive to machine load), peak RSS (target ≤ 400 MB), the index size as a share of the
compressed file (target ≤ 2 %), and the time of one ``isel(time=T//2).values`` after the
pass (through the recorded index, no further pass).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
MODES = ("isal", "isal-record", "recording", "rapidgzip-2-4")


def run_mode(mode: str, path: str) -> dict[str, object]:
    """One extraction in this process (the environment was set by the parent)."""
    import dask

    import lazyspheres as ls
    from lazyspheres.io import gzindex, gzindex_isal
    from lazyspheres.io.readers.lazy import reader_of

    if mode == "recording" or mode.startswith("rapidgzip"):
        gzindex_isal.available = lambda: False  # rapidgzip records, as without the engine
    if mode.startswith("rapidgzip"):
        _, threads, mib = mode.split("-")
        plain = gzindex.open_indexing
        forced = {"threads": int(threads), "spacing": int(float(mib) * 2**20)}
        gzindex.open_indexing = lambda raw, **options: plain(raw, **{**options, **forced})
    dask.config.set(scheduler="threads")
    img = ls.open_nifti(path)
    started, cpu = time.perf_counter(), time.process_time()
    signals = ls.extract(img, "power2011", radius=5).values
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    sys.path.insert(0, str(HERE))
    from _cases import peak_rss_mb

    peak = peak_rss_mb()  # the pass's, before the read below
    index = reader_of(img).index
    started = time.perf_counter()
    if index is not None:  # (without one, this would build it: not what is measured here)
        img.isel(time=img.sizes["time"] // 2).values  # noqa: B018
    return {
        "mode": mode,
        "values": hashlib.sha256(signals.tobytes()).hexdigest(),  # compared across modes
        "seconds": seconds,
        "cpu": cpu,
        "index": index is not None,
        "index_percent": 100 * len(index.to_bytes()) / os.path.getsize(path) if index else None,
        "volume_seconds": time.perf_counter() - started,
        "peak_rss_mb": peak,
    }


def _subprocess(mode: str, path: pathlib.Path) -> dict:
    """Run one mode in a fresh process with an empty index cache; its record."""
    env = dict(os.environ, LAZYSPHERES_CACHE_DIR=tempfile.mkdtemp(prefix="bench-byproduct-"))
    env["LAZYSPHERES_GZINDEX_BYPRODUCT"] = {"isal": "0", "isal-record": ""}.get(mode, "1")
    argv = [sys.executable, str(pathlib.Path(__file__)), "--mode", mode, str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench_byproduct {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def lines(
    path: pathlib.Path, label: str, repeat: int, modes: tuple[str, ...] = MODES
) -> list[str]:
    """Ratio rows for one ``.nii.gz``."""
    best: dict[str, dict] = {}
    for _ in range(repeat):
        for mode in modes:
            record = _subprocess(mode, path)
            if best and record["values"] != next(iter(best.values()))["values"]:
                raise RuntimeError(f"{mode} extracted other values than {next(iter(best))}")
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
            + (
                f" ({record['index_percent']:.3f} % of the file), then isel(time=T//2)."
                f"values {record['volume_seconds']:.3f} s"
                if record["index"]
                else ""
            )
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
        for line in lines(path, f"T={n_volumes}", args.repeat, tuple(args.modes)):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
