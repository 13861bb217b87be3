"""Streaming gzip inflate with the fastest engine installed.

A ``.nii.gz`` is one DEFLATE stream: there is no way to reach volume ``t`` without inflating
everything before it. Readers therefore make exactly one sequential pass, and this module
picks the fastest inflater available for it:

``isal``
    Intel ISA-L, 2-3x faster than zlib on one core, run in a helper thread so that
    inflating overlaps with gathering (measured fastest on 2 cores: benchmarks/);
``rapidgzip``
    parallel inflate (uses several threads), for seekable sources; it pays off with more
    cores than the two of our reference machine;
``zlib-ng``
    zlib-ng's faster inflate;
``zlib``
    the standard library, always there.

The choice can be forced with ``LAZYSPHERES_INFLATE=zlib|zlib-ng|isal|rapidgzip`` or the
``engine`` argument (benchmarks use this to measure each engine in the same run).
"""

from __future__ import annotations

import importlib.util
import io
import os
import zlib
from collections.abc import Callable
from typing import IO, Any

from lazyspheres.errors import ImageFormatError, LazySpheresError, TruncatedImageError

__all__ = [
    "ENGINES",
    "available_engines",
    "choose_engine",
    "drain",
    "open_inflated",
    "read_exactly",
    "read_head",
]

ENGINES = ("isal", "rapidgzip", "zlib-ng", "zlib")
# Errors of the underlying byte source (a remote object that changed, vanished, or refused
# access; a dropped connection): passed through as they are, never reported as corrupt data.
_SOURCE_ERRORS = (
    LazySpheresError,
    PermissionError,
    FileNotFoundError,
    ConnectionError,
    TimeoutError,
)
_MODULES = {"rapidgzip": "rapidgzip", "isal": "isal", "zlib-ng": "zlib_ng", "zlib": "zlib"}


def available_engines() -> list[str]:
    """Inflate engines importable here, fastest first."""
    return [name for name in ENGINES if importlib.util.find_spec(_MODULES[name]) is not None]


def choose_engine(engine: str | None = None, *, seekable: bool = True) -> str:
    """Pick the inflate engine: an explicit choice, ``$LAZYSPHERES_INFLATE``, or the fastest.

    Parameters
    ----------
    engine : str, optional
        One of :data:`ENGINES`, or ``None``/``"auto"``.
    seekable : bool
        Whether the compressed source can seek (rapidgzip needs it).
    """
    wanted = engine or os.environ.get("LAZYSPHERES_INFLATE") or "auto"
    installed = available_engines()
    if wanted != "auto":
        if wanted not in ENGINES:
            raise ValueError(f"Unknown inflate engine {wanted!r}; choose one of {ENGINES}.")
        if wanted not in installed:
            raise ImportError(
                f"The inflate engine {wanted!r} is not installed (installed: {installed}). "
                "Install it with `pip install lazyspheres[fast]`."
            )
        return wanted
    for name in installed:
        if name == "rapidgzip" and (not seekable or (os.cpu_count() or 1) < 2):
            continue
        return name
    return "zlib"


def open_inflated(
    raw: IO[bytes],
    *,
    engine: str | None = None,
    on_index: Callable[[Any], None] | None = None,
) -> IO[bytes]:
    """Wrap a compressed binary stream in a file object yielding the inflated bytes.

    Parameters
    ----------
    raw : binary file object
        The gzip bytes, positioned at the start.
    engine : str, optional
        Force an engine (see :func:`choose_engine`).
    on_index : callable, optional
        Record a seek-point index as a by-product of this pass: called with the
        :class:`~lazyspheres.io.gzindex.GzipIndex` once the stream was read to its end.
        Uses rapidgzip's single-thread pass (1.15-1.25x the CPU of ISA-L's plain pass:
        benchmarks/bench_gzindex.py) when ``raw`` can seek and rapidgzip is installed (and no
        other engine is forced); otherwise the pass is a plain one and ``on_index`` is never
        called.

    Returns
    -------
    binary file object
        Supports ``read`` and ``readinto``; the caller closes it (``raw`` is closed by its
        own owner).
    """
    seekable = bool(getattr(raw, "seekable", lambda: False)())
    wanted = engine or os.environ.get("LAZYSPHERES_INFLATE") or "auto"
    if on_index is not None and seekable and wanted in ("auto", "rapidgzip"):
        from lazyspheres.io import gzindex

        if gzindex.index_available():
            return gzindex.open_indexing(raw, on_index=on_index)
    name = choose_engine(engine, seekable=seekable)
    if name == "rapidgzip":
        import rapidgzip

        return rapidgzip.open(raw, parallelization=min(os.cpu_count() or 1, 4))
    if name == "isal":
        # Inflates in a helper thread (the GIL is released), overlapping with our gathers.
        from isal import igzip_threaded

        return igzip_threaded.open(raw, "rb", threads=1)
    if name == "zlib-ng":
        from zlib_ng import zlib_ng

        return _InflateReader(raw, lambda: zlib_ng.decompressobj(wbits=31))
    return _InflateReader(raw, lambda: zlib.decompressobj(wbits=31))


