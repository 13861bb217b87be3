"""What a spheres-masker report shows: chosen spheres, the regions summary, the parameters.

Semantics of ``displayed_spheres`` are nilearn 0.12.1's, with SPEC §3.5's fixes: an index
array of any length is accepted (nilearn fails on arrays of two or more elements), and an
index equal to the number of seeds is refused with nilearn's ValueError (nilearn lets it
through and fails with a bare AssertionError). Spheres are shown in the order given.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lazyspheres._types import FloatArray
from lazyspheres.masker._logging import warn

if TYPE_CHECKING:
    import nibabel as nib
    import xarray as xr

    from lazyspheres.masker._types import DisplayedSpheres

__all__ = [
    "SUMMARY_COLUMNS",
    "SphereSizes",
    "SummaryRow",
    "check_displayed_spheres",
    "parameter_rows",
    "resolve_displayed_spheres",
    "sphere_sizes",
    "summary_rows",
]

SUMMARY_COLUMNS = (
    "seed number",
    "coordinates",
    "position",
    "radius",
    "size (in mm^3)",
    "size (in voxels)",
    "relative size (in %)",
)


class DisplayedSpheresTypeError(TypeError):
    """``displayed_spheres`` of the wrong type."""


def check_displayed_spheres(displayed_spheres: object) -> None:
    """Apply nilearn's type check: "all", an int, or a list/array of numbers.

    (Whether the numbers are valid sphere indices is checked by
    :func:`resolve_displayed_spheres`, which knows the number of seeds.)

    Raises
    ------
    TypeError
        "Parameter ``displayed_spheres`` of ``generate_report()`` should be either 'all'
        or an int, or a list/array of ints. You provided a <type>"
    """
    if isinstance(displayed_spheres, str) and displayed_spheres == "all":
        return
    if isinstance(displayed_spheres, int):
        return
    if isinstance(displayed_spheres, list | np.ndarray):
        values = np.asarray(displayed_spheres, dtype=object).ravel().tolist()
        if all(_is_number(v) for v in values):
            return
    raise _type_error(displayed_spheres)


def _type_error(displayed_spheres: object) -> DisplayedSpheresTypeError:
    detail = ""
    if isinstance(displayed_spheres, list | np.ndarray):
        detail = f" ({displayed_spheres!r} holds values that are not integer indices)"
    return DisplayedSpheresTypeError(
        "Parameter ``displayed_spheres`` of ``generate_report()`` should be either 'all' or "
        f"an int, or a list/array of ints. You provided a {type(displayed_spheres)}{detail}"
    )


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _is_integral(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Integral):
        return True
    return isinstance(value, numbers.Real) and float(value).is_integer()


def resolve_displayed_spheres(
    displayed_spheres: DisplayedSpheres, n_seeds: int
) -> tuple[list[int], DisplayedSpheres]:
    """Indices of the spheres to draw, and the value nilearn stores back on the masker.

    Returns
    -------
    indices : list of int
        Sphere indices in display order.
    stored : object
        ``displayed_spheres`` as nilearn leaves it on the masker (an int larger than the
        number of seeds is lowered to it).

    Warns
    -----
    UserWarning
        An int larger than the number of seeds.

    Raises
    ------
    ValueError
        Indices that are not those of seeds ("Report cannot display the following
        spheres [...] because masker only has N seeds.").
    """
    if isinstance(displayed_spheres, str):
        return list(range(n_seeds)), displayed_spheres
    if isinstance(displayed_spheres, int):
        if displayed_spheres > n_seeds:
            warn(
                f"generate_report() received {displayed_spheres} spheres to be displayed. "
                f"But masker only has {n_seeds} seeds. Setting number of displayed spheres "
                f"to {n_seeds}."
            )
            displayed_spheres = n_seeds
        return list(range(max(0, displayed_spheres))), displayed_spheres
    values = np.asarray(displayed_spheres, dtype=object).ravel().tolist()
    bad = [v for v in values if v >= n_seeds or v < 0]
    if bad:
        shown = (
            displayed_spheres.tolist()
            if isinstance(displayed_spheres, np.ndarray)
            else displayed_spheres
        )
        raise ValueError(
            f"Report cannot display the following spheres {shown} because masker only has "
            f"{n_seeds} seeds. Valid indices are 0 to {n_seeds - 1}; {bad} are not."
        )
    if not all(_is_integral(v) for v in values):
        raise _type_error(displayed_spheres)
    indices = [int(v) for v in values]
    return indices, displayed_spheres


UNKNOWN_SIZE = "unknown: fit had no image or mask"


@dataclass(frozen=True)
class SphereSizes:
    """Voxel counts of the spheres on the grid the masker extracts from."""

    n_voxels: np.ndarray  # (n_seeds,) voxels per sphere
    n_union: int  # voxels in any sphere
    voxel_volume: float  # mm^3


def sphere_sizes(
    coords: FloatArray,
    radius: float | None,
    volume: xr.DataArray | None,
    mask: nib.Nifti1Image | None,
) -> SphereSizes | None:
    """Sphere sizes on the fitted image's grid (or the mask's, when fit had only a mask).

    The voxels are those ``transform`` averages for an image on that grid: the sphere rules
    with the binarised ``mask_img_`` resampled to the grid (nearest neighbour). Only the
    grid is used; no image data is read. None when fit had neither image nor mask, or when
    a sphere is empty there (``transform`` would raise).
    """
    from lazyspheres.errors import LazySpheresError
    from lazyspheres.extraction import load_mask_on_grid
    from lazyspheres.geometry import sphere_voxels

    if volume is not None:
        affine, shape = volume.nifti.grid_affine, volume.nifti.spatial_shape
        candidates = None if mask is None else load_mask_on_grid(mask, affine, shape)
    elif mask is not None:
        affine, shape = mask.affine, mask.shape[:3]
        candidates = np.asanyarray(mask.dataobj).reshape(shape) != 0
    else:
        return None
    try:
        spheres = sphere_voxels(
            coords, affine, shape, radius=radius, mask=candidates, allow_overlap=True
        )
    except LazySpheresError:
        return None
    volume_mm3 = float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3])))
    return SphereSizes(spheres.n_voxels, int(spheres.voxels.shape[0]), volume_mm3)


@dataclass(frozen=True)
class SummaryRow:
    """One sphere's row of the "Regions summary" table (columns :data:`SUMMARY_COLUMNS`)."""

    seed_number: int
    coordinates: str
    position: list[float] | np.ndarray  # the seed, or its voxel on the image shown
    radius: float
    size_mm3: float
    size_voxels: int | str  # UNKNOWN_SIZE when fit had neither image nor mask
    relative_size: float | str

    def cells(self) -> list[object]:
        """The values, in the order of :data:`SUMMARY_COLUMNS`."""
        return [
            self.seed_number,
            self.coordinates,
            self.position,
            self.radius,
            self.size_mm3,
            self.size_voxels,
            self.relative_size,
        ]


