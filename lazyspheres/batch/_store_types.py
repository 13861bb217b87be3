"""Names for what the result store's modules pass around (Zarr stores, store locations)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, TypeAlias

from zarr.abc.store import Store

if TYPE_CHECKING:
    import numpy as np

    from lazyspheres._types import Attrs

__all__ = ["Coordinate", "OpenChunks", "StoreLocation"]

StoreLocation: TypeAlias = str | os.PathLike[str] | Store
"""Where a result store is, as the user gives it: a path, an fsspec URL or a zarr Store."""

Coordinate: TypeAlias = "tuple[str, np.ndarray] | tuple[str, np.ndarray, Attrs]"
"""A coordinate as xarray takes it: its dimension, its values and, maybe, its attributes."""

OpenChunks: TypeAlias = int | Mapping[str, int | tuple[int, ...]] | Literal["auto"] | None
"""``chunks`` as :func:`xarray.open_zarr` takes them (None: the stored chunks)."""
