"""What the masker's users pass in, named as nilearn names it.

These are the types a value must have to be accepted; the masker still checks every value
(at ``fit`` for its parameters, at ``transform`` for the images), because an estimator's
parameters are set by scikit-learn, grid searches and users without any type checker.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Literal, Protocol, TypeAlias

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr
from joblib import Memory

from lazyspheres._types import UserInput

__all__ = [
    "CleanArgs",
    "DataFrameLike",
    "DisplayedSpheres",
    "DtypeParam",
    "MemoryParam",
    "NiimgLike",
    "SeedsParam",
    "TransformOutput",
]

NiimgLike: TypeAlias = (
    str | os.PathLike[str] | nib.spatialimages.SpatialImage | xr.DataArray | Iterable["NiimgLike"]
)
"""nilearn's "Niimg-like": a path (or glob pattern, or URL), a nibabel image, an image
opened by :func:`lazyspheres.open_nifti`, or an iterable of those (3D images stacked along
time)."""

SeedsParam: TypeAlias = str | pd.DataFrame | Iterable[npt.ArrayLike]
"""Sphere centres: ``(x, y, z)`` triplets (a list or an ``(n, 3)`` array), a DataFrame with
``x, y, z`` columns, or the name of a seed set ("power2011", ...)."""

DtypeParam: TypeAlias = npt.DTypeLike | Literal["auto"] | None
"""The masker's ``dtype``: a numpy dtype, "auto" (int32/float32) or None (the image's)."""

MemoryParam: TypeAlias = str | os.PathLike[str] | Memory | None
"""A joblib cache: a ``Memory``, its folder, or None for no cache."""

CleanArgs: TypeAlias = Mapping[str, UserInput]
"""nilearn's ``clean_args``: extra keyword arguments of the cleaning, by nilearn's names
(``butterworth__order``...). Keys nilearn does not pass on are ignored, so the values are
whatever the user gave until the cleaning options are built from them."""

DisplayedSpheres: TypeAlias = int | Iterable[int] | np.ndarray | Literal["all"]
"""Which spheres a report draws: "all", the first n, or sphere indices in display order."""


class DataFrameLike(Protocol):
    """A pandas or polars DataFrame (``set_output``'s containers; neither is required)."""

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""

    def to_numpy(self) -> np.ndarray:
        """The values, as a NumPy array."""


TransformOutput: TypeAlias = np.ndarray | xr.DataArray | DataFrameLike
"""What ``transform`` returns, in the container chosen with ``set_output``."""
