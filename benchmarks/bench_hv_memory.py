"""Peak memory of high-variance confounds: lazyspheres vs nilearn 0.12.1, T=300 and T=1200.

Usage::

    python benchmarks/bench_hv_memory.py [--data-dir bench-data] [--skip-nilearn]

Generated MNI 2 mm float32 runs (``lazyspheres.datasets.write_bold``; files already in
``--data-dir`` named ``bold_T{T}.nii[.gz]`` are reused). Each case runs in its own Python
subprocess, which reports its peak resident set size (``VmHWM`` from ``/proc/self/status``)
and the seconds spent in the computation (imports excluded). nilearn's
``image.high_variance_confounds`` loads the whole image (~17 GB at T=1200), so it runs at
T=300 only; lazyspheres runs at both lengths, on ``.nii.gz`` (one streaming task, two
inflates) and ``.nii`` (blockwise memory-mapped graph, threaded scheduler).

Prints, per case, ``name: peak RSS MB, seconds``, then the ratios
``lazyspheres / nilearn`` at T=300 (RSS and time) and ``T=1200 / T=300`` for lazyspheres
(memory flatness). Results also agree with nilearn (projector difference printed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _cases import peak_rss_mb  # benchmarks/ is on sys.path (the script's folder)

HERE = Path(__file__).resolve()
LENGTHS = (300, 1200)


def _run_case(engine: str, path: str, out: str) -> None:
    """Child process: compute the confounds, save them, print one JSON line."""
    if engine == "nilearn":
        import warnings

        from nilearn.image import high_variance_confounds

        warnings.simplefilter("ignore")
        start = time.perf_counter()
        confounds = high_variance_confounds(path)
    else:
        import dask

        from lazyspheres.high_variance import high_variance_confounds

        start = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            confounds = np.asarray(high_variance_confounds(path).compute())
    seconds = time.perf_counter() - start
    np.save(out, confounds)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def _ensure_file(data_dir: Path, n_volumes: int, suffix: str) -> Path:
    path = data_dir / f"bold_T{n_volumes}{suffix}"
    if not path.exists():
        from lazyspheres.datasets import write_bold

        print(f"generating {path} ...", flush=True)
        write_bold(path, n_volumes, dtype="float32")
    return path


def _measure(engine: str, path: Path, scratch: Path) -> dict:
    out = scratch / f"hv_{engine}_{path.name}.npy"
    command = [sys.executable, str(HERE), "--child", engine, str(path), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} on {path} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["confounds"] = np.load(out)
    out.unlink()
    return result


def _projector(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors @ vectors.T


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="bench-data", type=Path)
    parser.add_argument("--skip-nilearn", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "PATH", "OUT"))
    args = parser.parse_args(argv)
    if args.child:
        _run_case(*args.child)
        return 0
    args.data_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for n_volumes in LENGTHS:
        for suffix in (".nii.gz", ".nii"):
            path = _ensure_file(args.data_dir, n_volumes, suffix)
            name = f"lazyspheres {path.name}"
            results[name] = _measure("lazyspheres", path, args.data_dir)
            row = results[name]
            print(
                f"{name}: peak RSS {row['peak_rss_mb']:.0f} MB, {row['seconds']:.1f} s", flush=True
            )
    if not args.skip_nilearn:
        path = args.data_dir / "bold_T300.nii.gz"
        name = f"nilearn {path.name}"
        results[name] = _measure("nilearn", path, args.data_dir)
        row = results[name]
        print(f"{name}: peak RSS {row['peak_rss_mb']:.0f} MB, {row['seconds']:.1f} s")
        reference = _projector(row["confounds"])
        for suffix in (".nii.gz", ".nii"):
            ours = results[f"lazyspheres bold_T300{suffix}"]
            diff = np.abs(_projector(ours["confounds"]) - reference).max()
            print(
                f"T=300 {suffix}: RSS ratio {ours['peak_rss_mb'] / row['peak_rss_mb']:.3f} "
                f"(lazyspheres MB / nilearn MB), time ratio "
                f"{ours['seconds'] / row['seconds']:.3f} (lazyspheres s / nilearn s), "
                f"max |QQᵀ - Q_nQ_nᵀ| = {diff:.1e}"
            )
    for suffix in (".nii.gz", ".nii"):
        short = results[f"lazyspheres bold_T300{suffix}"]
        long = results[f"lazyspheres bold_T1200{suffix}"]
        print(
            f"lazyspheres {suffix}: RSS T=1200 / T=300 = "
            f"{long['peak_rss_mb'] / short['peak_rss_mb']:.3f} "
            f"({long['peak_rss_mb']:.0f} MB / {short['peak_rss_mb']:.0f} MB); time ratio "
            f"{long['seconds'] / short['seconds']:.2f} for 4x the volumes"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
