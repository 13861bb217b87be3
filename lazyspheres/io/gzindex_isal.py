"""Seek points recorded by ISA-L's own inflater: checkpoints of its decoder state.

Why this is written here rather than taken from a library (the gzip index module,
:mod:`lazyspheres.io.gzindex`, prefers rapidgzip's index and keeps it for on-demand
builds): recording an index must cost ≤ 10 % of the streaming pass, and the pass uses
ISA-L's inflater (python-isal), the fastest on our two cores. Measured on the MNI 2 mm
runs (benchmarks/bench_byproduct.py), rapidgzip's recording pass costs 1.5x ISA-L's pass
in wall time within 400 MB (its decoder, not its index, is the cost); indexed_gzip records
with zlib. Upstream ISA-L has no option to stop at a deflate block boundary (rapidgzip's
fork of it adds ``points_to_stop_at`` for exactly this), and Python's ``zlib`` exposes no
``Z_BLOCK`` flush (and inflates 2x slower than ISA-L). What upstream ISA-L has is a decoder
whose state between two calls of ``isal_inflate`` is one plain C struct,
``struct inflate_state`` (``include/igzip_lib.h``): bit buffer, Huffman tables, block state,
running CRC32, and the last 32 KiB of output, which ``isal_inflate`` saves into the struct's
``tmp_out_buffer`` before returning. Its only pointers are ``next_in`` and ``next_out``,
which the caller sets before each call. A copy of that struct between two calls is
therefore a complete seek point: restore it, point ``next_in`` at the compressed byte it
had reached, and inflation resumes exactly where it stood.

This module drives ``isal_inflate`` through :mod:`ctypes` (which releases the GIL during
the call) from the functions python-isal's extension exports, with the struct laid out as
in ISA-L v2.32.1, the version python-isal 1.x bundles. Because the layout is not part of a
stable ABI, the engine tests itself at first use (:func:`available`): it inflates a small
multi-block gzip made with :mod:`zlib`, snapshots and restores the state at every call
boundary, and checks the bytes (and that nothing was written past the struct). An index
records the python-isal version and the struct size; a mismatch makes it stale, never used.
If the self-test fails or python-isal is absent, the engine is unavailable and callers fall
back to rapidgzip's index or to inflating from the start.

Each checkpoint stores the struct with its pointers zeroed and only the valid part of the
history buffer kept, compressed with zlib (level 1): 15-40 KB; one every
:data:`SPACING` decompressed bytes keeps the index well under 1 % of a float32 run.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import io
import json
import operator
import os
import struct
import zlib
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from lazyspheres._types import Attrs
from lazyspheres.io.binary import BinaryStream, skip_then_fill
from lazyspheres.io.readahead import ReadAhead

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "SPACING",
    "CheckpointIndex",
    "IndexedAtEnd",
    "RecordingInflater",
    "available",
    "compressed_size",
    "engine_signature",
    "open_recording",
    "pack_framed",
    "read_into",
    "require_size",
    "unpack_framed",
]

#: Decompressed bytes between two checkpoints: one volume read then inflates at most this
#: much before its first byte (~10 ms with ISA-L); the index stays ~0.2 % of a float32 run.
SPACING = 16 * 2**20
_INPUT_PIECE = 1 << 20  # compressed bytes fed to ISA-L per refill
_MAGIC = b"LSGZCKP1"
_Index = TypeVar("_Index")
_FORMAT = "isal-checkpoints"

# --- struct inflate_state of ISA-L v2.32.1 (include/igzip_lib.h), from its constants ---
_HIST_SIZE = 32 * 1024  # ISAL_DEF_HIST_SIZE
_LOOK_AHEAD = (258 + 31) & ~31  # ISAL_LOOK_AHEAD from ISAL_DEF_MAX_MATCH
_MAX_HDR_SIZE = 328  # ISAL_DEF_MAX_HDR_SIZE
_LONG_BITS, _SHORT_BITS = 12, 10  # ISAL_DECODE_LONG_BITS, ISAL_DECODE_SHORT_BITS
_LIT_LEN_SYMBOLS, _DIST_SYMBOLS = 257 + 29, 30


def _long_lookup_size(remaining: int, symbols: int) -> int:
    """ISAL_HUFF_CODE_{LARGE,SMALL}_LONG_ALIGNED: codes + duplicates + unused, to 16."""
    duplicates = (1 << remaining) - (remaining + 1)
    unused = (1 << remaining) - (1 << (remaining // 2)) - (1 << ((remaining + 1) // 2)) + 1
    size = symbols + duplicates + unused
    return size + (-size & 0xF)


class _HuffLarge(ctypes.Structure):
    _fields_ = (
        ("short_code_lookup", ctypes.c_uint32 * (1 << _LONG_BITS)),
        (
            "long_code_lookup",
            ctypes.c_uint16 * _long_lookup_size(21 - _LONG_BITS, _LIT_LEN_SYMBOLS),
        ),
    )


class _HuffSmall(ctypes.Structure):
    _fields_ = (
        ("short_code_lookup", ctypes.c_uint16 * (1 << _SHORT_BITS)),
        ("long_code_lookup", ctypes.c_uint16 * _long_lookup_size(15 - _SHORT_BITS, _DIST_SYMBOLS)),
    )


class _State(ctypes.Structure):
    _fields_ = (
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint32),
        ("total_out", ctypes.c_uint32),
        ("next_in", ctypes.c_void_p),
        ("read_in", ctypes.c_uint64),
        ("avail_in", ctypes.c_uint32),
        ("read_in_length", ctypes.c_int32),
        ("lit_huff_code", _HuffLarge),
        ("dist_huff_code", _HuffSmall),
        ("block_state", ctypes.c_int),  # enum isal_block_state
        ("dict_length", ctypes.c_uint32),
        ("bfinal", ctypes.c_uint32),
        ("crc_flag", ctypes.c_uint32),
        ("crc", ctypes.c_uint32),
        ("hist_bits", ctypes.c_uint32),
        ("type0_block_len", ctypes.c_int32),  # a union of three 32-bit fields
        ("write_overflow_lits", ctypes.c_int32),
        ("write_overflow_len", ctypes.c_int32),
        ("copy_overflow_length", ctypes.c_int32),
        ("copy_overflow_distance", ctypes.c_int32),
        ("wrapper_flag", ctypes.c_int16),
        ("tmp_in_size", ctypes.c_int16),
        ("tmp_out_valid", ctypes.c_int32),
        ("tmp_out_processed", ctypes.c_int32),
        ("tmp_in_buffer", ctypes.c_uint8 * _MAX_HDR_SIZE),
        ("tmp_out_buffer", ctypes.c_uint8 * (2 * _HIST_SIZE + _LOOK_AHEAD)),
    )


_STATE_SIZE = ctypes.sizeof(_State)
_HISTORY_AT = _State.tmp_out_buffer.offset
_CALLER_FIELDS = (_State.next_out, _State.avail_out, _State.next_in, _State.avail_in)
_ISAL_GZIP = 1  # crc_flag: parse the gzip header, check CRC32 and length at the end
_BLOCK_FINISH = 5  # ISAL_BLOCK_FINISH: the member's data and trailer are done
_ERRORS = {
    -1: "invalid deflate block",
    -2: "invalid deflate symbol",
    -3: "invalid lookback distance",
    -4: "invalid gzip header",
    -5: "unsupported compression method",
    -6: "incorrect CRC32 or length in the gzip trailer",
}
# Spare room after the struct, checked untouched by the self-test (a layout mismatch that
# makes ISA-L write past our struct is caught before any real use).
_GUARD = 4096


class _Library:
    """The three ISA-L functions, from python-isal's extension module."""

    def __init__(self, path: str) -> None:
        library = ctypes.CDLL(path)
        self.init = library.isal_inflate_init
        self.reset = library.isal_inflate_reset
        self.inflate = library.isal_inflate
        for function in (self.init, self.reset, self.inflate):
            function.argtypes = (ctypes.c_void_p,)
        self.init.restype = self.reset.restype = None
        self.inflate.restype = ctypes.c_int


