"""Helpers shared by the batch, store, Zarr image and CLI tests: small generated datasets."""

from __future__ import annotations

import os
import pathlib

import numpy as np

from lazyspheres import datasets

SHAPE = (20, 24, 20)
# Voxel positions of the test seeds: inside the generated brain support, far apart.
SEED_VOXELS = np.array([[6, 8, 8], [10, 12, 10], [14, 16, 11], [9, 6, 12]])


def write_runs(folder, n_subjects=2, n_runs=2, n_volumes=30, **options):
    """A small fMRIPrep-like tree; returns the BOLD paths (sorted by subject, run)."""
    return datasets.write_dataset(
        folder, n_subjects, n_runs, n_volumes=n_volumes, shape=SHAPE, seeds=None, **options
    )


def world_seeds(affine, voxels=SEED_VOXELS):
    """World (mm) coordinates of voxel centres."""
    return np.asarray(voxels) @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def run_affine(path):
    import nibabel as nib

    return nib.load(str(path)).affine


def chunk_mtimes(store, variable):
    """``{chunk key: mtime_ns}`` of a local Zarr v3 array's chunk files."""
    root = pathlib.Path(store) / variable / "c"
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def touch_later(path):
    """Change a file's mtime (its content stays): a new fingerprint for the same bytes."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
