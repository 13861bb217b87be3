"""Checks of a batch's per-run inputs made before any image is read.

A batch of 300 runs should not read 300 images to learn that every confounds table has
fMRIPrep's ``n/a`` first row. Once the runs' headers are probed (their lengths known), the
confounds of every run are read, their columns selected and checked here: missing files,
unmatched column patterns, wrong lengths and non-finite cells in kept volumes. Every problem
is one short line, and the error ends with what to do next.

Messages name Python keywords (``clean={'fill_na': 'zero'}``); the command line translates
them to its flags (:mod:`lazyspheres.cli.messages`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from lazyspheres._types import IntArray, UserInput
from lazyspheres.batch.input_errors import BatchInputError, MissingInputsError

if TYPE_CHECKING:
    from lazyspheres.batch.params import BatchParams
    from lazyspheres.batch.runs import RunSpec
    from lazyspheres.cleaning.confounds import ConfoundSet

__all__ = ["BatchInputError", "MissingInputsError", "check_confounds"]

#: The advice line for non-finite confound cells (the CLI turns it into ``--fill-na``).
FILL_NA_ADVICE = (
    "Fill the n/a cells with clean={'fill_na': 'zero'} (or 'mean', 'interpolate'), or "
    "censor those volumes with sample_mask, and call extract_many again."
)


def check_confounds(
    runs: list[RunSpec], n_volumes: list[int | None], params: BatchParams, fill_na: str | None
) -> None:
    """Check each run's files exist, and its confounds against its length (header-probed).

    Parameters
    ----------
    runs : list of RunSpec
        The runs.
    n_volumes : list of int or None
        Each run's length (None: its header could not be read; it fails on its own).
    params : BatchParams
        For ``confound_columns`` and storage options.
    fill_na : str or None
        The ``clean`` fill rule (None: non-finite cells in kept volumes are problems).

    Raises
    ------
    BatchInputError
        Listing every problem found.
    """
    from lazyspheres.batch.tasks import select_confounds
    from lazyspheres.cleaning.confounds import prepare_confounds

    problems: list[str] = []
    has_na = False
    for run, n in zip(runs, n_volumes, strict=True):
        missing = [
            f"{run.run_id}: {what} file not found: {os.fspath(value)}"
            for what, value in (("confounds", run.confounds), ("mask", run.mask))
            if _missing_local_file(value)
        ]
        problems += missing
        if run.confounds is None or n is None or missing:
            continue
        try:
            table = select_confounds(run.confounds, params)
            loaded = prepare_confounds(table, n)
        except (OSError, ValueError, TypeError) as error:
            problems.append(f"{run.run_id}: {_first_line(error)}")
            continue
        if loaded is None or fill_na is not None or loaded.is_lazy:
            continue
        values = np.asarray(loaded.values)
        rows = _kept_rows(run.sample_mask, loaded, n)
        if rows is None:
            continue
        bad = ~np.isfinite(values[rows])
        if bad.any():
            has_na = True
            columns = np.flatnonzero(bad.any(axis=0))
            volumes = np.unique(rows[np.flatnonzero(bad.any(axis=1))])
            names = [_column_name(loaded.labels[j]) for j in columns[:3]]
            problems.append(
                f"{run.run_id}: n/a in {len(columns)} confound column(s) "
                f"({', '.join(names)}{', ...' if len(columns) > 3 else ''}) at volume(s) "
                f"{_ranges(volumes)}"
            )
    if problems:
        advice = FILL_NA_ADVICE if has_na else "Fix them and call extract_many again."
        raise BatchInputError(problems, advice)


def _missing_local_file(value: UserInput) -> bool:
    if not isinstance(value, (str, os.PathLike)):
        return False
    text = os.fspath(value)
    if "://" in text and not text.startswith("file://"):
        return False  # remote: its read reports it
    return not os.path.exists(text.removeprefix("file://"))


def _kept_rows(sample_mask: UserInput, loaded: ConfoundSet, n: int) -> IntArray | None:
    """Indices of the volumes kept (None when the sample mask is not plain: clean checks)."""
    mask = sample_mask
    if loaded.has_pair_mask:
        mask = loaded.sample_mask
    if mask is None:
        return np.arange(n)
    try:
        values = np.asarray(mask)
        if values.dtype == bool and values.shape == (n,):
            return np.flatnonzero(values)
        if values.ndim == 1 and values.dtype.kind in "iu":
            return np.unique(values[(values >= 0) & (values < n)])
    except (TypeError, ValueError):
        pass
    return None


def _column_name(label: str) -> str:
    # prepare_confounds labels read "column 'csf' (column 2 of confounds file '...')"
    if label.startswith("column '") and "' (" in label:
        return label[len("column '") : label.index("' (")]
    return label


def _ranges(values: IntArray) -> str:
    """``[0, 1, 2, 7]`` → ``"0-2, 7"`` (at most 5 ranges)."""
    spans: list[str] = []
    start = prev = int(values[0])
    for value in [int(v) for v in values[1:]] + [None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ", ".join(spans[:5]) + (", ..." if len(spans) > 5 else "")


def _first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error's message, at most ``limit`` characters."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[: limit - 4] + " ..."