def engine_signature() -> str | None:
    """``isal-<python-isal version>/<struct size>``, or ``None`` without python-isal."""
    spec = importlib.util.find_spec("isal")
    if spec is None:
        return None
    import isal

    return f"isal-{getattr(isal, '__version__', '?')}/{_STATE_SIZE}"


def _isal_path() -> str:
    """The python-isal extension module that exports ISA-L's inflate functions."""
    from isal import igzip_lib

    return str(igzip_lib.__file__)


@functools.cache
def _library() -> _Library | None:
    """The library when python-isal is installed and the self-test passes, else ``None``."""
    if engine_signature() is None:
        return None
    try:
        library = _Library(_isal_path())
        return library if _self_test(library) else None
    except (OSError, AttributeError, ImportError, ValueError, EOFError):
        return None


def available() -> bool:
    """Whether checkpoints of ISA-L's inflater can be recorded and used here."""
    return _library() is not None


def _self_test(library: _Library) -> bool:
    """Round-trip a small multi-block, two-member gzip, restoring state at every call."""
    import random

    generator = random.Random(14)
    words = [generator.randbytes(generator.randint(2, 9)) for _ in range(100)]
    plain = b"".join(generator.choices(words, k=9_000))  # ~50 KB, with back references
    members = []
    for level in (1, 0):  # memLevel 1: many small dynamic blocks; then stored blocks
        packer = zlib.compressobj(level, zlib.DEFLATED, 31, memLevel=1)
        members.append(packer.compress(plain) + packer.flush())
    data = b"".join(members)
    expected = plain * 2
    guard = (ctypes.c_uint8 * (_STATE_SIZE + _GUARD))()
    decoder = _Decoder(io.BytesIO(data), library, piece=4099, state=_fresh(library, guard))
    out = bytearray()
    piece = bytearray(9001)
    try:
        while count := decoder.inflate_into(memoryview(piece)):
            out += piece[:count]
            # what a reader does: restore the saved blob (into the guarded struct), seek, go on
            point = decoder.checkpoint()
            ctypes.memmove(guard, bytes(_restore(point.blob)), _STATE_SIZE)
            raw = io.BytesIO(data)
            raw.seek(point.compressed)
            decoder = _Decoder(raw, library, piece=4099, state=_State.from_buffer(guard))
            decoder.resume(point.compressed, point.decompressed)
    except (OSError, EOFError):
        return False
    return bytes(out) == expected and not any(guard[_STATE_SIZE:])


