"""Loading and validating confounds for :func:`lazyspheres.clean`.

Accepted, as in nilearn 0.12.1's ``signal.clean``: a 2-D or 1-D ndarray, a pandas DataFrame,
a path to a CSV/TSV/whitespace text file, or a list/tuple of those (stacked column-wise in
order). lazyspheres also accepts Dask arrays (kept lazy: their shape must be known), xarray
DataArrays, pandas Series, and the ``(DataFrame, sample_mask)`` pair returned by nilearn's
``interfaces.fmriprep.load_confounds``.

Files are read by :mod:`lazyspheres.cleaning.confound_files`.

Differences from nilearn (documented, tested):

- non-finite cells (fMRIPrep writes ``n/a`` in the first row of derivative columns) in the
  volumes that are kept raise a ValueError naming the column and the row, or are filled when
  ``fill_na`` is given (``"zero"``, ``"mean"`` of the column's finite values, or
  ``"interpolate"``: linear in time, edges held at the nearest finite value). nilearn fails in
  its QR step with "array must not contain infs or NaNs" (kept in our message);
- file-reading differences are listed in :mod:`lazyspheres.cleaning.confound_files`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from lazyspheres._types import UserInput
from lazyspheres.cleaning._kinds import is_dask_array, is_dataarray, is_dataframe, is_series
from lazyspheres.cleaning.confound_files import read_confounds_file
from lazyspheres.cleaning.exceptions import (
    CleaningTypeError,
    CleaningValueError,
    NonFiniteConfoundsError,
)

if TYPE_CHECKING:
    import dask.array as da
    import pandas as pd

__all__ = [
    "FILL_NA_OPTIONS",
    "ConfoundSet",
    "check_finite_confounds",
    "ensure_float_dtype",
    "fill_non_finite",
    "prepare_confounds",
]

FILL_NA_OPTIONS = (None, "zero", "mean", "interpolate")
_UNSET = object()


def ensure_float_dtype(dtype: np.dtype) -> np.dtype:
    """Return nilearn's working float dtype for ``dtype``.

    Floats are kept; other dtypes become float64 when 8 bytes wide, float32 otherwise.

    Parameters
    ----------
    dtype : numpy.dtype
        Input dtype.

    Returns
    -------
    numpy.dtype
        The float dtype cleaning works in.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype
    if dtype.kind == "c":
        raise CleaningTypeError(f"Complex signals or confounds are not supported (dtype {dtype}).")
    return np.dtype(np.float64) if dtype.itemsize == 8 else np.dtype(np.float32)


@dataclass
class ConfoundSet:
    """Confounds stacked column-wise, with provenance for error messages.

    Attributes
    ----------
    values : ndarray or dask array, shape (n_time, n_columns)
        The stacked confounds in their working float dtype (lazy if any input was lazy).
    labels : list of str
        One human-readable description per column (source and name).
    header_lines : list of int or None
        Per column, the number of header lines of its file (to report file line numbers).
    sample_mask : object
        The sample mask of a ``load_confounds`` pair, or an internal "unset" marker.
    """

    values: np.ndarray | da.Array
    labels: list[str]
    header_lines: list[int | None] = field(default_factory=list)
    sample_mask: object = _UNSET  # validated with the sample_mask argument

    @property
    def is_lazy(self) -> bool:
        """Whether the confound values are a Dask array."""
        return not isinstance(self.values, np.ndarray)

    @property
    def has_pair_mask(self) -> bool:
        """Whether the confounds came as a ``(DataFrame, sample_mask)`` pair."""
        return self.sample_mask is not _UNSET


def _frame_values(frame: pd.DataFrame) -> np.ndarray:
    values = frame.to_numpy()
    if values.dtype.kind == "O":  # nullable / extension dtypes: pd.NA -> NaN
        try:
            values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise CleaningTypeError(
                f"Confounds DataFrame has non-numeric columns: {list(frame.columns)}"
            ) from exc
    return values


def _check_length(n_rows: int, n_time: int, source: str) -> None:
    if n_rows != n_time:
        raise CleaningValueError(
            "Confound signal has an incorrect length. "
            f"Signal length: {n_time}; confound length: {n_rows}. (in {source})"
        )


