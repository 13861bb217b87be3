"""The binary stream type the readers share: what they use of any file object.

``typing.IO[bytes]`` has no ``readinto`` and ``io.RawIOBase`` is not what fsspec,
rapidgzip or ISA-L return; this protocol names exactly the methods the readers call.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["BinaryStream", "skip_then_fill"]


class BinaryStream(Protocol):
    """A readable binary file object (local file, URL handle or inflated gzip stream)."""

    def read(self, size: int = -1, /) -> bytes | None:
        """Up to ``size`` bytes (all the rest when negative)."""

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        """Fill ``buffer``; the number of bytes written (0 at the end)."""

    def seek(self, offset: int, whence: int = 0, /) -> int:
        """Move to ``offset``; the new position."""

    def tell(self) -> int:
        """The current position."""

    def close(self) -> None:
        """Release the handle."""

    def __enter__(self) -> BinaryStream: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> bool | None: ...


def skip_then_fill(
    readinto: Callable[[memoryview], int | None], position: int, start: int, target: memoryview
) -> None:
    """Read a stream now at decompressed ``position`` up to ``start``, then fill ``target``.

    ``readinto`` is the stream's (0 or ``None`` at its end).

    The bytes before ``start`` go through a scratch buffer of at most 4 MiB.

    Raises
    ------
    EOFError
        The stream ended first (the message names the decompressed byte it ended at).
    """
    scratch = memoryview(bytearray(min(start - position, 4 << 20) or 1))
    while position < start:
        count = readinto(scratch[: min(start - position, len(scratch))]) or 0
        if not count:
            raise EOFError(f"gzip data ended at decompressed byte {position}.")
        position += count
    filled = 0
    while filled < len(target):
        count = readinto(target[filled:]) or 0
        if not count:
            raise EOFError(f"gzip data ended at decompressed byte {start + filled}.")
        filled += count
