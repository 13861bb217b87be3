"""``extract_many``: sphere signals of many runs into one resumable Zarr store.

Its body is the sequence of its stages (:mod:`lazyspheres.batch.stages`): validate the
arguments, plan (probe the runs, apply the store and resume policies), schedule the runs on
the workers, write the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import xarray as xr

from lazyspheres._types import StorageOptions, UserInput
from lazyspheres.batch._types import ErrorPolicy, OnEmpty, StoreTarget
from lazyspheres.batch.execute import active_client
from lazyspheres.batch.lock import one_writer
from lazyspheres.batch.params import BatchParams
from lazyspheres.batch.runs import RunSpec
from lazyspheres.batch.stages import BatchError, plan, schedule, validate, write
from lazyspheres.cleaning.options import CleaningParams

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["BatchError", "extract_many", "run_batch"]


@one_writer  # one writer per store: a second one stops at once (batch/lock.py)
def extract_many(
    sources: UserInput,
    seeds: UserInput,
    radius: UserInput = None,
    *,
    store: StoreTarget = "results.zarr",
    mask_img: UserInput = None,
    allow_overlap: bool = False,
    confounds: UserInput = None,
    confound_columns: Sequence[str] | None = None,
    sample_mask: UserInput = None,
    clean: dict[str, UserInput] | CleaningParams | None = None,
    smoothing_fwhm: UserInput = None,
    client: Client | None = None,
    resume: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    on_empty: OnEmpty = "raise",
    errors: ErrorPolicy = "raise",
    run_ids: Sequence[str] | None = None,
    time_blocks: int | None = None,
    storage_options: StorageOptions | None = None,
) -> xr.Dataset:
    """Extract (and clean) sphere signals of many runs into one resumable Zarr v3 store.

    Each run is read by its own task on a worker (one streaming pass for ``.nii.gz``, time
    blocks for uncompressed ``.nii`` when there are fewer runs than threads, touched chunks
    for Zarr images), cleaned there, and written to its own region of the store, followed
    by its completion flag. Runs on Dask's local scheduler by default, or on ``client`` /
    the active ``distributed`` client.

    Parameters
    ----------
    sources : path, URL, glob pattern, or sequence of them
        The 4D runs (``.nii``, ``.nii.gz``, Zarr images).
    seeds : array-like, DataFrame or str
        As in :func:`lazyspheres.extract` (label columns become seed coordinates).
    radius : float, sequence of float, or None
        Sphere radius in mm, or one radius per seed (a lazyspheres extension: nilearn has
        one radius). ``None``: nearest voxel only.
    store : str, os.PathLike or zarr Store, default "results.zarr"
        The result store (path, fsspec URL or zarr Store).
    mask_img : image, "bids", list or dict, optional
        One mask for all runs, or one per run (a list, a dict run id → mask, or ``"bids"``
        for fMRIPrep's ``..._desc-brain_mask.nii.gz`` next to each run).
    allow_overlap : bool, default False
        Whether spheres may share voxels.
    confounds, sample_mask : list, dict or "bids", optional
        One entry per run (a list aligned with ``sources`` or a dict run id → value), each
        anything :func:`lazyspheres.clean` accepts. ``confounds="bids"`` finds fMRIPrep's
        ``..._desc-confounds_timeseries.tsv`` next to each run.
    confound_columns : list of str, optional
        Column names or shell patterns (``"trans_*"``) to keep from confounds tables.
    clean : dict or CleaningParams, optional
        Keywords of :func:`lazyspheres.clean` (``detrend``, ``standardize``, ``low_pass``,
        ``high_pass``, ``t_r``, ``filter``, ...), applied to each run; or them as one
        :class:`lazyspheres.cleaning.options.CleaningParams`.
    smoothing_fwhm : float, sequence of 3 floats, "fast" or None, optional
        Gaussian smoothing as in :func:`lazyspheres.extract` (computed on the sphere voxels
        and their kernel halo only).
    client : distributed.Client, optional
        Cluster to run on (default: the active client, else the local scheduler).
    resume : bool, default True
        Continue an existing store: skip complete runs whose inputs are unchanged
        (fingerprint), redo incomplete or changed ones. False: refuse an existing store
        unless ``overwrite``. A store in which no run was ever completed is started again
        whatever these say (it holds nothing to keep).
    overwrite : bool, default False
        Start the store again from scratch.
    progress : bool, default True
        Draw a progress bar on stderr: finished runs, and volumes read inside them.
    on_empty : {"raise", "nan"}, default "raise"
        A run in which a sphere is empty (after masking) fails, or gets NaN for that seed
        (``n_voxels`` records the coverage).
    errors : {"raise", "warn"}, default "raise"
        After all runs ran: raise :class:`BatchError` listing failed runs, or warn.
    run_ids : list of str, optional
        Explicit run ids (default: BIDS entities or file stems).
    time_blocks : int, optional
        Split each uncompressed run in this many time blocks (default: automatic).
    storage_options : dict, optional
        fsspec options for URLs (inputs and store).

    Returns
    -------
    xarray.Dataset
        The store opened lazily (see :func:`lazyspheres.batch.open_results`); with
        ``errors="warn"`` and failures, incomplete runs' signals are NaN.

    Raises
    ------
    BatchInputError, MissingInputsError
        Before any image is read: missing confounds or mask files, confound columns that
        match nothing, wrong lengths, or ``n/a`` cells in kept volumes (one line per
        problem; nothing is written).
    StoreMismatchError
        The store was written with other parameters, seeds or runs (all differences named).
    FileExistsError
        The store exists with complete runs, ``resume=False`` and ``overwrite=False``.
    BatchError
        Runs failed (``errors="raise"``); the others are complete and the store says which
        failed. Fix them and call again: complete runs are not recomputed.
    EmptySphereError, OverlapError, SeedError, TypeError, ValueError
        Bad seeds, radii or cleaning parameters, before anything is written (spheres are
        checked on the first run's grid; other grids fail per run).

    Examples
    --------
    >>> import lazyspheres as ls
    >>> ds = ls.extract_many(  # doctest: +SKIP
    ...     "derivatives/sub-*/func/*_desc-preproc_bold.nii.gz", "power2011", 5,
    ...     store="power.zarr", confounds="bids", confound_columns=["trans_?", "rot_?"],
    ...     clean={"detrend": True, "standardize": "zscore_sample"},
    ... )
    >>> ds.signals.sel(run="sub-01_task-rest_run-1")  # doctest: +SKIP
    """
    runs, params = validate(
        sources,
        seeds,
        radius,
        store=store,
        mask_img=mask_img,
        allow_overlap=allow_overlap,
        confounds=confounds,
        confound_columns=confound_columns,
        sample_mask=sample_mask,
        clean=clean,
        smoothing_fwhm=smoothing_fwhm,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
        on_empty=on_empty,
        errors=errors,
        run_ids=run_ids,
        time_blocks=time_blocks,
        storage_options=storage_options,
    )
    return run_batch(runs, params, client)


def run_batch(
    runs: list[RunSpec], params: BatchParams, client: Client | None = None
) -> xr.Dataset:
    """:func:`extract_many` from its validated inputs: plan, schedule, write.

    The command line validates the user's flags into these (``stages.validate``) and
    calls this. The caller holds the store's lock (:func:`~lazyspheres.batch.lock.store_lock`)
    from before the validation, as :func:`extract_many` does.
    """
    client = active_client(client)
    batch = plan(runs, params, client)
    return write(batch, schedule(batch, client))
