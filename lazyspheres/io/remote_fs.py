"""fsspec filesystems, object fingerprints and consistency checks for remote sources.

The base of the remote modules: :mod:`lazyspheres.io.remote_files` (file objects) and
:mod:`lazyspheres.io.remote` (streams and range reads) both build on it, and it imports
neither, so the three form no import cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lazyspheres.errors import SourceChangedError
from lazyspheres.io.remote_errors import translated_errors

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from lazyspheres._types import StorageOptions
    from lazyspheres.io._types import OptionsLike
    from lazyspheres.io.sources import ByteSource

__all__ = [
    "ObjectStat",
    "check_fingerprint",
    "ensure_unchanged",
    "filesystem",
    "fingerprint",
    "stat",
]


# ---------------------------------------------------------------------------- filesystem
def filesystem(location: str, storage_options: OptionsLike = ()) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and path of a URL (chained URLs allowed).

    ``storage_options`` may be a dict or the frozen ``(key, value)`` pairs of a
    :class:`~lazyspheres.io.sources.ByteSource`. fsspec caches filesystem instances, so
    calling this per task is cheap.
    """
    import fsspec

    options = dict(storage_options or {})
    try:
        return fsspec.core.url_to_fs(location, **options)
    except ImportError as error:
        raise ImportError(
            f"{location}: {error}. Install the cloud extras: pip install 'lazyspheres[cloud]'."
        ) from error


def fingerprint(info: Mapping[str, object]) -> str:
    """Identify one version of an object from fsspec's ``info`` (size + ETag/mtime...)."""
    tag = None
    for key in ("ETag", "etag", "generation", "md5Hash", "mtime", "LastModified", "created"):
        if info.get(key) is not None:
            tag = info[key]
            break
    return f"size={info.get('size')};tag={tag}"


@dataclass(frozen=True)
class ObjectStat:
    """What opening a URL needs of its object: its size and the fingerprint of its version."""

    size: int | None
    fingerprint: str


def stat(location: str, storage_options: StorageOptions | None = None) -> ObjectStat:
    """The size and fingerprint of a URL's object (``fs.info``), with errors translated.

    A missing object raises ``FileNotFoundError("File not found: ...")``, as does a prefix.
    """
    fs, path = filesystem(location, storage_options)
    with translated_errors(location, storage_options):
        info = fs.info(path)
    if info.get("type") == "directory":
        raise FileNotFoundError(
            f"File not found: '{location}' is a directory (prefix), not an image file."
        )
    size = info.get("size")
    return ObjectStat(None if size is None else int(size), fingerprint(info))


# ---------------------------------------------------------------------------- consistency
def ensure_unchanged(source: ByteSource) -> None:
    """Raise :class:`SourceChangedError` unless the object still has its fingerprint."""
    fs, path = filesystem(source.location, source.storage_options)
    with translated_errors(source.location, source.storage_options, opened=True):
        fs.invalidate_cache(path)
        info = fs.info(path)
    check_fingerprint(source, info)


def check_fingerprint(source: ByteSource, info: Mapping[str, object]) -> None:
    """Raise :class:`SourceChangedError` unless ``info`` has the source's fingerprint."""
    now = fingerprint(info)
    if now != source.fingerprint:
        raise SourceChangedError(
            f"{source.location} changed after it was opened (when opened: "
            f"{source.fingerprint}; now: {now}). Reading on would mix two versions of the "
            "object; open it again to read the new version."
        )
