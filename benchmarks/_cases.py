"""Benchmark cases, each run in a fresh subprocess so that its peak RSS is its own.

Usage (internal): ``python benchmarks/_cases.py CASE PATH [key=value ...]``. Prints one JSON
line: ``{"case": ..., "seconds": ..., "peak_rss_mb": ..., "checksum": ...}``. ``seconds``
times the work only (imports and interpreter start are excluded; the parent also records the
whole-process wall time).
"""

from __future__ import annotations

import importlib
import json
import sys
import time

import numpy as np

SEEDS = "power2011"
RADIUS = 5.0
# The cleaning row's options (confounds aside), the same for lazyspheres and nilearn.
CLEAN_OPTIONS = {
    "detrend": True,
    "standardize": "zscore_sample",
    "low_pass": 0.1,
    "high_pass": 0.01,
    "t_r": 2.0,
}


def _power_coords() -> np.ndarray:
    from lazyspheres.seeds import load_seeds

    return load_seeds(SEEDS)[0]


def case_lazyspheres(path: str, **options: str) -> np.ndarray:
    import os

    import dask

    import lazyspheres as ls

    if "engine" in options:  # measure one inflate engine (zlib, zlib-ng, isal, rapidgzip)
        os.environ["LAZYSPHERES_INFLATE"] = options["engine"]

    with dask.config.set(scheduler=options.get("scheduler", "threads")):
        return ls.extract(path, SEEDS, radius=RADIUS).values


def case_lazyspheres_clean(path: str, **options: str) -> np.ndarray:
    import dask

    import lazyspheres as ls

    confounds = np.load(options["confounds"])
    signals = ls.extract(path, SEEDS, radius=RADIUS)
    cleaned = ls.clean(signals, confounds=confounds, **CLEAN_OPTIONS)
    with dask.config.set(scheduler="threads"):
        return np.asarray(cleaned.values)


def case_nilearn(path: str, **options: str) -> np.ndarray:
    import warnings

    from nilearn.maskers import NiftiSpheresMasker

    warnings.simplefilter("ignore")
    masker = NiftiSpheresMasker([tuple(c) for c in _power_coords()], radius=RADIUS)
    return masker.fit_transform(path)


def case_nilearn_clean(path: str, **options: str) -> np.ndarray:
    import warnings

    from nilearn.maskers import NiftiSpheresMasker

    warnings.simplefilter("ignore")
    confounds = np.load(options["confounds"])
    masker = NiftiSpheresMasker(
        [tuple(c) for c in _power_coords()], radius=RADIUS, **CLEAN_OPTIONS
    )
    return masker.fit_transform(path, confounds=confounds)


def case_inflate_zlib(path: str, **options: str) -> np.ndarray:
    """The I/O floor for .nii.gz: one plain stdlib-zlib pass over the whole stream."""
    import zlib

    inflater = zlib.decompressobj(wbits=31)
    total = 0
    with open(path, "rb") as handle:
        while True:
            piece = handle.read(1 << 22)
            if not piece:
                break
            total += len(inflater.decompress(piece))
    return np.array([total], dtype=np.float64)


def case_memmap_gather(path: str, **options: str) -> np.ndarray:
    """The I/O floor for .nii: memmap the data and gather exactly the sphere voxels."""
    import nibabel as nib

    from lazyspheres.gather import GatherPlan, sphere_means
    from lazyspheres.geometry import sphere_voxels

    img = nib.load(path)
    shape = img.shape
    plan = GatherPlan.from_spheres(sphere_voxels(_power_coords(), img.affine, shape[:3], RADIUS))
    flat = plan.flat_indices("F")
    started = time.perf_counter()
    data = np.memmap(
        path,
        dtype=img.get_data_dtype(),
        mode="r",
        offset=int(img.dataobj.offset),
        shape=(shape[3], int(np.prod(shape[:3]))),
    )
    gathered = data[:, flat]
    means = sphere_means(gathered, plan)[0]
    # The floor is the gather (plus the same averaging); header and geometry are excluded.
    return means, time.perf_counter() - started


def case_geometry_lazyspheres(path: str, **options: str) -> np.ndarray:
    import nibabel as nib

    from lazyspheres.geometry import clear_cache, sphere_voxels

    img = nib.load(path)
    clear_cache()
    spheres = sphere_voxels(_power_coords(), img.affine, img.shape[:3], RADIUS)
    return spheres.n_voxels.astype(np.float64)


CASES = {
    name[len("case_") :]: func for name, func in globals().items() if name.startswith("case_")
}


# Modules each case imports before its clock starts: import time is not what is compared.
PREPARE = {
    # dask imports distributed (when installed) on the first compute of a process
    "lazyspheres": [
        "lazyspheres.extraction",
        "dask.array",
        "scipy.sparse",
        "distributed",
        "zarr",
        "xarray.backends.zarr",
    ],
    "lazyspheres_clean": [
        "lazyspheres.extraction",
        "lazyspheres.cleaning",
        "dask.array",
        "distributed",
    ],
    "nilearn": ["nilearn.maskers"],
    "nilearn_clean": ["nilearn.maskers"],
    "memmap_gather": ["nibabel", "lazyspheres.geometry", "lazyspheres.gather"],
    "geometry_lazyspheres": ["nibabel", "lazyspheres.geometry"],
}


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), which, unlike ``ru_maxrss``, does not
    inherit the parent's size across fork + exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str]) -> None:
    case, path, *rest = argv
    options = dict(item.split("=", 1) for item in rest)
    for module in PREPARE.get(case, []):
        importlib.import_module(module)
    started = time.perf_counter()
    result = CASES[case](path, **options)
    seconds = time.perf_counter() - started
    if isinstance(result, tuple):
        result, seconds = result
    result = np.asarray(result, dtype=np.float64)
    print(
        json.dumps(
            {
                "case": case,
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
                "shape": list(result.shape),
                "checksum": float(np.nansum(result)),
            }
        )
    )
    if "save" in options:  # run.py compares every result with nilearn's, in the same run
        np.save(options["save"], result)


if __name__ == "__main__":
    main(sys.argv[1:])
