"""What ``fit`` keeps for the report: seeds, mask and the middle volume of the image."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["reporting_data"]


def reporting_data(seeds: list, mask_img: Any, images: Any) -> dict[str, Any]:
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
    return {"seeds": seeds, "mask": mask_img, "img": volume}


def _is_lazy(image: xr.DataArray) -> bool:
    return not isinstance(image.data, np.ndarray)
