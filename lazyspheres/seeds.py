"""Seed coordinates: validation, conversion and the named seed sets.

Seeds are points in the world (mm) space of the images, given as an ``(n, 3)`` array, a list
of triplets, a :class:`pandas.DataFrame` with ``x, y, z`` columns, or the name of a seed set
shipped with lazyspheres:

``"power2011"``
    264 regions of Power et al. (2011), "Functional network organization of the human brain",
    *Neuron* 72(4):665-678, with their consensus network assignment.
``"dosenbach2010"``
    160 regions of Dosenbach et al. (2010), "Prediction of individual brain maturity using
    fMRI", *Science* 329(5997):1358-1361, with region names and networks.
``"seitzman2018"``
    300 regions of Seitzman et al. (2020), "A set of functionally-defined brain regions with
    improved representation of the subcortex and cerebellum", *NeuroImage* 206:116290, with
    networks, anatomical classes and the authors' per-region radius.

The tables live in ``lazyspheres/data/`` (see the README there for columns and provenance).

Errors are :class:`~lazyspheres.errors.SeedError` (a ``ValueError``). Where nilearn's
``NiftiSpheresMasker.fit`` rejects the same input, the message starts with nilearn's text.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Iterable
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lazyspheres.errors import SeedError

if TYPE_CHECKING:
    from lazyspheres._types import UserInput

__all__ = ["NAMED_SEED_SETS", "as_seed_array", "load_seeds", "named_seeds"]

#: Names accepted by :func:`named_seeds` and :func:`load_seeds` (case-insensitive).
NAMED_SEED_SETS: tuple[str, ...] = ("power2011", "dosenbach2010", "seitzman2018")

# nilearn's first line for every seed error; kept verbatim so `match=` patterns carry over.
_SEED_ERROR = "Seeds must be a list of triplets of coordinates in native space.\n"
_COORD_COLUMNS = ("x", "y", "z")


def as_seed_array(seeds: UserInput) -> np.ndarray:
    """Convert seeds to a float64 array of shape ``(n, 3)``.

    Parameters
    ----------
    seeds : array-like of shape (n, 3), iterable of triplets, or pandas.DataFrame
        World (mm) coordinates of the seeds. A DataFrame must have columns ``x``, ``y`` and
        ``z`` (any case); other columns are ignored here (see :func:`load_seeds`). A single
        triplet is *not* accepted as one seed: wrap it in a list, as nilearn requires.

    Returns
    -------
    numpy.ndarray
        A new ``(n, 3)`` float64 array, ``n >= 1``, all values finite.

    Raises
    ------
    SeedError
        If ``seeds`` is not iterable, a seed is not a triplet, a coordinate is not a real
        number or not finite, or there are no seeds. The first three cases carry nilearn
        0.12.1's messages ("Given seed list is of type: ...", "Seed #i is not a valid triplet
        of coordinates. It is of type ...", "Seed #i is of length n instead of 3.").

    Examples
    --------
    >>> as_seed_array([(0, 0, 0), [10.5, -20, 4]])
    array([[  0. ,   0. ,   0. ],
           [ 10.5, -20. ,   4. ]])
    """
    if isinstance(seeds, pd.DataFrame):
        return _coords_from_frame(seeds)
    if isinstance(seeds, np.ndarray) and seeds.ndim == 2 and seeds.shape[1] == 3:
        if seeds.dtype.kind in "iuf":
            return _checked(seeds.astype(np.float64))
    elif (
        isinstance(seeds, str | bytes)
        or not isinstance(seeds, Iterable)
        or (isinstance(seeds, np.ndarray) and seeds.ndim == 0)
    ):
        hint = ""
        if isinstance(seeds, str):
            hint = (
                f"\nA string is not a seed list; named seed sets ({', '.join(NAMED_SEED_SETS)})"
                " are accepted by lazyspheres.load_seeds and the masker."
            )
        raise SeedError(f"{_SEED_ERROR}Given seed list is of type: {type(seeds)}{hint}")

    # Generic path: walk the seeds like nilearn's fit does, so its messages come out the same.
    rows: list[list[float]] = []
    for i, seed in enumerate(seeds):
        if not hasattr(seed, "__len__"):
            raise SeedError(
                f"{_SEED_ERROR}Seed #{i} is not a valid triplet of coordinates. "
                f"It is of type {type(seed)}."
            )
        if isinstance(seed, str | bytes):
            raise SeedError(
                f"{_SEED_ERROR}Seed #{i} is a string ({seed!r}), not a triplet of numbers."
            )
        values = seed.tolist() if isinstance(seed, np.ndarray) else list(seed)
        if len(values) != 3:
            raise SeedError(f"{_SEED_ERROR}Seed #{i} is of length {len(values)} instead of 3.")
        rows.append([_coordinate(value, i, j, seed) for j, value in enumerate(values)])
    return _checked(np.array(rows, dtype=np.float64).reshape(-1, 3))


def _coordinate(value: object, i: int, j: int, seed: object) -> float:
    """Return one coordinate as a float, or raise a SeedError naming seed and axis."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise SeedError(
            f"{_SEED_ERROR}Seed #{i} has a non-numeric {_COORD_COLUMNS[j]} coordinate "
            f"{value!r} (type {type(value).__name__}) in {seed!r}; coordinates must be real "
            "numbers in mm."
        )
    return float(value)


