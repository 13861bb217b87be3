"""The ``.nifti`` DataArray accessor: geometry of an opened image, re-derived on every call.

xarray creates a fresh accessor for every new object (each ``isel`` or arithmetic result),
so nothing is cached here: everything comes from the ``nifti_meta`` coordinate and the
``i/j/k`` coordinate values of the object at hand.
"""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np
import xarray as xr

from lazyspheres._types import Attrs
from lazyspheres.errors import ImageFormatError

__all__ = ["NiftiAccessor"]

_META = "nifti_meta"
_SPATIAL = ("i", "j", "k")


@xr.register_dataarray_accessor("nifti")
class NiftiAccessor:
    """Geometry helpers for images opened with :func:`lazyspheres.open_nifti`.

    Examples
    --------
    >>> img.nifti.affine  # doctest: +SKIP
    >>> img.isel(i=slice(10, 20)).nifti.grid_affine  # doctest: +SKIP
    """

    def __init__(self, obj: xr.DataArray) -> None:
        self._obj = obj

    # ------------------------------------------------------------------ metadata
    @property
    def meta(self) -> Attrs:
        """The attrs of the ``nifti_meta`` coordinate (affine, codes, units, TR, header)."""
        if _META not in self._obj.coords:
            raise ImageFormatError(
                f"This DataArray has no '{_META}' coordinate, so its voxel-to-world affine "
                "is unknown. Open images with lazyspheres.open_nifti(...)."
            )
        return self._obj.coords[_META].attrs

    @property
    def affine(self) -> np.ndarray:
        """The (4, 4) affine mapping voxel-index *coordinate values* to world (mm)."""
        return np.array(self.meta["affine"], dtype=np.float64)

    @property
    def t_r(self) -> float | None:
        """Repetition time in seconds, if the header has one."""
        value = self.meta.get("t_r")
        return None if value is None else float(value)

    @property
    def voxel_size(self) -> np.ndarray:
        """Voxel edge lengths in mm (norms of the affine's columns)."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """Sizes of the ``i, j, k`` dimensions."""
        i, j, k = (int(self._obj.sizes[d]) for d in _SPATIAL)
        return (i, j, k)

    @property
    def grid_affine(self) -> np.ndarray:
        """The affine of this array's own index grid (positions ``0..n-1`` along i/j/k).

        Equals :attr:`affine` for an unsliced image; for a sliced one it includes the
        offset (and step) of the selection.

        Raises
        ------
        ValueError
            If a spatial coordinate is not evenly spaced (fancy-indexed selections).
        """
        scale = np.eye(4)
        for axis, dim in enumerate(_SPATIAL):
            values = np.asarray(self._obj.coords[dim].values)
            start = values[0] if values.size else 0
            step = values[1] - values[0] if values.size > 1 else 1
            if values.size > 2 and not np.array_equal(
                values, start + step * np.arange(values.size)
            ):
                raise ValueError(
                    f"The '{dim}' coordinate is not evenly spaced (values {values[:5]}...), "
                    "so this selection is not a regular grid. Select with slices."
                )
            scale[axis, axis] = step
            scale[axis, 3] = start
        return self.affine @ scale

    # ------------------------------------------------------------------ coordinates
    def voxel_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """Map voxel-index coordinate values ``(..., 3)`` to world mm ``(..., 3)``."""
        ijk = np.asarray(ijk, dtype=np.float64)
        affine = self.affine
        return ijk @ affine[:3, :3].T + affine[:3, 3]

    def world_to_voxel(self, xyz: np.ndarray) -> np.ndarray:
        """Map world mm ``(..., 3)`` to fractional voxel-index coordinate values."""
        xyz = np.asarray(xyz, dtype=np.float64)
        inverse = np.linalg.inv(self.affine)
        return xyz @ inverse[:3, :3].T + inverse[:3, 3]

    def world_coords(self) -> xr.Dataset:
        """World coordinates ``x, y, z`` (mm) of every voxel, as broadcast DataArrays."""
        affine = self.affine
        idx = [self._obj.coords[d].astype(np.float64) for d in _SPATIAL]
        out = {}
        for row, name in enumerate("xyz"):
            out[name] = idx[0] * affine[row, 0] + idx[1] * affine[row, 1]
            out[name] = out[name] + idx[2] * affine[row, 2] + affine[row, 3]
        return xr.Dataset(out)

    # ------------------------------------------------------------------ conversion
    def to_nifti(self) -> nib.Nifti1Image:
        """Materialise as an in-memory nibabel image (computes the data!).

        The stored header (codes, units, description) is reused when available, with the
        affine of this array's grid.
        """
        obj = self._obj.transpose(*[d for d in (*_SPATIAL, "time") if d in self._obj.dims])
        data = np.asarray(obj.values)
        header = None
        header_hex = self.meta.get("header") or ""
        if header_hex:
            raw = bytes.fromhex(header_hex)
            is_nifti2 = len(raw) == nib.Nifti2Header.sizeof_hdr
            klass = nib.Nifti2Header if is_nifti2 else nib.Nifti1Header
            header = klass.from_fileobj(io.BytesIO(raw), check=False)
            header.set_slope_inter(1.0, 0.0)
        grid_affine = self.grid_affine
        image = nib.Nifti1Image(data, grid_affine, header=header)
        sform = int(self.meta.get("sform_code") or 0)
        qform = int(self.meta.get("qform_code") or 0)
        image.set_sform(grid_affine, code=sform or 2)
        image.set_qform(grid_affine, code=qform or 0)
        if self.t_r and data.ndim == 4:
            zooms = image.header.get_zooms()
            image.header.set_zooms((*zooms[:3], self.t_r))
        return image
