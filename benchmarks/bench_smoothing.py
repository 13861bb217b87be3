"""Cost of ``smoothing_fwhm``: the restricted smoothing plan vs smoothing whole volumes.

Usage::

    python benchmarks/bench_smoothing.py [--data-dir bench-data] [--n-volumes 300]
                                         [--skip-nilearn]

Two parts, both on the MNI 2 mm grid with the Power 264 seeds, radius 5 mm:

1. Kernel, in process, same data, best of 3: seconds per volume of
   ``SmoothingPlan.smooth`` (what extraction runs) against scipy's three
   ``gaussian_filter1d`` passes over whole volumes followed by the same gather (the obvious
   bounded-memory alternative), for FWHM 4, 6, 8 and 12 mm; ratio = plan / whole.
2. Pipeline, one subprocess per case (peak RSS from ``VmHWM``): ``extract`` on
   ``bold_T{n}.nii.gz`` without smoothing, with ``smoothing_fwhm=6``, the whole-volume
   alternative on the same stream, and nilearn 0.12.1's masker with ``smoothing_fwhm=6``;
   ratios against extraction without smoothing and against nilearn.
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
SEEDS, RADIUS, FWHM = "power2011", 5.0, 6.0


def _whole_volume_means(path: str, fwhm: float) -> np.ndarray:
    """The alternative: smooth each block of whole volumes with scipy, then average."""
    from scipy.ndimage import gaussian_filter1d

    from lazyspheres.gather import GatherPlan, sphere_means
    from lazyspheres.geometry import sphere_voxels
    from lazyspheres.io.open import open_nifti
    from lazyspheres.io.reader import NiftiFile
    from lazyspheres.io.readers.lazy import reader_of
    from lazyspheres.seeds import load_seeds
    from lazyspheres.smoothing import smoothing_sigmas

    image = open_nifti(path)
    nifti = NiftiFile.of_reader(reader_of(image))
    shape, affine = image.nifti.spatial_shape, image.nifti.affine
    plan = GatherPlan.from_spheres(sphere_voxels(load_seeds(SEEDS)[0], affine, shape, RADIUS))
    sigmas = smoothing_sigmas(affine, np.array([fwhm]))
    flat = plan.flat_indices("F")
    out = []
    for _, block in nifti.iter_volume_blocks():
        volumes = block.astype(np.float32).reshape(-1, *shape[::-1])  # (b, k, j, i)
        for axis in range(3):
            gaussian_filter1d(volumes, sigmas[axis], axis=3 - axis, output=volumes)
        out.append(sphere_means(volumes.reshape(len(volumes), -1)[:, flat], plan)[0])
    return np.concatenate(out)


def _run_case(case: str, path: str) -> None:
    import warnings

    warnings.simplefilter("ignore")
    start = time.perf_counter()
    if case == "nilearn":
        from nilearn.maskers import NiftiSpheresMasker

        from lazyspheres.seeds import load_seeds

        seeds = [tuple(c) for c in load_seeds(SEEDS)[0]]
        values = NiftiSpheresMasker(seeds, radius=RADIUS, smoothing_fwhm=FWHM).fit_transform(path)
    elif case == "whole-volume":
        values = _whole_volume_means(path, FWHM)
    else:
        import dask

        import lazyspheres as ls

        fwhm = FWHM if case == "plan" else None
        with dask.config.set(scheduler="threads"):
            values = ls.extract(path, SEEDS, RADIUS, smoothing_fwhm=fwhm).values
    seconds = time.perf_counter() - start
    checksum = float(np.asarray(values, dtype=np.float64).sum())
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "checksum": checksum}))


def _kernel_rows(n_volumes: int = 8) -> None:
    from scipy.ndimage import gaussian_filter1d

    from lazyspheres.datasets import MNI_2MM_AFFINE, MNI_2MM_SHAPE
    from lazyspheres.geometry import sphere_voxels
    from lazyspheres.seeds import load_seeds
    from lazyspheres.smoothing import SmoothingPlan, smoothing_sigmas

    shape = MNI_2MM_SHAPE
    voxels = sphere_voxels(load_seeds(SEEDS)[0], MNI_2MM_AFFINE, shape, RADIUS).voxels
    rng = np.random.default_rng(0)
    block = (rng.standard_normal((n_volumes, int(np.prod(shape)))) * 50 + 1000).astype("f4")
    flat = np.ravel_multi_index(tuple(voxels.T), shape, order="F")
    for fwhm in (4.0, 6.0, 8.0, 12.0):
        plan = SmoothingPlan.build(voxels, shape, MNI_2MM_AFFINE, fwhm, np.float32)
        sigmas = smoothing_sigmas(MNI_2MM_AFFINE, np.array([fwhm]))
        times = {"plan": [], "whole": []}
        for _ in range(3):
            start = time.perf_counter()
            ours = plan.smooth(block[:, plan.read_flat], axis=1)
            times["plan"].append(time.perf_counter() - start)
            start = time.perf_counter()
            volumes = block.reshape(n_volumes, *shape[::-1]).copy()
            for axis in range(3):
                gaussian_filter1d(volumes, sigmas[axis], axis=3 - axis, output=volumes)
            whole = volumes.reshape(n_volumes, -1)[:, flat]
            times["whole"].append(time.perf_counter() - start)
        assert np.array_equal(ours, whole)
        plan_s, whole_s = min(times["plan"]) / n_volumes, min(times["whole"]) / n_volumes
        print(
            f"kernel fwhm {fwhm:g} mm: {plan_s * 1e3:.1f} ms/volume vs whole volume "
            f"{whole_s * 1e3:.1f} ms/volume: ratio {plan_s / whole_s:.2f} (plan s / whole s); "
            f"samples filtered {plan.samples_filtered} vs {3 * int(np.prod(shape))}, "
            f"voxels read {plan.n_read} of {int(np.prod(shape))}",
            flush=True,
        )


def _measure(case: str, path: Path) -> dict:
    command = [sys.executable, str(HERE), "--child", case, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{case} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="bench-data", type=Path)
    parser.add_argument("--n-volumes", default=300, type=int)
    parser.add_argument("--skip-nilearn", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "PATH"))
    args = parser.parse_args(argv)
    if args.child:
        _run_case(*args.child)
        return 0
    _kernel_rows()
    path = args.data_dir / f"bold_T{args.n_volumes}.nii.gz"
    if not path.exists():
        from lazyspheres.datasets import write_bold

        args.data_dir.mkdir(parents=True, exist_ok=True)
        write_bold(path, args.n_volumes, dtype="float32")
    cases = ["no-smoothing", "plan", "whole-volume"] + ([] if args.skip_nilearn else ["nilearn"])
    rows = {}
    for case in cases:
        rows[case] = _measure(case, path)
        row = rows[case]
        print(
            f"{case} {path.name}: {row['seconds']:.1f} s, peak RSS {row['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    base = rows["no-smoothing"]["seconds"]
    for case in cases[1:]:
        row = rows[case]
        print(f"{case}: ratio {row['seconds'] / base:.2f} (s / extraction without smoothing s)")
    if "nilearn" in rows:
        for case in ("plan", "whole-volume"):
            ratio = rows[case]["seconds"] / rows["nilearn"]["seconds"]
            rss = rows[case]["peak_rss_mb"] / rows["nilearn"]["peak_rss_mb"]
            print(f"{case} vs nilearn: time ratio {ratio:.3f}, RSS ratio {rss:.3f}")
        gap = abs(rows["plan"]["checksum"] - rows["nilearn"]["checksum"])
        print(f"checksum |plan - nilearn| = {gap:.3g} (sum of all signals)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
