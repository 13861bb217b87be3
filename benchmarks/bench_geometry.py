"""Geometry benchmark: lazyspheres.sphere_voxels vs nilearn 0.12.1's geometry step.

Power 264 seeds, radius 5 mm, MNI 2 mm grid (91 x 109 x 91), with and without a brain-shaped
mask, timed in the same run. Prints ``geometry: ratio (lazyspheres s / nilearn s)`` (no mask)
and ``geometry_masked: ...`` (brain mask); lazyspheres is timed uncached (best of --repeats),
nilearn's ``apply_mask_and_get_affinity`` on a one-volume image (best of --nilearn-repeats).

    python benchmarks/bench_geometry.py [--repeats 5] [--nilearn-repeats 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import nibabel as nib
import numpy as np

from lazyspheres.geometry import clear_cache, sphere_voxels
from lazyspheres.seeds import named_seeds

SHAPE = (91, 109, 91)
AFFINE = np.array(
    [[2.0, 0, 0, -90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]], dtype=np.float64
)


def brain_mask() -> np.ndarray:
    """An ellipsoid roughly the size of an MNI brain (about 2/3 of the grid's voxels off)."""
    ijk = np.indices(SHAPE, dtype=np.float64).reshape(3, -1)
    world = AFFINE[:3, :3] @ ijk + AFFINE[:3, 3:4]
    centre = np.array([0.0, -18.0, 8.0])
    half_axes = np.array([70.0, 100.0, 80.0])
    inside = (((world - centre[:, None]) / half_axes[:, None]) ** 2).sum(axis=0) <= 1.0
    return inside.reshape(SHAPE)


def best_of(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nilearn-repeats", type=int, default=1)
    parser.add_argument("--radius", type=float, default=5.0)
    args = parser.parse_args(argv)

    from nilearn.maskers.nifti_spheres_masker import apply_mask_and_get_affinity

    seeds = named_seeds("power2011")[["x", "y", "z"]].to_numpy()
    mask = brain_mask()
    # apply_mask_and_get_affinity also gathers the image values; a 1-volume image keeps that
    # part negligible so the comparison is about the geometry itself.
    img = nib.Nifti1Image(np.zeros((*SHAPE, 1), dtype=np.float32), AFFINE)
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), AFFINE)

    cases = [
        ("geometry", "no mask", None, None),
        ("geometry_masked", "brain mask", mask, mask_img),
    ]
    for name, label, m, m_img in cases:

        def ours(m=m):
            clear_cache()
            return sphere_voxels(seeds, AFFINE, SHAPE, args.radius, mask=m, allow_overlap=True)

        def cached(m=m):
            return sphere_voxels(seeds, AFFINE, SHAPE, args.radius, mask=m, allow_overlap=True)

        def theirs(m_img=m_img):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return apply_mask_and_get_affinity(
                    seeds.tolist(), img, args.radius, True, mask_img=m_img
                )

        ours()  # warm-up (imports, first-call overhead)
        t_ours = best_of(ours, args.repeats)
        cached()
        t_cached = best_of(cached, args.repeats)
        t_theirs = best_of(theirs, args.nilearn_repeats)

        # same voxel sets, as a sanity check of what is timed
        sv = ours()
        _, adjacency = theirs()
        rows = adjacency.tocsr()
        flat = sv.flat_indices()
        if m is None:
            columns = [
                np.sort(flat[sv.indices[sv.indptr[i] : sv.indptr[i + 1]]]) for i in range(264)
            ]
        else:
            candidates = np.flatnonzero(m.ravel())
            columns = [
                np.searchsorted(candidates, flat[sv.indices[sv.indptr[i] : sv.indptr[i + 1]]])
                for i in range(264)
            ]
        same = all(
            np.array_equal(np.sort(rows[[i]].indices), columns[i]) for i in range(len(seeds))
        )
        print(
            f"[{label}] lazyspheres {t_ours * 1e3:.1f} ms (cached {t_cached * 1e6:.0f} µs), "
            f"nilearn {t_theirs:.2f} s, same voxels: {same}"
        )
        print(f"{name}: {t_ours / t_theirs:.5f} (lazyspheres s / nilearn s)")
        print(f"  speed-up: {t_theirs / t_ours:.0f}x")


if __name__ == "__main__":
    main()
