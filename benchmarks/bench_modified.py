"""Extraction from a modified ``.nii.gz`` image, as ratios to the unmodified image's extraction.

Usage::

    python benchmarks/bench_modified.py --volumes 300 1200      # rows printed as ratios
    python benchmarks/bench_modified.py --volumes 300 1200 --rss-volumes 2400 --no-cold \
        --data /work/bench-data                                  # + T=2400 memory rows
    python benchmarks/bench_modified.py --case isel PATH         # one case (internal)

A notebook opens a run, extracts, then drops dummy scans (``isel``), casts (``astype``),
rechunks (``chunk``) or reopens it through xarray (``xr.open_dataarray(engine="nifti")``)
and extracts again. Each case runs in a fresh process (so its peak RSS is its own) and
times, in that process:

* ``whole``: ``extract(img)`` of the unmodified image (one streaming pass);
* ``<how>``: then ``extract(modified(img))``. ``isel``/``astype``/``chunk`` and xarray's
  engine keep the image's reader (a view of the file): the file's own streaming pass;
* ``<how>-cold``: ``extract(modified(img))`` in a fresh process with no index anywhere;
* ``volume``: ``img.isel(time=t).values`` for t in {0, T/2, T-1} with the index (built, or
  found in the user cache, before timing);
* ``distributed``: the modified image computed on a ``LocalCluster`` with worker processes
  (workers warmed up by importing lazyspheres first: the row is about the data path).

``whole`` and ``<how>`` alternate ``--repeat`` times in the case's process and the best of
each is kept (the machine is shared: alternating spreads its load over both sides). Values
are compared with the unmodified extraction in the same process (rtol 1e-6) and a mismatch
fails loudly. ``run.py`` prints these rows with one call to :func:`lines`.
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

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
SEEDS = "power2011"
RADIUS = 5.0
HOWS = ("isel", "astype", "chunk", "open_dataarray")


def _modify(how: str, img, path: str):
    import xarray as xr

    if how == "isel":
        return img.isel(time=slice(5, None)), slice(5, None)
    if how == "astype":
        return img.astype("float64"), slice(None)
    if how == "chunk":
        return img.chunk({"time": 100}), slice(None)
    if how == "open_dataarray":
        return xr.open_dataarray(path, engine="nifti"), slice(None)
    raise ValueError(how)


def _peak_rss_mb() -> float:
    sys.path.insert(0, str(HERE))
    from _cases import peak_rss_mb

    return peak_rss_mb()


def _timed(func):
    started = time.perf_counter()
    value = func()
    return value, time.perf_counter() - started


def run_case(case: str, path: str, repeat: int = 1) -> dict:
    """One case in this process: the timings and the peak RSS."""
    import dask

    import lazyspheres as ls

    dask.config.set(scheduler="threads")
    out: dict = {"case": case}
    img = ls.open_nifti(path)
    if case.endswith("-cold"):
        how = case[: -len("-cold")]
        modified, rows = _modify(how, img, path)
        values, out["seconds"] = _timed(lambda: ls.extract(modified, SEEDS, RADIUS).values)
        out["checksum"] = float(np.nansum(values, dtype=np.float64))
        out["peak_rss_mb"] = _peak_rss_mb()
        return out
    whole, out["whole_s"] = _timed(lambda: ls.extract(img, SEEDS, RADIUS).values)
    if case in HOWS:
        modified, rows = _modify(case, img, path)
        for attempt in range(repeat):
            if attempt:
                _, again = _timed(lambda: ls.extract(img, SEEDS, RADIUS).values)
                out["whole_s"] = min(out["whole_s"], again)
            values, seconds = _timed(lambda: ls.extract(modified, SEEDS, RADIUS).values)
            out["seconds"] = min(out.get("seconds", seconds), seconds)
            _check(values, whole[rows], case)
    elif case == "volume":
        from lazyspheres.io.readers.gzaccess import build_index
        from lazyspheres.io.readers.lazy import reader_of

        reader = reader_of(img)
        reader.keep_index(reader.index or build_index(reader.source))  # not timed
        n = img.sizes["time"]
        for t in (0, n // 2, n - 1):
            _, out[f"t{t}_s"] = _timed(lambda t=t: img.isel(time=t).values)
    elif case == "distributed":
        from distributed import Client, LocalCluster

        modified, rows = _modify("isel", img, path)
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            client.run(_warm_up)
            signals = ls.extract(modified, SEEDS, RADIUS)
            # the first compute on fresh workers also pays their first-task imports
            values, out["first_s"] = _timed(lambda: signals.compute().values)
            out["seconds"] = out["first_s"]
            for _ in range(repeat - 1):
                _, again = _timed(lambda: signals.compute().values)
                out["seconds"] = min(out["seconds"], again)
            out["worker_peak_rss_mb"] = max(client.run(_peak_rss_mb).values())
        _check(values, whole[rows], case)
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _warm_up() -> None:
    import lazyspheres  # noqa: F401  (the first task of a fresh worker would import it)


def _check(values: np.ndarray, expected: np.ndarray, case: str) -> None:
    if values.shape != expected.shape or not np.allclose(values, expected, rtol=1e-6, atol=0):
        raise SystemExit(f"MISMATCH in {case}: values differ from the unmodified extraction")


def _subprocess(case: str, path: pathlib.Path, repeat: int = 1) -> dict:
    env = dict(os.environ)
    if case.endswith("-cold"):  # no stored index anywhere
        env["LAZYSPHERES_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-cold-")
    argv = [sys.executable, str(pathlib.Path(__file__)), "--case", case, str(path)]
    argv += ["--repeat", str(repeat)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench_modified {case} on {path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def lines(
    path: pathlib.Path,
    label: str,
    *,
    cold: bool = True,
    distributed: bool = True,
    repeat: int = 2,
    only_rss: bool = False,
) -> list[str]:
    """Ratio rows for one ``.nii.gz``: each modified extraction / the unmodified one.

    ``only_rss``: the modified extractions only (the rows that check memory stays flat).
    """
    rows = []
    for how in HOWS:
        record = _subprocess(how, path, repeat)
        rows.append(
            f"extract after {how} {label} / unmodified: "
            f"{record['seconds'] / record['whole_s']:.3f} "
            f"({record['seconds']:.2f} s / {record['whole_s']:.2f} s), "
            f"peak RSS {record['peak_rss_mb']:.0f} MB"
        )
        if cold:
            cold_record = _subprocess(f"{how}-cold", path)
            rows.append(
                f"extract after {how}, no index yet, {label} / unmodified: "
                f"{cold_record['seconds'] / record['whole_s']:.3f} "
                f"({cold_record['seconds']:.2f} s / {record['whole_s']:.2f} s), "
                f"peak RSS {cold_record['peak_rss_mb']:.0f} MB"
            )
    if only_rss:
        return rows
    volume = _subprocess("volume", path)
    for key in sorted(k for k in volume if k.startswith("t") and k.endswith("_s")):
        rows.append(
            f"isel(time={key[1:-2]}).values {label} with index / unmodified extract: "
            f"{volume[key] / volume['whole_s']:.4f} "
            f"({volume[key]:.3f} s / {volume['whole_s']:.2f} s)"
        )
    if distributed:
        record = _subprocess("distributed", path, repeat)
        rows.append(
            f"extract after isel on LocalCluster(processes) {label} / unmodified: "
            f"{record['seconds'] / record['whole_s']:.3f} ({record['seconds']:.2f} s / "
            f"{record['whole_s']:.2f} s; first compute on fresh workers "
            f"{record['first_s'] / record['whole_s']:.3f}), "
            f"worker peak RSS {record['worker_peak_rss_mb']:.0f} MB"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs=2, metavar=("CASE", "PATH"))
    parser.add_argument("--volumes", type=int, nargs="+", default=[300])
    parser.add_argument("--data", type=pathlib.Path, default=HERE.parent / "bench-data")
    parser.add_argument("--no-cold", action="store_true")
    parser.add_argument("--no-distributed", action="store_true")
    parser.add_argument("--repeat", type=int, default=2, help="best of N per case")
    parser.add_argument(
        "--rss-volumes",
        type=int,
        nargs="*",
        default=[],
        help="also run the modified extractions only (peak RSS rows) at these T",
    )
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(*args.case, repeat=args.repeat)))
        return 0
    sys.path.insert(0, str(HERE))
    from run import ensure_data

    for n_volumes in args.volumes:
        gz = args.data / f"bold_T{n_volumes}.nii.gz"
        if not gz.exists():
            gz = ensure_data(args.data, n_volumes)["gz"]
        for line in lines(
            gz,
            f"T={n_volumes}",
            cold=not args.no_cold,
            distributed=not args.no_distributed,
            repeat=args.repeat,
        ):
            print(line, flush=True)
    for n_volumes in args.rss_volumes:
        gz = args.data / f"bold_T{n_volumes}.nii.gz"
        for line in lines(gz, f"T={n_volumes}", cold=False, repeat=1, only_rss=True):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
