"""Persist gzip seek-point indexes so that a second open of a ``.nii.gz`` is instant.

Two places are looked at, both optional:

* a user cache directory, ``$LAZYSPHERES_CACHE_DIR/gzindex/`` or else the platform's cache
  directory (``~/.cache/lazyspheres/gzindex/`` on Linux), one file per index named by a hash
  of its key (the file's location and fingerprint: path + size + mtime, or URL + ETag);
* a sidecar ``<file>.gzidx`` next to a local file (read only when present; written only on
  request by :func:`store_sidecar`).

Entries are written atomically (temporary file + rename). An entry that is corrupt, was
written for another key, or whose sizes disagree with the file is ignored (logged at debug
level), never trusted. ``LAZYSPHERES_GZINDEX_CACHE=0`` disables the user cache.

The user cache is bounded: ``$LAZYSPHERES_GZINDEX_CACHE_BYTES`` (default
:data:`DEFAULT_CACHE_BYTES`). Streaming passes over local files record an index by default
(~0.3 % of a float32 run), so a batch of a thousand runs would otherwise leave gigabytes
behind; after each store the least recently used entries (a load touches its entry) are
removed until the cache fits again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pathlib
import struct
import sys

from lazyspheres.io.atomic import write_atomically
from lazyspheres.io.gzindex import SeekIndex, load_index

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "cache_dir",
    "cache_enabled",
    "cache_key",
    "cache_limit_bytes",
    "find_index",
    "load_cached_index",
    "load_sidecar",
    "sidecar_path",
    "store_cached_index",
    "store_sidecar",
]

_LOG = logging.getLogger(__name__)
_ENTRY_MAGIC = b"LSGZKEY1"
SIDECAR_SUFFIX = ".gzidx"

#: Bytes the user cache may hold when ``$LAZYSPHERES_GZINDEX_CACHE_BYTES`` is unset: the
#: indexes of ~250 MNI 2 mm runs of 1200 volumes.
DEFAULT_CACHE_BYTES = 2**30


def cache_enabled() -> bool:
    """False when ``$LAZYSPHERES_GZINDEX_CACHE`` is ``0``, ``off``, ``false`` or ``no``."""
    value = os.environ.get("LAZYSPHERES_GZINDEX_CACHE", "1").strip().lower()
    return value not in {"0", "off", "false", "no"}


def cache_dir() -> pathlib.Path:
    """The directory holding cached indexes (not created here)."""
    root = os.environ.get("LAZYSPHERES_CACHE_DIR")
    if root:
        return pathlib.Path(root).expanduser() / "gzindex"
    home = pathlib.Path.home()
    if sys.platform == "win32":
        base = pathlib.Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Caches"
    else:
        base = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    return base / "lazyspheres" / "gzindex"


def cache_limit_bytes() -> int:
    """The user cache's bound in bytes: ``$LAZYSPHERES_GZINDEX_CACHE_BYTES``, or the default.

    Raises
    ------
    ValueError
        If the variable is set to something other than a non-negative whole number.
    """
    value = os.environ.get("LAZYSPHERES_GZINDEX_CACHE_BYTES", "").strip()
    if not value:
        return DEFAULT_CACHE_BYTES
    try:
        limit = int(value.replace("_", ""))
    except ValueError:
        limit = -1
    if limit < 0:
        raise ValueError(
            "LAZYSPHERES_GZINDEX_CACHE_BYTES must be a whole number of bytes (>= 0), "
            f"not {value!r}."
        )
    return limit


def cache_key(location: str, fingerprint: str) -> str:
    """The key of a file's index: its location and the fingerprint of its version."""
    return f"{location}\n{fingerprint}"


def _entry_path(key: str) -> pathlib.Path:
    return cache_dir() / (hashlib.sha256(key.encode()).hexdigest() + SIDECAR_SUFFIX)


def _valid(index: SeekIndex, compressed_size: int | None, where: object) -> bool:
    if compressed_size is not None and index.compressed_size != compressed_size:
        _LOG.debug(
            "Ignoring gzip index %s: built for %d compressed bytes, the file has %d.",
            where,
            index.compressed_size,
            compressed_size,
        )
        return False
    return True


