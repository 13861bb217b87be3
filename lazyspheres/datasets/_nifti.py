"""Volumes from the signal model, as arrays, in-memory images, and streamed NIfTI files."""

from __future__ import annotations

import dataclasses
import gzip
import io
import math
import os
import pathlib
from collections.abc import Iterator
from typing import BinaryIO

import nibabel as nib
import numpy as np
from numpy.typing import DTypeLike

from lazyspheres.datasets._grid import MNI_2MM_SHAPE, as_affine
from lazyspheres.datasets._model import SignalModel, WorkDtype, fields, ground_truth, stream

__all__ = ["generate_volumes", "make_bold_image", "write_bold"]

_DTYPES = ("float32", "int16", "float64")
# Unscaled int16 stores 8x the model's values (about 4000-16000 in the brain): most of the
# positive range with headroom for spikes and noise tails. Scaled int16 stores
# (value - 2048) * 8 with scl_slope = 1/8, scl_inter = 2048: powers of two, so nibabel's
# float64 scaling is exact and the background (raw -16384) reads back as exactly 0.
INT16_GAIN = 8.0
SCALED_SLOPE_INTER = (0.125, 2048.0)
#: ``make_bold_image`` refuses images larger than this (bytes of voxel data).
MAX_IN_MEMORY_BYTES = 512 * 2**20
_HEADER_BYTES = 352  # 348-byte NIfTI-1 header + 4-byte (empty) extension flag


@dataclasses.dataclass(frozen=True)
class _Run:
    """Validated arguments of one synthetic run."""

    n_volumes: int
    shape: tuple[int, int, int]
    affine: np.ndarray
    t_r: float
    seeds: object
    random_state: int
    dtype: str
    scaled: bool
    nan_background: bool
    model: SignalModel

    @property
    def work_dtype(self) -> WorkDtype:
        """Precision of the arithmetic: float64 only when float64 is written."""
        return "float64" if self.dtype == "float64" else "float32"

    @property
    def slope_inter(self) -> tuple[float, float] | None:
        """The header's (scl_slope, scl_inter), None when unscaled."""
        return SCALED_SLOPE_INTER if self.scaled else None

    @property
    def unit_gain(self) -> float:
        """Factor from model units to the units the image reads back in."""
        return INT16_GAIN if self.dtype == "int16" and not self.scaled else 1.0

    @property
    def nbytes(self) -> int:
        """Bytes of voxel data."""
        return math.prod(self.shape) * self.n_volumes * np.dtype(self.dtype).itemsize


def _run(
    n_volumes: int,
    shape: tuple[int, ...],
    affine: np.ndarray | None,
    t_r: float,
    seeds: object,
    random_state: int,
    dtype: DTypeLike,
    scaled: bool,
    nan_background: bool,
    model: SignalModel | None,
) -> _Run:
    name = np.dtype(dtype).name
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    if scaled and name != "int16":
        raise ValueError(f"scaled=True writes int16 with scl_slope/scl_inter; dtype is {name}")
    if nan_background and name == "int16":
        raise ValueError("nan_background=True needs a float dtype: int16 cannot hold NaN")
    if len(shape) != 3:
        raise ValueError(f"shape must be the 3 spatial sizes, got {tuple(shape)}")
    spatial = (int(shape[0]), int(shape[1]), int(shape[2]))
    # The sform is stored in float32: generate (and build in-memory images) on exactly the
    # geometry that readers of the file will see.
    affine = as_affine(affine, spatial)
    if int(n_volumes) < 1 or not t_r > 0 or int(random_state) < 0:
        raise ValueError(
            "need n_volumes >= 1, t_r > 0 and random_state >= 0; got "
            f"n_volumes={n_volumes}, t_r={t_r}, random_state={random_state}"
        )
    return _Run(
        n_volumes=int(n_volumes),
        shape=spatial,
        affine=affine,
        t_r=float(t_r),
        seeds=seeds,
        random_state=int(random_state),
        dtype=name,
        scaled=bool(scaled),
        nan_background=bool(nan_background),
        model=SignalModel() if model is None else model,
    )


