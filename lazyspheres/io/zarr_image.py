"""NIfTI runs as Zarr v3 images chunked for time-series work, and reading them back.

Layout of a store written by :func:`to_zarr_image` (a Zarr v3 group, consolidated)::

    image       (i, j, k, time)  stored (raw) dtype, chunks 16×16×16×256, Blosc LZ4 + shuffle
    i, j, k     voxel indices; time in seconds when the header has a TR, else volume index
    nifti_meta  0-d coordinate whose attrs hold the 4×4 affine, xform codes, units, TR,
                the raw NIfTI header (hex) and the effective scl_slope/scl_inter

and the group attribute ``lazyspheres_image`` (format version, ``complete``, a conversion
id, the source location and fingerprint). Scaled images keep their stored integers and carry
CF ``scale_factor``/``add_offset`` (float64), which ``xr.open_zarr`` and :func:`open_nifti`
apply exactly as nibabel does (``raw.astype(float64) * slope + inter``).

Why these chunks (measured on a Power 264 extraction, MNI 2 mm, T=1200): a sphere's time
series is read from the few 16³ blocks around it; Power 264 touches 89 of the grid's 252
blocks. 8³ blocks would decode 40 % fewer bytes but cost 4.6× as many chunk reads, and 24³
blocks decode 80 % more. 256 volumes per chunk (4 MB of float32) keep a task's memory
bounded whatever the length of the run, and are a good object-store request size.
Why Blosc LZ4 with shuffle: see :func:`default_compressors`.

Writing out of core: a ``.nii.gz`` can only be read front to back, volume after volume,
while every output chunk needs 256 volumes. Writing each slab of volumes as it comes would
rewrite a chunk for every slab that falls in it, and buffering chunks until their last
volume arrives holds up to 256 volumes of the whole image. So conversion has two stages:
(1) one streaming pass appends each block of volumes, cut into the output's spatial
blocks, to one raw temporary file per block (sequential appends, no compression); (2) each
block file is read whole, transposed to ``(i, j, k, time)`` and written as its output
chunks, a few blocks in parallel. Peak memory
is two blocks of volumes in stage 1 (~64 MB) and ``threads × 2`` output chunks in stage 2;
the temporary files take the uncompressed size of the run on disk (``tmp_dir``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeGuard, TypeVar

import dask.array as da
import numpy as np
import xarray as xr

from lazyspheres.errors import ImageFormatError, IncompleteStoreError
from lazyspheres.io._zarr_stages import boxes, stage_blocks, write_blocks
from lazyspheres.io.image import (
    NIFTI_META,
    ImageSource,
    NiftiMeta,
    image_from_array,
    image_from_nibabel,
)
from lazyspheres.io.reader import NiftiFile
from lazyspheres.io.readers.lazy import reader_dask_array, reader_of
from lazyspheres.io.readers.nifti import NiftiReader
from lazyspheres.io.readers.zarr import ZarrImageReader
from lazyspheres.io.zarr_chunks import ZarrChunkReader

if TYPE_CHECKING:
    import zarr
    from zarr.abc.codec import BytesBytesCodec

    from lazyspheres._types import Attrs, StorageOptions
    from lazyspheres.io._types import DimChunks, ZarrSource

__all__ = [
    "IMAGE_ATTR",
    "IMAGE_VARIABLE",
    "default_compressors",
    "is_zarr_source",
    "open_zarr_image",
    "to_zarr_image",
    "zarr_image_info",
]

IMAGE_VARIABLE = "image"
IMAGE_ATTR = "lazyspheres_image"
FORMAT_VERSION = 1
DEFAULT_EDGE = 16
DEFAULT_TIME_CHUNK = 256

_Store = TypeVar("_Store", bound="ZarrSource")


def is_zarr_source(source: object) -> TypeGuard[ZarrSource]:
    """Whether ``source`` names a Zarr store (``*.zarr`` path/URL, zarr Group or Store)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source).rstrip("/").lower().endswith(".zarr")
    zarr = sys.modules.get("zarr")  # a zarr object cannot exist before zarr is imported
    return zarr is not None and isinstance(source, (zarr.Group, zarr.abc.store.Store))