def load_cached_index(key: str, *, compressed_size: int | None = None) -> SeekIndex | None:
    """The cached index of ``key`` (see :func:`cache_key`), or ``None``.

    Parameters
    ----------
    key : str
        Location and fingerprint of the file (:func:`cache_key`).
    compressed_size : int, optional
        The file's current size; an entry built for another size is ignored.
    """
    if not cache_enabled():
        return None
    path = _entry_path(key)
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        if blob[: len(_ENTRY_MAGIC)] != _ENTRY_MAGIC:
            raise ValueError("missing magic number")
        (length,) = struct.unpack_from("<I", blob, len(_ENTRY_MAGIC))
        start = len(_ENTRY_MAGIC) + 4
        stored = blob[start : start + length].decode()
        if stored != key:
            _LOG.debug("Ignoring gzip index %s: written for another file version.", path)
            return None
        index = load_index(blob[start + length :])
    except (ValueError, struct.error, UnicodeDecodeError) as error:
        _LOG.debug("Ignoring corrupt gzip index %s: %s", path, error)
        return None
    if not _valid(index, compressed_size, path):
        return None
    with contextlib.suppress(OSError):  # used now: the last entry the bound removes
        os.utime(path)
    return index


def store_cached_index(key: str, index: SeekIndex) -> pathlib.Path | None:
    """Store ``index`` under ``key`` atomically; returns the path (``None`` when disabled).

    A cache that cannot be written (read-only home, full disk) is skipped with a debug log:
    the index is an optimisation, never a reason to fail.
    """
    if not cache_enabled():
        return None
    path = _entry_path(key)
    encoded = key.encode()
    blob = _ENTRY_MAGIC + struct.pack("<I", len(encoded)) + encoded + index.to_bytes()
    limit = cache_limit_bytes()
    if len(blob) > limit:
        _LOG.debug("Not caching a gzip index of %d bytes: the cache holds %d.", len(blob), limit)
        return None
    try:
        write_atomically(path, blob)
    except OSError as error:
        _LOG.debug("Could not cache the gzip index in %s: %s", path, error)
        return None
    _evict(path.parent, limit, keep=path)
    return path


def _evict(directory: pathlib.Path, limit: int, *, keep: pathlib.Path) -> None:
    """Remove the least recently used entries of ``directory`` until it holds ``limit`` bytes.

    Other processes may store or remove entries meanwhile: entries that vanish are skipped,
    and ``keep`` (the entry just written) is never removed.
    """
    entries = []
    for entry in directory.glob("*" + SIDECAR_SUFFIX):
        with contextlib.suppress(OSError):
            status = entry.stat()
            entries.append((status.st_mtime_ns, status.st_size, entry))
    total = sum(size for _, size, _ in entries)
    for _, size, entry in sorted(entries, key=lambda item: item[0]):
        if total <= limit:
            break
        if entry == keep:
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            _LOG.debug("Removed the least recently used gzip index %s.", entry)
        total -= size


def sidecar_path(location: str | os.PathLike[str]) -> pathlib.Path:
    """``<file>.gzidx`` next to a local file."""
    path = pathlib.Path(location)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def load_sidecar(
    location: str | os.PathLike[str], *, compressed_size: int | None = None
) -> SeekIndex | None:
    """The index in ``<file>.gzidx`` next to a local file, if present and valid."""
    path = sidecar_path(location)
    try:
        index = load_index(path.read_bytes())
    except OSError:
        return None
    except ValueError as error:
        _LOG.debug("Ignoring corrupt gzip index sidecar %s: %s", path, error)
        return None
    return index if _valid(index, compressed_size, path) else None


def store_sidecar(location: str | os.PathLike[str], index: SeekIndex) -> pathlib.Path:
    """Write ``<file>.gzidx`` next to a local file (atomically); returns its path."""
    path = sidecar_path(location)
    write_atomically(path, index.to_bytes())
    return path


def find_index(
    location: str, fingerprint: str, *, compressed_size: int | None = None, local: bool = True
) -> SeekIndex | None:
    """A stored index of one file version: its sidecar (local files), else the user cache.

    Parameters
    ----------
    location, fingerprint : str
        As :class:`lazyspheres.io.sources.ByteSource` has them.
    compressed_size : int, optional
        The file's current size; indexes built for another size are ignored.
    local : bool
        Whether ``location`` is a local path (only then is a sidecar looked for).
    """
    if local:
        index = load_sidecar(location, compressed_size=compressed_size)
        if index is not None:
            return index
    return load_cached_index(cache_key(location, fingerprint), compressed_size=compressed_size)
