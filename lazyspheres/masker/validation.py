"""Validation of the masker's parameters at ``fit``.

nilearn 0.12.1's ``fit`` checks only the seeds, the mask and the cache path; everything else
fails later (inside ``transform``) or never. lazyspheres checks every parameter at ``fit``
(SPEC §3.5), raising the exception type nilearn raises for the same value and keeping its
key phrase, so that a wrong parameter is reported before any data is read.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from joblib import Memory

from lazyspheres._types import FloatArray, UserInput
from lazyspheres.cleaning.args import check_clean_kwargs, clean_args_to_params
from lazyspheres.cleaning.options import CleaningParams
from lazyspheres.cleaning.params import build_plan
from lazyspheres.errors import LazySpheresError, SeedError
from lazyspheres.masker.inputs import check_dtype
from lazyspheres.seeds import as_seed_array, load_seeds
from lazyspheres.smoothing import check_fwhm

if TYPE_CHECKING:
    from lazyspheres.masker.estimator import NiftiSpheresMasker

try:  # the exception nilearn surfaces for bad radii (scikit-learn's parameter validation)
    from sklearn.utils._param_validation import InvalidParameterError as _SklearnParamError
except ImportError:  # pragma: no cover - very old scikit-learn
    _SklearnParamError = ValueError

__all__ = [
    "CheckedParams",
    "ParameterError",
    "check_memory",
    "check_params",
    "checked_seeds",
    "masker_cleaning",
]

_SEED_ERROR = "Seeds must be a list of triplets of coordinates in native space.\n"
# Length of the dummy series used to validate cleaning parameters at fit (long enough for
# scipy's default Butterworth padding; see _check_cleaning).
_VALIDATION_LENGTH = 256


class ParameterError(LazySpheresError, _SklearnParamError):
    """A parameter value out of its range (scikit-learn's InvalidParameterError)."""


class ParameterTypeError(LazySpheresError, TypeError):
    """A parameter of the wrong type."""


class ParameterValueError(LazySpheresError, ValueError):
    """A parameter with an invalid value."""


@dataclass(frozen=True)
class CheckedParams:
    """What ``fit`` derives from the parameters.

    Attributes
    ----------
    seeds_ : list of list
        nilearn's ``seeds_``: each seed as a list (numpy rows via ``tolist``).
    coords : numpy.ndarray
        ``(n, 3)`` float64 seed coordinates.
    labels : pandas.DataFrame
        Seed label columns (empty for plain coordinates).
    clean_kwargs_ : dict
        nilearn's ``clean_kwargs_`` (deprecated ``clean__*`` kwargs without the prefix).
    clean_options : CleaningParams
        The cleaning options ``clean_args`` sets (or the deprecated kwargs, which replace
        it when given); the others at their defaults. The masker's own cleaning parameters
        are laid over them at transform (:func:`masker_cleaning`).
    memory_level : int
        Effective cache level.
    """

    seeds_: list[list[float]]
    coords: FloatArray
    labels: pd.DataFrame
    clean_kwargs_: dict[str, UserInput]
    clean_options: CleaningParams
    memory_level: int


def check_params(masker: NiftiSpheresMasker) -> CheckedParams:
    """Validate every parameter of a NiftiSpheresMasker; return what fit needs.

    Raises
    ------
    SeedError (ValueError)
        Seeds not a list of numeric triplets (nilearn's messages).
    InvalidParameterError (ValueError, TypeError)
        ``radius`` not ``None`` or a float ``>= 0``.
    TypeError
        Booleans, numbers, ``dtype``, ``memory``, ``verbose``, ``clean_args`` of the wrong
        type (nilearn's messages where it has one).
    ValueError
        ``standardize`` not a strategy, filter parameters that cannot work, ``memory_level``
        not an integer, a cache directory whose parent does not exist, deprecated kwargs
        together with ``clean_args``.
    """
    name = type(masker).__name__
    seeds_, coords, labels = checked_seeds(masker.seeds)
    _check_radius(masker.radius)
    _check_flag("allow_overlap", masker.allow_overlap)
    _check_flag("high_variance_confounds", masker.high_variance_confounds)
    _check_flag("reports", masker.reports)
    _check_smoothing(masker.smoothing_fwhm)
    check_dtype(masker.dtype)
    _check_verbose(masker.verbose)
    memory_level = _check_memory_level(masker.memory_level)
    check_memory(masker.memory)
    clean_args = masker.clean_args
    if clean_args is not None and not isinstance(clean_args, Mapping):
        raise ParameterTypeError(
            f"'clean_args' must be a dict of keyword arguments for the cleaning (or None); "
            f"got {type(clean_args).__name__}: {clean_args!r}."
        )
    kwargs = masker.clean_kwargs
    if not isinstance(kwargs, Mapping):
        raise ParameterTypeError(
            "'kwargs' (the deprecated clean__* keyword arguments, e.g. set with "
            f"set_params(kwargs=...)) must be a dict; got {type(kwargs).__name__}: {kwargs!r}. "
            "Use clean_args instead."
        )
    clean_kwargs_ = check_clean_kwargs(kwargs, clean_args, name)
    extra = clean_kwargs_ if kwargs else (clean_args or {})
    clean_options = clean_args_to_params(extra)
    _check_cleaning(masker_cleaning(masker, clean_options))
    return CheckedParams(seeds_, coords, labels, clean_kwargs_, clean_options, memory_level)


def masker_cleaning(masker: NiftiSpheresMasker, clean_options: CleaningParams) -> CleaningParams:
    """The cleaning of a masker: its own parameters laid over the ``clean_args`` options.

    Read from the masker when called (nilearn reads them at transform, so a parameter set
    after ``fit`` applies as it does in nilearn).
    """
    return dataclasses.replace(
        clean_options,
        detrend=masker.detrend,
        standardize=masker.standardize,
        standardize_confounds=masker.standardize_confounds,
        low_pass=masker.low_pass,
        high_pass=masker.high_pass,
        t_r=masker.t_r,
    )


def checked_seeds(seeds: UserInput) -> tuple[list[list[float]], FloatArray, pd.DataFrame]:
    """Validate seeds; return nilearn's ``seeds_``, the coordinates and the labels.

    nilearn accepts any iterable of length-3 items and keeps each as a list. lazyspheres
    also accepts a DataFrame with ``x, y, z`` columns and the named seed sets
    (``"power2011"``, ``"dosenbach2010"``, ``"seitzman2018"``), whose other columns become
    seed labels, and rejects non-numeric or non-finite coordinates and empty lists at fit
    (nilearn fails at transform).
    """
    if isinstance(seeds, str | pd.DataFrame):
        coords, labels = load_seeds(seeds)
        return coords.tolist(), coords, labels
    if not hasattr(seeds, "__iter__"):
        raise SeedError(f"{_SEED_ERROR}Given seed list is of type: {type(seeds)}")
    seeds_ = []
    for i, seed in enumerate(seeds):
        if not hasattr(seed, "__len__"):
            raise SeedError(
                f"{_SEED_ERROR}Seed #{i} is not a valid triplet of coordinates. "
                f"It is of type {type(seed)}."
            )
        row = seed.tolist() if isinstance(seed, np.ndarray) else list(seed)
        if len(row) != 3:
            raise SeedError(f"{_SEED_ERROR}Seed #{i} is of length {len(row)} instead of 3.")
        seeds_.append(row)
    if not seeds_:
        raise SeedError(
            f"{_SEED_ERROR}The seed list is empty: give at least one seed (nilearn would "
            "fail at transform with 'Expected 2D array, got 1D array instead')."
        )
    coords = as_seed_array(seeds_)
    return seeds_, coords, pd.DataFrame(index=pd.RangeIndex(len(seeds_)))


def check_memory(memory: object, verbose: int = 0) -> Memory:
    """Return the joblib Memory a ``memory`` parameter stands for.

    Raises
    ------
    TypeError
        Not None, a path or a joblib.Memory.
    ValueError
        A cache path whose parent directory does not exist.
    """
    if memory is None:
        return Memory(location=None, verbose=verbose)
    if isinstance(memory, Memory):
        return memory
    if isinstance(memory, str | os.PathLike):
        location = os.path.expanduser(os.fspath(memory))
        parent = os.path.dirname(location)
        if parent and not os.path.exists(parent):
            raise ParameterValueError(
                f"Given cache path parent directory doesn't exists, you gave '{parent}'. "
                "Create it, or give an existing directory as 'memory'."
            )
        return Memory(location=location, verbose=verbose)
    raise ParameterTypeError(
        "'memory' argument must be a string or a joblib.Memory object. "
        f"{memory} {type(memory)} was given."
    )


# ---------------------------------------------------------------------------- pieces
def _check_radius(radius: object) -> None:
    ok = radius is None or (
        isinstance(radius, numbers.Real)
        and not isinstance(radius, bool | np.bool_)
        and not np.isnan(float(radius))
        and float(radius) >= 0
    )
    if not ok:
        raise ParameterError(
            "The 'radius' parameter of NiftiSpheresMasker must be a float in the range "
            f"[0.0, inf] or None. Got {radius!r} instead."
        )


def _check_flag(name: str, value: object) -> None:
    """Booleans nilearn only tests for truth: bool, numpy bool, or the integers 0 and 1."""
    if isinstance(value, bool | np.bool_):
        return
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return
    raise ParameterTypeError(f"'{name}' must be of type(s): '<class 'bool'>'.\nGot: '{value!r}'")


def _check_smoothing(fwhm: object) -> None:
    """Check ``smoothing_fwhm``: None, a number, three per-axis numbers, or "fast".

    The smoothing's own rules, without its 0-width warning (nilearn gives it at transform).
    """
    if isinstance(fwhm, bool | np.bool_):
        raise ParameterTypeError(
            f"'smoothing_fwhm' must be a number of mm, three per-axis numbers, 'fast' or None; "
            f"got {fwhm!r}."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_fwhm(fwhm)


def _check_verbose(verbose: object) -> None:
    if isinstance(verbose, numbers.Real) and not np.isnan(float(verbose)):
        return
    raise ParameterTypeError(
        f"'<' not supported between instances of '{type(verbose).__name__}' and 'int': "
        f"'verbose' must be an integer (or bool); got {verbose!r}."
    )


def _check_memory_level(level: object) -> int:
    if isinstance(level, numbers.Integral) and not isinstance(level, bool | np.bool_):
        return int(level)
    raise ParameterValueError(
        "Reference and user memory levels must be both None or both integers. "
        f"'memory_level' must be an integer; got {level!r}."
    )


def _check_cleaning(params: CleaningParams) -> None:
    """Run the cleaning's own parameter checks on a dummy length, without its warnings.

    Checks that need the data (series too short for the filter padding, confounds, sample
    masks) stay at transform.
    """
    padlen: object = params.butterworth_padlen  # not checked yet: any value
    n_time = _VALIDATION_LENGTH
    if isinstance(padlen, numbers.Integral) and not isinstance(padlen, bool):
        n_time = max(n_time, int(padlen) + 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_plan(n_time, np.dtype(np.float64), params)
