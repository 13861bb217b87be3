"""Seed-based connectivity out of core: connectomes across runs and seed-to-voxel maps.

Modules: ``connectome`` (per-run matrices of every kind, lazily), ``inputs`` (what the
signals may be), ``spd`` (matrix functions, the geometric mean), ``layout`` (labels and
vectorised layout), ``store`` (writing into a Zarr store), ``seed_to_voxel`` (the map API),
``staging`` (the time-major to voxel-major scratch file).
"""

from __future__ import annotations

from lazyspheres.connectivity.connectome import KINDS, connectome
from lazyspheres.connectivity.seed_to_voxel import seed_to_voxel
from lazyspheres.connectivity.store import write_connectome

__all__ = ["KINDS", "connectome", "seed_to_voxel", "write_connectome"]
