"""Batch parameters: one frozen record, validated once, recorded in the store as itself.

:class:`BatchParams` is built from the user's arguments by the validate stage of
:func:`~lazyspheres.batch.extract_many` (:func:`~lazyspheres.batch.stages.validate`) and is
what every later layer receives: the planning stage, the scheduler and each task on the
workers. :meth:`BatchParams.record` is the JSON the store's ``parameters`` attribute holds,
which a resumed batch must repeat exactly (:class:`~lazyspheres.errors.StoreMismatchError`
names any difference).
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from lazyspheres._types import FloatArray, StorageOptions, UserInput
from lazyspheres.batch._types import ErrorPolicy, JsonValue, OnEmpty, PerRunGiven, StoreTarget
from lazyspheres.cleaning.options import CleaningParams

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BatchParams",
    "check_clean",
    "dry_run_clean",
    "seed_coords",
    "split_mask",
]

#: A seed coordinate of the store, as xarray takes it: ``(dims, values[, attrs])``.
SeedCoord: TypeAlias = "tuple[str, np.ndarray] | tuple[str, np.ndarray, dict[str, str]]"


@dataclass(frozen=True, eq=False)
class BatchParams:
    """Every parameter of a batch, validated: what each layer and task receives.

    Attributes
    ----------
    coords : numpy.ndarray
        ``(n_seeds, 3)`` seed coordinates in mm.
    radii : numpy.ndarray
        ``(n_seeds,)`` float64 radii (NaN: nearest voxel only).
    labels : pandas.DataFrame or None
        The seeds' label columns (they become seed coordinates of the store).
    radius : float, tuple or None
        The radius as recorded: one number, one per seed (None: nearest voxel), or None.
    allow_overlap : bool
        Whether spheres may share voxels.
    on_empty : {"raise", "nan"}
        What a run with an empty sphere does.
    mask : path, URL, image or None
        The mask shared by all runs (per-run masks are in each RunSpec).
    masks_given, confounds_given : {"bids", "per-run"} or None
        How the per-run masks and confounds were given.
    sample_mask_given : bool
        Whether sample masks were given (one per run).
    clean : CleaningParams or None
        The run-independent cleaning options (None: none given).
    confound_columns : tuple of str or None
        Columns (or shell patterns) kept from confounds tables.
    fwhm : numpy.ndarray, "fast" or None
        The checked smoothing width (None: no smoothing).
    smoothing_fwhm : JSON value
        The smoothing width as recorded (what the user gave, as JSON).
    store : str, os.PathLike or zarr Store
        The result store.
    storage_options : dict or None
        fsspec options for URLs (inputs and store).
    errors : {"raise", "warn"}
        What failed runs do once all runs ran.
    time_blocks : int or None
        Time blocks per uncompressed run (None: automatic).
    resume, overwrite, progress : bool
        How this call treats an existing store, and whether it draws progress.
    dtype : str
        The store's signal dtype, known once the runs are probed (plan stage).
    known_warnings : frozenset
        ``(category, message)`` of warnings already shown by the plan stage's dry run.
    """

    coords: FloatArray
    radii: FloatArray
    labels: pd.DataFrame | None
    radius: float | tuple[float | None, ...] | None
    allow_overlap: bool
    on_empty: OnEmpty
    mask: UserInput
    masks_given: PerRunGiven
    confounds_given: PerRunGiven
    sample_mask_given: bool
    clean: CleaningParams | None
    confound_columns: tuple[str, ...] | None
    fwhm: FloatArray | str | None
    smoothing_fwhm: JsonValue
    store: StoreTarget
    storage_options: StorageOptions | None
    errors: ErrorPolicy = "raise"
    time_blocks: int | None = None
    resume: bool = True
    overwrite: bool = False
    progress: bool = True
    dtype: str = "float64"
    known_warnings: frozenset[tuple[str, str]] = frozenset()

    @property
    def n_seeds(self) -> int:
        """Number of seeds."""
        return int(self.coords.shape[0])

    def planned(
        self, *, dtype: str, known_warnings: set[tuple[str, str]], overwrite: bool
    ) -> BatchParams:
        """These parameters with what the plan stage decided.

        That is the store's dtype, the warnings its dry run showed, and whether the store
        is started again (an unfinished start is, whatever ``overwrite`` said).
        """
        return dataclasses.replace(
            self, dtype=dtype, known_warnings=frozenset(known_warnings), overwrite=overwrite
        )

    def record(self) -> dict[str, JsonValue]:
        """Every parameter a batch's results depend on, as JSON (the store's record)."""
        from lazyspheres.batch.reading import file_fingerprint

        if self.masks_given is not None:
            mask: JsonValue = self.masks_given
        else:
            mask = file_fingerprint(self.mask, self.storage_options)
        clean_record = self.clean.record() if self.clean else {}
        return {
            "radius": list(self.radius) if isinstance(self.radius, tuple) else self.radius,
            "allow_overlap": self.allow_overlap,
            "on_empty": self.on_empty,
            "mask_img": mask,
            "clean": {k: _jsonable(v) for k, v in clean_record.items()},
            "confounds": self.confounds_given,
            "confound_columns": list(self.confound_columns or ()) or None,
            "sample_mask": "per-run" if self.sample_mask_given else None,
            "smoothing_fwhm": self.smoothing_fwhm,
        }

    def seed_coords(self) -> dict[str, SeedCoord]:
        """The store's seed coordinates: x, y, z, radius and the label columns."""
        return seed_coords(self.coords, self.radii, self.labels)


