"""Field-by-field validation of a NIfTI header, before any data is read.

lazyspheres reads every single-file image nibabel 5 reads, and refuses the others with a
clear error. So the header is read as ``nibabel.load`` reads it (same header class, same
byte-order guess) and each field is checked in nibabel's order, with nibabel's decision:

=============  =====================================  =====================================
field          nibabel repairs (we warn, same fix)    nibabel refuses (ImageFormatError)
=============  =====================================  =====================================
sizeof_hdr     NIfTI-1 magic but size ≠ 348: use 348  NIfTI-2 size ≠ 540 (no magic either)
datatype                                              unknown or sizeless code
bitpix         ≠ the datatype's size: use the size
pixdim[1:4]    0 → 1, negative → absolute value
pixdim[0]      (qfac) not ±1 → 1 (silently, common)
magic          ``ni1``/``ni2`` on a single file       anything but n+1/ni1/n+2/ni2
vox_offset     0 → just after the header (see below)  inside the header, negative, not finite
qform/sform    unknown code → 0
eol_check      (NIfTI-2) all zero → standard          other values
xyzt_units     unknown unit code → "unknown"
scl_inter                                             not finite while scl_slope is valid
dim            (nibabel's FreeSurfer shape hacks)     negative lengths; 0 is "empty"
=============  =====================================  =====================================

``vox_offset``: a single file keeps its data after the header and the 4-byte extension
flag (byte 352 for NIfTI-1, 544 for NIfTI-2). nibabel refuses an offset between 1 and that
minimum (for ``n+1``), but reads from byte 0 when the offset is 0, returning the header's
own bytes as voxel values. lazyspheres never reads the header as data: an offset of 0 is
repaired to the minimum with a warning (0 means "unset" in NIfTI-1), and any other offset
inside the header is refused, also for ``ni1`` files where nibabel would read it.

Sizes are then checked against the file before a byte of data is read or allocated: an
uncompressed file must hold ``vox_offset + data bytes`` (checked by the reader), and a gzip
file cannot hold more than :data:`MAX_DEFLATE_RATIO` times its compressed size.
"""

from __future__ import annotations

import math
import warnings
from typing import NoReturn

import nibabel as nib
import numpy as np
from nibabel import nifti1
from nibabel.spatialimages import HeaderDataError

from lazyspheres.errors import HeaderRepairWarning, ImageFormatError, TruncatedImageError

__all__ = [
    "MAX_DEFLATE_RATIO",
    "checked_affine",
    "checked_shape",
    "checked_slope_inter",
    "checked_units",
    "read_checked_header",
    "require_fits",
]

# DEFLATE cannot expand its input more than 1032:1 (a 258-byte match coded in 2 bits).
MAX_DEFLATE_RATIO = 1032
_EOL = (13, 10, 26, 10)
_DATA_TYPE_CODES = nifti1.data_type_codes
_REWRITE = "Rewrite the file to fix it for good (nib.save(nib.load(path), path))."


def field_error(where: str, name: str, value: object, expected: str, hint: str = "") -> NoReturn:
    """Raise the :class:`ImageFormatError` for one header field."""
    message = f"{where}: cannot read the NIfTI header: field {name} = {value!r}"
    message = f"{message}, expected {expected}."
    raise ImageFormatError(f"{message} {hint}".rstrip())


def _repaired(where: str, name: str, value: object, fix: str) -> None:
    warnings.warn(
        f"{where}: invalid NIfTI header field {name} = {value!r}; {fix}, as nibabel does. "
        + _REWRITE,
        HeaderRepairWarning,
        stacklevel=4,
    )


def read_checked_header(data: bytes, *, where: str) -> nib.Nifti1Header:
    """Read the header in ``data`` as ``nibabel.load`` would, repairing or refusing fields.

    Parameters
    ----------
    data : bytes
        The decompressed start of the file: at least the header, ideally also the 4-byte
        extension flag after it.
    where : str
        Path or URL, named in messages.

    Returns
    -------
    nibabel.Nifti1Header or nibabel.Nifti2Header
        The header with nibabel's repairs applied.

    Raises
    ------
    ImageFormatError
        Not a NIfTI header, or a field nibabel would refuse.
    """
    if len(data) < 348:
        raise ImageFormatError(
            f"{where}: only {len(data)} bytes could be read, but a NIfTI header needs at "
            "least 348. The file is empty or truncated."
        )
    header_class = _sniff_class(data, where)
    block = data[: header_class.sizeof_hdr]
    header = header_class(block, endianness=None, check=False)  # nibabel's byte-order guess
    _check_sizeof_hdr(header, where)
    _check_datatype(header, where)
    _check_pixdim(header, where)
    _check_magic(header, where)
    _check_offset(header, data, where)
    for code in ("qform_code", "sform_code"):
        _check_xform_code(header, code, where)
    if isinstance(header, nib.Nifti2Header):
        _check_eol(header, where)
    return header


