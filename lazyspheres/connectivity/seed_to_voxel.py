"""``seed_to_voxel``: Pearson correlation maps between seeds and every in-mask voxel.

nilearn's route (``NiftiMasker(...).fit_transform(img)`` for the voxels) holds the whole
``(T, n_voxels)`` matrix in memory, plus the copies cleaning makes. Here memory is bounded
whatever ``T`` and the number of voxels:

1. one streaming, time-major pass over the image (a single inflate pass for ``.nii.gz``)
   writes the in-mask voxels into a voxel-block-major scratch file
   (:mod:`lazyspheres.connectivity.staging`) and averages the seed spheres on the way;
2. the seeds are cleaned (all of them at once, like the spheres masker);
3. a voxel-major pass reads one voxel block's full time series at a time, cleans it with
   the project's cleaning kernel (exactly the numbers cleaning all voxels at once gives:
   every step but psc's joint add-back decision is per series), and correlates it with
   the cleaned seeds.

Sufficient statistics (accumulating ``X^T X``-like sums during the first pass) would avoid
the scratch file, but only when cleaning is a linear projection of the whole series;
Butterworth filtering, scrubbing and standardisation are not, so the scratch file is the
general route.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import xarray as xr

from lazyspheres._types import FloatArray, StorageOptions, UserInput
from lazyspheres.cleaning.api import clean, numpy_projector
from lazyspheres.cleaning.confounds import ensure_float_dtype
from lazyspheres.cleaning.kernel import clean_block, clean_series
from lazyspheres.cleaning.options import CleaningParams
from lazyspheres.cleaning.params import CleanPlan, build_plan
from lazyspheres.connectivity import staging
from lazyspheres.connectivity.staging import Scratch, array_pieces, file_pieces, stage_image
from lazyspheres.errors import DimensionError
from lazyspheres.extraction import _label, _warn_nonfinite, load_mask_on_grid, output_dtype
from lazyspheres.gather import GatherPlan
from lazyspheres.geometry import sphere_voxels
from lazyspheres.io.open import NIFTI_META, ImageSource, open_nifti
from lazyspheres.io.reader import NiftiFile
from lazyspheres.io.readers.lazy import reader_of
from lazyspheres.io.readers.nifti import NiftiReader
from lazyspheres.seeds import load_seeds

__all__ = ["CLEANING_KEYWORDS", "seed_to_voxel"]

#: The keywords of :func:`lazyspheres.clean` that ``seed_to_voxel`` accepts.
CLEANING_KEYWORDS = tuple(
    name
    for name, p in inspect.signature(clean).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
)


class _Hidden:
    """A Dask array kept out of Dask's sight.

    ``dask.delayed`` traverses dataclasses: it would compute the whole image as a
    dependency instead of letting the task stream it.
    """

    __slots__ = ("value",)

    def __init__(self, value: da.Array | np.ndarray) -> None:
        self.value = value


@dataclass(frozen=True)
class _Job:
    """Everything the compute task needs."""

    source: NiftiFile | _Hidden  # a NIfTI file streamed once, or the image's array
    voxels: np.ndarray
    plan: GatherPlan
    n_time: int
    store_dtype: np.dtype
    seed_dtype: np.dtype
    cleaning: dict[str, UserInput]
    fisher_z: bool
    shape: tuple[int, int, int]
    scratch_dir: str | None


def seed_to_voxel(
    img: ImageSource,
    seeds: UserInput,
    radius: float | None = None,
    *,
    mask_img: ImageSource | None = None,
    fisher_z: bool = False,
    allow_overlap: bool = False,
    storage_options: StorageOptions | None = None,
    scratch_dir: str | None = None,
    **cleaning: UserInput,
) -> xr.DataArray:
    """Correlation map of each seed's cleaned sphere signal with every voxel, out of core.

    Parameters
    ----------
    img : path, URL, nibabel image or DataArray
        A 4D image (anything :func:`~lazyspheres.open_nifti` accepts): ``.nii``,
        ``.nii.gz``, a Zarr image from :func:`~lazyspheres.to_zarr_image`, ...
    seeds : array-like, DataFrame or str
        Seed coordinates (mm) or a named set, as for :func:`~lazyspheres.extract`.
    radius : float, optional
        Sphere radius in mm (None: the voxel nearest each seed, nilearn's rule).
    mask_img : path, nibabel image or DataArray, optional
        The voxels to correlate with (resampled to the image grid, nearest). Default: every
        voxel of the image. The spheres are not masked (``NiftiSpheresMasker`` without a
        mask, as in nilearn's seed-to-voxel example).
    fisher_z : bool, default False
        Return Fisher's z, ``arctanh(r)``, instead of r.
    allow_overlap : bool, default False
        Whether spheres may share voxels.
    storage_options : dict, optional
        fsspec options for URLs.
    scratch_dir : str, optional
        Folder of the temporary voxel-major scratch file (default: the system's temporary
        folder). It needs ``T x n_mask_voxels x itemsize`` bytes and is deleted afterwards.
    **cleaning
        Keywords of :func:`lazyspheres.clean` (``detrend``, ``standardize``,
        ``confounds``, ``low_pass``, ``high_pass``, ``t_r``, ``filter``, ``sample_mask``,
        ...), applied the same way to the seed signals and to every voxel's signal,
        as ``NiftiSpheresMasker`` and ``NiftiMasker`` apply them.

    Returns
    -------
    xarray.DataArray
        Dims ``(seed, i, j, k)``, float64, Dask-backed (one task reads the image once).
        Voxels outside the mask are NaN; so are voxels (and seeds) whose cleaned series is
        constant (r is undefined). Seed coordinates as :func:`~lazyspheres.extract` gives
        them; the image's ``nifti_meta`` coordinate, so that
        ``map.isel(seed=0).nifti.to_nifti()`` is a NIfTI map of one seed.

    Raises
    ------
    TypeError
        An unknown cleaning keyword; a 3D image (DimensionError).
    ValueError, IndexError
        Bad cleaning parameters (as :func:`lazyspheres.clean` raises them), an empty
        mask, empty spheres.

    Notes
    -----
    Numbers equal nilearn 0.12.1's route: ``NiftiMasker(mask_img, **cleaning)`` for the
    voxels, ``NiftiSpheresMasker(seeds, radius, **cleaning)`` for the seeds, then Pearson r
    in float64, with one deliberate difference: with ``standardize="psc"``, whether the
    original means are added back is decided per voxel block rather than jointly over all
    voxels (r does not depend on it, except for series whose mean is zero).

    Examples
    --------
    >>> import lazyspheres as ls
    >>> r = ls.seed_to_voxel("bold.nii.gz", [(0, -52, 26)], radius=8,
    ...                      detrend=True, t_r=2.0, high_pass=0.01)  # doctest: +SKIP
    >>> ls.seed_to_voxel(...).isel(seed=0).nifti.to_nifti()  # doctest: +SKIP
    """
    unknown = sorted(set(cleaning) - set(CLEANING_KEYWORDS))
    if unknown:
        raise TypeError(
            f"seed_to_voxel() got unknown keyword(s) {unknown}; the cleaning keywords are "
            f"{list(CLEANING_KEYWORDS)}."
        )
    image = open_nifti(img, storage_options=storage_options)
    if "time" not in image.dims or set(image.dims) != {"i", "j", "k", "time"}:
        raise DimensionError(
            image.ndim, 4, f"seed_to_voxel needs a 4D (i, j, k, time) image; got {image.dims}."
        )
    image = image.transpose("i", "j", "k", "time")
    shape = image.nifti.spatial_shape
    affine = image.nifti.grid_affine
    coords, labels = load_seeds(seeds)
    spheres = sphere_voxels(coords, affine, shape, radius=radius, allow_overlap=allow_overlap)
    plan = GatherPlan.from_spheres(spheres)
    if mask_img is None:
        mask = np.ones(shape, dtype=bool)
    else:
        mask = load_mask_on_grid(mask_img, affine, shape, storage_options=storage_options)
    voxels = np.flatnonzero(mask.ravel(order="F"))
    n_time = int(image.sizes["time"])
    reader = reader_of(image)  # an unmodified opened file: stream it once
    nifti = NiftiFile.of_reader(reader) if isinstance(reader, NiftiReader) else None
    store_dtype = nifti.layout.dtype if nifti is not None else np.dtype(image.dtype)
    seed_dtype = output_dtype(store_dtype)
    # Validate (and warn) now, as clean() does at call time; the task re-plans quietly.
    params, per_run = _clean_params(cleaning)
    build_plan(n_time, ensure_float_dtype(store_dtype), params, **per_run)
    job = _Job(
        source=nifti if nifti is not None else _Hidden(image.data),
        voxels=voxels,
        plan=plan,
        n_time=n_time,
        store_dtype=np.dtype(store_dtype),
        seed_dtype=seed_dtype,
        cleaning=dict(cleaning),
        fisher_z=bool(fisher_z),
        shape=shape,
        scratch_dir=scratch_dir,
    )
    task = dask.delayed(_compute_map, pure=True)(job)
    maps = da.from_delayed(task, shape=(plan.n_seeds, *shape), dtype=np.float64)
    seed_labels = _label(
        np.zeros((0, plan.n_seeds)),
        image.isel(time=slice(0, 0)),
        coords,
        labels,
        spheres.n_voxels,
        radius,
        allow_overlap,
        mask_img,
    )
    out_coords = {name: c for name, c in seed_labels.coords.items() if c.dims == ("seed",)}
    for dim in ("i", "j", "k"):
        out_coords[dim] = image.coords[dim]
    if NIFTI_META in image.coords:
        out_coords[NIFTI_META] = image.coords[NIFTI_META]
    attrs = {key: value for key, value in seed_labels.attrs.items() if value is not None}
    attrs.update(statistic="fisher_z" if fisher_z else "pearson_r", n_mask_voxels=voxels.size)
    return xr.DataArray(
        maps,
        dims=("seed", "i", "j", "k"),
        coords=out_coords,
        name="seed_to_voxel",
        attrs=attrs,
    )


def _clean_params(
    cleaning: dict[str, UserInput],
) -> tuple[CleaningParams, dict[str, UserInput]]:
    """The run-independent options, and the confounds / sample mask."""
    options = dict(cleaning)
    per_run = {name: options.pop(name, None) for name in ("confounds", "sample_mask")}
    return CleaningParams.from_options(options), per_run


def _planned(
    n_time: int, dtype: np.dtype, cleaning: dict[str, UserInput]
) -> tuple[CleanPlan, FloatArray | None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # already shown when the graph was built
        params, per_run = _clean_params(cleaning)
        plan, confounds = build_plan(n_time, ensure_float_dtype(dtype), params, **per_run)
        return plan, numpy_projector(plan, confounds)


# ---------------------------------------------------------------------------- the task
def _compute_map(job: _Job) -> np.ndarray:
    with Scratch(
        job.n_time, job.voxels.size, job.store_dtype, _block_size(job), job.scratch_dir
    ) as scratch:
        if isinstance(job.source, NiftiFile):
            pieces, scale = file_pieces(job.source), job.source.layout.scale
        else:
            pieces, scale = array_pieces(job.source.value), None
        means, n_bad = stage_image(pieces, job.voxels, job.plan, scratch, scale=scale)
        _warn_nonfinite(n_bad)
        seed_plan, seed_projector = _planned(job.n_time, job.seed_dtype, job.cleaning)
        seeds = clean_block(means.astype(job.seed_dtype), seed_plan, seed_projector)
        centred, norms = _centred(seeds)
        plan, projector = _planned(job.n_time, job.store_dtype, job.cleaning)
        flat = np.full((job.plan.n_seeds, int(np.prod(job.shape))), np.nan)
        for index, (start, stop) in enumerate(scratch.bounds):
            # BLAS confound projection: each voxel's rounding may depend on its block,
            # which is fine here (no chunk-invariance to keep) and several times faster.
            series = clean_series(scratch.read_block(index).T, plan, projector, blas=True)
            flat[:, job.voxels[start:stop]] = _pearson(centred, norms, series)
    if job.fisher_z:
        with np.errstate(divide="ignore", invalid="ignore"):
            flat = np.arctanh(np.clip(flat, -1.0, 1.0))
    ni, nj, nk = job.shape
    return flat.reshape(job.plan.n_seeds, nk, nj, ni).transpose(0, 3, 2, 1)


def _block_size(job: _Job) -> int:
    return max(1, staging.VOXEL_BLOCK_BYTES // (8 * job.n_time))


def _centred(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 series ``(T, n)`` minus their means, and their norms."""
    values = np.asarray(series, dtype=np.float64)
    values = values - values.mean(axis=0)
    return values, np.sqrt(np.einsum("tn,tn->n", values, values))


def _pearson(seeds: np.ndarray, seed_norms: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``(n_seeds, n)`` Pearson r of centred ``(T, n_seeds)`` seeds with ``(n, T)`` series."""
    voxels = rows if rows.dtype == np.float64 else rows.astype(np.float64)
    voxels -= voxels.mean(axis=1)[:, None]
    voxel_norms = np.sqrt(np.einsum("nt,nt->n", voxels, voxels))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (voxels @ seeds).T / (seed_norms[:, None] * voxel_norms[None, :])
    r[:, voxel_norms == 0] = np.nan
    r[seed_norms == 0, :] = np.nan
    return r
