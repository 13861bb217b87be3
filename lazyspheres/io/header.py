"""Parse a NIfTI-1/NIfTI-2 header into the layout facts a reader needs.

Only the header bytes are looked at; the data is never read here. nibabel does the binary
parsing (byte order, the sform/qform choice of the affine, scaling rules), so the values and
affine are exactly what ``nibabel.load`` would report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np

from lazyspheres.errors import DimensionError, ImageFormatError
from lazyspheres.io.header_checks import (
    checked_affine,
    checked_shape,
    checked_slope_inter,
    checked_units,
    read_checked_header,
    require_fits,
)

__all__ = ["HEADER_PROBE_BYTES", "NiftiLayout", "layout_from_header", "parse_header_bytes"]

# A NIfTI-2 header is 540 bytes; NIfTI-1 is 348. Reading 544 covers both, with the 4-byte
# extension flag that follows a NIfTI-2 header (a repaired vox_offset of 0 needs it).
HEADER_PROBE_BYTES = 544

_TIME_UNIT_SECONDS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


@dataclass(frozen=True)
class NiftiLayout:
    """Where and how the voxel data of a single-file NIfTI image is laid out.

    Attributes
    ----------
    shape : tuple of int
        Spatial shape, plus the number of volumes for 4D images.
    raw_dtype : numpy.dtype
        Stored dtype, with the file's byte order.
    vox_offset : int
        Byte offset of the first voxel in the (decompressed) file.
    slope, inter : float or None
        Effective ``scl_slope``/``scl_inter``; ``None`` when nibabel applies no scaling.
    affine : numpy.ndarray
        The (4, 4) voxel-to-world affine nibabel chooses (sform, else qform, else pixdim).
    sform_code, qform_code : int
        The xform codes stored in the header.
    t_r : float or None
        Repetition time in seconds (``pixdim[4]`` converted with the time unit), if set.
    spatial_unit, time_unit : str
        Units from ``xyzt_units`` (``"mm"``, ``"sec"``, ``"unknown"`` ...).
    header_bytes : bytes
        The raw header, so an image can be written back with it.
    """

    shape: tuple[int, ...]
    raw_dtype: np.dtype
    vox_offset: int
    slope: float | None
    inter: float | None
    affine: np.ndarray = field(repr=False)
    sform_code: int
    qform_code: int
    t_r: float | None
    spatial_unit: str
    time_unit: str
    header_bytes: bytes = field(repr=False)

    @property
    def ndim(self) -> int:
        """Number of dimensions (3 or 4)."""
        return len(self.shape)

    @property
    def n_volumes(self) -> int:
        """Number of volumes (1 for a 3D image)."""
        return self.shape[3] if self.ndim == 4 else 1

    @property
    def volume_voxels(self) -> int:
        """Number of voxels in one volume."""
        return math.prod(self.shape[:3])

    @property
    def volume_bytes(self) -> int:
        """Bytes of one stored volume."""
        return self.volume_voxels * self.raw_dtype.itemsize

    @property
    def data_bytes(self) -> int:
        """Bytes of the whole stored data block."""
        return self.volume_bytes * self.n_volumes

    @property
    def is_scaled(self) -> bool:
        """Whether reading applies ``scl_slope``/``scl_inter``."""
        return self.slope is not None

    @property
    def dtype(self) -> np.dtype:
        """The dtype values have once read (as ``np.asanyarray(img.dataobj)`` gives them)."""
        if self.is_scaled:
            # nibabel promotes scaled data to float64 whatever the stored type.
            return np.dtype(np.float64)
        return self.raw_dtype.newbyteorder("=")

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """Apply the header scaling to raw stored values, exactly as nibabel does."""
        if self.slope is None:
            return raw.astype(self.dtype, copy=False)
        # inter is set whenever slope is (0.0 when the header leaves it unset)
        return raw.astype(np.float64) * self.slope + (self.inter or 0.0)


def parse_header_bytes(data: bytes, *, where: str = "<bytes>") -> nib.Nifti1Header:
    """Parse the first bytes of a NIfTI file into a nibabel header, checking every field.

    Parameters
    ----------
    data : bytes
        At least the header (348 bytes for NIfTI-1, 540 for NIfTI-2), decompressed; with the
        4-byte extension flag after it when available (:data:`HEADER_PROBE_BYTES`).
    where : str
        Path or URL, used in error messages.

    Returns
    -------
    nibabel.Nifti1Header or nibabel.Nifti2Header
        With the repairs nibabel makes applied (each one warned about).

    Raises
    ------
    ImageFormatError
        If the bytes are not a single-file NIfTI header nibabel could read.

    Warns
    -----
    HeaderRepairWarning
        For each field repaired (see :mod:`lazyspheres.io.header_checks`).
    """
    return read_checked_header(data, where=where)


def layout_from_header(
    header: nib.Nifti1Header,
    *,
    where: str = "<bytes>",
    file_size: int | None = None,
    compressed: bool = False,
) -> NiftiLayout:
    """Turn a checked header into a :class:`NiftiLayout`, validating what lazyspheres needs.

    Parameters
    ----------
    header : nibabel.Nifti1Header or nibabel.Nifti2Header
        As returned by :func:`parse_header_bytes`.
    where : str
        Path or URL, used in messages.
    file_size : int, optional
        Size of the stored file; for a gzip file, the data the header claims is checked
        against the most it can inflate to, before anything is allocated.
    compressed : bool
        Whether the file is gzip-compressed.

    Raises
    ------
    DimensionError
        For images that are not 3D or 4D (trailing singleton dimensions are dropped).
    ImageFormatError
        For empty images, negative lengths, or a scaling nibabel refuses.
    TruncatedImageError
        For a gzip file too small to hold the data its header claims.
    """
    shape = checked_shape(header, where=where)
    while len(shape) > 4 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (3, 4):
        detail = f"{where} has shape {shape}; lazyspheres reads 3D or 4D images."
        raise DimensionError(len(shape), 4, detail)
    if 0 in shape:
        raise ImageFormatError(f"The image is empty. {where} has shape {shape}.")
    raw_dtype = header.get_data_dtype()
    vox_offset = int(header["vox_offset"])
    require_fits(
        where,
        vox_offset,
        math.prod(shape) * raw_dtype.itemsize,
        file_size=file_size,
        compressed=compressed,
    )
    slope, inter = checked_slope_inter(header, where=where)
    if slope is not None and slope == 1.0 and (inter is None or inter == 0.0):
        slope, inter = None, None  # nibabel returns stored values untouched
    if slope is not None and inter is None:
        inter = 0.0
    spatial_unit, time_unit = checked_units(header, where=where)
    t_r = None
    if len(shape) == 4:
        pixdim_t = float(header["pixdim"][4])
        if math.isfinite(pixdim_t) and pixdim_t > 0:
            t_r = pixdim_t * _TIME_UNIT_SECONDS.get(time_unit, 1.0)
    sform_code = int(header["sform_code"])
    qform_code = int(header["qform_code"])
    affine = checked_affine(header, where=where)
    return NiftiLayout(
        shape=shape,
        raw_dtype=raw_dtype,
        vox_offset=vox_offset,
        slope=None if slope is None else float(slope),
        inter=None if inter is None else float(inter),
        affine=affine,
        sform_code=sform_code,
        qform_code=qform_code,
        t_r=t_r,
        spatial_unit=spatial_unit,
        time_unit=time_unit,
        header_bytes=header.binaryblock,
    )
