"""Malformed NIfTI files for the header fuzz tests, and nibabel as the oracle.

A *mutant* is a small valid image (generated, or one of nibabel's real test files) with one to
three header fields set to edge values, optionally truncated, written as ``.nii`` or
``.nii.gz``. :func:`nibabel_outcome` says what nibabel 5 makes of it (the values, or that it
refuses); :func:`lazyspheres_outcome` says what lazyspheres makes of it, and classifies any
exception as a lazyspheres error or a *raw* exception. Used by ``tests/test_header_fuzz.py``
and ``benchmarks/malformed_table.py``.
"""

from __future__ import annotations

import gzip
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import nifti1, nifti2

import lazyspheres
from lazyspheres.errors import (
    DimensionError,
    HeaderRepairWarning,
    ImageFormatError,
    LazySpheresWarning,
    TruncatedImageError,
)

nib.imageglobals.logger.setLevel(60)  # nibabel logs every repair it makes; keep CI logs quiet

# The errors lazyspheres may raise for a malformed or truncated file; anything else is raw.
EXPECTED_ERRORS = (ImageFormatError, DimensionError, TruncatedImageError, FileNotFoundError)

# nibabel allocates the whole array before reading it: never let it try a mutant whose claimed
# data is larger than this (such a tiny file cannot hold it, so nibabel would refuse anyway).
NIBABEL_MAX_BYTES = 1 << 24

_NIB_DATA = Path(nib.__file__).parent / "tests" / "data"
# Real files from nibabel's test data: a 4D NIfTI-1, a 4D NIfTI-2 (gzipped) and a big-endian 3D.
REAL_FILES = ("functional.nii", "example_nifti2.nii.gz", "anatomical.nii")

INF, NAN = float("inf"), float("nan")
_FLOATS = (0.0, -1.0, 1.0, 2.5, -2.5, 1e-30, 1e30, INF, -INF, NAN)
# Candidate values per field (index None: scalar field; else the element to set).
FIELD_VALUES: dict[str, tuple[Any, ...]] = {
    "sizeof_hdr": (0, -1, 1, 347, 349, 540, 348, 2**31 - 1),
    "dim": (-32768, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 100, 32767),
    "datatype": (
        -1,
        0,
        1,
        2,
        3,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        512,
        768,
        1024,
        1280,
        1536,
        1792,
        2048,
        2304,
        9999,
        32767,
    ),
    "bitpix": (-8, 0, 1, 7, 8, 16, 32, 64, 128, 32767),
    "pixdim": _FLOATS,
    "vox_offset": (
        0,
        1,
        100,
        347,
        348,
        351,
        352,
        353,
        356,
        368,
        400,
        544,
        608,
        4096,
        1e6,
        1e30,
        -1,
        -352,
        INF,
        -INF,
        NAN,
        352.5,
    ),
    "scl_slope": _FLOATS,
    "scl_inter": _FLOATS,
    "qform_code": (-1, 0, 1, 2, 3, 4, 5, 99, 32767),
    "sform_code": (-1, 0, 1, 2, 3, 4, 5, 99, 32767),
    "quatern_b": (NAN, INF, 2.0, -1.0),
    "qoffset_x": (NAN, INF),
    "srow_x": (NAN, INF, 0.0),
    "magic": (b"n+1", b"ni1", b"n+2", b"ni2", b"", b"abc", b"n+1\x01"),
    "xyzt_units": (0, 2, 8, 10, 16, 255),
}
# NIfTI-2 only: 64-bit dims and the end-of-line check bytes.
NIFTI2_VALUES: dict[str, tuple[Any, ...]] = {
    "dim": (2**31, 2**40, 2**62, -(2**40)),
    "eol_check": ((0, 0, 0, 0), (13, 10, 26, 10), (1, 2, 3, 4)),
    "vox_offset": (2**40, 2**62, -(2**40)),
}


@dataclass
class Base:
    """A valid image: its header bytes (with extension flag) and its data bytes."""

    name: str
    nifti2: bool
    head: bytes  # header + 4-byte extension flag + padding, up to the data
    body: bytes

    @property
    def raw(self) -> bytes:
        return self.head + self.body


