"""What a batch task reads: image facts (header only) and sphere means over a time block.

Both functions run on workers. They take a path/URL, open it themselves and return small
results (facts, or ``(b, n_seeds)`` means), so no image data ever travels to the client.

* ``.nii.gz``: one streaming inflate pass per task (never a task per chunk);
* uncompressed ``.nii``: memory-mapped (or ranged) gathers, optionally in time blocks;
* Zarr images (:func:`lazyspheres.to_zarr_image`): only the chunks holding sphere voxels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import TypeAlias

import numpy as np
import xarray as xr

from lazyspheres._types import StorageOptions, UserInput
from lazyspheres.batch._types import JsonValue
from lazyspheres.dask_gather import gather_voxels
from lazyspheres.extraction import file_block_means
from lazyspheres.gather import GatherPlan, sphere_means
from lazyspheres.io.reader import NiftiFile
from lazyspheres.io.readers.zarr import chunk_source_of
from lazyspheres.io.sources import resolve_source
from lazyspheres.io.zarr_image import is_zarr_source, open_zarr_image, zarr_image_info
from lazyspheres.smoothing import SmoothingPlan

__all__ = ["ImageFacts", "block_means", "file_fingerprint", "open_image", "probe_image"]

#: A run opened for reading: a NIfTI file, or a Zarr image as ``(i, j, k, time)``.
Image: TypeAlias = NiftiFile | xr.DataArray


@dataclass(frozen=True)
class ImageFacts:
    """Header facts of one run, enough to plan its tasks and its place in the store."""

    location: str
    kind: str  # "nifti-gzip", "nifti", "zarr"
    fingerprint: str
    size: int | None
    n_volumes: int
    shape: tuple[int, int, int]
    affine: np.ndarray
    dtype: str  # dtype of the values once read (scaled)
    t_r: float | None
    is_local: bool


def open_image(source: str, storage_options: StorageOptions | None) -> tuple[Image, ImageFacts]:
    """Open a run (header only) and describe it."""
    if is_zarr_source(source):
        image = open_zarr_image(source, storage_options=storage_options)
        info = zarr_image_info(source, storage_options)
        if "time" not in image.dims:
            raise _not_4d(source, image.shape)
        facts = ImageFacts(
            location=image.coords["nifti_meta"].attrs["source"],
            kind="zarr",
            fingerprint=f"conversion_id={info.get('conversion_id')}",
            size=None,
            n_volumes=int(image.sizes["time"]),
            shape=image.nifti.spatial_shape,
            affine=image.nifti.affine,
            dtype=str(image.dtype),
            t_r=image.nifti.t_r,
            is_local="://" not in source,
        )
        return image.transpose("i", "j", "k", "time"), facts
    nifti = NiftiFile.open(source, storage_options)
    layout = nifti.layout
    if layout.ndim != 4:
        raise _not_4d(source, layout.shape)
    facts = ImageFacts(
        location=nifti.source.location,
        kind="nifti-gzip" if nifti.source.compression == "gzip" else "nifti",
        fingerprint=nifti.source.fingerprint,
        size=nifti.source.size,
        n_volumes=layout.n_volumes,
        shape=(layout.shape[0], layout.shape[1], layout.shape[2]),
        affine=layout.affine,
        dtype=str(layout.dtype),
        t_r=layout.t_r,
        is_local=nifti.source.is_local,
    )
    return nifti, facts


def _not_4d(source: str, shape: tuple[int, ...]) -> Exception:
    from lazyspheres.errors import DimensionError

    return DimensionError(
        len(shape), 4, f"{source} has shape {tuple(shape)}; a run must be a 4D image."
    )


def probe_image(source: str, storage_options: StorageOptions | None) -> ImageFacts:
    """Read the header of a run and return its facts."""
    return open_image(source, storage_options)[1]


@dataclass(frozen=True)
class _Counted(NiftiFile):
    """A NiftiFile whose streamed blocks are reported (volumes read) as they are read.

    The one streaming pass stays one pass: the report is a side effect of each block.
    """

    report: Callable[[int], None] = field(kw_only=True)  # never pickled: made in the task

    @classmethod
    def of(cls, nifti: NiftiFile, report: Callable[[int], None]) -> _Counted:
        """``nifti``, reporting its streamed blocks to ``report``."""
        opened = {f.name: getattr(nifti, f.name) for f in fields(nifti) if f.init}
        return cls(**opened, report=report)

    def iter_gathered(
        self,
        flat_indices: np.ndarray,
        start: int = 0,
        stop: int | None = None,
        *,
        block_bytes: int | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """As :meth:`NiftiFile.iter_gathered`, reporting each block's volumes once read."""
        blocks = super().iter_gathered(flat_indices, start, stop, block_bytes=block_bytes)
        for t0, values in blocks:
            yield t0, values
            self.report(int(values.shape[0]))


def block_means(
    image: Image,
    facts: ImageFacts,
    plan: GatherPlan,
    start: int,
    stop: int,
    smoother: SmoothingPlan | None = None,
    report: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, int]:
    """``(stop - start, n_seeds)`` float64 sphere means of volumes ``start:stop``.

    With a ``smoother``, its read set (sphere voxels plus kernel halo) is gathered and
    smoothed to the sphere voxels first. Returns the means and the number of non-finite
    values met (counted as 0, nilearn's rule). ``report(n)`` is called as each block of
    ``n`` volumes has been read (progress inside a run).
    """
    if isinstance(image, NiftiFile):
        counted = image if report is None else _Counted.of(image, report)
        return file_block_means(counted, plan, start, stop, smoother)
    import dask

    voxels = plan.voxels if smoother is None else smoother.read_voxels
    # One small task per chunk holding voxels (read straight from the files of a local
    # Zarr image); computed in this task, so no chunk travels between workers.
    lazy = gather_voxels(image.data, voxels, chunk_source_of(image))
    gathered = np.asarray(dask.compute(lazy[:, start:stop], scheduler="synchronous")[0])
    if smoother is not None:
        gathered = smoother.smooth(gathered, axis=0)
    means, n_bad = sphere_means(gathered.T, plan)
    if report is not None:
        report(stop - start)
    return np.ascontiguousarray(means, dtype=np.float64), n_bad


def file_fingerprint(value: UserInput, storage_options: StorageOptions | None) -> JsonValue:
    """Identity of an auxiliary input: a file's location/size/mtime (or ETag), or a hash."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        text = location = os.fspath(value)
        if is_zarr_source(text):
            info = zarr_image_info(text, storage_options)
            conversion = f"conversion_id={info.get('conversion_id')}"
            return {"location": location, "fingerprint": conversion}
        source = resolve_source(text, storage_options)
        return {"location": source.location, "fingerprint": source.fingerprint}
    if isinstance(value, (list, tuple)):
        return [file_fingerprint(v, storage_options) for v in value]
    from dask.base import tokenize

    if hasattr(value, "get_fdata") and hasattr(value, "affine"):  # nibabel image
        return {"token": tokenize(np.asanyarray(value.dataobj), np.asarray(value.affine))}
    return {"token": tokenize(value)}