# ---------------------------------------------------------------------------- writing
def to_zarr_image(
    img: ImageSource,
    store: _Store,
    *,
    chunks: int | tuple[int, ...] = (DEFAULT_EDGE, DEFAULT_EDGE, DEFAULT_EDGE, DEFAULT_TIME_CHUNK),
    storage_options: StorageOptions | None = None,
    overwrite: bool = False,
    tmp_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    compressors: str | BytesBytesCodec | Sequence[BytesBytesCodec] | None = "default",
) -> _Store:
    """Convert a NIfTI run to a Zarr v3 image chunked for time-series work, out of core.

    Parameters
    ----------
    img : path, URL, file object, nibabel image or DataArray
        The run: anything :func:`lazyspheres.open_nifti` accepts. Files are streamed once.
    store : str, os.PathLike or zarr Store
        Target store (a ``*.zarr`` path or fsspec URL, or a zarr Store object).
    chunks : int or tuple, default (16, 16, 16, 256)
        ``(ci, cj, ck, ct)`` voxels by volumes; ``ct=-1`` is the whole time axis. An int or
        ``(ci, cj, ck)`` sets the spatial edges and keeps 256 volumes per chunk.
    storage_options : dict, optional
        fsspec options for ``img`` and ``store`` URLs.
    overwrite : bool, default False
        Replace an existing store (else :class:`FileExistsError`).
    tmp_dir : path, optional
        Where the temporary block files go (default: the system temporary folder). They
        take the uncompressed size of the run and are removed at the end.
    threads : int, optional
        Threads for the second stage (default: ``min(4, cpu count)``).
    compressors : "default", None, or zarr codec(s)
        ``"default"``: Blosc LZ4 with byte shuffle (:func:`default_compressors`); ``None``:
        uncompressed; else zarr v3 bytes-to-bytes codecs, e.g.
        ``zarr.codecs.ZstdCodec(level=3)``. Extraction reads Blosc, Zstd, Gzip and
        uncompressed local stores directly from their chunk files; other codecs go
        through zarr (same numbers, slower).

    Returns
    -------
    str or Store
        ``store``, ready for :func:`lazyspheres.open_nifti` or ``xr.open_zarr``.

    Raises
    ------
    FileExistsError
        ``store`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import lazyspheres as ls
    >>> ls.to_zarr_image("bold.nii.gz", "bold.zarr")  # doctest: +SKIP
    >>> ls.open_nifti("bold.zarr").nifti.affine  # doctest: +SKIP
    """
    import zarr

    source, facts = _source(img, storage_options)
    shape = facts.shape
    chunk_shape = _chunk_shape(chunks, shape)
    target: ZarrSource = store
    store_options = None  # fsspec options make no sense for a local path or a Store
    if isinstance(target, (str, os.PathLike)) and "://" in os.fspath(target):
        store_options = storage_options
    template = _template(facts, chunk_shape)
    mode: Literal["w", "w-"] = "w" if overwrite else "w-"
    try:
        with _quiet_consolidation():
            template.to_zarr(
                store,
                mode=mode,
                compute=False,
                consolidated=True,
                zarr_format=3,
                storage_options=store_options,
                encoding={IMAGE_VARIABLE: _encoding(chunk_shape, compressors)},
            )
    except (FileExistsError, zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError) as e:
        raise FileExistsError(
            f"{store} already exists; pass overwrite=True to replace it ({e})."
        ) from e
    group = zarr.open_group(store, mode="r+", storage_options=store_options)
    array = group[IMAGE_VARIABLE]
    assert isinstance(array, zarr.Array)  # the template wrote an array there
    if facts.slope is not None:
        array.attrs.update({"scale_factor": facts.slope, "add_offset": facts.inter})
    conversion_id = uuid.uuid4().hex
    _set_image_attrs(group, facts, conversion_id=conversion_id, complete=False)
    blocks = boxes(shape[:3], chunk_shape[:3])
    with tempfile.TemporaryDirectory(prefix="lazyspheres-zarr-", dir=tmp_dir) as folder:
        stage_blocks(source, shape, blocks, folder)
        write_blocks(array, shape, facts.raw_dtype, blocks, folder, threads)
    _set_image_attrs(group, facts, conversion_id=conversion_id, complete=True)
    return store


