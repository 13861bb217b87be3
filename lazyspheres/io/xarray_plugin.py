"""The ``engine="nifti"`` xarray backend: ``xr.open_dataarray("bold.nii.gz", engine="nifti")``.

A thin adaptor over :func:`lazyspheres.io.open.image_from_file`. The Dataset has one data
variable, ``"image"``, lazily indexed (no Dask unless ``chunks=`` is given to xarray), with
``encoding["preferred_chunks"]`` set to whole volumes so ``chunks={}`` follows the on-disk
layout.

The variable reads through the file's reader (:mod:`lazyspheres.io.readers`), as
:func:`lazyspheres.open_nifti`'s arrays do: with a seek-point index, any box of a ``.nii.gz``
is read by random access.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import xarray as xr
from xarray.backends import BackendEntrypoint

from lazyspheres.io.image import image_from_file, normalize_chunks
from lazyspheres.io.reader import NiftiFile

if TYPE_CHECKING:
    from lazyspheres._types import StorageOptions, UserInput

__all__ = ["VARIABLE_NAME", "NiftiBackendEntrypoint"]

VARIABLE_NAME = "image"
_SUFFIXES = (".nii", ".nii.gz")


class NiftiBackendEntrypoint(BackendEntrypoint):
    """Open NIfTI-1/NIfTI-2 images (``.nii``, ``.nii.gz``, local or fsspec URLs) lazily."""

    description = "Open NIfTI images lazily with voxel-index coordinates and the affine kept"
    url = "https://github.com/lazyspheres/lazyspheres"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "storage_options")

    def open_dataset(
        self,
        filename_or_obj: UserInput,
        *,
        drop_variables: str | Iterable[str] | None = None,
        storage_options: StorageOptions | None = None,
    ) -> xr.Dataset:
        """Open a NIfTI file as a Dataset with one lazily indexed variable, ``"image"``."""
        nifti = NiftiFile.open(filename_or_obj, storage_options)
        image = image_from_file(nifti, chunks=None, name=VARIABLE_NAME)
        dataset = image.to_dataset(name=VARIABLE_NAME)
        layout = nifti.layout
        preferred = normalize_chunks("auto", image.dims, layout.shape, layout.dtype)
        dataset[VARIABLE_NAME].encoding["preferred_chunks"] = {
            dim: sizes[0] for dim, sizes in zip(image.dims, preferred, strict=True)
        }
        if drop_variables is not None:
            dataset = dataset.drop_vars(drop_variables, errors="ignore")
        return dataset

    def guess_can_open(self, filename_or_obj: UserInput) -> bool:
        """Recognise ``.nii`` and ``.nii.gz`` paths and URLs by their suffix."""
        try:
            name = os.fspath(filename_or_obj)
        except TypeError:
            return False
        name = str(name).lower()
        return name.endswith(_SUFFIXES)