@dataclass(frozen=True)
class _Point:
    compressed: int
    decompressed: int
    blob: bytes


def _snapshot(state: _State) -> bytes:
    """The state without its pointers and stale history (the tail is zeros), compressed."""
    valid = max(0, min(int(state.tmp_out_valid), 2 * _HIST_SIZE + _LOOK_AHEAD))
    raw = bytearray(memoryview(state).cast("B")[: _HISTORY_AT + valid])
    for field in _CALLER_FIELDS:
        raw[field.offset : field.offset + field.size] = bytes(field.size)
    return zlib.compress(raw, 1)


def _fresh(library: _Library, memory: ctypes.Array[ctypes.c_uint8] | None = None) -> _State:
    """A state ready for a gzip file from its first byte (in ``memory`` if given)."""
    state = _State() if memory is None else _State.from_buffer(memory)
    library.init(ctypes.byref(state))
    state.crc_flag = _ISAL_GZIP
    return state


def _restore(blob: bytes) -> _State:
    raw = zlib.decompress(blob)
    if not _HISTORY_AT <= len(raw) <= _STATE_SIZE:
        raise ValueError(f"checkpoint of {len(raw)} bytes, expected at most {_STATE_SIZE}")
    return _State.from_buffer_copy(raw + bytes(_STATE_SIZE - len(raw)))