def _encode(values: np.ndarray, run: _Run) -> np.ndarray:
    """Model values → the values stored on disk (raw integers for int16)."""
    if run.dtype != "int16":
        return values.astype(run.dtype, copy=False)
    slope, inter = run.slope_inter or (1.0 / INT16_GAIN, 0.0)
    raw = np.rint((values - np.float32(inter)) * np.float32(1.0 / slope))
    return np.clip(raw, -32768, 32767).astype(np.int16)  # clip: noise tails, never wrap


def _blocks(run: _Run, block_size: int) -> Iterator[np.ndarray]:
    """Validate ``block_size`` now (not at the first ``next``) and return the block stream."""
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return _block_stream(run, int(block_size))


def _block_stream(run: _Run, block_size: int) -> Iterator[np.ndarray]:
    truth = ground_truth(
        run.n_volumes, t_r=run.t_r, seeds=run.seeds, random_state=run.random_state, model=run.model
    )
    flds = fields(run.shape, run.affine, truth.seeds, run.random_state, run.model, run.work_dtype)
    background = _encode(np.zeros(1, run.work_dtype), run)[0]
    if run.nan_background:
        background = np.nan
    done = filled = 0
    out: np.ndarray | None = None
    flat = np.empty((0, 0))
    for values in stream(flds, truth, run.random_state, run.model, run.work_dtype):
        for row in _encode(values, run):
            if out is None:
                size = min(block_size, run.n_volumes - done)
                # Fortran order: the block's bytes are the on-disk NIfTI bytes of its volumes.
                out = np.full((*run.shape, size), background, dtype=run.dtype, order="F")
                flat = out.reshape(-1, size, order="F")  # a view, one column per volume
            flat[:, filled][flds.voxels] = row  # 1-D scatter into a contiguous column
            filled += 1
            if filled == out.shape[-1]:
                done += filled
                yield out
                out, flat = None, np.empty((0, 0))  # drop the view, or the block outlives it
                filled = 0


def generate_volumes(
    n_volumes: int = 300,
    *,
    shape: tuple[int, int, int] = MNI_2MM_SHAPE,
    affine: np.ndarray | None = None,
    t_r: float = 2.0,
    seeds: object = "power2011",
    random_state: int = 0,
    dtype: str = "float32",
    scaled: bool = False,
    nan_background: bool = False,
    model: SignalModel | None = None,
    block_size: int = 8,
) -> Iterator[np.ndarray]:
    """Stream a synthetic BOLD run as (X, Y, Z, b) blocks of volumes, in time order.

    Memory stays bounded by the block (the 4D array is never built), and the values do not
    depend on ``block_size``: the same arguments give bit-identical volumes, and a run of
    ``n`` volumes is an exact prefix of a longer one.

    Parameters
    ----------
    n_volumes : int, default 300
        Number of volumes (time points).
    shape : tuple of int, default MNI_2MM_SHAPE
        Spatial shape of the grid.
    affine : numpy.ndarray or None, default None
        4×4 voxel-to-mm affine; None stretches ``shape`` over the MNI field of view
        (:func:`default_affine`; exactly the MNI 2 mm affine for the default shape).
    t_r : float, default 2.0
        Repetition time in seconds.
    seeds : str, array-like, DataFrame or None, default "power2011"
        Network structure: a named set (``"power2011"``, ``"dosenbach2010"``,
        ``"seitzman2018"``), (n, 3) mm coordinates (assigned to ``model.n_networks``
        networks), a table with ``x, y, z`` and optionally ``network``; None for none.
    random_state : int, default 0
        Seed of every random draw.
    dtype : {"float32", "int16", "float64"}, default "float32"
        Stored data type. int16 holds 8× the float values (no scaling in the header).
    scaled : bool, default False
        With ``dtype="int16"``: store ``(value - 2048) * 8`` to be read back with
        ``scl_slope = 0.125``, ``scl_inter = 2048`` (the blocks hold the raw integers).
    nan_background : bool, default False
        Fill voxels outside the brain with NaN instead of 0 (float dtypes only).
    model : SignalModel or None, default None
        Signal amplitudes; None uses the defaults.
    block_size : int, default 8
        Volumes per yielded block (the last one may be shorter).

    Yields
    ------
    numpy.ndarray
        Fortran-ordered array of shape ``(*shape, b)`` and dtype ``dtype``.

    Examples
    --------
    >>> from lazyspheres.datasets import generate_volumes
    >>> blocks = list(generate_volumes(10, shape=(20, 24, 20), seeds=None, block_size=4))
    >>> [b.shape[-1] for b in blocks]
    [4, 4, 2]
    """
    run = _run(
        n_volumes, shape, affine, t_r, seeds, random_state, dtype, scaled, nan_background, model
    )
    return _blocks(run, block_size)


