"""lazyspheres: lazy, out-of-core sphere time-series extraction from 4D fMRI.

The public names are imported on first use, so ``import lazyspheres`` stays cheap and a
Dask worker that only unpickles a reader does not import the estimator or the CLI.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the lazy exports below are, for type checkers
    from lazyspheres import datasets as datasets
    from lazyspheres import errors as errors
    from lazyspheres.batch import extract_many as extract_many
    from lazyspheres.batch import open_results as open_results
    from lazyspheres.cleaning import clean as clean
    from lazyspheres.connectivity.connectome import connectome as connectome
    from lazyspheres.connectivity.seed_to_voxel import seed_to_voxel as seed_to_voxel
    from lazyspheres.extraction import extract as extract
    from lazyspheres.geometry import SphereVoxels as SphereVoxels
    from lazyspheres.geometry import sphere_voxels as sphere_voxels
    from lazyspheres.high_variance import high_variance_confounds as high_variance_confounds
    from lazyspheres.io.open import open_nifti as open_nifti
    from lazyspheres.io.zarr_image import to_zarr_image as to_zarr_image
    from lazyspheres.masker import NiftiSpheresMasker as NiftiSpheresMasker
    from lazyspheres.seeds import load_seeds as load_seeds
    from lazyspheres.seeds import named_seeds as named_seeds

try:
    __version__ = version("lazyspheres")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

# public name -> module that defines it
_EXPORTS = {
    "open_nifti": "lazyspheres.io.open",
    "to_zarr_image": "lazyspheres.io.zarr_image",
    "sphere_voxels": "lazyspheres.geometry",
    "SphereVoxels": "lazyspheres.geometry",
    "load_seeds": "lazyspheres.seeds",
    "named_seeds": "lazyspheres.seeds",
    "extract": "lazyspheres.extraction",
    "clean": "lazyspheres.cleaning",
    "high_variance_confounds": "lazyspheres.high_variance",
    "NiftiSpheresMasker": "lazyspheres.masker",
    "extract_many": "lazyspheres.batch",
    "open_results": "lazyspheres.batch",
    "connectome": "lazyspheres.connectivity",
    "seed_to_voxel": "lazyspheres.connectivity",
    "datasets": "lazyspheres.datasets",
    "errors": "lazyspheres.errors",
}

# names above that are submodules rather than objects inside them
_MODULES = {"datasets", "errors"}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> object:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'lazyspheres' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if name in _MODULES else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