class _InflateReader(io.RawIOBase):
    """A gzip reader over a ``decompressobj`` factory, reading the input in large pieces.

    ``gzip.GzipFile`` reads its input 128 KB at a time and keeps its own buffer; feeding
    the inflater 4 MB pieces and inflating straight into the caller's buffer is about twice
    as fast. zlib checks each member's CRC32 and length itself (``wbits=31``), and
    concatenated members are followed.
    """

    def __init__(self, raw: IO[bytes], factory: Callable[[], Any], piece: int = 4 << 20):
        super().__init__()
        self._raw = raw
        self._factory = factory
        self._inflater = factory()
        self._piece = piece
        self._input = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = len(view)
        filled = 0
        while filled < wanted:
            if not self._input:
                if self._inflater.eof:
                    self._input = self._inflater.unused_data or self._raw.read(self._piece)
                    if not self._input:
                        break  # clean end of the last member
                    self._inflater = self._factory()
                else:
                    self._input = self._raw.read(self._piece)
                    if not self._input:
                        raise EOFError(
                            "Compressed file ended before the end-of-stream marker was reached"
                        )
            try:
                out = self._inflater.decompress(self._input, wanted - filled)
            except Exception as error:  # zlib.error, zlib_ng.error: one type for callers
                raise OSError(f"invalid gzip data: {error}") from error
            self._input = self._inflater.unconsumed_tail
            if self._inflater.eof and not self._input:
                self._input = self._inflater.unused_data
                if self._input:
                    self._inflater = self._factory()
            view[filled : filled + len(out)] = out
            filled += len(out)
        return filled


def read_exactly(stream: IO[bytes], buffer: memoryview, *, where: str, offset: int) -> None:
    """Fill ``buffer`` from ``stream`` or raise a clear error naming the byte offset.

    Parameters
    ----------
    stream : binary file object
        Inflated stream.
    buffer : memoryview
        Writable bytes to fill completely.
    where : str
        Path or URL for messages.
    offset : int
        Offset of ``buffer``'s first byte in the decompressed file, for messages.

    Raises
    ------
    TruncatedImageError
        The stream ended early (truncated download or copy).
    ImageFormatError
        The compressed data is corrupt.
    """
    filled = 0
    total = len(buffer)
    while filled < total:
        try:
            count = stream.readinto(buffer[filled:])
        except _SOURCE_ERRORS:
            raise  # the bytes could not be fetched: not a decoding problem
        except (EOFError, zlib.error, OSError, RuntimeError, ValueError) as error:
            _raise_decode_error(error, where=where, offset=offset + filled)
        if not count:
            raise TruncatedImageError(
                f"{where}: the data ends at decompressed byte {offset + filled}, but the "
                f"header promises at least {offset + total} bytes. The file is truncated "
                "(an interrupted download or copy?); fetch it again."
            )
        filled += count


def _raise_decode_error(error: BaseException, *, where: str, offset: int) -> None:
    text = str(error)
    if isinstance(error, EOFError) or "end-of-stream" in text or "truncat" in text.lower():
        raise TruncatedImageError(
            f"{where}: the gzip stream ends early (near decompressed byte {offset}): {text}. "
            "The file is truncated; fetch it again."
        ) from error
    raise ImageFormatError(
        f"{where}: corrupt gzip data near decompressed byte {offset}: {text}."
    ) from error


def read_head(raw: IO[bytes], size: int, *, compressed: bool) -> bytes:
    """Read the first ``size`` bytes of a possibly gzip-compressed stream.

    Uses the standard library's incremental inflater: for a header, spinning up a
    threaded or parallel engine costs more than it saves, and zlib reports damage plainly.
    """
    if not compressed:
        return raw.read(size)
    inflater = zlib.decompressobj(wbits=31)
    out = bytearray()
    while len(out) < size:
        piece = raw.read(64 * 1024)
        if not piece:
            break
        try:
            out += inflater.decompress(piece, size - len(out))
        except zlib.error:
            break  # reported by the caller as "not a NIfTI file" / too short
        if inflater.eof:
            break
    return bytes(out)


def drain(stream: IO[bytes], *, where: str, offset: int) -> None:
    """Read a stream to its end so the gzip trailer (CRC32, length) gets verified.

    Raises
    ------
    TruncatedImageError, ImageFormatError
        As :func:`read_exactly`, when the trailer check fails.
    """
    while True:
        try:
            piece = stream.read(1 << 20)
        except _SOURCE_ERRORS:
            raise
        except (EOFError, zlib.error, OSError, RuntimeError, ValueError) as error:
            _raise_decode_error(error, where=where, offset=offset)
        if not piece:
            return
        offset += len(piece)