class _Decoder:
    """``isal_inflate`` over a compressed stream: refills, gzip members, errors, offsets.

    ``state`` resumes a checkpoint (then call :meth:`resume` with its offsets); without it
    the decoder starts at compressed byte 0 with a fresh state.
    """

    def __init__(
        self,
        raw: BinaryStream,
        library: _Library,
        *,
        piece: int = _INPUT_PIECE,
        state: _State | None = None,
    ) -> None:
        self._raw = raw
        self._library = library
        self._buffer = bytearray(piece)
        self._input = (ctypes.c_uint8 * piece).from_buffer(self._buffer)
        self._address = ctypes.addressof(self._input)
        self._state = state = state if state is not None else _fresh(library)
        state.next_in, state.avail_in = self._address, 0
        self._end = 0  # compressed offset just past the buffered input
        self.produced = 0  # decompressed bytes delivered
        self._raw_ended = False
        self.finished = False

    def resume(self, compressed: int, decompressed: int) -> None:
        """Continue from a restored checkpoint (``raw`` is at ``compressed``)."""
        self._end, self.produced = compressed, decompressed

    @property
    def position(self) -> int:
        """Compressed offset of the next input byte ISA-L has not taken."""
        return self._end - int(self._state.avail_in)

    def checkpoint(self) -> _Point:
        """The decoder's state now (between two calls)."""
        return _Point(self.position, self.produced, _snapshot(self._state))

    def _refill(self) -> bool:
        """Keep the unread input, read more after it; False at the end of ``raw``."""
        state = self._state
        left = int(state.avail_in)
        start = (state.next_in or self._address) - self._address
        if left and start:
            self._buffer[:left] = self._buffer[start : start + left]
        if left == len(self._buffer):  # never: ISA-L takes whole headers and blocks in parts
            raise OSError("invalid gzip data: ISA-L took nothing from a full input buffer")
        view = memoryview(self._buffer)[left:]
        count = self._raw.readinto(view) or 0
        self._end += count
        state.next_in, state.avail_in = self._address, left + count
        if not count:
            self._raw_ended = True
        return count > 0

    def _next_member(self) -> bool:
        """After a member's trailer: skip zero padding; reset for another member if any."""
        state = self._state
        while True:
            if not state.avail_in and not self._refill():
                return False
            start = int(state.next_in) - self._address
            chunk = bytes(self._buffer[start : start + int(state.avail_in)])
            zeros = len(chunk) - len(chunk.lstrip(b"\0"))
            state.next_in, state.avail_in = int(state.next_in) + zeros, len(chunk) - zeros
            if state.avail_in < 2 and not self._raw_ended and self._refill():
                continue  # too little to look at the magic number yet
            if state.avail_in:
                start = int(state.next_in) - self._address
                if self._buffer[start : start + 2] != b"\x1f\x8b":
                    raise OSError("invalid gzip header: trailing data after a gzip member")
                self._library.reset(ctypes.byref(state))
                return True

    def inflate_into(self, view: memoryview, boundary: Callable[[], None] | None = None) -> int:
        """Inflate into ``view``; 0 only at the end. ``boundary`` runs between calls."""
        view = view.cast("B") if view.format != "B" else view
        if not len(view) or self.finished:
            return 0
        state = self._state
        target = (ctypes.c_uint8 * len(view)).from_buffer(view)
        address, done = ctypes.addressof(target), 0
        while done < len(view):
            if state.block_state == _BLOCK_FINISH and not self._next_member():
                self.finished = True
                break
            if not state.avail_in and not self._raw_ended:
                self._refill()
            taken = int(state.avail_in)
            state.next_out, state.avail_out = address + done, len(view) - done
            code = self._library.inflate(ctypes.byref(state))
            count = len(view) - done - int(state.avail_out)
            done += count
            self.produced += count
            state.next_out, state.avail_out = None, 0
            if code < 0:
                raise OSError(f"invalid gzip data: {_ERRORS.get(code, f'ISA-L error {code}')}")
            if boundary is not None:
                boundary()
            if count or int(state.avail_in) != taken or state.block_state == _BLOCK_FINISH:
                continue
            if self._raw_ended or (taken and not self._refill()):
                if self.produced == 0 and self._end == 0:
                    self.finished = True  # an empty file: no member at all
                    break
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        del target
        return done


@dataclass(frozen=True)
class CheckpointIndex:
    """Checkpoints of ISA-L's inflater over one gzip file.

    Attributes
    ----------
    points : tuple of (int, int)
        ``(compressed byte offset, decompressed byte offset)`` of each checkpoint, ascending.
    blobs : tuple of bytes
        The compressed decoder state of each checkpoint.
    uncompressed_size : int
        Decompressed size of the whole file (all members).
    compressed_size : int
        Size of the compressed file (checked before use).
    engine : str
        :func:`engine_signature` of the process that recorded it (checked before use).
    """

    points: tuple[tuple[int, int], ...]
    blobs: tuple[bytes, ...]
    uncompressed_size: int
    compressed_size: int
    engine: str

    @property
    def nbytes(self) -> int:
        """Size of the index itself, in bytes."""
        return sum(len(blob) for blob in self.blobs) + 16 * len(self.points)

    @property
    def usable(self) -> bool:
        """Whether this process's ISA-L can resume these checkpoints."""
        return self.engine == engine_signature() and available()

    def seek_point(self, offset: int) -> tuple[int, int]:
        """The last checkpoint at or before decompressed ``offset`` (``(0, 0)``: the start)."""
        at = self._before(offset)
        return self.points[at] if at >= 0 else (0, 0)

    def _before(self, offset: int) -> int:
        return bisect_right(self.points, offset, key=operator.itemgetter(1)) - 1

    def to_bytes(self) -> bytes:
        """Serialise (magic, JSON metadata, offsets, blob sizes, blobs)."""
        meta = {
            "format": _FORMAT,
            "engine": self.engine,
            "uncompressed_size": self.uncompressed_size,
            "compressed_size": self.compressed_size,
            "points": len(self.points),
        }
        count = len(self.points)
        table = struct.pack(
            f"<{3 * count}Q",
            *(v for p, b in zip(self.points, self.blobs, strict=True) for v in (*p, len(b))),
        )
        return pack_framed(_MAGIC, meta, table + b"".join(self.blobs))

    @classmethod
    def from_bytes(cls, blob: bytes) -> CheckpointIndex:
        """Read an index written by :meth:`to_bytes`.

        Raises
        ------
        ValueError
            Not a complete checkpoint index, or one recorded by another python-isal (or
            struct layout) than this process has: it is stale and must not be used.
        """
        meta, start = unpack_framed(blob, _MAGIC, _FORMAT, "checkpoint index")
        if meta.get("engine") != engine_signature():
            raise ValueError(
                f"checkpoint index recorded by {meta.get('engine')}, this process has "
                f"{engine_signature()}: stale"
            )
        try:
            count = int(meta["points"])
            values = struct.unpack_from(f"<{3 * count}Q", blob, start)
            start += 24 * count
            blobs = []
            for size in values[2::3]:
                blobs.append(bytes(blob[start : start + size]))
                start += size
            if start != len(blob):  # a short blob leaves ``start`` past its end
                raise ValueError("checkpoint index data has the wrong length")
            points = tuple(zip(values[0::3], values[1::3], strict=True))
            return cls(
                points,
                tuple(blobs),
                int(meta["uncompressed_size"]),
                int(meta["compressed_size"]),
                str(meta["engine"]),
            )
        except (struct.error, KeyError, TypeError) as e:
            raise ValueError(f"not a lazyspheres checkpoint index: {e}") from e