def _header(run: _Run) -> nib.Nifti1Header:
    """The NIfTI-1 header of a run, as written on disk."""
    header = nib.Nifti1Header()
    header.set_data_dtype(run.dtype)
    header.set_data_shape((*run.shape, run.n_volumes))
    voxel_sizes = np.sqrt((run.affine[:3, :3] ** 2).sum(axis=0))
    header.set_zooms((*voxel_sizes, run.t_r))
    header.set_sform(run.affine, code=4)  # 4 = MNI_152, as fMRIPrep's MNI outputs
    header.set_qform(run.affine, code=4)
    header.set_xyzt_units("mm", "sec")
    if run.slope_inter is not None:
        header.set_slope_inter(*run.slope_inter)
    header["vox_offset"] = _HEADER_BYTES
    header["descrip"] = b"lazyspheres synthetic BOLD"
    return header


def make_bold_image(
    n_volumes: int = 30,
    *,
    shape: tuple[int, int, int] = MNI_2MM_SHAPE,
    affine: np.ndarray | None = None,
    t_r: float = 2.0,
    seeds: object = "power2011",
    random_state: int = 0,
    dtype: str = "float32",
    scaled: bool = False,
    nan_background: bool = False,
    model: SignalModel | None = None,
) -> nib.Nifti1Image:
    """A synthetic BOLD run as an in-memory nibabel image (for small images).

    Holds the same values and header as :func:`write_bold` writes for the same arguments.
    Parameters are those of :func:`generate_volumes`.

    Returns
    -------
    nibabel.Nifti1Image
        4D image. Its data is a numpy array, except with ``scaled=True``, where it is an
        array proxy over the encoded bytes, so ``get_fdata`` applies scl_slope/scl_inter as
        for a file.

    Raises
    ------
    ValueError
        If the data would exceed :data:`MAX_IN_MEMORY_BYTES`; use :func:`write_bold`.

    Examples
    --------
    >>> from lazyspheres.datasets import make_bold_image
    >>> img = make_bold_image(30, shape=(20, 24, 20), seeds=[[0, -52, 26], [0, 50, -5]])
    >>> img.shape, img.header.get_zooms()[3]
    ((20, 24, 20, 30), np.float32(2.0))
    """
    run = _run(
        n_volumes, shape, affine, t_r, seeds, random_state, dtype, scaled, nan_background, model
    )
    if run.nbytes > MAX_IN_MEMORY_BYTES:
        raise ValueError(
            f"a {(*run.shape, run.n_volumes)} {run.dtype} image needs "
            f"{run.nbytes / 2**20:.0f} MiB, above the in-memory limit of "
            f"{MAX_IN_MEMORY_BYTES / 2**20:.0f} MiB; stream it to disk with "
            "lazyspheres.datasets.write_bold(path, ...) instead"
        )
    header = _header(run)
    data = np.concatenate(list(_blocks(run, max(run.n_volumes, 1))), axis=3)
    if run.scaled:
        # An ndarray-backed image ignores scl_slope; go through bytes so it reads as a file.
        raw = header.binaryblock + bytes(4) + np.asfortranarray(data).tobytes(order="F")
        return nib.Nifti1Image.from_bytes(raw)
    return nib.Nifti1Image(data, run.affine, header)


