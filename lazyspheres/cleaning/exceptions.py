"""Exceptions raised by :mod:`lazyspheres.cleaning`.

Following :mod:`lazyspheres.errors`, each derives from
:class:`~lazyspheres.errors.LazySpheresError` *and* from the builtin exception nilearn raises
for the same input (ValueError, TypeError, IndexError, FileNotFoundError), so code written
against nilearn's ``signal.clean`` keeps catching them and ``pytest.raises(..., match=...)``
tests written for nilearn keep passing (nilearn's key phrases are kept in the messages).
"""

from __future__ import annotations

from lazyspheres.errors import LazySpheresError

__all__ = [
    "CleaningError",
    "CleaningIndexError",
    "CleaningTypeError",
    "CleaningValueError",
    "ConfoundsFileNotFoundError",
    "NonFiniteConfoundsError",
    "TimeChunksError",
]


class CleaningError(LazySpheresError):
    """Base class of the cleaning errors."""


class CleaningValueError(CleaningError, ValueError):
    """A cleaning parameter, confound or sample mask has an invalid value."""


class CleaningTypeError(CleaningError, TypeError):
    """A cleaning parameter, confound or sample mask has an unsupported type."""


class CleaningIndexError(CleaningError, IndexError):
    """A sample mask refers to volumes that do not exist."""


class ConfoundsFileNotFoundError(CleaningError, FileNotFoundError):
    """A confounds file does not exist."""


class NonFiniteConfoundsError(CleaningValueError):
    """Confounds hold NaN/inf (e.g. fMRIPrep ``n/a``) in volumes that are kept."""


class TimeChunksError(CleaningValueError):
    """Dask signals whose time axis is split into several chunks."""