def summary_rows(
    seeds: list[list[float]],
    radius: float | None,
    affine: np.ndarray | None,
    sizes: SphereSizes | None = None,
) -> list[SummaryRow]:
    """The "Regions summary" table: nilearn 0.12.1's columns, with the sizes filled in.

    ``position`` is the nearest voxel (``round(inv(affine) @ seed)``) of the image shown,
    or the seed itself when fit had no image; ``radius`` is 1.0 for ``radius=None`` (as
    nilearn). Where nilearn writes "not implemented", lazyspheres gives the sphere's voxel
    count and its share (%) of the voxels of all spheres, and the size in mm^3 is the real
    volume of those voxels (nilearn: the ball volume 4/3·π·r³, kept when the sizes are
    unknown).
    """
    r = 1.0 if radius is None else radius
    ball = round(4.0 / 3.0 * math.pi * r**3, 2)
    inverse = None if affine is None else np.linalg.inv(affine)
    rows = []
    for index, seed in enumerate(seeds):
        position: list[float] | np.ndarray = seed
        if inverse is not None:
            position = np.round(inverse @ np.array([*map(float, seed), 1.0])).astype(int)[:3]
        if sizes is None:
            row = SummaryRow(index, str(seed), position, r, ball, UNKNOWN_SIZE, UNKNOWN_SIZE)
        else:
            count = int(sizes.n_voxels[index])
            volume = round(count * sizes.voxel_volume, 2)
            share = round(100.0 * count / sizes.n_union, 2)
            row = SummaryRow(index, str(seed), position, r, volume, count, share)
        rows.append(row)
    return rows


def parameter_rows(params: Mapping[str, object]) -> list[tuple[str, str]]:
    """``(name, value)`` rows of the parameter table, in the constructor's order."""
    return [(name, _short(value)) for name, value in params.items()]


def _short(value: object, limit: int = 100) -> str:
    text = repr(value) if not isinstance(value, str) else value
    if hasattr(value, "get_filename") and hasattr(value, "shape"):
        name = value.get_filename()
        text = (
            f"{type(value).__name__}({name!r})"
            if name
            else (f"{type(value).__name__}(shape={tuple(value.shape)})")
        )
    return text if len(text) <= limit else text[: limit - 3] + "..."