def _load_item(
    item: UserInput, n_time: int, position: str
) -> tuple[np.ndarray | da.Array, list[str], int | None]:
    """Load one confound item as a 2-D array (numpy or Dask) plus column labels."""
    names: list[object] | None = None  # column names, of any hashable type
    header: int | None = None
    if is_dataframe(item):
        source = f"DataFrame{position}"
        names = list(item.columns)
        values: np.ndarray | da.Array = _frame_values(item)
    elif is_series(item):
        source = f"Series{position}"
        names = [item.name]
        values = _frame_values(item.to_frame())
    elif isinstance(item, (str, os.PathLike)):
        source = f"confounds file '{os.fspath(item)}'"
        values, file_names = read_confounds_file(item)
        names = None if file_names is None else list(file_names)
        header = 1 if names is not None else 0
    elif isinstance(item, np.ndarray) or is_dask_array(item) or is_dataarray(item):
        source = f"confounds array{position}"
        if is_dataarray(item):
            other = [d for d in item.dims if d != "time"]
            if other and other[0] in item.coords and item.ndim == 2:
                names = [str(v) for v in item.coords[other[0]].values]
            if item.ndim == 2 and item.dims[0] != "time" and "time" in item.dims:
                item = item.transpose("time", ...)
            item = item.data
        values = item
        if values.ndim == 1:
            values = values[:, None]
        elif values.ndim != 2:
            raise CleaningValueError(
                f"confound array has an incorrect number of dimensions: {values.ndim}"
            )
        if any(np.isnan(s) for s in values.shape):
            raise CleaningValueError(
                f"The shape of {source} is unknown {values.shape}; lazily computed confounds "
                "must have a known shape (call .compute_chunk_sizes())."
            )
    else:
        raise CleaningTypeError(f"confound has an unhandled type: {item.__class__}")
    _check_length(values.shape[0], n_time, source)
    if names is None:
        labels = [f"column {j} of {source}" for j in range(values.shape[1])]
    else:
        labels = [f"column '{name}' (column {j} of {source})" for j, name in enumerate(names)]
    return values, labels, header


def _looks_like_pair(confounds: object, n_time: int) -> bool:
    """Whether ``confounds`` is load_confounds' (DataFrame, sample_mask or None) pair."""
    if not (isinstance(confounds, tuple) and len(confounds) == 2):
        return False
    frame, mask = confounds
    if not is_dataframe(frame):
        return False
    if mask is None:
        return True
    if not (isinstance(mask, np.ndarray) and mask.ndim == 1 and mask.dtype.kind in "iu"):
        return False
    # load_confounds returns strictly increasing in-range indices; a 0/1 spike regressor is
    # not that, so it stays a confound column.
    return bool(
        mask.size and mask.min() >= 0 and mask.max() < n_time and np.all(np.diff(mask) > 0)
    )


def prepare_confounds(
    confounds: UserInput, n_time: int, *, fill_na: str | None = None
) -> ConfoundSet | None:
    """Load, validate and stack ``confounds`` for a run of ``n_time`` volumes.

    Parameters
    ----------
    confounds : None, ndarray, DataFrame, str, path, Dask array, DataArray, list or tuple
        The confounds (see the module docstring).
    n_time : int
        Number of volumes of the signals.
    fill_na : {None, "zero", "mean", "interpolate"}
        How to replace non-finite cells (None keeps them; they are rejected later if they
        fall in kept volumes).

    Returns
    -------
    ConfoundSet or None
        None when ``confounds`` is None.

    Raises
    ------
    TypeError
        Unsupported type ("confounds keyword has an unhandled type" / "confound has an
        unhandled type").
    ValueError
        Wrong length ("Confound signal has an incorrect length"), wrong dimensionality, an
        empty list, or an unknown ``fill_na``.
    FileNotFoundError
        A confounds file does not exist.
    """
    if fill_na not in FILL_NA_OPTIONS:
        raise CleaningValueError(f"fill_na must be one of {FILL_NA_OPTIONS}; got {fill_na!r}.")
    if confounds is None:
        return None
    pair_mask: object = _UNSET
    if _looks_like_pair(confounds, n_time):
        confounds, pair_mask = confounds
    if isinstance(confounds, (str, os.PathLike)) or not isinstance(confounds, (list, tuple)):
        if not (
            isinstance(confounds, (str, os.PathLike, np.ndarray))
            or is_dataframe(confounds)
            or is_series(confounds)
            or is_dask_array(confounds)
            or is_dataarray(confounds)
        ):
            raise CleaningTypeError(
                f"confounds keyword has an unhandled type: {confounds.__class__}"
            )
        items = [confounds]
    else:
        items = list(confounds)
        if not items:
            raise CleaningValueError(
                "confounds is an empty list (need at least one array to concatenate); pass "
                "None for no confounds."
            )
    pieces, labels, headers = [], [], []
    for i, item in enumerate(items):
        position = f" #{i} of the confounds list" if len(items) > 1 else ""
        values, item_labels, header = _load_item(item, n_time, position)
        pieces.append(values)
        labels += item_labels
        headers += [header] * values.shape[1]
    dtype = ensure_float_dtype(np.result_type(*[piece.dtype for piece in pieces]))
    if any(not isinstance(piece, np.ndarray) for piece in pieces):
        import dask.array as da

        lazy = da.concatenate(
            [da.asarray(piece).astype(dtype) for piece in pieces], axis=1
        ).rechunk(-1)
        if fill_na is not None:
            lazy = da.map_blocks(fill_non_finite, lazy, fill_na, labels, dtype=dtype)
        return ConfoundSet(lazy, labels, headers, pair_mask)
    stacked = np.hstack(pieces).astype(dtype, copy=False)
    if stacked is pieces[0]:
        stacked = stacked.copy()
    if fill_na is not None:
        stacked = fill_non_finite(stacked, fill_na, labels)
    return ConfoundSet(stacked, labels, headers, pair_mask)


