"""Reading NIfTI bytes from fsspec URLs (``s3://``, ``gs://``, ``https://``, ``memory://`` ...).

Three access patterns, each sized for object stores (tens of milliseconds per request,
hundreds of MB/s per connection):

probe
    The gzip magic and the header are read through a file opened with a small block
    (:data:`PROBE_BLOCK_BYTES`), so opening an image costs two small GETs, not the 50 MB
    read-ahead block s3fs would fetch by default.
stream
    A ``.nii.gz`` is inflated in one sequential pass (:func:`open_stream`) over blocks of
    :data:`STREAM_BLOCK_BYTES` fetched by helper threads :data:`STREAM_PREFETCH` at a time
    ahead of the inflater: each byte fetched once, in large GETs, nothing written to disk
    and at most ``STREAM_PREFETCH + 1`` blocks in memory. For a local copy instead, chain
    fsspec's cache: ``"simplecache::s3://bucket/bold.nii.gz"``.
ranges
    For an uncompressed ``.nii``, the sphere voxels' byte ranges are planned and coalesced
    by :class:`~lazyspheres.io.ranges.RangePlan` and fetched with ``fs.cat_ranges``, which
    async filesystems (s3fs, gcsfs, HTTP) run concurrently; per time block of about
    :data:`RANGE_BLOCK_BYTES` fetched bytes, so memory stays flat as runs get longer.

Consistency: every source carries the fingerprint (size and ETag, generation or mtime)
taken when it was opened. Streams re-check it when they open (s3fs then pins the ETag with
``If-Match`` on every GET); range reads re-check it after each block. A mismatch, or an
object that vanished, raises :class:`~lazyspheres.errors.SourceChangedError`.

Errors from the filesystem are translated into messages naming the URL and the fix
(:func:`translated_errors`). Retries are the filesystems' own: s3fs retries connection
errors, timeouts and throttling ("SlowDown") up to ``S3FileSystem.retries`` (5) times with
exponential back-off, on top of botocore's retries of 5xx responses; gcsfs retries 5xx and
429 responses with back-off; fsspec's HTTP filesystem does not retry. lazyspheres adds no
retry of its own: after those, the error is real.

The knobs are module constants read at call time, so tests and benchmarks can vary them.
"""

from __future__ import annotations

import collections
import contextlib
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from lazyspheres.errors import LazySpheresError, SourceChangedError, TruncatedImageError
from lazyspheres.io.ranges import RangePlan, gather_values, merge_ranges, split_ranges

if TYPE_CHECKING:
    from lazyspheres.io.reader import NiftiFile
    from lazyspheres.io.sources import ByteSource

__all__ = [
    "PROBE_BLOCK_BYTES",
    "RANGE_BLOCK_BYTES",
    "RANGE_MAX_BLOCK",
    "RANGE_MAX_GAP",
    "STREAM_BLOCK_BYTES",
    "STREAM_PREFETCH",
    "ensure_unchanged",
    "fetch_ranges",
    "filesystem",
    "fingerprint",
    "iter_gathered",
    "open_probe",
    "open_stream",
    "read_volumes",
    "stat",
    "translated_errors",
]

# Block of the file used to read the magic number and the header.
PROBE_BLOCK_BYTES = 64 * 2**10
# Streaming reads of .nii.gz: request size, and how many requests run ahead of the inflater
# (several, because one connection to an object store is slower than one core inflating).
STREAM_BLOCK_BYTES = 8 * 2**20
STREAM_PREFETCH = 4
# Range reads of .nii: a gap shorter than this is fetched rather than paying one more
# request (about what a connection transfers during one request's latency)...
RANGE_MAX_GAP = 2 * 2**20
# ...and no request is longer than this, so a block's requests run concurrently.
RANGE_MAX_BLOCK = 8 * 2**20
# Bytes fetched per time block (memory in use, and the unit between consistency checks).
RANGE_BLOCK_BYTES = 64 * 2**20

_NO_CREDENTIALS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "DefaultCredentialsError",
    "RefreshError",
}


# ---------------------------------------------------------------------------- filesystem
def filesystem(location: str, storage_options: Any = ()) -> tuple[Any, str]:
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


def fingerprint(info: dict[str, Any]) -> str:
    """Identify one version of an object from fsspec's ``info`` (size + ETag/mtime...)."""
    tag = None
    for key in ("ETag", "etag", "generation", "md5Hash", "mtime", "LastModified", "created"):
        if info.get(key) is not None:
            tag = info[key]
            break
    return f"size={info.get('size')};tag={tag}"


