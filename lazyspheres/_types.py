"""Names for the values that flow through lazyspheres' signatures.

Most signatures name a concrete class (``xr.DataArray``, ``dask.array.Array``,
``numpy.ndarray``). The names here are for the few places where the value is open by
design: a user's input before it is validated, keyword arguments handed through untouched to
another library, and JSON-like attributes. Each still says which of these it is, so that
``Any`` in a signature is never an unexplained hole. Anything more specific to one
package belongs in that package.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "Attrs",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "StorageOptions",
    "UserInput",
]

StorageOptions: TypeAlias = dict[str, Any]
"""fsspec keyword arguments for a URL's filesystem (credentials, endpoint, anonymity...),
handed to fsspec untouched: their keys and values depend on the protocol."""

Attrs: TypeAlias = dict[str, Any]
"""JSON-like attributes, as stored on xarray objects and Zarr arrays."""

UserInput: TypeAlias = Any
"""A value as the user passed it, before validation turns it into a typed one (a path, a URL,
a nibabel image, a DataArray, a list of coordinates...). Only entry points take it."""

FloatArray: TypeAlias = npt.NDArray[np.floating[Any]]
"""A NumPy array of floating-point values (any precision)."""

IntArray: TypeAlias = npt.NDArray[np.integer[Any]]
"""A NumPy array of integers (indices, voxel coordinates, offsets)."""

BoolArray: TypeAlias = npt.NDArray[np.bool_]
"""A NumPy boolean array (masks)."""