def per_run_given(value: UserInput) -> PerRunGiven:
    """How a per-run input was given: ``"bids"``, ``"per-run"`` (list or dict) or None."""
    if value is None:
        return None
    return "bids" if isinstance(value, str) and value == "bids" else "per-run"


def recorded_radius(
    radius: UserInput, radii: FloatArray
) -> float | tuple[float | None, ...] | None:
    """The radius as the store records it: None, one number, or one per seed."""
    if radius is None or np.ndim(radius) == 0:
        return None if radius is None else float(radius)
    return tuple(None if np.isnan(r) else float(r) for r in radii)


def split_mask(mask_img: UserInput) -> tuple[UserInput, UserInput]:
    """``(shared mask, per-run masks)``: a list, dict or "bids" is per run."""
    if mask_img is None:
        return None, None
    if isinstance(mask_img, (list, tuple, dict)) or (
        isinstance(mask_img, str) and mask_img == "bids"
    ):
        return None, mask_img
    return mask_img, None


def check_clean(clean: UserInput) -> CleaningParams | None:
    """``clean={...}`` as :class:`CleaningParams` (None if empty; TypeError if unknown keys)."""
    from lazyspheres.cleaning import clean as clean_function

    if clean is None:
        return None
    if isinstance(clean, CleaningParams):
        return clean if clean.record() else None
    if not isinstance(clean, dict):
        raise TypeError(f"clean must be a dict of lazyspheres.clean keywords; got {clean!r}.")
    allowed = set(inspect.signature(clean_function).parameters) - {"signals"}
    per_run = {"confounds", "sample_mask"} & set(clean)
    if per_run:
        raise TypeError(
            f"clean={{...}} cannot hold {sorted(per_run)}: they differ per run. Pass "
            "confounds=[...] / sample_mask=[...] (one per run) to extract_many."
        )
    unknown = sorted(set(clean) - allowed)
    if unknown:
        raise TypeError(
            f"clean got unexpected keyword(s) {unknown}; lazyspheres.clean accepts "
            f"{sorted(allowed - {'confounds', 'sample_mask'})}."
        )
    return CleaningParams.from_options(clean) if clean else None


def dry_run_clean(
    params: CleaningParams | None, n_volumes: int, dtype: str, confounds: bool
) -> set[tuple[str, str]]:
    """Validate cleaning parameters now, and show their data-independent warnings once.

    The tasks report only warnings not seen here, so a batch of 1000 runs does not repeat a
    parameter's DeprecationWarning 1000 times.
    """
    if params is None and not confounds:
        return set()
    from lazyspheres.cleaning.api import clean_with

    rng = np.random.default_rng(0)
    probe = (100.0 + rng.standard_normal((n_volumes, 3))).astype(dtype)
    regressors = rng.standard_normal((n_volumes, 1)) if confounds else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clean_with(probe, params or CleaningParams(), confounds=regressors)
    seen = set()
    for record in caught:
        item = (record.category.__name__, str(record.message))
        if item not in seen:
            seen.add(item)
            warnings.warn(str(record.message), record.category, stacklevel=5)
    return seen


def jsonable_fwhm(fwhm: UserInput) -> JsonValue:
    """``smoothing_fwhm`` as JSON (number, list, "fast" or None)."""
    if fwhm is None or isinstance(fwhm, str) or np.ndim(fwhm) == 0:
        return _jsonable(fwhm)
    return [_jsonable(v) for v in np.asarray(fwhm, dtype=object).ravel()]


def _jsonable(value: object) -> JsonValue:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def seed_coords(
    coords: FloatArray, radii: FloatArray, labels: pd.DataFrame | None
) -> dict[str, SeedCoord]:
    """The store's seed coordinates: x, y, z, radius and the label columns (as strings)."""
    n = coords.shape[0]
    out: dict[str, SeedCoord] = {
        "seed": ("seed", np.arange(n)),
        "x": ("seed", coords[:, 0].astype(np.float64), {"units": "mm"}),
        "y": ("seed", coords[:, 1].astype(np.float64), {"units": "mm"}),
        "z": ("seed", coords[:, 2].astype(np.float64), {"units": "mm"}),
        "radius": ("seed", radii, {"units": "mm", "note": "NaN: nearest voxel only"}),
    }
    if labels is not None:
        for column in labels.columns:
            name = str(column)
            if name in ("x", "y", "z") or name in out:
                continue
            values = labels[column].to_numpy()
            if values.dtype.kind in "USO":
                values = np.array(["" if _missing(v) else str(v) for v in values], dtype=object)
            out[name] = ("seed", values)
    return out


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
