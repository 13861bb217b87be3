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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lazyspheres.errors import ImageFormatError, LazySpheresError, TruncatedImageError
from lazyspheres.io.binary import BinaryStream

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from lazyspheres.io._types import Inflater

__all__ = [
    "ENGINES",
    "GzipDamage",
    "available_engines",
    "choose_engine",
    "diagnose_gzip",
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
    raw: BinaryStream,
    *,
    engine: str | None = None,
) -> BinaryStream:
    """Wrap a compressed binary stream in a file object yielding the inflated bytes.

    Parameters
    ----------
    raw : binary file object
        The gzip bytes, positioned at the start.
    engine : str, optional
        Force an engine (see :func:`choose_engine`).

    Returns
    -------
    binary file object
        Supports ``read`` and ``readinto``; the caller closes it (``raw`` is closed by its
        own owner).
    """
    seekable = bool(getattr(raw, "seekable", lambda: False)())
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

    def __init__(self, raw: BinaryStream, factory: Callable[[], Inflater], piece: int = 4 << 20):
        super().__init__()
        self._raw = raw
        self._factory = factory
        self._inflater = factory()
        self._piece = piece
        self._input = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        wanted = len(view)
        filled = 0
        while filled < wanted:
            if not self._input:
                if self._inflater.eof:
                    self._input = self._inflater.unused_data or self._raw.read(self._piece) or b""
                    if not self._input:
                        break  # clean end of the last member
                    self._inflater = self._factory()
                else:
                    self._input = self._raw.read(self._piece) or b""
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


def read_exactly(stream: BinaryStream, buffer: memoryview, *, where: str, offset: int) -> None:
    """Fill ``buffer`` from ``stream`` or raise a clear error naming the byte offsets.

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
            _raise_decode_error(error, where=where, offset=offset + filled, needed=offset + total)
        if not count:
            damage = diagnose_gzip(where)
            raise TruncatedImageError(
                _truncated_message(where, offset + filled, offset + total, damage=damage)
            )
        filled += count


@dataclass(frozen=True)
class GzipDamage:
    """Where a gzip file stops inflating, found by :func:`diagnose_gzip`.

    Attributes
    ----------
    kind : {"truncated", "corrupt"}
        The stream ends before its end-of-stream marker, or holds invalid data.
    compressed : int
        Compressed bytes consumed before the problem (the file size when truncated; for
        corrupt data, the start of the :data:`_DIAGNOSE_PIECE`-byte piece that failed).
    decompressed : int
        Decompressed bytes produced before the problem.
    file_size : int
        Size of the compressed file.
    detail : str
        zlib's message, for corrupt data.
    """

    kind: str
    compressed: int
    decompressed: int
    file_size: int
    detail: str = ""


# Pieces fed to zlib while diagnosing: small, so a corrupt spot is located within 16 KB.
_DIAGNOSE_PIECE = 16 * 1024


def diagnose_gzip(where: str) -> GzipDamage | None:
    """Inflate a local gzip file once with zlib to find where it is damaged.

    Used on the error path only: the fast engines decode ahead in blocks (or in parallel),
    so when they fail the caller cannot tell how far the file really inflates. Returns
    ``None`` for URLs and file objects (not re-read), for files that are not gzip, and for a
    file that inflates cleanly.
    """
    if not os.path.isfile(where):
        return None
    inflater = zlib.decompressobj(wbits=31)
    consumed = produced = 0
    with open(where, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        if raw.read(2) != b"\x1f\x8b":
            return None  # not gzip: an uncompressed file, ended early
        raw.seek(0)
        while piece := raw.read(_DIAGNOSE_PIECE):
            while piece:
                try:
                    produced += len(inflater.decompress(piece, 1 << 20))
                except zlib.error as error:
                    return GzipDamage("corrupt", consumed, produced, size, str(error))
                if inflater.eof:
                    used = len(piece) - len(inflater.unused_data)
                    piece = inflater.unused_data
                    consumed += used
                    if piece:
                        inflater = zlib.decompressobj(wbits=31)  # the next member
                else:
                    consumed += len(piece) - len(inflater.unconsumed_tail)
                    piece = inflater.unconsumed_tail
    if not inflater.eof:
        return GzipDamage("truncated", consumed, produced, size)
    return None


def _truncated_message(
    where: str, reached: int, needed: int | None, damage: GzipDamage | None
) -> str:
    if damage is not None and needed is not None and damage.decompressed >= needed:
        needed = None  # the engine failed while decoding ahead, past the bytes asked for
    need = f", but at least {needed} are needed for the data the header describes" * (
        needed is not None
    )
    if damage is None:
        head = f"{where}: the data ends at decompressed byte {reached}{need}."
    else:
        head = (
            f"{where}: the gzip stream is cut short: all {damage.compressed} compressed bytes "
            f"of the file inflate to {damage.decompressed} bytes{need}, and the stream ends "
            "without its end-of-stream marker."
        )
    return f"{head} The file is truncated (an interrupted download or copy?); fetch it again."


def _raise_decode_error(
    error: BaseException, *, where: str, offset: int, needed: int | None = None
) -> None:
    text = str(error)
    damage = diagnose_gzip(where)
    if damage is not None and damage.kind == "truncated":
        raise TruncatedImageError(_truncated_message(where, offset, needed, damage)) from error
    if damage is not None:
        raise ImageFormatError(
            f"{where}: corrupt gzip data at compressed bytes {damage.compressed}-"
            f"{damage.compressed + _DIAGNOSE_PIECE} of {damage.file_size} (decompressed byte "
            f"{damage.decompressed}): {damage.detail}. The file is damaged; fetch it again."
        ) from error
    # Not re-readable (a URL or file object): the engine delivered ``offset`` bytes before
    # it failed; threaded and parallel engines decode ahead, so the damage may lie further.
    place = f"after {offset} decompressed bytes were delivered"
    if isinstance(error, EOFError) or "end-of-stream" in text or "truncat" in text.lower():
        raise TruncatedImageError(
            f"{where}: the gzip stream ends early ({place}; the inflater reads ahead, so "
            f"the cut may be further on): {text}. The file is truncated; fetch it again."
        ) from error
    raise ImageFormatError(f"{where}: corrupt gzip data ({place}): {text}.") from error


def read_head(raw: BinaryStream, size: int, *, compressed: bool) -> bytes:
    """Read the first ``size`` bytes of a possibly gzip-compressed stream.

    Uses the standard library's incremental inflater: for a header, spinning up a
    threaded or parallel engine costs more than it saves, and zlib reports damage plainly.
    """
    if not compressed:
        return raw.read(size) or b""
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


def drain(stream: BinaryStream, *, where: str, offset: int) -> None:
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
