"""``extract``: mean signals in spheres around seeds, as a lazy labelled ``(time, seed)`` array.

How the voxels are read depends on what backs the image:

* an image of a NIfTI file, unmodified or seen through ``isel``/``sel``/``astype``/
  ``chunk`` (a :class:`~lazyspheres.io.readers.view.ViewReader`), is read by the file's own
  fastest route: one streaming inflate pass for ``.nii.gz`` (ISA-L, the fastest single
  pass; indexed reads instead when a view skips most of the file), a memory-mapped or
  ranged voxel gather in time blocks for ``.nii``. A view keeps its volumes and voxels and
  casts them before averaging;
* any other Dask-backed image (arithmetic, Zarr, computed) is gathered by
  :func:`~lazyspheres.dask_gather.gather_voxels`: one task per chunk holding sphere voxels,
  one ``(voxels, time)`` block per time chunk. The chunk tasks of an image opened by
  lazyspheres read their box through the image's reader, so this costs O(what is read)
  (for ``.nii.gz``: random access through the seek-point index, found in the user cache or
  built once by the first read that needs it). An unmodified local Zarr image has
  its chunk files read directly (:mod:`lazyspheres.io.zarr_chunks`);
* a lazily indexed image (``chunks=None``, ``xr.open_dataarray`` without chunks) is chunked
  in whole volumes first (over its reader when it is lazyspheres' backend array); a
  numpy-backed image is gathered eagerly.

How extraction knows what it holds, with no registry and no look at graph layers: an
opened image's data is a :class:`~lazyspheres.io.readers.lazy.ReaderDaskArray` that carries
its reader (a view of the file after ``isel``/``astype``/``chunk``), and
:func:`~lazyspheres.io.readers.lazy.reader_of` accepts it only if its name is still the
token of that reader and chunking. Other Dask operations return a plain array with a new
name, so a computed image is never mistaken for the file.

In every case the means are computed by :func:`lazyspheres.gather.sphere_means` (float64
accumulation in nilearn's voxel order), and nothing is computed until asked.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, cast

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from lazyspheres import stream_chain
from lazyspheres._malloc import recycle_buffers
from lazyspheres.dask_gather import gather_voxels
from lazyspheres.errors import DimensionError, ImageFormatError
from lazyspheres.gather import GatherPlan, sphere_means
from lazyspheres.geometry import sphere_voxels
from lazyspheres.io.image import NIFTI_META, ImageSource, with_dask
from lazyspheres.io.open import open_nifti
from lazyspheres.io.reader import NiftiFile
from lazyspheres.io.readers.lazy import reader_of
from lazyspheres.io.readers.nifti import NiftiReader
from lazyspheres.io.readers.view import ViewReader
from lazyspheres.io.readers.zarr import chunk_source_of
from lazyspheres.io.zarr_chunks import ZarrChunkReader
from lazyspheres.masks import binarize_mask_values, resample_mask_to_grid
from lazyspheres.seeds import load_seeds
from lazyspheres.smoothing import SmoothingPlan, check_fwhm

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from lazyspheres._types import StorageOptions, UserInput
    from lazyspheres.io.header import NiftiLayout

__all__ = ["extract", "file_block_means", "load_mask_on_grid", "output_dtype"]

# Local uncompressed files are gathered in this many time blocks, so that a threaded or
# distributed scheduler can read them in parallel.
_LOCAL_TIME_BLOCKS = 4


def extract(
    img: ImageSource | list[ImageSource] | tuple[ImageSource, ...],
    seeds: UserInput,
    radius: float | None = None,
    *,
    mask_img: ImageSource | None = None,
    allow_overlap: bool = False,
    smoothing_fwhm: float | list[float] | str | None = None,
    storage_options: StorageOptions | None = None,
    dtype: npt.DTypeLike | None = None,
) -> xr.DataArray:
    """Mean signal in a sphere around each seed, lazily.

    Parameters
    ----------
    img : path, URL, file object, nibabel image, DataArray, or a list of 3D images
        A 4D (or 3D) image; anything :func:`lazyspheres.open_nifti` accepts. A list of 3D
        images on one grid is one run with a volume per image (as nilearn concatenates).
    seeds : array-like, DataFrame or str
        ``(n, 3)`` world coordinates in mm (same space as the image), a DataFrame with
        ``x, y, z`` columns (other columns become seed coordinates, e.g. ``label``), or a
        named set: ``"power2011"``, ``"dosenbach2010"``, ``"seitzman2018"``.
    radius : float, optional
        Sphere radius in mm. ``None`` takes the voxel nearest each seed (nilearn's rules,
        which can add a second voxel for off-centre seeds).
    mask_img : path, nibabel image or DataArray, optional
        Only voxels inside this mask count. It is resampled to the image grid
        (nearest neighbour) and read when the graph is built (it is small).
    allow_overlap : bool, default False
        Whether spheres may share voxels (else :class:`~lazyspheres.errors.OverlapError`).
    smoothing_fwhm : float, sequence of 3 floats, "fast" or None, optional
        Smooth the image with a Gaussian of this FWHM (mm; per axis if a sequence) before
        averaging, as nilearn does (reflect at the image borders, non-finite values set to
        0). Only the voxels the spheres need, plus the kernel halo, are read and smoothed
        (:mod:`lazyspheres.smoothing`); the numbers equal smoothing the whole image first.
        A smoothed image is a float image: signals are float32, or float64 for float64,
        8-byte integer and scaled images.
    storage_options : dict, optional
        fsspec options when ``img`` or ``mask_img`` is a URL.
    dtype : numpy dtype, optional
        dtype of the returned signals (the means are accumulated in float64 either way).
        Default: float32 for float32 (and smoothed float32/integer) images, else float64.

    Returns
    -------
    xarray.DataArray
        Dims ``("time", "seed")`` (``("seed",)`` for a 3D image), Dask-backed unless the
        image is numpy-backed. Seed coordinates: ``x, y, z`` (mm), ``n_voxels`` and any
        label columns of ``seeds``. dtype float32 for float32 images, else float64
        (integer images give exact means).

    Raises
    ------
    EmptySphereError
        A sphere has no voxel ("These spheres are empty").
    OverlapError
        Spheres share voxels and ``allow_overlap`` is False.
    SeedError
        Seeds of the wrong shape or not numeric.

    Examples
    --------
    >>> import lazyspheres as ls
    >>> signals = ls.extract("bold.nii.gz", "power2011", radius=5)  # doctest: +SKIP
    >>> signals.compute()  # doctest: +SKIP
    """
    if isinstance(img, (list, tuple)):
        one_volume = functools.partial(
            extract,
            seeds=seeds,
            radius=radius,
            mask_img=mask_img,
            allow_overlap=allow_overlap,
            smoothing_fwhm=smoothing_fwhm,
            storage_options=storage_options,
            dtype=dtype,
        )
        return _extract_volume_list(img, one_volume, storage_options)
    fwhm = check_fwhm(smoothing_fwhm)
    image = open_nifti(img, storage_options=storage_options)
    spatial = ("i", "j", "k")
    missing = [d for d in spatial if d not in image.dims]
    if missing:
        raise DimensionError(
            image.ndim, 4, f"The image has dims {image.dims}; expected i, j, k (and time)."
        )
    extra = [d for d in image.dims if d not in (*spatial, "time")]
    if extra:
        raise DimensionError(
            image.ndim, 4, f"The image has extra dims {extra}; select one value of each."
        )
    image = image.transpose(*spatial, *(["time"] if "time" in image.dims else []))
    shape = image.nifti.spatial_shape
    affine = image.nifti.grid_affine
    coords, labels = load_seeds(seeds)
    mask = None
    if mask_img is not None:
        mask = load_mask_on_grid(mask_img, affine, shape, storage_options=storage_options)
    spheres = sphere_voxels(
        coords, affine, shape, radius=radius, mask=mask, allow_overlap=allow_overlap
    )
    plan = GatherPlan.from_spheres(spheres)
    smoother = None
    if fwhm is not None:
        smoother = SmoothingPlan.build(plan.voxels, shape, affine, fwhm, image.dtype)
    means = _sphere_means(image, plan, smoother)
    default = output_dtype(image.dtype if smoother is None else smoother.dtype)
    wanted = default if dtype is None else np.dtype(dtype)
    if means.dtype != wanted:
        means = means.astype(wanted)
    signals = _label(
        means, image, coords, labels, spheres.n_voxels, radius, allow_overlap, mask_img
    )
    signals.attrs["smoothing_fwhm"] = _describe_fwhm(smoothing_fwhm)
    # netCDF cannot store None: an absent attribute means "not set" (e.g. radius None).
    signals.attrs = {key: value for key, value in signals.attrs.items() if value is not None}
    return signals


def _describe_fwhm(
    fwhm: float | list[float] | str | None,
) -> float | list[float | None] | str | None:
    """``smoothing_fwhm`` as a JSON-friendly attribute value."""
    if fwhm is None or isinstance(fwhm, str):
        return fwhm
    items = np.asarray(fwhm, dtype=object).ravel().tolist()
    values = [None if v is None else float(v) for v in items]
    return values[0] if np.ndim(fwhm) == 0 else values


def _extract_volume_list(
    images: list[ImageSource] | tuple[ImageSource, ...],
    extract_one: Callable[[ImageSource], xr.DataArray],
    storage_options: StorageOptions | None,
) -> xr.DataArray:
    """Extract from a list of 3D images taken as the volumes of one run.

    ``extract_one`` is :func:`extract` with the call's seeds and options.
    """
    if len(images) == 0:
        raise TypeError("Cannot concatenate empty objects: the list of images is empty.")
    parts, grid = [], None
    for position, item in enumerate(images):
        image = open_nifti(item, storage_options=storage_options)
        if "time" in image.dims:
            raise DimensionError(
                5 if image.sizes["time"] > 1 else 4,
                4,
                f"Item {position} of the list is a 4D image; a list must hold 3D images "
                "(one volume each).",
            )
        this_grid = (image.nifti.spatial_shape, image.nifti.grid_affine)
        if grid is None:
            grid = this_grid
        elif grid[0] != this_grid[0] or not np.allclose(grid[1], this_grid[1]):
            raise ValueError(
                f"Item {position} of the list has shape {this_grid[0]} and affine\n"
                f"{this_grid[1]}\nbut item 0 has shape {grid[0]} and affine\n{grid[1]}: all "
                "images of a run must share one grid. Resample them first."
            )
        parts.append(extract_one(image))
    stacked = xr.concat(parts, dim="time", coords="minimal", compat="override")
    return stacked.assign_coords(time=("time", np.arange(len(parts)), {"units": "volume index"}))


def output_dtype(image_dtype: np.dtype) -> np.dtype:
    """Dtype of sphere signals for an image dtype: float32 stays float32, else float64."""
    return np.dtype(np.float32) if np.dtype(image_dtype) == np.float32 else np.dtype(np.float64)


def load_mask_on_grid(
    mask_img: ImageSource,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    *,
    storage_options: StorageOptions | None = None,
) -> np.ndarray:
    """Read a mask image, resample it to a grid (nearest) and validate it as binary.

    Raises
    ------
    DimensionError
        A 4D mask with more than one volume.
    ValueError
        A mask that is not binary or is empty after resampling (nilearn's messages).
    """
    mask = open_nifti(mask_img, chunks=None, storage_options=storage_options)
    if "time" in mask.dims:
        if mask.sizes["time"] != 1:
            raise DimensionError(
                4, 3, f"The mask has {mask.sizes['time']} volumes; a mask must be 3D."
            )
        mask = mask.isel(time=0)
    mask = mask.transpose("i", "j", "k")
    values = np.asarray(mask.values)
    resampled = resample_mask_to_grid(values, mask.nifti.grid_affine, affine, shape)
    return binarize_mask_values(resampled)


# ---------------------------------------------------------------------------- reading
def _sphere_means(
    image: xr.DataArray, plan: GatherPlan, smoother: SmoothingPlan | None = None
) -> da.Array | np.ndarray:
    """``(T, n_seeds)`` float64 means (``(n_seeds,)`` for 3D), lazily where possible.

    With a ``smoother``, its read set (sphere voxels plus kernel halo) is gathered instead
    of the sphere voxels, and smoothed to the sphere voxels before averaging.
    """
    image = with_dask(image)  # (a lazily indexed image of a file: a Dask array over its reader)
    reader = reader_of(image)
    if isinstance(reader, NiftiReader):
        means = _means_from_file(NiftiFile.of_reader(reader), plan, smoother)
        return means[0] if image.ndim == 3 else means
    if isinstance(reader, ViewReader) and isinstance(reader.base, NiftiReader):
        # a view of a file (sliced, cast, rechunked): the file's own route, the view's volumes
        means = _means_from_file(reader, plan, smoother)
        return means[0] if image.ndim == 3 else means
    data = image.data
    if isinstance(data, da.Array):
        return _means_from_dask(data, plan, smoother, chunk_source_of(image))
    read = plan.voxels if smoother is None else smoother.read_voxels
    vi, vj, vk = (xr.Variable("voxel", v) for v in read.T)
    gathered = np.asarray(image.isel(i=vi, j=vj, k=vk).values)
    if smoother is not None:
        gathered = smoother.smooth(gathered, axis=0)
    eager, n_bad = sphere_means(gathered.T if gathered.ndim == 2 else gathered, plan)
    _warn_nonfinite(n_bad)
    return eager


def _means_from_file(
    nifti: NiftiFile | ViewReader, plan: GatherPlan, smoother: SmoothingPlan | None
) -> da.Array:
    # (a view streams its base file: from byte 0, or by the index when it skips most of it)
    if isinstance(nifti, ViewReader):
        n_volumes, compression = nifti.n_volumes, cast(NiftiReader, nifti.base).source.compression
    else:
        n_volumes, compression = nifti.layout.n_volumes, nifti.source.compression
    if compression is not None and isinstance(nifti, NiftiFile) and stream_chain.chain_allowed():
        # one pass, as a chain of step tasks: Dask's progress bar moves inside the run
        bounds = stream_chain.step_bounds(n_volumes, nifti.reader.per_block(None))
        if len(bounds) > 2:
            return stream_chain.chained_pass(
                functools.partial(iter_block_means, nifti, plan, smoother=smoother),
                bounds,
                plan.n_seeds,
                token=tokenize(nifti, plan, smoother),
                finish=functools.partial(_warn_nonfinite, where=nifti.source.location),
                name="sphere-means",
            ).rechunk({0: -1})
    if compression is None:
        # uncompressed (local or remote): time blocks can be read independently, in parallel
        step = max(1, math.ceil(n_volumes / _LOCAL_TIME_BLOCKS))
    else:
        step = n_volumes  # one sequential pass: the only sane way through a gzip stream
    blocks = []
    for start in range(0, n_volumes, step):
        stop = min(n_volumes, start + step)
        task = dask.delayed(_file_block_means, pure=True)(nifti, plan, smoother, start, stop)
        blocks.append(da.from_delayed(task, shape=(stop - start, plan.n_seeds), dtype=np.float64))
    means = da.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]
    return means.rechunk({0: -1})


def _file_block_means(
    nifti: NiftiFile | ViewReader,
    plan: GatherPlan,
    smoother: SmoothingPlan | None,
    start: int,
    stop: int,
) -> np.ndarray:
    with recycle_buffers():  # on distributed workers, each block's buffers would page-fault
        out, n_bad = file_block_means(nifti, plan, start, stop, smoother)
    where = nifti.location if isinstance(nifti, ViewReader) else nifti.source.location
    _warn_nonfinite(n_bad, where=where)
    return out


def file_block_means(
    nifti: NiftiFile | ViewReader,
    plan: GatherPlan,
    start: int,
    stop: int,
    smoother: SmoothingPlan | None = None,
) -> tuple[np.ndarray, int]:
    """``(stop - start, n_seeds)`` float64 sphere means of volumes ``start:stop`` of a file.

    Streams the file's blocks (one pass for gzip); a view of a file streams its base file
    and keeps its own voxels and volumes, cast. With a ``smoother``, its read set
    (sphere voxels plus kernel halo) is gathered and smoothed first. Returns the means and
    the number of non-finite values met (counted as 0, nilearn's rule).
    """
    out = np.empty((stop - start, plan.n_seeds), dtype=np.float64)
    n_bad = 0
    for t0, means, bad in iter_block_means(nifti, plan, start, stop, smoother):
        out[t0 - start : t0 - start + means.shape[0]] = means
        n_bad += bad
    return out, n_bad


def iter_block_means(
    nifti: NiftiFile | ViewReader,
    plan: GatherPlan,
    start: int,
    stop: int,
    smoother: SmoothingPlan | None = None,
) -> Iterator[tuple[int, np.ndarray, int]]:
    """Yield ``(t0, means, n_bad)`` per streamed block of volumes ``start:stop``, in order."""
    # a view itself, or a file's header (asked by attribute: the batch passes a stand-in)
    scaling: NiftiLayout | ViewReader = nifti if isinstance(nifti, ViewReader) else nifti.layout
    scale = scaling.scale if scaling.is_scaled else None
    read = plan if smoother is None else smoother
    for t0, values in nifti.iter_gathered(read.flat_indices("F"), start, stop):
        if smoother is not None:  # (b, n_read) raw -> (b, n_union) smoothed
            values = smoother.smooth(values if scale is None else scale(values), axis=1)
            means, bad = sphere_means(values, plan)
        else:
            means, bad = sphere_means(values, plan, scale=scale)
        yield t0, means, bad


def _means_from_dask(
    data: da.Array,
    plan: GatherPlan,
    smoother: SmoothingPlan | None,
    source: ZarrChunkReader | None = None,
) -> da.Array:
    # (n_read[, T]): one task per chunk holding voxels, one block per time chunk
    voxels = plan.voxels if smoother is None else smoother.read_voxels
    gathered = gather_voxels(data, voxels, source)
    if data.ndim == 3:
        return gathered.rechunk(-1).map_blocks(
            _union_major_means, plan, smoother, dtype=np.float64, chunks=((plan.n_seeds,),)
        )
    gathered = gathered.rechunk({0: -1})
    means = gathered.map_blocks(
        _union_major_means,
        plan,
        smoother,
        dtype=np.float64,
        chunks=((plan.n_seeds,), gathered.chunks[1]),
    )
    return means.T.rechunk({0: -1})


def _union_major_means(
    block: np.ndarray, plan: GatherPlan, smoother: SmoothingPlan | None = None
) -> np.ndarray:
    if smoother is not None:  # (n_read[, b]) -> (n_union[, b]) smoothed
        block = smoother.smooth(block, axis=0)
    if block.ndim == 1:
        means, bad = sphere_means(block, plan)
    else:
        means, bad = sphere_means(block.T, plan)
        means = means.T
    _warn_nonfinite(bad)
    return means


def _warn_nonfinite(count: int, where: str = "the image") -> None:
    if count:
        warnings.warn(
            f"Non-finite values detected. These values will be replaced with zeros: "
            f"{count} NaN/inf value(s) among the sphere voxels of {where} were counted as 0 "
            "in the sphere means (nilearn's rule).",
            UserWarning,
            stacklevel=3,
        )


# ---------------------------------------------------------------------------- labelling
def _label(
    means: da.Array | np.ndarray,
    image: xr.DataArray,
    coords: np.ndarray,
    labels: pd.DataFrame | None,
    n_voxels: np.ndarray,
    radius: float | None,
    allow_overlap: bool,
    mask_img: ImageSource | None,
) -> xr.DataArray:
    n_seeds = coords.shape[0]
    seed_coords: dict[str, tuple[object, ...]] = {
        "seed": ("seed", np.arange(n_seeds)),
        "x": ("seed", coords[:, 0], {"units": "mm"}),
        "y": ("seed", coords[:, 1], {"units": "mm"}),
        "z": ("seed", coords[:, 2], {"units": "mm"}),
        "n_voxels": ("seed", np.asarray(n_voxels, dtype=np.int64)),
    }
    if labels is not None:
        for column in labels.columns:
            if column in ("x", "y", "z") or column in seed_coords:
                continue
            values = labels[column].to_numpy()
            if values.dtype.kind in "USO":
                values = values.astype(object)
            seed_coords[str(column)] = ("seed", values)
    dims: tuple[str, ...] = ("seed",)
    if "time" in image.dims:
        dims = ("time", "seed")
        time = image.coords["time"]
        seed_coords["time"] = ("time", time.values, dict(time.attrs))
    meta = image.coords[NIFTI_META].attrs if NIFTI_META in image.coords else {}
    attrs = {
        "radius": radius,
        "allow_overlap": bool(allow_overlap),
        "mask_img": None if mask_img is None else _describe(mask_img),
        "source": meta.get("source"),
        "t_r": meta.get("t_r"),
    }
    return xr.DataArray(means, dims=dims, coords=seed_coords, name="signals", attrs=attrs)


def _describe(obj: object) -> str:
    if isinstance(obj, (str, bytes)) or hasattr(obj, "__fspath__"):
        return str(obj)
    if isinstance(obj, xr.DataArray) and NIFTI_META in obj.coords:
        return str(obj.coords[NIFTI_META].attrs.get("source"))
    name = getattr(obj, "get_filename", lambda: None)()
    if name:
        return str(name)
    raise_if_bad = getattr(obj, "shape", None)
    if raise_if_bad is None:
        raise ImageFormatError(f"mask_img of type {type(obj).__name__} is not an image.")
    return f"<in-memory {type(obj).__name__} {tuple(raise_if_bad)}>"