@dataclass
class Mutant:
    """A base image with header fields changed, possibly truncated, possibly gzipped."""

    base: Base
    changes: list[tuple[str, int | None, Any]] = field(default_factory=list)
    keep: float | None = None  # fraction of the (compressed) file kept; None: whole file
    gzipped: bool = False

    def describe(self) -> str:
        cut = "" if self.keep is None else f", truncated to {self.keep:.2f}"
        ext = ".nii.gz" if self.gzipped else ".nii"
        return f"{self.base.name}{ext} {self.changes}{cut}"

    def content(self) -> bytes:
        data = bytearray(self.base.raw)
        header_dtype = nifti2.header_dtype if self.base.nifti2 else nifti1.header_dtype
        endian = _endianness(self.base)
        struct = np.ndarray((), dtype=header_dtype.newbyteorder(endian), buffer=data)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # out-of-range values wrap, as a bad writer does
            for name, index, value in self.changes:
                if name not in header_dtype.names:
                    continue
                target = struct[name]
                if index is None or target.ndim == 0 or isinstance(value, tuple):
                    struct[name] = _fit(value, target.dtype)
                else:
                    target[index % target.shape[0]] = _fit(value, target.dtype)
        blob = bytes(data)
        if self.gzipped:
            blob = gzip.compress(blob, compresslevel=1, mtime=0)
        if self.keep is not None:
            blob = blob[: int(len(blob) * self.keep)]
        return blob

    def write(self, folder: Path, stem: str = "mutant") -> Path:
        path = folder / (stem + (".nii.gz" if self.gzipped else ".nii"))
        path.write_bytes(self.content())
        return path


def _endianness(base: Base) -> str:
    size = int(np.frombuffer(base.head[:4], "<i4")[0])
    return "<" if size in (348, 540) else ">"


def _fit(value: Any, dtype: np.dtype) -> Any:
    """``value`` as ``dtype`` holds it: integers wrap like a C writer's, bytes are cut."""
    if dtype.kind in "iu":
        if isinstance(value, tuple):
            return tuple(_fit(v, dtype) for v in value)
        if isinstance(value, float) and not math.isfinite(value):
            value = 0
        bits = dtype.itemsize * 8
        wrapped = int(value) % (1 << bits)
        if dtype.kind == "i" and wrapped >= 1 << (bits - 1):
            wrapped -= 1 << bits
        return wrapped
    if dtype.kind == "S":
        return value if isinstance(value, bytes) else bytes(value)
    return value


def generated_bases(rng: np.random.Generator) -> list[Base]:
    """Tiny images (4×5×3×6 and 4×5×3) of several dtypes, NIfTI-1 and NIfTI-2."""
    affine = np.array([[2.0, 0, 0, -4], [0, 2.0, 0, -5], [0, 0, 2.5, -3], [0, 0, 0, 1]])
    bases = []
    cases = [
        (np.int16, (4, 5, 3, 6), False, False),
        (np.float32, (4, 5, 3, 6), False, False),
        (np.uint8, (4, 5, 3, 6), True, False),
        (np.float64, (4, 5, 3), False, False),
        (np.int16, (4, 5, 3, 6), False, True),
        (np.float32, (4, 5, 3, 6), True, True),
        (np.int32, (4, 5, 3, 6), False, True),
    ]
    for dtype, shape, scaled, nifti2_file in cases:
        data = (rng.standard_normal(shape) * 20 + 50).astype(dtype)
        klass = nib.Nifti2Image if nifti2_file else nib.Nifti1Image
        img = klass(data, affine)
        img.header.set_data_dtype(dtype)
        img.header.set_xyzt_units("mm", "sec")
        if len(shape) == 4:
            img.header.set_zooms((2.0, 2.0, 2.5, 2.0))
        if scaled:
            img.header.set_slope_inter(0.5, 10.0)
        img.set_qform(affine, 1)
        img.set_sform(affine, 4)
        raw = img.to_bytes()
        offset = int(img.header.get_data_offset()) or (544 if nifti2_file else 352)
        version = 2 if nifti2_file else 1
        name = f"gen-n{version}-{np.dtype(dtype).name}-{len(shape)}d{'-scaled' if scaled else ''}"
        bases.append(Base(name, nifti2_file, raw[:offset], raw[offset:]))
    return bases