def _encoding(
    chunk_shape: tuple[int, ...],
    compressors: str | BytesBytesCodec | Sequence[BytesBytesCodec] | None,
) -> dict[str, object]:
    """The zarr encoding of the image variable (``to_zarr``'s keywords for it)."""
    encoding: dict[str, object] = {"chunks": chunk_shape}
    if isinstance(compressors, str):
        if compressors != "default":
            raise ValueError(
                f"compressors must be 'default', None or zarr codecs; got {compressors!r}."
            )
        compressors = default_compressors()
    if compressors is None or isinstance(compressors, (list, tuple)):
        encoding["compressors"] = compressors
    else:
        encoding["compressors"] = [compressors]
    return encoding


def default_compressors() -> list[BytesBytesCodec]:
    """The codec of :func:`to_zarr_image` images: Blosc LZ4 with byte shuffle.

    Measured on brain chunks of a synthetic float32 run (16³ × 256): it stores them in 75 %
    (zstd: 81 %) and decodes at ~6 GB/s per core (zstd: ~1.8 GB/s), and the chunks outside
    the brain shrink to almost nothing either way.
    """
    import zarr.codecs

    return [zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]


@dataclass(frozen=True)
class _SourceFacts:
    """What a conversion needs of its source: layout, scaling, metadata and fingerprint."""

    shape: tuple[int, ...]
    raw_dtype: np.dtype
    slope: float | None
    inter: float | None
    meta: NiftiMeta
    fingerprint: str | None


def _source(
    img: ImageSource, storage_options: StorageOptions | None
) -> tuple[NiftiFile | xr.DataArray, _SourceFacts]:
    """The thing to stream (a NiftiFile or a 4D/3D array) and the header facts."""
    import nibabel as nib

    if isinstance(img, xr.DataArray):
        reader = reader_of(img)
        if not isinstance(reader, NiftiReader):
            return img, _array_facts(img)
        nifti = NiftiFile(reader.source, reader.layout)
    elif isinstance(img, nib.spatialimages.SpatialImage):
        name = img.get_filename()
        if name and not img.in_memory and os.path.isfile(name):
            nifti = NiftiFile.open(name)
        else:
            opened = image_from_nibabel(img, chunks=None)
            return opened, _array_facts(opened)
    else:
        nifti = NiftiFile.open(img, storage_options)
    layout = nifti.layout
    meta = NiftiMeta.of_layout(layout, nifti.source.location)
    raw_dtype = layout.raw_dtype.newbyteorder("=")
    facts = _SourceFacts(
        tuple(layout.shape), raw_dtype, layout.slope, layout.inter, meta, nifti.source.fingerprint
    )
    return nifti, facts


def _array_facts(image: xr.DataArray) -> _SourceFacts:
    if NIFTI_META not in image.coords:
        image = image_from_array(image.data, np.eye(4))  # raises the usual error
    image = image.transpose("i", "j", "k", *(["time"] if "time" in image.dims else []))
    attrs = image.coords[NIFTI_META].attrs
    meta = NiftiMeta(
        affine=image.nifti.grid_affine,
        sform_code=attrs.get("sform_code", 0),
        qform_code=attrs.get("qform_code", 0),
        spatial_unit=attrs.get("spatial_unit", "unknown"),
        time_unit=attrs.get("time_unit", "unknown"),
        t_r=attrs.get("t_r"),
        header=attrs.get("header", ""),
        source=attrs.get("source", "<in-memory>"),
    )
    shape = tuple(int(n) for n in image.shape)
    return _SourceFacts(shape, np.dtype(image.dtype), None, None, meta, None)