def _sniff_class(data: bytes, where: str) -> type[nib.Nifti1Header]:
    """NIfTI-1 when its magic is at byte 344, else NIfTI-2 when the size field says 540."""
    magic1 = data[344:348].rstrip(b"\x00")
    if magic1 in (b"n+1", b"ni1"):
        return nib.Nifti1Header
    sizes = {int(np.frombuffer(data[:4], dtype=f"{e}i4")[0]) for e in "<>"}
    if 540 in sizes and len(data) >= 540:
        return nib.Nifti2Header
    field_error(
        where,
        "sizeof_hdr",
        int(np.frombuffer(data[:4], dtype="<i4")[0]),
        f"540 (NIfTI-2), or NIfTI-1's magic b'n+1' at byte 344 (found {data[344:348]!r})",
        "This is not a NIfTI file (expected a single-file .nii or .nii.gz image).",
    )


def _check_sizeof_hdr(header: nib.Nifti1Header, where: str) -> None:
    value = int(header["sizeof_hdr"])
    if value != header.sizeof_hdr:
        header["sizeof_hdr"] = header.sizeof_hdr
        _repaired(where, "sizeof_hdr", value, f"read as {header.sizeof_hdr}")


def _check_datatype(header: nib.Nifti1Header, where: str) -> None:
    code = int(header["datatype"])
    dtype: np.dtype | None
    try:
        found = _DATA_TYPE_CODES.dtype[code]  # nibabel's table holds numpy dtypes
        dtype = found if isinstance(found, np.dtype) else None
    except KeyError:
        dtype = None
    if dtype is None or dtype.itemsize == 0 or dtype.fields is not None or dtype.kind not in "iuf":
        known = "integer or float codes 2, 4, 8, 16, 64, 256, 512, 768, 1024, 1280, 1536"
        kind = "unknown" if dtype is None else f"{dtype} data, not readable by lazyspheres"
        field_error(where, "datatype", code, f"one of the {known} ({kind})")
    bits = dtype.itemsize * 8
    value = int(header["bitpix"])
    if value != bits:
        header["bitpix"] = bits
        _repaired(where, "bitpix", value, f"used {bits}, the size of datatype {code}")


def _check_pixdim(header: nib.Nifti1Header, where: str) -> None:
    pixdim = header["pixdim"]
    if pixdim[0] not in (-1, 1):
        pixdim[0] = 1  # qfac: nibabel repairs it without a word; old writers leave 0
    spatial = pixdim[1:4].copy()
    if np.any(spatial <= 0):
        fixed = np.abs(spatial)
        fixed[fixed == 0] = 1
        pixdim[1:4] = fixed
        header["pixdim"] = pixdim
        _repaired(where, "pixdim[1:4]", tuple(spatial.tolist()), f"used {tuple(fixed.tolist())}")
    else:
        header["pixdim"] = pixdim


def _check_magic(header: nib.Nifti1Header, where: str) -> None:
    magic = bytes(header["magic"].item()).rstrip(b"\x00")
    if magic == header.single_magic:
        return
    if magic == header.pair_magic:
        header["magic"] = header.single_magic  # so the header can be written back as is
        _repaired(where, "magic", magic, "read as a single file (data after the header)")
        return
    field_error(
        where, "magic", magic, f"{header.single_magic!r} for a single-file image", _NOT_NIFTI
    )


_NOT_NIFTI = "The file is not a NIfTI image, or its header is corrupt."