def fill_non_finite(values: np.ndarray, how: str, labels: list[str]) -> np.ndarray:
    """Replace non-finite cells of each column of ``values``.

    Parameters
    ----------
    values : ndarray, shape (n_time, n_columns)
        Confounds (not modified).
    how : {"zero", "mean", "interpolate"}
        ``"zero"``: 0; ``"mean"``: the mean of the column's finite cells; ``"interpolate"``:
        linear interpolation in time between finite cells, edges held at the nearest one.
    labels : list of str
        Column descriptions, for the error message.

    Returns
    -------
    ndarray
        A filled copy (same dtype).

    Raises
    ------
    ValueError
        A column has no finite cell and ``how`` is ``"mean"`` or ``"interpolate"``.
    """
    values = np.array(values, copy=True)
    bad = ~np.isfinite(values)
    for j in np.flatnonzero(bad.any(axis=0)):
        column, missing = values[:, j], bad[:, j]
        if how == "zero":
            column[missing] = 0
            continue
        if missing.all():
            raise CleaningValueError(
                f"Cannot fill the non-finite cells of confound {labels[j]} with "
                f"fill_na={how!r}: the column has no finite value."
            )
        good = np.flatnonzero(~missing)
        if how == "mean":
            column[missing] = column[good].mean()
        else:
            column[missing] = np.interp(np.flatnonzero(missing), good, column[good])
    return values


def check_finite_confounds(
    values: np.ndarray,
    labels: list[str],
    rows: np.ndarray | None,
    header_lines: list[int | None] | None = None,
) -> None:
    """Raise a clear ValueError if kept rows of ``values`` hold NaN or inf.

    Parameters
    ----------
    values : ndarray, shape (n_time, n_columns)
        Confounds.
    labels : list of str
        Column descriptions.
    rows : ndarray of int or None
        The rows (volumes) that are used; None for all.
    header_lines : list of (int or None), optional
        Per column, header lines of its source file, to report the file line.

    Raises
    ------
    ValueError
        Naming the first offending column and row, with nilearn's key phrase "array must
        not contain infs or NaNs".
    """
    used = values if rows is None else values[np.unique(rows)]
    bad = ~np.isfinite(used)
    if not bad.any():
        return
    row_ids = np.arange(values.shape[0]) if rows is None else np.unique(rows)
    cols = np.flatnonzero(bad.any(axis=0))
    j = int(cols[0])
    row = int(row_ids[np.flatnonzero(bad[:, j])[0]])
    where = f"row {row} (volume {row})"
    line = header_lines[j] if header_lines else None
    if line is not None:
        where += f", line {row + 1 + line} of the file"
    raise NonFiniteConfoundsError(
        f"Confounds contain non-finite values (n/a, NaN or inf) in volumes that are kept: "
        f"{labels[j]} at {where}; {int(bad.sum())} cell(s) in {len(cols)} column(s): "
        f"{[labels[c] for c in cols[:5]]}{' ...' if len(cols) > 5 else ''}. Regression "
        "would fail (array must not contain infs or NaNs). Fill them with "
        "fill_na='zero', 'mean' or 'interpolate', or censor those volumes with sample_mask."
    )
