"""Exception and warning classes raised by lazyspheres.

Every error derives from :class:`LazySpheresError` *and* from the builtin exception a user
would naturally catch (``ValueError`` for bad values, ``OSError`` for unreadable files,
``TypeError`` for wrong dimensionality, as nilearn does), so ``except ValueError`` keeps
working for code written against nilearn.

Messages say what is wrong, with the offending value and where, what was expected, and how
to fix it. Where nilearn raises for the same input, its key phrase is kept in the message.
"""

from __future__ import annotations

__all__ = [
    "DimensionError",
    "EmptySphereError",
    "HeaderRepairWarning",
    "ImageFormatError",
    "IncompleteStoreError",
    "LazySpheresError",
    "LazySpheresWarning",
    "OverlapError",
    "RemoteReadError",
    "SeedError",
    "SourceChangedError",
    "StoreBusyError",
    "StoreMismatchError",
    "TruncatedImageError",
]


class LazySpheresError(Exception):
    """Base class of every error raised by lazyspheres."""


class SeedError(LazySpheresError, ValueError):
    """Seeds are missing, of the wrong shape, or not numeric."""


class EmptySphereError(LazySpheresError, ValueError):
    """At least one sphere contains no voxel (after masking)."""


class OverlapError(LazySpheresError, ValueError):
    """Spheres share voxels while ``allow_overlap=False``."""


class ImageFormatError(LazySpheresError, ValueError):
    """The input is not a NIfTI image lazyspheres can read (bad magic, header, dtype)."""


class TruncatedImageError(LazySpheresError, OSError):
    """The image file (or compressed stream) ends before the data the header promises."""


class SourceChangedError(LazySpheresError, OSError):
    """The file or object changed (or vanished) after it was opened: its bytes cannot be trusted.

    Raised when a stored object's size or ETag/mtime no longer matches the fingerprint taken
    when the image was opened, so reads would mix two versions.
    """


class RemoteReadError(LazySpheresError, OSError):
    """Bytes of a remote object could not be read, even after retries.

    A network fault outlasted the retries, or the connection itself was refused (an
    untrusted TLS certificate, for example).

    The message names the object, the byte range and the fault.
    """


class DimensionError(LazySpheresError, TypeError):
    """The image has the wrong number of dimensions.

    Subclasses ``TypeError`` like nilearn's ``DimensionError``, and its message starts with
    nilearn's key phrase "Input data has incompatible dimensionality".
    """

    def __init__(self, file_dimension: int, required_dimension: int, detail: str = "") -> None:
        self.file_dimension = file_dimension
        self.required_dimension = required_dimension
        message = (
            "Input data has incompatible dimensionality: "
            f"Expected dimension is {required_dimension}D and you provided a "
            f"{file_dimension}D image."
        )
        if detail:
            message = f"{message} {detail}"
        super().__init__(message)


class StoreMismatchError(LazySpheresError, ValueError):
    """A result store was written with other parameters, seeds or inputs."""


class IncompleteStoreError(LazySpheresError, ValueError):
    """A result store is partial (interrupted) and was opened as if complete."""


class LazySpheresWarning(UserWarning):
    """Base class of warnings emitted by lazyspheres itself (not nilearn-compatible ones)."""


class HeaderRepairWarning(LazySpheresWarning):
    """A NIfTI header field was invalid and was repaired the way nibabel repairs it.

    The message names the file, the field, the stored value and the value used instead, so
    the file can be fixed at its source (``nib.save(nib.load(path), path)`` rewrites it).
    """


class StoreBusyError(LazySpheresError, OSError):
    """Another process is writing the same result store (one writer per store).

    An ``OSError`` like the operating system's "resource busy"; the message names the store,
    the process writing it, and how to continue (resume once it has finished).
    """