def stat(location: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``fs.info`` of a URL, with errors translated (missing → "File not found")."""
    fs, path = filesystem(location, storage_options)
    with translated_errors(location, storage_options):
        info = fs.info(path)
    if info.get("type") == "directory":
        raise FileNotFoundError(
            f"File not found: '{location}' is a directory (prefix), not an image file."
        )
    return info


# ---------------------------------------------------------------------------- errors
@contextlib.contextmanager
def translated_errors(
    location: str, storage_options: Any = (), *, opened: bool = False
) -> Iterator[None]:
    """Re-raise filesystem errors with the URL, the cause and what to set.

    Parameters
    ----------
    location : str
        The URL, for messages.
    storage_options : dict or pairs
        Used to tailor the hints (``anon`` already set or not).
    opened : bool
        Whether the object was seen before: then "not found" means it vanished while being
        read (:class:`SourceChangedError`) rather than a wrong URL (``FileNotFoundError``).
    """
    try:
        yield
    except LazySpheresError:
        raise
    except Exception as error:
        translated = _translate(error, location, dict(storage_options or {}), opened=opened)
        if translated is None:
            raise
        raise translated from error


def _translate(
    error: BaseException, location: str, options: dict[str, Any], *, opened: bool
) -> BaseException | None:
    name = type(error).__name__
    text = str(error) or name
    if name == "FileExpired" or "PreconditionFailed" in text or "Precondition Failed" in text:
        return SourceChangedError(
            f"{location} changed while it was being read ({text}). Its bytes now belong to "
            "another version of the object; open it again to read the new version."
        )
    if name in _NO_CREDENTIALS:
        return PermissionError(
            f"{location}: no credentials were found to sign the request ({text}). "
            + _access_hint(location, options)
        )
    status = getattr(error, "status", None) or getattr(error, "code", None)
    if isinstance(error, PermissionError) or status in (401, 403):
        return PermissionError(
            f"{location}: access denied ({text}). " + _access_hint(location, options)
        )
    if isinstance(error, FileNotFoundError) or status == 404:
        if opened:
            return SourceChangedError(
                f"{location} no longer exists: it was deleted or moved after it was opened "
                f"({text}). Check the URL, or open it again if it was replaced."
            )
        return FileNotFoundError(f"File not found: '{location}' ({text}).")
    return None


def _access_hint(location: str, options: dict[str, Any]) -> str:
    protocol = location.split("::")[-1].split("://")[0].lower()
    if protocol in ("s3", "s3a"):
        public = (
            "The object is refused even anonymously; it is not public. "
            if options.get("anon")
            else "For a public bucket (e.g. OpenNeuro's), pass storage_options={'anon': True}. "
        )
        return (
            public + "Otherwise give credentials allowed to read it: AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment, or "
            "storage_options={'key': ..., 'secret': ...}; for another S3-compatible store "
            "also storage_options={'client_kwargs': {'endpoint_url': ...}}."
        )
    if protocol in ("gs", "gcs"):
        return (
            "For a public bucket pass storage_options={'token': 'anon'}; otherwise set "
            "GOOGLE_APPLICATION_CREDENTIALS or storage_options={'token': 'key.json'}."
        )
    if protocol in ("http", "https"):
        return (
            "The server refused the request; pass what it needs through storage_options "
            "(e.g. {'headers': {'Authorization': ...}} or {'client_kwargs': {'auth': ...}})."
        )
    return "Check the credentials given in storage_options."


# ---------------------------------------------------------------------------- consistency
def ensure_unchanged(source: ByteSource) -> None:
    """Raise :class:`SourceChangedError` unless the object still has its fingerprint."""
    fs, path = filesystem(source.location, source.storage_options)
    with translated_errors(source.location, source.storage_options, opened=True):
        fs.invalidate_cache(path)
        info = fs.info(path)
    _check_fingerprint(source, info)


def _check_fingerprint(source: ByteSource, info: dict[str, Any]) -> None:
    now = fingerprint(info)
    if now != source.fingerprint:
        raise SourceChangedError(
            f"{source.location} changed after it was opened (when opened: "
            f"{source.fingerprint}; now: {now}). Reading on would mix two versions of the "
            "object; open it again to read the new version."
        )


# ---------------------------------------------------------------------------- file objects
def open_probe(source: ByteSource) -> io.RawIOBase:
    """Open a URL for small reads at its start (magic number, header).

    Reads are ranged GETs of at least :data:`PROBE_BLOCK_BYTES` through fsspec's read-ahead
    cache; with the size known from opening, no further HEAD request is made.
    """
    if source.size is None:
        return _open(source, PROBE_BLOCK_BYTES, "readahead", check=False)
    return _ProbeReader(source)


def open_stream(source: ByteSource) -> io.RawIOBase:
    """Open a URL for one sequential pass, checking its fingerprint.

    The returned reader fetches blocks of :data:`STREAM_BLOCK_BYTES` ahead of the reader,
    :data:`STREAM_PREFETCH` at a time, so the network keeps busy while the inflater works.
    """
    handle = _open(source, STREAM_BLOCK_BYTES, "none", check=True)
    return _PrefetchReader(handle, source)


def _open(source: ByteSource, block_size: int, cache_type: str, *, check: bool):
    fs, path = filesystem(source.location, source.storage_options)
    with translated_errors(source.location, source.storage_options, opened=check):
        if check:
            fs.invalidate_cache(path)
        handle = fs.open(path, "rb", block_size=block_size, cache_type=cache_type)
    try:
        if check:
            # s3fs files HEAD the object themselves (and pin its ETag): reuse that answer.
            # Other files may hold fewer facts (HTTP: no ETag), so ask the filesystem then.
            with translated_errors(source.location, source.storage_options, opened=True):
                details = getattr(handle, "details", None)
                if not isinstance(details, dict) or fingerprint(details) != source.fingerprint:
                    details = fs.info(path)
            _check_fingerprint(source, details)
    except BaseException:
        handle.close()
        raise
    return _CheckedReader(handle, source)


class _ProbeReader(io.RawIOBase):
    """Sequential small reads by ranged ``cat_file`` calls through a read-ahead cache."""

    def __init__(self, source: ByteSource) -> None:
        from fsspec.caching import ReadAheadCache

        super().__init__()
        self._source = source
        self._fs, self._path = filesystem(source.location, source.storage_options)
        self._cache = ReadAheadCache(PROBE_BLOCK_BYTES, self._fetch, source.size)
        self._position = 0

    def _fetch(self, start: int, end: int) -> bytes:
        with translated_errors(self._source.location, self._source.storage_options):
            return self._fs.cat_file(self._path, start=start, end=end)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        total = self._source.size
        end = total if size is None or size < 0 else min(total, self._position + size)
        if end <= self._position:
            return b""
        data = self._cache._fetch(self._position, end)
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class _PrefetchReader(io.RawIOBase):
    """Sequential reads served from blocks fetched ahead, concurrently, in helper threads.

    Blocks are fetched with the open file's own range fetcher (for s3fs, GETs pinned to the
    ETag seen at open with ``If-Match``), else with ``fs.cat_file``. At most
    ``STREAM_PREFETCH + 1`` blocks are held in memory.
    """

    def __init__(self, checked: _CheckedReader, source: ByteSource) -> None:
        super().__init__()
        self._checked = checked
        self._source = source
        handle = checked._handle
        self._size = int(getattr(handle, "size", None) or source.size or 0)
        fetcher = getattr(handle, "_fetch_range", None)
        if fetcher is None:
            fs, path = filesystem(source.location, source.storage_options)

            def fetcher(start: int, end: int) -> bytes:
                return fs.cat_file(path, start=start, end=end)

        self._fetcher = fetcher
        self._block = max(1, int(STREAM_BLOCK_BYTES))
        self._pool = ThreadPoolExecutor(max_workers=max(1, STREAM_PREFETCH))
        self._pending: collections.deque = collections.deque()
        self._next = 0  # first byte not yet requested
        self._buffer = memoryview(b"")
        self._position = 0
        for _ in range(max(1, STREAM_PREFETCH)):
            self._request()

    def _request(self) -> None:
        if self._next >= self._size:
            return
        start, end = self._next, min(self._size, self._next + self._block)
        self._pending.append((start, end, self._pool.submit(self._fetcher, start, end)))
        self._next = end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(self._buffer):
            if not self._pending:
                return 0
            start, end, future = self._pending.popleft()
            with translated_errors(
                self._source.location, self._source.storage_options, opened=True
            ):
                data = future.result()
            if len(data) != end - start:
                raise TruncatedImageError(
                    f"{self._source.location}: bytes {start}-{end} were asked but only "
                    f"{len(data)} came back. The object is truncated or changing."
                )
            self._request()
            self._buffer = memoryview(data)
        count = min(len(view), len(self._buffer))
        view[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        self._position += count
        return count

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._position
        out = bytearray(size)
        filled = 0
        while filled < size:
            count = self.readinto(memoryview(out)[filled:])
            if not count:
                break
            filled += count
        return bytes(out[:filled])

    def close(self) -> None:
        if not self.closed:
            for _, _, future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pending.clear()
            self._checked.close()
        super().close()


class _CheckedReader(io.RawIOBase):
    """A remote file whose read errors are translated (changed object, access denied ...)."""

    def __init__(self, handle: Any, source: ByteSource) -> None:
        super().__init__()
        self._handle = handle
        self._source = source

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._handle.seekable())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def read(self, size: int = -1) -> bytes:
        with translated_errors(self._source.location, self._source.storage_options, opened=True):
            return self._handle.read(size)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()


# ---------------------------------------------------------------------------- ranges
def fetch_ranges(source: ByteSource, starts: np.ndarray, ends: np.ndarray) -> list[bytes]:
    """Fetch byte ranges ``[start, end)`` of a URL (concurrently on async filesystems).

    Raises
    ------
    SourceChangedError
        The object changed or vanished since it was opened.
    TruncatedImageError
        The object is shorter than the ranges (and did not change).
    """
    if len(starts) == 0:
        return []
    fs, path = filesystem(source.location, source.storage_options)
    with translated_errors(source.location, source.storage_options, opened=True):
        buffers = fs.cat_ranges(
            [path] * len(starts),
            np.asarray(starts).tolist(),
            np.asarray(ends).tolist(),
            on_error="raise",
        )
    lengths = np.fromiter((len(b) for b in buffers), dtype=np.int64, count=len(buffers))
    short = np.flatnonzero(lengths != np.asarray(ends) - np.asarray(starts))
    if short.size:
        ensure_unchanged(source)  # a replaced object is a change, not a truncation
        first = int(short[0])
        raise TruncatedImageError(
            f"{source.location}: bytes {int(starts[first])}-{int(ends[first])} were asked but "
            f"only {int(lengths[first])} came back: the object ends at byte "
            f"{int(starts[first]) + int(lengths[first])}. The file is truncated; upload it again."
        )
    return buffers


def iter_gathered(
    nifti: NiftiFile, flat_indices: np.ndarray, start: int, stop: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t0, values)`` raw values of voxels ``flat_indices``, by coalesced ranges.

    The ranges of each time block are fetched together (the next block while the current
    one is used), and the fingerprint is checked after each block.
    """
    layout = nifti.layout
    itemsize = layout.raw_dtype.itemsize
    flat = np.asarray(flat_indices, dtype=np.int64)
    plan = RangePlan.from_voxels(
        flat,
        itemsize=itemsize,
        volume_voxels=layout.volume_voxels,
        vox_offset=layout.vox_offset,
        max_gap=RANGE_MAX_GAP,
        max_block=RANGE_MAX_BLOCK,
    )
    per_block = max(1, RANGE_BLOCK_BYTES // max(1, plan.bytes_per_volume))
    within = flat * itemsize
    blocks = [(t0, min(stop, t0 + per_block)) for t0 in range(start, stop, per_block)]

    def fetch(t0: int, t1: int) -> tuple[np.ndarray, list[bytes]]:
        starts, ends = plan.block(t0, t1)
        return starts, fetch_ranges(nifti.source, starts, ends)

    # The next block is fetched while this one is checked, gathered and consumed.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(fetch, *blocks[0]) if blocks else None
        for index, (t0, t1) in enumerate(blocks):
            starts, buffers = pending.result()
            if index + 1 < len(blocks):
                pending = pool.submit(fetch, *blocks[index + 1])
            ensure_unchanged(nifti.source)
            origins = layout.vox_offset + np.arange(t0, t1, dtype=np.int64) * layout.volume_bytes
            positions = origins[:, None] + within[None, :]
            yield t0, gather_values(buffers, starts, positions, layout.raw_dtype)


def read_volumes(
    nifti: NiftiFile, t0: int, t1: int, first_voxel: int = 0, stop_voxel: int | None = None
) -> np.ndarray:
    """Raw values of voxels ``first_voxel:stop_voxel`` (flat, F order) of volumes ``t0:t1``.

    Returns an array of shape ``(t1 - t0, stop_voxel - first_voxel)``; a z-slab of whole
    slices is one contiguous range per volume, fetched in pieces of at most
    :data:`RANGE_MAX_BLOCK` bytes, concurrently.
    """
    layout = nifti.layout
    stop_voxel = layout.volume_voxels if stop_voxel is None else stop_voxel
    itemsize = layout.raw_dtype.itemsize
    origins = layout.vox_offset + np.arange(t0, t1, dtype=np.int64) * layout.volume_bytes
    # Adjacent slabs (whole volumes) make one range, then cut into concurrent pieces.
    starts, ends = merge_ranges(
        origins + first_voxel * itemsize, origins + stop_voxel * itemsize, max_gap=0
    )
    starts, ends = split_ranges(starts, ends, RANGE_MAX_BLOCK)
    buffers = fetch_ranges(nifti.source, starts, ends)
    ensure_unchanged(nifti.source)
    joined = bytearray().join(buffers)  # writable: the caller owns the block
    values = np.frombuffer(joined, dtype=layout.raw_dtype)
    return values.reshape(t1 - t0, stop_voxel - first_voxel)
