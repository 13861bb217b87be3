"""Parse a NIfTI-1/NIfTI-2 header into the layout facts a reader needs.

Only the header bytes are looked at; the data is never read here. nibabel does the binary
parsing (byte order, the sform/qform choice of the affine, scaling rules), so the values and
affine are exactly what ``nibabel.load`` would report.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np

from lazyspheres.errors import DimensionError, ImageFormatError

__all__ = ["HEADER_PROBE_BYTES", "NiftiLayout", "layout_from_header", "parse_header_bytes"]

# A NIfTI-2 header is 540 bytes; NIfTI-1 is 348. Reading 540 covers both.
HEADER_PROBE_BYTES = 540

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
        return int(np.prod(self.shape[:3]))

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
        if not self.is_scaled:
            return raw.astype(self.dtype, copy=False)
        return raw.astype(np.float64) * self.slope + self.inter


def parse_header_bytes(data: bytes, *, where: str = "<bytes>") -> nib.Nifti1Header:
    """Parse the first bytes of a NIfTI file into a nibabel header.

    Parameters
    ----------
    data : bytes
        At least the header (348 bytes for NIfTI-1, 540 for NIfTI-2), decompressed.
    where : str
        Path or URL, used in error messages.

    Returns
    -------
    nibabel.Nifti1Header or nibabel.Nifti2Header

    Raises
    ------
    ImageFormatError
        If the bytes are not a single-file NIfTI header.
    """
    if len(data) < 348:
        raise ImageFormatError(
            f"{where}: only {len(data)} bytes could be read, but a NIfTI header needs at "
            "least 348. The file is empty or truncated."
        )
    for header_class in (nib.Nifti1Header, nib.Nifti2Header):
        size = header_class.sizeof_hdr
        if len(data) < size:
            continue
        for endian in ("<", ">"):
            if int(np.frombuffer(data[:4], dtype=f"{endian}i4")[0]) == size:
                header = header_class.from_fileobj(io.BytesIO(data[:size]), check=False)
                magic = bytes(header["magic"]).rstrip(b"\x00")
                if magic in (b"n+1", b"n+2"):
                    return header
                if magic in (b"ni1", b"ni2"):
                    raise ImageFormatError(
                        f"{where}: this is the header of a two-file NIfTI pair (.hdr/.img). "
                        "lazyspheres reads single-file images; convert it with "
                        "nibabel (nib.save(nib.load(path), 'out.nii.gz')) or pass the "
                        "nibabel image itself."
                    )
                raise ImageFormatError(
                    f"{where}: bad NIfTI magic {magic!r} (expected b'n+1' or b'n+2')."
                )
    raise ImageFormatError(
        f"{where}: not a NIfTI file (the first 4 bytes do not give a header size of 348 or "
        f"540; got {data[:4]!r}). Expected a .nii or .nii.gz file."
    )


def layout_from_header(header: nib.Nifti1Header, *, where: str = "<bytes>") -> NiftiLayout:
    """Turn a parsed header into a :class:`NiftiLayout`, validating what lazyspheres needs.

    Raises
    ------
    DimensionError
        For images that are not 3D or 4D (trailing singleton dimensions are dropped).
    ImageFormatError
        For empty images, unsupported data types or an impossible ``vox_offset``.
    """
    shape = tuple(int(n) for n in header.get_data_shape())
    while len(shape) > 4 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (3, 4):
        detail = f"{where} has shape {shape}; lazyspheres reads 3D or 4D images."
        raise DimensionError(len(shape), 4, detail)
    if 0 in shape:
        raise ImageFormatError(f"The image is empty. {where} has shape {shape}.")
    raw_dtype = header.get_data_dtype()
    if raw_dtype.fields is not None or raw_dtype.kind not in "iuf":
        raise ImageFormatError(
            f"{where}: data type {raw_dtype} is not supported (expected an integer or "
            "floating-point type)."
        )
    vox_offset = int(header["vox_offset"])
    if vox_offset < header.sizeof_hdr:
        # NIfTI-1 allows 0 here for .hdr/.img pairs only; single files put data after the
        # header and its 4-byte extension flag.
        vox_offset = header.sizeof_hdr + 4
    slope, inter = header.get_slope_inter()
    if slope is not None and slope == 1.0 and (inter is None or inter == 0.0):
        slope, inter = None, None  # nibabel returns stored values untouched
    if slope is not None and inter is None:
        inter = 0.0
    spatial_unit, time_unit = header.get_xyzt_units()
    t_r = None
    if len(shape) == 4:
        pixdim_t = float(header["pixdim"][4])
        if math.isfinite(pixdim_t) and pixdim_t > 0:
            t_r = pixdim_t * _TIME_UNIT_SECONDS.get(time_unit, 1.0)
    sform_code = int(header["sform_code"])
    qform_code = int(header["qform_code"])
    affine = np.asarray(header.get_best_affine(), dtype=np.float64)
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
