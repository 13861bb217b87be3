"""Byte sources: local paths, fsspec URLs and open file objects, behind one picklable handle.

A :class:`ByteSource` names where bytes come from and how to open them; it never keeps an
open handle (except when the user handed us a file object, which cannot travel to another
process anyway), so it can ride inside a Dask graph to any worker.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from lazyspheres._types import StorageOptions
from lazyspheres.io._types import FrozenOptions
from lazyspheres.io.binary import BinaryStream

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["ByteSource", "resolve_source"]

_GZIP_MAGIC = b"\x1f\x8b"


def _freeze(options: StorageOptions | None) -> FrozenOptions:
    return tuple(sorted((options or {}).items()))


@dataclass(frozen=True)
class ByteSource:
    """A readable, picklable reference to the bytes of one file.

    Attributes
    ----------
    location : str
        Absolute local path, or an fsspec URL (``s3://…``, ``https://…``, ``memory://…``).
    is_local : bool
        True for a plain local file (read with the OS, memory-mappable).
    compression : {"gzip", None}
        Detected from the first bytes, not from the name.
    size : int or None
        Size in bytes of the stored object (compressed size for gzip).
    fingerprint : str
        Identifies the version of the bytes (size + mtime, or the object store's ETag).
    storage_options : tuple
        fsspec options, frozen as sorted ``(key, value)`` pairs.
    """

    location: str
    is_local: bool
    compression: str | None
    size: int | None
    fingerprint: str
    storage_options: FrozenOptions = ()
    fileobj: BinaryStream | None = field(default=None, compare=False, repr=False)
    _lock: threading.Lock | None = field(default=None, compare=False, repr=False)

    def open(self) -> BinaryStream:
        """Open the raw (still compressed) bytes for reading.

        A user-supplied file object is rewound and returned as is (the caller must not
        close it); anything else is a fresh handle the caller must close.
        """
        if self.fileobj is not None:
            self.fileobj.seek(0)
            return _NonClosing(self.fileobj)
        if self.is_local:
            return open(self.location, "rb")
        from lazyspheres.io import remote

        # Small blocks: this handle reads the magic number and the header. Streams and
        # range reads go through lazyspheres.io.remote with sizes fit for their pattern.
        return remote.open_probe(self)

    def lock(self) -> threading.Lock | None:
        """A lock to hold while reading a shared user file object (``None`` otherwise)."""
        return self._lock

    def __getstate__(self) -> dict[str, object]:
        if self.fileobj is not None:
            raise TypeError(
                f"{self.location}: an image opened from a file object cannot be sent to "
                "another process. Open it from a path or URL to use a distributed cluster."
            )
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)


class _NonClosing:
    """Wrap a user's file object so our ``with`` blocks never close it."""

    def __init__(self, raw: BinaryStream) -> None:
        self._raw = raw

    def read(self, size: int = -1, /) -> bytes | None:
        return self._raw.read(size)

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        return self._raw.readinto(buffer)

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def __getattr__(self, name: str) -> object:  # anything else of the user's object
        return getattr(self._raw, name)

    def __enter__(self) -> _NonClosing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None


def _sniff(handle: BinaryStream) -> str | None:
    head = handle.read(2)
    return "gzip" if head == _GZIP_MAGIC else None


def resolve_source(
    source: str | os.PathLike[str] | BinaryStream, storage_options: StorageOptions | None = None
) -> ByteSource:
    """Resolve a path, URL or binary file object into a :class:`ByteSource`.

    Parameters
    ----------
    source : str, os.PathLike or binary file object
        ``"~/data/bold.nii.gz"``, ``"s3://bucket/key.nii.gz"``, ``"file:///…"`` or an
        object with ``read`` and ``seek``.
    storage_options : dict, optional
        Passed to fsspec for URLs (``{"anon": True}``, ``{"client_kwargs": {...}}`` …).

    Returns
    -------
    ByteSource

    Raises
    ------
    FileNotFoundError
        When the path or object does not exist (nilearn's phrase "File not found").
    """
    if not isinstance(source, str | os.PathLike) and hasattr(source, "read"):
        fileobj = source
        fileobj.seek(0)
        compression = _sniff(fileobj)
        fileobj.seek(0, os.SEEK_END)
        size = fileobj.tell()
        fileobj.seek(0)
        name = str(getattr(fileobj, "name", f"<file object {id(fileobj):#x}>"))
        return ByteSource(
            location=name,
            is_local=False,
            compression=compression,
            size=size,
            fingerprint=f"fileobj:{id(fileobj)}:{size}",
            fileobj=fileobj,
            _lock=threading.Lock(),
        )
    text = os.fspath(cast("str | os.PathLike[str]", source))  # a TypeError for anything else
    if "://" in text and not text.startswith("file://"):
        return _resolve_url(text, storage_options)
    if text.startswith("file://"):
        text = text[len("file://") :]
    path = pathlib.Path(text).expanduser()
    if not path.is_file():
        hint = " It is a directory." if path.is_dir() else ""
        raise FileNotFoundError(f"File not found: '{text}'.{hint}")
    path = path.resolve()
    stat = path.stat()
    with open(path, "rb") as handle:
        compression = _sniff(handle)
    return ByteSource(
        location=str(path),
        is_local=True,
        compression=compression,
        size=stat.st_size,
        fingerprint=f"size={stat.st_size};mtime_ns={stat.st_mtime_ns}",
    )


def _resolve_url(url: str, storage_options: StorageOptions | None) -> ByteSource:
    from lazyspheres.io import remote

    info = remote.stat(url, storage_options)
    source = ByteSource(
        location=url,
        is_local=False,
        compression=None,
        size=info.size,
        fingerprint=info.fingerprint,
        storage_options=_freeze(storage_options),
    )
    with source.open() as handle:
        compression = _sniff(handle)
    return dataclasses.replace(source, compression=compression)
