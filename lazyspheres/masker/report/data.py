"""What ``fit`` keeps for the report: seeds, mask and the middle volume of the image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    import nibabel as nib

    from lazyspheres.masker.inputs import Images

__all__ = ["ReportingData", "reporting_data"]


@dataclass(frozen=True)
class ReportingData:
    """The fitted masker's data a report draws.

    Attributes
    ----------
    seeds : list of list of float
        The fitted ``seeds_``.
    mask : nibabel.Nifti1Image or None
        The fitted ``mask_img_``.
    volume : xarray.DataArray or None
        The middle volume of the image given to ``fit`` (None without one).
    """

    seeds: list[list[float]]
    mask: nib.Nifti1Image | None
    volume: xr.DataArray | None


def reporting_data(
    seeds: list[list[float]], mask_img: nib.Nifti1Image | None, images: Images | None
) -> ReportingData:
    """The data a report needs, without reading the image.

    The middle volume (index ``T // 2``, as nilearn) stays lazy for file-backed images and
    is read when a report is generated; an in-memory image's middle volume is copied, so
    the masker does not keep the whole array alive.
    """
    volume = None
    if images is not None:
        image = images.image
        if "time" in image.dims:
            image = image.isel(time=image.sizes["time"] // 2)
        if not _is_lazy(image):
            image = image.copy(deep=True)
        volume = image
    return ReportingData(seeds, mask_img, volume)


def _is_lazy(image: xr.DataArray) -> bool:
    return not isinstance(image.data, np.ndarray)
