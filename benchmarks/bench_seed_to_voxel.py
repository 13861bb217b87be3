"""``seed_to_voxel`` on a T=1200 MNI 2 mm ``.nii.gz``: time vs the inflate floor, peak RSS.

Usage::

    python benchmarks/bench_seed_to_voxel.py                 # T=1200, nilearn once at the end
    python benchmarks/bench_seed_to_voxel.py --skip-nilearn  # without nilearn's route
    python benchmarks/bench_seed_to_voxel.py --volumes 120   # a smoke test

Data: the synthetic float32 run of ``benchmarks/run.py`` (``bench-data/bold_T{T}.nii.gz``,
91×109×91, written once by ``lazyspheres.datasets.write_bold``) and its 6 confound columns;
mask: ``lazyspheres.datasets.brain_mask()``; seeds: 4 default-mode seeds, radius 8 mm;
cleaning: detrend + Butterworth band-pass 0.01-0.1 Hz (TR 2 s) + the 6 confounds.

Every case runs in a fresh Python process; its peak RSS is that process's ``VmHWM``, and its
time is the work only (imports excluded). Baselines measured in the same run: the stdlib
inflate floor (one plain ``zlib`` pass over the file, ``_cases.py inflate_zlib``) and
nilearn 0.12.1's route (``NiftiMasker(mask, same cleaning).fit_transform`` for the voxels,
``NiftiSpheresMasker`` for the seeds, then Pearson r): it holds the run in memory, so it
runs once, last, and only when enough memory is free.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
DMN_SEEDS = [(0, -52, 26), (-46, -68, 32), (46, -66, 30), (1, 54, 27)]
RADIUS = 8.0
CLEANING = {"detrend": True, "low_pass": 0.1, "high_pass": 0.01, "t_r": 2.0}


def _inputs(path: str) -> tuple[str, np.ndarray]:
    folder = pathlib.Path(path).parent
    n_volumes = pathlib.Path(path).name.split("_T")[1].split(".")[0]
    mask = folder / "brain_mask.nii.gz"
    if not mask.exists():
        import nibabel as nib

        from lazyspheres import datasets

        nib.save(datasets.brain_mask(), str(mask))
    return str(mask), np.load(folder / f"confounds_T{n_volumes}.npy")


def case_ours(path: str) -> tuple[np.ndarray, float]:
    import lazyspheres as ls

    mask, confounds = _inputs(path)
    started = time.perf_counter()
    maps = ls.seed_to_voxel(
        path, DMN_SEEDS, RADIUS, mask_img=mask, confounds=confounds, **CLEANING
    )
    values = maps.values
    return values, time.perf_counter() - started


def case_nilearn(path: str) -> tuple[np.ndarray, float]:
    import warnings

    from nilearn.maskers import NiftiMasker, NiftiSpheresMasker

    mask, confounds = _inputs(path)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        voxels = NiftiMasker(mask, **CLEANING).fit_transform(path, confounds=confounds)
        seeds = NiftiSpheresMasker(DMN_SEEDS, radius=RADIUS, **CLEANING).fit_transform(
            path, confounds=confounds
        )
    seeds = seeds - seeds.mean(axis=0)
    voxels = voxels - voxels.mean(axis=0)
    r = (seeds.T @ voxels) / np.outer(
        np.linalg.norm(seeds, axis=0), np.linalg.norm(voxels, axis=0)
    )
    return r, time.perf_counter() - started


def _child(case: str, path: str) -> None:
    from _cases import peak_rss_mb

    import lazyspheres.connectivity  # noqa: F401  (imports out of the clock)

    values, seconds = {"ours": case_ours, "nilearn": case_nilearn}[case](path)
    print(
        json.dumps(
            {
                "case": case,
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
                "checksum": float(np.nansum(values)),
            }
        )
    )


def _run(args: list[str]) -> dict:
    output = subprocess.run(
        [sys.executable, *args], check=True, capture_output=True, text=True, cwd=HERE
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _available_mb() -> float:
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=1200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--data", type=pathlib.Path, default=HERE.parent / "bench-data")
    parser.add_argument("--skip-nilearn", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from run import ensure_data

    files = ensure_data(args.data, args.volumes)
    gz = str(files["gz"].resolve())
    floor = min(
        (_run(["_cases.py", "inflate_zlib", gz]) for _ in range(args.repeat)),
        key=lambda r: r["seconds"],
    )
    ours = min(
        (_run([__file__, "--child", "ours", gz]) for _ in range(args.repeat)),
        key=lambda r: r["seconds"],
    )
    label = f"T={args.volumes}"
    print(
        f"seed_to_voxel nii.gz {label} vs zlib inflate floor: "
        f"{ours['seconds'] / floor['seconds']:.3f} ({ours['seconds']:.3f} s / "
        f"{floor['seconds']:.3f} s)"
    )
    print(f"peak RSS seed_to_voxel {label}: {ours['peak_rss_mb']:.0f} MB")
    print(f"peak RSS inflate floor {label}: {floor['peak_rss_mb']:.0f} MB")
    if args.skip_nilearn:
        return 0
    if _available_mb() < 14000:
        print(f"nilearn route skipped: only {_available_mb():.0f} MB available (needs ~14 GB)")
        return 0
    theirs = _run([__file__, "--child", "nilearn", gz])
    print(
        f"seed_to_voxel nii.gz {label} vs nilearn route: "
        f"{ours['seconds'] / theirs['seconds']:.3f} ({ours['seconds']:.3f} s / "
        f"{theirs['seconds']:.3f} s)"
    )
    print(f"peak RSS nilearn route {label}: {theirs['peak_rss_mb']:.0f} MB")
    print(f"checksums (sum of r): ours {ours['checksum']:.6f}, nilearn {theirs['checksum']:.6f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