def real_bases() -> list[Base]:
    """nibabel's real test files, as stored (header and data bytes split at the offset)."""
    bases = []
    for name in REAL_FILES:
        path = _NIB_DATA / name
        raw = path.read_bytes()
        if name.endswith(".gz"):
            raw = gzip.decompress(raw)
        img = nib.load(path)
        offset = int(img.dataobj.offset)
        nifti2_file = isinstance(img, nib.Nifti2Image)
        bases.append(Base(f"real-{name.split('.')[0]}", nifti2_file, raw[:offset], raw[offset:]))
    return bases


@dataclass
class Outcome:
    """What a reader made of a file: its values, or the exception it raised."""

    values: np.ndarray | None = None
    error: BaseException | None = None
    warnings: list[warnings.WarningMessage] = field(default_factory=list)
    affine: np.ndarray | None = None
    extract_error: BaseException | None = None

    @property
    def loaded(self) -> bool:
        return self.values is not None


def nibabel_outcome(path: Path) -> Outcome:
    """Load ``path`` with nibabel 5, as nilearn does; never allocate more than the file holds.

    nibabel "loads" a file when ``nib.load`` and ``np.asanyarray(img.dataobj)`` succeed and
    give a non-empty 3D or 4D array (trailing length-1 axes after the fourth dropped, as
    nilearn does) of integers or floats: what lazyspheres promises to read.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = nib.load(path)
            shape = tuple(int(n) for n in img.shape)
            itemsize = img.get_data_dtype().itemsize
            if any(n < 0 for n in shape) or math.prod(shape) * itemsize > NIBABEL_MAX_BYTES:
                raise MemoryError(f"nibabel would allocate for shape {shape}")
            values = np.array(np.asanyarray(img.dataobj))
            affine = np.asarray(img.affine)
            del img
    except Exception as error:  # nibabel refuses (any exception): the oracle says "no"
        return Outcome(error=error)
    while values.ndim > 4 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim not in (3, 4) or values.size == 0 or values.dtype.kind not in "iuf":
        return Outcome(error=ValueError(f"not a 3D/4D real image: {values.shape} {values.dtype}"))
    return Outcome(values=values, affine=affine)


def lazyspheres_outcome(path: Path, *, extract: bool = False) -> Outcome:
    """Open ``path`` with :func:`lazyspheres.open_nifti` and read every value.

    With ``extract``, also extract one sphere's signal from a 4D image (``extract_error``
    keeps what that raised). Exceptions are returned, never raised: the caller sorts them.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            image = lazyspheres.open_nifti(path)
            values = np.asarray(image.values)
            affine = np.asarray(image.nifti.affine)
        except Exception as error:
            return Outcome(error=error, warnings=list(caught))
        outcome = Outcome(values=values, affine=affine, warnings=list(caught))
        if extract and values.ndim == 4:
            with np.errstate(all="ignore"):
                centre = affine[:3, :3] @ (np.array(values.shape[:3]) / 2) + affine[:3, 3]
            if not np.all(np.isfinite(centre)):
                centre = np.zeros(3)  # a non-finite affine: extraction must refuse the image
            try:
                lazyspheres.extract(path, [tuple(centre)], radius=4.0).values  # noqa: B018
            except Exception as error:
                outcome.extract_error = error
    return outcome


def is_clear(error: BaseException) -> bool:
    """Whether ``error`` is one of the lazyspheres errors a malformed file may give."""
    return isinstance(error, EXPECTED_ERRORS)


def repair_warnings(outcome: Outcome) -> list[str]:
    """Messages of the header-repair warnings lazyspheres emitted."""
    repairs = [w for w in outcome.warnings if issubclass(w.category, HeaderRepairWarning)]
    return [str(w.message) for w in repairs]


def other_warnings(outcome: Outcome) -> list[str]:
    """lazyspheres warnings that are not header repairs (none are expected)."""
    return [
        str(w.message)
        for w in outcome.warnings
        if issubclass(w.category, LazySpheresWarning)
        and not issubclass(w.category, HeaderRepairWarning)
    ]


def environment_note() -> str:
    """One line naming the versions the table was measured with."""
    return f"nibabel {nib.__version__}, numpy {np.__version__}, pid {os.getpid()}"
