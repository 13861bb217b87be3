"""File objects over remote URLs: small probes at the start, prefetching sequential streams.

Both are built by :func:`lazyspheres.io.remote.open_probe` / :func:`~.open_stream`, which
read their sizes from :mod:`lazyspheres.io.remote`'s settings at call time.
"""

from __future__ import annotations

import collections
import io
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from lazyspheres.errors import TruncatedImageError
from lazyspheres.io.remote_errors import translated_errors
from lazyspheres.io.remote_fs import check_fingerprint, filesystem, fingerprint
from lazyspheres.io.remote_retry import read_range

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from fsspec.spec import AbstractBufferedFile

    from lazyspheres.io.sources import ByteSource

__all__ = ["open_checked", "prefetch_reader", "probe_reader"]


def open_checked(
    source: ByteSource, block_size: int, cache_type: str, *, check: bool
) -> _CheckedReader:
    """``fs.open`` the object, verify its fingerprint (``check``), translate read errors."""
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
            check_fingerprint(source, details)
    except BaseException:
        handle.close()
        raise
    return _CheckedReader(handle, source)


def probe_reader(source: ByteSource, block_size: int) -> io.RawIOBase:
    """Small sequential reads at the start of the object (see :class:`_ProbeReader`)."""
    return _ProbeReader(source, block_size)


def prefetch_reader(
    checked: _CheckedReader, source: ByteSource, block_size: int, depth: int
) -> io.RawIOBase:
    """One sequential pass over blocks fetched ahead (see :class:`_PrefetchReader`)."""
    return _PrefetchReader(checked, source, block_size, depth)


class _ProbeReader(io.RawIOBase):
    """Sequential small reads by ranged ``cat_file`` calls through a read-ahead cache."""

    def __init__(self, source: ByteSource, block_size: int) -> None:
        from fsspec.caching import ReadAheadCache

        super().__init__()
        self._source = source
        self._fs, self._path = filesystem(source.location, source.storage_options)
        self._cache = ReadAheadCache(block_size, self._fetch, source.size)
        self._position = 0

    def _fetch(self, start: int, end: int) -> bytes:
        location = self._source.location
        with translated_errors(location, self._source.storage_options):
            return read_range(self._cat, start, end, location=location, size=self._source.size)

    def _cat(self, start: int, end: int) -> bytes:
        return self._fs.cat_file(self._path, start=start, end=end)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        total = self._source.size
        if total is None:  # ranged reads need the end of the object
            raise OSError(f"{self._source.location}: the server did not report the size.")
        end = total if size is None or size < 0 else min(total, self._position + size)
        if end <= self._position:
            return b""
        data = self._cache._fetch(self._position, end)
        self._position += len(data)
        return data

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class _PrefetchReader(io.RawIOBase):
    """Sequential reads served from blocks fetched ahead, concurrently, in helper threads.

    Blocks are fetched with the open file's own range fetcher (for s3fs, GETs pinned to the
    ETag seen at open with ``If-Match``), else with ``fs.cat_file``. At most ``depth + 1``
    blocks are held in memory.
    """

    def __init__(
        self, checked: _CheckedReader, source: ByteSource, block_size: int, depth: int
    ) -> None:
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

        location, size = source.location, self._size

        def retried(start: int, end: int) -> bytes:
            return read_range(fetcher, start, end, location=location, size=size)

        self._fetcher = retried
        self._block = max(1, int(block_size))
        self._pool = ThreadPoolExecutor(max_workers=max(1, depth))
        self._pending: collections.deque = collections.deque()
        self._next = 0  # first byte not yet requested
        self._buffer = memoryview(b"")
        self._position = 0
        for _ in range(max(1, depth)):
            self._request()

    def _request(self) -> None:
        if self._next >= self._size:
            return
        start, end = self._next, min(self._size, self._next + self._block)
        self._pending.append((start, end, self._pool.submit(self._fetcher, start, end)))
        self._next = end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
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

    def __init__(self, handle: AbstractBufferedFile, source: ByteSource) -> None:
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

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()