def _chunk_shape(chunks: int | tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    spec = (chunks,) * 3 if isinstance(chunks, (int, np.integer)) else tuple(chunks)
    if len(spec) == 3:
        spec = (*spec, DEFAULT_TIME_CHUNK)
    ndim = len(shape)
    if len(spec) != 4 or not all(isinstance(c, (int, np.integer)) for c in spec):
        raise ValueError(f"chunks must be an int or a tuple of 3 or 4 ints; got {chunks!r}.")
    if any(c == 0 or c < -1 for c in spec):
        raise ValueError(f"chunk sizes must be positive (or -1 for a whole axis); got {spec}.")
    full = shape if ndim == 4 else (*shape, 1)
    resolved = tuple(
        int(n) if c == -1 else min(int(c), int(n)) for c, n in zip(spec, full, strict=True)
    )
    return resolved[:ndim]


def _template(facts: _SourceFacts, chunk_shape: tuple[int, ...]) -> xr.Dataset:
    """A Dataset whose ``to_zarr(compute=False)`` writes the metadata and coordinates."""
    placeholder = da.zeros(facts.shape, chunks=chunk_shape, dtype=facts.raw_dtype)
    image = image_from_array(placeholder, facts.meta.affine, t_r=facts.meta.t_r)
    meta = {**facts.meta.attrs(), "scl_slope": facts.slope, "scl_inter": facts.inter}
    image.coords[NIFTI_META].attrs.clear()
    image.coords[NIFTI_META].attrs.update(meta)
    return image.to_dataset(name=IMAGE_VARIABLE)


def _set_image_attrs(
    group: zarr.Group, facts: _SourceFacts, *, conversion_id: str, complete: bool
) -> None:
    import lazyspheres

    group.attrs[IMAGE_ATTR] = {
        "format_version": FORMAT_VERSION,
        "complete": complete,
        "conversion_id": conversion_id,
        "source": facts.meta.source,
        "source_fingerprint": facts.fingerprint,
        "lazyspheres_version": lazyspheres.__version__,
    }
    import zarr

    with _quiet_consolidation():
        zarr.consolidate_metadata(group.store)


@contextlib.contextmanager
def _quiet_consolidation() -> Iterator[None]:
    # zarr warns that consolidated metadata is not in the v3 spec yet. We consolidate anyway:
    # without it xr.open_zarr warns on every open (and opens slower on object stores).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", module="zarr")
        yield


# ---------------------------------------------------------------------------- reading
def zarr_image_info(source: ZarrSource, storage_options: StorageOptions | None = None) -> Attrs:
    """The ``lazyspheres_image`` attribute of a Zarr image (``{}`` for other stores)."""
    return _image_attr(_open_group(source, storage_options))


def _image_attr(group: zarr.Group) -> Attrs:
    info = group.attrs.get(IMAGE_ATTR, {})
    if not isinstance(info, Mapping):
        raise ImageFormatError(f"The '{IMAGE_ATTR}' attribute of {group.store} is not a mapping.")
    return dict(info)


def _open_group(source: ZarrSource, storage_options: StorageOptions | None) -> zarr.Group:
    import zarr

    if isinstance(source, zarr.Group):
        return source
    try:
        return zarr.open_group(
            source, mode="r", storage_options=_options_for(source, storage_options)
        )
    except FileNotFoundError as error:
        raise FileNotFoundError(f"File not found: '{source}' ({error})") from error


def open_zarr_image(
    source: ZarrSource,
    *,
    chunks: Literal["auto"] | int | DimChunks | None = "auto",
    storage_options: StorageOptions | None = None,
    name: str | None = None,
) -> xr.DataArray:
    """Open a Zarr image (from :func:`to_zarr_image`) as :func:`open_nifti` opens NIfTI.

    Parameters
    ----------
    source : str, os.PathLike, zarr Group or zarr Store
        The store (path, fsspec URL or object).
    chunks : "auto", int, dict, or None
        ``"auto"``: the stored chunks; an int for every dim; a dict of dim sizes; ``None``: no
        Dask (lazily indexed).
    storage_options : dict, optional
        fsspec options for URLs.
    name : str, optional
        Name of the DataArray (default: the store's name).

    Returns
    -------
    xarray.DataArray
        Dims ``(i, j, k[, time])`` with the ``nifti_meta`` coordinate, scaled values.

    Raises
    ------
    FileNotFoundError
        No store there.
    ImageFormatError
        The store holds no lazyspheres/NIfTI image.
    IncompleteStoreError
        The conversion was interrupted (the store says it is incomplete).
    """
    import zarr

    location = _location(source)
    group = _open_group(source, storage_options)
    info = _image_attr(group)
    store = group.store if isinstance(source, zarr.Group) else source
    if info and not info.get("complete", False):
        raise IncompleteStoreError(
            f"{location}: this Zarr image is incomplete (its conversion was interrupted). "
            "Convert it again with lazyspheres.to_zarr_image(..., overwrite=True)."
        )
    with _quiet_consolidation():
        dataset = xr.open_zarr(
            store,
            chunks={}
            if chunks == "auto"
            else dict(chunks)
            if isinstance(chunks, Mapping)
            else chunks,
            storage_options=_options_for(source, storage_options),
            # without consolidated metadata xarray would warn on every open
            consolidated=group.metadata.consolidated_metadata is not None,
            group=group.path or None,
        )
    variable = IMAGE_VARIABLE if IMAGE_VARIABLE in dataset else None
    if variable is None:
        candidates = [v for v in dataset.data_vars if {"i", "j", "k"} <= set(dataset[v].dims)]
        variable = candidates[0] if len(candidates) == 1 else None
    if variable is None or NIFTI_META not in dataset[variable].coords:
        raise ImageFormatError(
            f"{location} is a Zarr store but holds no NIfTI image: expected a variable "
            f"'{IMAGE_VARIABLE}' with dims (i, j, k[, time]) and a '{NIFTI_META}' coordinate. "
            "Write images with lazyspheres.to_zarr_image(...)."
        )
    image = dataset[variable]
    image.coords[NIFTI_META].attrs["source"] = location
    image.name = name or os.path.basename(location.rstrip("/")) or variable
    return _over_chunk_files(image, group[variable])


def _over_chunk_files(image: xr.DataArray, array: zarr.Array | zarr.Group) -> xr.DataArray:
    """The image with its data read straight from its chunk files, where we can decode them.

    Its Dask array is then built over a :class:`ZarrImageReader` (same chunks, same values
    as xarray's), so extraction and every chunk task skip zarr's per-chunk overhead.
    """
    import zarr

    if not isinstance(array, zarr.Array) or not isinstance(image.data, da.Array):
        return image
    if tuple(image.dims) != tuple(getattr(array.metadata, "dimension_names", None) or ()):
        return image  # (zarr v2 metadata names no dimensions)
    chunks = ZarrChunkReader.for_array(array, image.encoding)
    if chunks is None or chunks.shape != image.shape:
        return image
    reader = ZarrImageReader(chunks)
    if reader.dtype != image.dtype:
        return image  # xarray decodes to another dtype than we would: read through xarray
    data = reader_dask_array(reader, image.data.chunks, prefix="open_zarr_image")
    return image.copy(data=data)


def _location(source: ZarrSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        return text if "://" in text else os.path.abspath(os.path.expanduser(text))
    return f"<{type(source).__name__}>"


def _options_for(
    source: ZarrSource, storage_options: StorageOptions | None
) -> StorageOptions | None:
    if isinstance(source, (str, os.PathLike)) and "://" in os.fspath(source):
        return storage_options
    return None
