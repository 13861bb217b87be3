"""Batch parameters: validation, the JSON the store records, and the seed coordinates.

The parameters written to a store's ``parameters`` attribute are what a resumed batch must
repeat exactly (:class:`~lazyspheres.errors.StoreMismatchError` names any difference).
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np

from lazyspheres.batch.tasks import BatchConfig
from lazyspheres.cleaning.options import CleaningParams

__all__ = ["check_clean", "dry_run_clean", "seed_coords", "split_mask", "store_parameters"]


def split_mask(mask_img: Any) -> tuple[Any, Any]:
    """``(shared mask, per-run masks)``: a list, dict or "bids" is per run."""
    if mask_img is None:
        return None, None
    if isinstance(mask_img, (list, tuple, dict)) or (
        isinstance(mask_img, str) and mask_img == "bids"
    ):
        return None, mask_img
    return mask_img, None


def check_clean(clean: dict[str, Any] | CleaningParams | None) -> CleaningParams | None:
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
            warnings.warn(str(record.message), record.category, stacklevel=3)
    return seen


def store_parameters(
    radius: Any,
    smoothing_fwhm: Any,
    config: BatchConfig,
    confounds: Any,
    sample_mask: Any,
    mask_img: Any,
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    """Every parameter a batch's results depend on, JSON-friendly (the store's record)."""
    from lazyspheres.batch.reading import file_fingerprint

    if isinstance(mask_img, (list, tuple, dict)) or mask_img == "bids":
        mask = "per-run" if mask_img != "bids" else "bids"
    else:
        mask = file_fingerprint(config.mask, options)
    clean_record = config.clean.record() if config.clean else {}
    return {
        "radius": _radius_parameter(radius, config.radii),
        "allow_overlap": config.allow_overlap,
        "on_empty": config.on_empty,
        "mask_img": mask,
        "clean": {k: _jsonable(v) for k, v in clean_record.items()},
        "confounds": None if confounds is None else ("bids" if confounds == "bids" else "per-run"),
        "confound_columns": list(config.confound_columns or ()) or None,
        "sample_mask": None if sample_mask is None else "per-run",
        "smoothing_fwhm": jsonable_fwhm(smoothing_fwhm),
    }


def _radius_parameter(radius: Any, radii: np.ndarray) -> Any:
    if radius is None or np.ndim(radius) == 0:
        return None if radius is None else float(radius)
    return [None if np.isnan(r) else float(r) for r in radii]


def jsonable_fwhm(fwhm: Any) -> Any:
    """``smoothing_fwhm`` as JSON (number, list, "fast" or None)."""
    if fwhm is None or isinstance(fwhm, str) or np.ndim(fwhm) == 0:
        return _jsonable(fwhm)
    return [_jsonable(v) for v in np.asarray(fwhm, dtype=object).ravel()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def seed_coords(coords: np.ndarray, radii: np.ndarray, labels: Any) -> dict[str, Any]:
    """The store's seed coordinates: x, y, z, radius and the label columns (as strings)."""
    n = coords.shape[0]
    out: dict[str, Any] = {
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


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
