"""Signal cleaning with nilearn 0.12.1's semantics, on numpy, Dask and xarray arrays.

:func:`clean` is the entry point. :func:`clean_args_to_kwargs` and
:func:`check_clean_kwargs` translate a masker's ``clean_args`` / deprecated ``clean__*``
keyword arguments into :func:`clean`'s keywords.

Modules: ``api`` (:func:`clean` and its numpy/Dask/xarray dispatch), ``params`` (eager
validation and the cleaning plan), ``confounds`` / ``confound_files`` (loading confounds),
``sample_mask``, ``filters`` (Butterworth, cosine drift, scrubbing interpolation),
``standardize``, ``kernel`` (the numpy kernel on a block of series), ``lazy`` (Dask graphs),
``args`` (``clean_args``), ``exceptions``.
"""

from __future__ import annotations

from lazyspheres.cleaning.api import clean
from lazyspheres.cleaning.args import CLEAN_ARGS_KEYS, check_clean_kwargs, clean_args_to_kwargs
from lazyspheres.cleaning.confound_files import read_confounds_file
from lazyspheres.cleaning.confounds import prepare_confounds
from lazyspheres.cleaning.exceptions import (
    CleaningError,
    CleaningIndexError,
    CleaningTypeError,
    CleaningValueError,
    ConfoundsFileNotFoundError,
    NonFiniteConfoundsError,
    TimeChunksError,
)
from lazyspheres.cleaning.sample_mask import sanitize_sample_mask

__all__ = [
    "CLEAN_ARGS_KEYS",
    "CleaningError",
    "CleaningIndexError",
    "CleaningTypeError",
    "CleaningValueError",
    "ConfoundsFileNotFoundError",
    "NonFiniteConfoundsError",
    "TimeChunksError",
    "check_clean_kwargs",
    "clean",
    "clean_args_to_kwargs",
    "prepare_confounds",
    "read_confounds_file",
    "sanitize_sample_mask",
]