def pack_framed(magic: bytes, meta: Attrs, body: bytes) -> bytes:
    """``magic``, the length of ``meta`` as JSON, that JSON, then ``body``.

    The layout both kinds of index are stored in (:func:`unpack_framed` reads it).
    """
    encoded = json.dumps(meta).encode()
    return magic + struct.pack("<I", len(encoded)) + encoded + body


def unpack_framed(blob: bytes, magic: bytes, kind: str, what: str) -> tuple[Attrs, int]:
    """The JSON metadata of a :func:`pack_framed` blob and the offset of its body.

    Raises
    ------
    ValueError
        ``blob`` does not start with ``magic``, its metadata is unreadable, or its
        ``format`` is not ``kind`` (``what`` names the blob in the messages).
    """
    if bytes(blob[: len(magic)]) != magic:
        raise ValueError(f"not a lazyspheres {what}: missing magic number")
    try:
        (length,) = struct.unpack_from("<I", blob, len(magic))
        start = len(magic) + 4
        meta = json.loads(bytes(blob[start : start + length]))
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a lazyspheres {what}: {error}") from error
    if not isinstance(meta, dict):
        raise ValueError(f"not a lazyspheres {what}: its metadata is not a JSON object")
    if meta.get("format") != kind:
        raise ValueError(f"unknown {what} format {meta.get('format')!r}")
    return meta, start + length


def compressed_size(raw: BinaryStream) -> int:
    """Size of a seekable compressed file object (its position is kept)."""
    size = getattr(raw, "size", None)  # fsspec files know it without a request
    if isinstance(size, int):
        return size
    position = raw.tell()
    end = raw.seek(0, os.SEEK_END)
    raw.seek(position)
    return int(end)


def require_size(raw: BinaryStream, indexed: int) -> None:
    """Refuse ``raw`` unless it has the ``indexed`` compressed size an index was made for.

    Raises
    ------
    ValueError
        The file changed since (or is another file).
    """
    size = compressed_size(raw)
    if size != indexed:
        raise ValueError(
            f"The gzip index was built for a {indexed}-byte file, but this "
            f"file has {size} bytes: the file changed; rebuild the index."
        )


class _Checkpointing(io.RawIOBase):
    """The decoder as a stream, taking a checkpoint every ``spacing`` decompressed bytes."""

    def __init__(self, decoder: _Decoder, spacing: int) -> None:
        super().__init__()
        self._decoder = decoder
        self._spacing = spacing
        self.points: list[_Point] = []

    def readable(self) -> bool:
        return True

    def _boundary(self) -> None:
        last = self.points[-1].decompressed if self.points else 0
        decoder = self._decoder
        if decoder.produced - last >= self._spacing and not decoder.finished:
            self.points.append(decoder.checkpoint())

    def readinto(self, buffer: WriteableBuffer) -> int:
        return self._decoder.inflate_into(memoryview(buffer), self._boundary)


