"""The gztool index format rapidgzip exports, read just enough to cut one range's sub-index.

Importing a whole index into rapidgzip costs ~0.1 s at T=1200 (1000 seek points, each with
a compressed 32 KiB window), more than reading one volume. A range read needs only the seek
points around it, so :func:`sub_index` writes a valid gztool index holding the first point
(decompressed offset 0, empty window), the points from the last one at or before ``start``
to the first one at or after ``stop``, and the trailer: importing it is instant.

Layout (gztool's format version 0, big-endian, as rapidgzip writes it): 8 zero bytes,
``gzipindx``, the number of points twice (uint64), then per point its decompressed offset
(uint64), compressed byte offset (uint64), bit offset (uint32), window length (uint32) and
the compressed window; then the decompressed size (uint64).
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass

__all__ = ["GztoolLayout", "parse_layout", "sub_index"]

_HEADER = b"\0" * 8 + b"gzipindx"
_COUNTS = struct.Struct(">QQ")
_POINT = struct.Struct(">QQII")


@dataclass(frozen=True)
class GztoolLayout:
    """Where each seek point of a gztool index lies in its bytes.

    Attributes
    ----------
    offsets : tuple of int
        Decompressed offset of each point, ascending.
    spans : tuple of (int, int)
        ``[begin, end)`` of each point's record in the index bytes.
    trailer : int
        Start of the trailer (the decompressed size).
    """

    offsets: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    trailer: int


def parse_layout(data: bytes) -> GztoolLayout:
    """Locate the points of a gztool index.

    Raises
    ------
    ValueError
        Not a complete gztool (version 0) index.
    """
    if data[: len(_HEADER)] != _HEADER:
        raise ValueError("not a gztool index (rapidgzip's export): bad header")
    try:
        count, size = _COUNTS.unpack_from(data, len(_HEADER))
        position = len(_HEADER) + _COUNTS.size
        offsets, spans = [], []
        for _ in range(count):
            offset, _compressed, _bits, window = _POINT.unpack_from(data, position)
            end = position + _POINT.size + window
            offsets.append(offset)
            spans.append((position, end))
            position = end
    except struct.error as error:
        raise ValueError(f"truncated gztool index: {error}") from error
    if count != size or len(data) != position + 8 or offsets != sorted(offsets):
        raise ValueError("inconsistent gztool index (point count, order or length)")
    return GztoolLayout(tuple(offsets), tuple(spans), position)


def sub_index(data: bytes, layout: GztoolLayout, start: int, stop: int) -> bytes:
    """A gztool index with only the points a read of ``[start, stop)`` needs."""
    first = max(bisect.bisect_right(layout.offsets, start) - 1, 0)
    last = min(bisect.bisect_left(layout.offsets, stop), len(layout.offsets) - 1)
    chosen = sorted({0, *range(first, last + 1)}) if layout.offsets else []
    body = b"".join(data[slice(*layout.spans[k])] for k in chosen)
    counts = _COUNTS.pack(len(chosen), len(chosen))
    return _HEADER + counts + body + data[layout.trailer :]