def _checked(coords: np.ndarray) -> np.ndarray:
    """Reject an empty seed list and non-finite coordinates."""
    if coords.shape[0] == 0:
        raise SeedError(f"{_SEED_ERROR}The seed list is empty: give at least one seed.")
    bad = ~np.isfinite(coords)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise SeedError(
            f"{_SEED_ERROR}Seed #{i} has a non-finite {_COORD_COLUMNS[j]} coordinate: "
            f"{coords[i].tolist()}; coordinates must be finite numbers in mm "
            f"({int(bad.any(axis=1).sum())} seed(s) affected)."
        )
    return coords


def _xyz_columns(frame: pd.DataFrame) -> list[str]:
    """Find the x, y, z columns of a DataFrame (case-insensitive, exactly one each)."""
    found = []
    for axis in _COORD_COLUMNS:
        matches = [c for c in frame.columns if isinstance(c, str) and c.lower() == axis]
        if len(matches) != 1:
            problem = "no" if not matches else f"several ({matches})"
            raise SeedError(
                f"{_SEED_ERROR}A DataFrame of seeds needs one column each named x, y and z; "
                f"found {problem} column for {axis!r} among {list(frame.columns)}."
            )
        found.append(matches[0])
    return found


def _coords_from_frame(frame: pd.DataFrame) -> np.ndarray:
    columns = _xyz_columns(frame)
    for column in columns:
        if frame[column].dtype.kind not in "iuf":
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = np.flatnonzero(values.isna() & frame[column].notna())
            if bad.size:
                row = int(bad[0])
                raise SeedError(
                    f"{_SEED_ERROR}Seed #{row} has a non-numeric {column} coordinate "
                    f"{frame[column].iloc[row]!r}; column {column!r} must hold numbers in mm."
                )
    return _checked(frame[columns].to_numpy(dtype=np.float64, na_value=np.nan).copy())


@functools.cache
def _read_named(name: str) -> pd.DataFrame:
    with (
        resources.files("lazyspheres").joinpath("data").joinpath(f"{name}.csv").open("r") as handle
    ):
        frame = pd.read_csv(handle)
    return frame.astype(dict.fromkeys(_COORD_COLUMNS, np.float64))


def _normalise_name(name: str) -> str | None:
    key = name.strip().lower().replace("_", "").replace("-", "")
    return key if key in NAMED_SEED_SETS else None


def named_seeds(name: str) -> pd.DataFrame:
    """Return a named seed set shipped with lazyspheres.

    Parameters
    ----------
    name : {"power2011", "dosenbach2010", "seitzman2018"}
        Case-insensitive; underscores and hyphens are ignored (``"Power_2011"`` works).

    Returns
    -------
    pandas.DataFrame
        A fresh copy, one row per region in publication order (index 0..n-1), with float64
        columns ``x, y, z`` (MNI, mm) and the set's labels: ``roi`` (1-based region number)
        plus ``network_id, network`` (Power), ``region, label, network`` (Dosenbach), or
        ``radius_mm, network_id, network, region`` (Seitzman).

    Raises
    ------
    SeedError
        If the name is not one of the shipped sets.

    Examples
    --------
    >>> power = named_seeds("power2011")
    >>> power.shape
    (264, 6)
    >>> power.loc[0, ["x", "y", "z"]].tolist()
    [-25.0, -98.0, -12.0]
    """
    key = _normalise_name(name) if isinstance(name, str) else None
    if key is None:
        raise SeedError(
            f"Unknown seed set {name!r}. Named seed sets are: {', '.join(NAMED_SEED_SETS)} "
            "(case-insensitive)."
        )
    return _read_named(key).copy()


def load_seeds(seeds: UserInput) -> tuple[np.ndarray, pd.DataFrame]:
    """Load seeds in any accepted form, with their labels.

    Parameters
    ----------
    seeds : str, pandas.DataFrame, array-like of shape (n, 3) or iterable of triplets
        A named set (see :func:`named_seeds`), a DataFrame with ``x, y, z`` columns (other
        columns are kept as labels), or anything :func:`as_seed_array` accepts.

    Returns
    -------
    coords : numpy.ndarray
        ``(n, 3)`` float64 world coordinates (mm).
    labels : pandas.DataFrame
        Index ``0..n-1``; every column other than x, y, z (for example ``roi``, ``label``,
        ``network``). A DataFrame's named index is kept as a column. No columns for plain
        arrays and lists.

    Raises
    ------
    SeedError
        For unknown names and invalid coordinates (see :func:`as_seed_array`).

    Examples
    --------
    >>> coords, labels = load_seeds("dosenbach2010")
    >>> coords.shape, list(labels.columns)
    ((160, 3), ['roi', 'region', 'label', 'network'])
    """
    if isinstance(seeds, str):
        if _normalise_name(seeds) is None:
            raise SeedError(
                f"{_SEED_ERROR}Given seed list is the string {seeds!r}, which is not a named "
                f"seed set. Named seed sets are: {', '.join(NAMED_SEED_SETS)}."
            )
        seeds = named_seeds(seeds)
    if isinstance(seeds, pd.DataFrame):
        coords = _coords_from_frame(seeds)
        frame = seeds
        if any(name is not None for name in frame.index.names):
            frame = frame.reset_index()
        labels = frame.drop(columns=_xyz_columns(frame)).reset_index(drop=True)
        return coords, labels
    coords = as_seed_array(seeds)
    return coords, pd.DataFrame(index=pd.RangeIndex(coords.shape[0]))