class IndexedAtEnd(io.RawIOBase, Generic[_Index]):
    """An inflated stream whose index exists once it has been read to its end.

    Subclasses set ``_reader`` (the stream read) and make the index in :meth:`_finish`;
    ``on_index`` is called with it.
    """

    _reader: BinaryStream

    def __init__(self, on_index: Callable[[_Index], None] | None) -> None:
        super().__init__()
        self._on_index = on_index
        self._index: _Index | None = None

    @property
    def index(self) -> _Index | None:
        """The index, once the stream was read to its end (else ``None``)."""
        return self._index

    def readable(self) -> bool:
        """Always True."""
        return True

    def _finish(self) -> _Index | None:
        raise NotImplementedError

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Inflate into ``buffer``; at the end of the stream, make the index."""
        count = self._reader.readinto(memoryview(buffer)) or 0
        if not count and len(memoryview(buffer)) and self._index is None:
            self._index = self._finish()
            if self._index is not None and self._on_index is not None:
                self._on_index(self._index)
        return count

    def close(self) -> None:
        """Stop reading (``raw`` belongs to the caller)."""
        if not self.closed:
            self._reader.close()
        super().close()


class RecordingInflater(IndexedAtEnd["CheckpointIndex"]):
    """The inflated stream of a gzip file that records a :class:`CheckpointIndex`.

    ISA-L inflates in a helper thread (:class:`~lazyspheres.io.readahead.ReadAhead`; the
    GIL is released during each call), overlapping with what the caller does with the
    bytes, as python-isal's threaded reader does. Memory: the read-ahead pieces, 1 MiB of
    input, and the checkpoints (tens of KB each), flat in the file's length.

    Parameters
    ----------
    raw : binary file object
        The compressed bytes at position 0 (seekable, to know its size).
    spacing : int
        Decompressed bytes between checkpoints.
    on_index : callable, optional
        Called with the index once the stream has been read to its end.
    piece : int
        Compressed bytes read per refill of ISA-L's input.
    """

    def __init__(
        self,
        raw: BinaryStream,
        *,
        spacing: int = SPACING,
        on_index: Callable[[CheckpointIndex], None] | None = None,
        piece: int = _INPUT_PIECE,
    ) -> None:
        super().__init__(on_index)
        library = _library()
        if library is None:
            raise ImportError("ISA-L checkpoints are not available here (see available())")
        self._size = compressed_size(raw)
        self._engine = str(engine_signature())  # not None: the library loaded
        self._decoder = _Decoder(raw, library, piece=piece)
        self._stream = _Checkpointing(self._decoder, spacing)
        self._reader = ReadAhead(self._stream)

    def _finish(self) -> CheckpointIndex:
        points = self._stream.points
        return CheckpointIndex(
            tuple((p.compressed, p.decompressed) for p in points),
            tuple(p.blob for p in points),
            self._decoder.produced,
            self._size,
            self._engine,
        )


def open_recording(
    raw: BinaryStream,
    *,
    spacing: int | None = None,
    on_index: Callable[[CheckpointIndex], None] | None = None,
) -> RecordingInflater:
    """Open ``raw`` (compressed, seekable, at position 0) for one pass recording checkpoints.

    ``spacing`` defaults to :data:`SPACING`.

    Raises
    ------
    ImportError
        The engine is not available here (:func:`available`).
    """
    return RecordingInflater(raw, spacing=spacing or SPACING, on_index=on_index)


def read_into(
    open_raw: Callable[[], BinaryStream], index: CheckpointIndex, start: int, out: memoryview
) -> int:
    """Fill ``out`` with decompressed bytes from ``start``; the offset inflated from.

    Raises
    ------
    ValueError
        The index cannot be used here or belongs to another file version.
    EOFError
        The data ended before ``out`` was filled.
    """
    library = _library()
    if library is None or not index.usable:
        raise ValueError(f"checkpoint index of {index.engine} unusable with {engine_signature()}")
    at = index._before(start)
    with contextlib.closing(open_raw()) as raw:
        require_size(raw, index.compressed_size)
        if at < 0:
            decoder, begin = _Decoder(raw, library), 0
        else:
            compressed, begin = index.points[at]
            raw.seek(compressed)
            decoder = _Decoder(raw, library, state=_restore(index.blobs[at]))
            decoder.resume(compressed, begin)
        skip_then_fill(decoder.inflate_into, begin, start, out)
    return begin