def _gzip_stream(raw: BinaryIO, compresslevel: int, backend: str) -> io.BufferedIOBase:
    """A gzip writer on ``raw``: reproducible (mtime 0, no file name) and as fast as we have."""
    if backend not in ("auto", "isal", "zlib"):
        raise ValueError(f"gzip_backend must be 'auto', 'isal' or 'zlib', got {backend!r}")
    if not 0 <= compresslevel <= 9:
        raise ValueError(f"compresslevel must be in 0..9 (zlib scale), got {compresslevel}")
    if backend != "zlib":
        try:
            from isal import igzip
        except ImportError:
            if backend == "isal":
                raise
        else:
            # isal has levels 0-3; zlib 6 maps to isal 2, same ratio on BOLD data, ~10x faster.
            level = (0, 1, 1, 1, 2, 2, 2, 3, 3, 3)[compresslevel]
            return igzip.IGzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0
            )
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0)


def write_bold(
    path: str | os.PathLike[str],
    n_volumes: int = 300,
    shape: tuple[int, int, int] = MNI_2MM_SHAPE,
    dtype: str = "float32",
    t_r: float = 2.0,
    seeds: object = "power2011",
    random_state: int = 0,
    nan_background: bool = False,
    compresslevel: int = 6,
    *,
    affine: np.ndarray | None = None,
    scaled: bool = False,
    model: SignalModel | None = None,
    block_size: int = 8,
    gzip_backend: str = "auto",
) -> pathlib.Path:
    """Stream a synthetic BOLD run to a ``.nii`` or ``.nii.gz`` file, in bounded memory.

    The header (built by nibabel, ``vox_offset`` 352) is written first, then the volumes
    block by block in NIfTI order (x fastest). The file appears under its name only once
    complete: it is written to ``<name>.part`` and renamed.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; the suffix (``.nii`` or ``.nii.gz``) chooses the format.
    n_volumes, shape, dtype, t_r, seeds, random_state, nan_background
        As in :func:`generate_volumes`.
    compresslevel : int, default 6
        Deflate effort on the zlib scale 0-9, for ``.nii.gz``. With python-isal (used when
        importable) 1-3 map to isal level 1, 4-6 to 2, 7-9 to 3.
    affine, scaled, model, block_size
        As in :func:`generate_volumes`.
    gzip_backend : {"auto", "isal", "zlib"}, default "auto"
        Deflater: isal if importable (``"auto"``), or force one.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import tempfile, pathlib, nibabel as nib
    >>> from lazyspheres.datasets import write_bold
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "bold.nii.gz"
    >>> _ = write_bold(out, n_volumes=5, shape=(20, 24, 20), seeds=None)
    >>> nib.load(out).shape
    (20, 24, 20, 5)
    """
    path = pathlib.Path(path)
    run = _run(
        n_volumes, shape, affine, t_r, seeds, random_state, dtype, scaled, nan_background, model
    )
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"write_bold writes .nii or .nii.gz files, got {path.name!r}")
    blocks = _blocks(run, block_size)
    header = _header(run).binaryblock + bytes(4)
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "wb") as raw:
            out = _gzip_stream(raw, compresslevel, gzip_backend) if name.endswith(".gz") else raw
            try:
                out.write(header)
                for block in blocks:
                    # block is Fortran-ordered: its transpose is a C-contiguous view of the
                    # same bytes, which are the NIfTI on-disk order. No copy.
                    out.write(block.T.reshape(-1).view(np.uint8))
                    del block  # before the next block is built: one block alive, not two
            finally:
                if out is not raw:
                    out.close()
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