def _check_offset(header: nib.Nifti1Header, data: bytes, where: str) -> None:
    value = float(header["vox_offset"])
    minimum = header.sizeof_hdr + 4
    if value == 0:
        flag = data[header.sizeof_hdr : minimum]
        if flag[:1] not in (b"", b"\x00"):
            field_error(
                where,
                "vox_offset",
                0,
                f"at least {minimum}",
                "The header announces extensions but not where the data starts after them.",
            )
        header["vox_offset"] = minimum
        _repaired(where, "vox_offset", 0, f"read the data from byte {minimum}, after the header")
        return
    stored = header["vox_offset"].item()  # a float in NIfTI-1, an integer in NIfTI-2
    if not math.isfinite(value) or value < minimum:
        field_error(
            where,
            "vox_offset",
            stored,
            f"a whole number ≥ {minimum} (the data starts after the {header.sizeof_hdr}-byte "
            "header and its 4-byte extension flag)",
            "lazyspheres never reads the header as voxel data.",
        )
    header["vox_offset"] = math.trunc(stored)  # nibabel reads int(vox_offset)


def _check_xform_code(header: nib.Nifti1Header, name: str, where: str) -> None:
    value = int(header[name])
    if value not in nifti1.xform_codes.value_set():
        header[name] = 0
        _repaired(where, name, value, "used 0 (unknown: this transform is ignored)")


def _check_eol(header: nib.Nifti1Header, where: str) -> None:
    eol = tuple(int(v) for v in header["eol_check"])
    if eol == _EOL:
        return
    if eol == (0, 0, 0, 0):
        header["eol_check"] = _EOL  # nibabel repairs this silently
        return
    field_error(
        where,
        "eol_check",
        eol,
        f"{_EOL}",
        "The file was probably corrupted by a text-mode transfer (line endings converted).",
    )


def checked_units(header: nib.Nifti1Header, *, where: str) -> tuple[str, str]:
    """``(spatial, time)`` units; unknown unit codes read as ``"unknown"`` with a warning."""
    code = int(header["xyzt_units"])
    labels = []
    for part in (code % 8, code - code % 8):
        try:
            labels.append(str(nifti1.unit_codes.label[part]))
        except KeyError:
            _repaired(where, "xyzt_units", code, f"unit code {part} read as 'unknown'")
            labels.append("unknown")
    return labels[0], labels[1]


def checked_slope_inter(
    header: nib.Nifti1Header, *, where: str
) -> tuple[float | None, float | None]:
    """The effective ``(slope, inter)``; as nibabel gives it; refuses a scaling nibabel refuses."""
    try:
        return header.get_slope_inter()
    except HeaderDataError:
        slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
        field_error(
            where,
            "scl_inter",
            inter,
            f"a finite number when scl_slope = {slope!r} (or scl_slope 0/NaN: no scaling)",
        )


def checked_shape(header: nib.Nifti1Header, *, where: str) -> tuple[int, ...]:
    """The data shape nibabel reports, with every length checked non-negative."""
    try:
        shape = tuple(int(n) for n in header.get_data_shape())
    except HeaderDataError as error:
        field_error(where, "dim", tuple(int(d) for d in header["dim"]), f"a valid shape ({error})")
    for axis, length in enumerate(shape):
        if length < 0:
            field_error(
                where, f"dim[{axis + 1}]", length, "a positive length (the voxels along an axis)"
            )
    return shape


def checked_affine(header: nib.Nifti1Header, *, where: str) -> np.ndarray:
    """The affine nibabel chooses (sform, else qform, else pixdim); refuses what it refuses."""
    try:
        return np.asarray(header.get_best_affine(), dtype=np.float64)
    except (HeaderDataError, ValueError) as error:
        quaternion = tuple(float(header[f"quatern_{c}"]) for c in "bcd")
        field_error(
            where,
            "quatern_b/c/d",
            quaternion,
            f"the b, c, d of a unit quaternion, b² + c² + d² ≤ 1 ({error})",
            "Or set qform_code to 0 when the sform describes the image.",
        )


def require_fits(
    where: str, vox_offset: int, data_bytes: int, *, file_size: int | None, compressed: bool
) -> None:
    """Refuse a gzip file too small to hold the data its header claims, before allocating.

    (An uncompressed file is checked exactly by the reader, which knows its size.)
    """
    if not compressed or file_size is None:
        return
    most = file_size * MAX_DEFLATE_RATIO
    if vox_offset + data_bytes > most:
        raise TruncatedImageError(
            f"{where}: the header claims {data_bytes} bytes of data from byte {vox_offset}, "
            f"but a gzip file of {file_size} bytes inflates to at most {most} bytes. The "
            "file is truncated, or its header's dim/datatype fields are wrong."
        )
