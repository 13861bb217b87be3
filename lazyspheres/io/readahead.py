"""Read a binary stream ahead in a helper thread, so that producing bytes overlaps using them.

A streaming pass inflates and gathers: on two cores, the pass is fastest when the two run
at once (ISA-L's threaded reader does this for its own inflater). :class:`ReadAhead` does
the same for any stream whose ``readinto`` releases the GIL while it works (rapidgzip's
sequential decoder does): a helper thread fills a few fixed pieces in turn, and
``readinto`` copies from them. Memory is bounded by ``depth`` pieces; buffers are reused.
"""

from __future__ import annotations

import io
import queue
import threading
from typing import TYPE_CHECKING

from lazyspheres.io.binary import BinaryStream

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["ReadAhead"]

# What the helper thread hands over: a filled piece and its length, the end, or an error.
_Filled = tuple[bytearray, int] | BaseException | None


class ReadAhead(io.RawIOBase):
    """A read-only stream over ``stream``, filled ahead by a helper thread.

    Parameters
    ----------
    stream : binary file object
        Read sequentially with ``readinto`` from the helper thread only, until it returns
        0 or raises; the caller closes it after closing this object.
    piece : int
        Bytes per ``readinto`` of ``stream``.
    depth : int
        Pieces in flight (filled ahead, or being copied out).

    Notes
    -----
    An error of ``stream`` is raised, as it is, by the ``readinto`` that reaches it.
    """

    def __init__(self, stream: BinaryStream, *, piece: int = 4 << 20, depth: int = 3) -> None:
        super().__init__()
        self._stream = stream
        self._filled: queue.Queue[_Filled] = queue.Queue()
        self._free: queue.Queue[bytearray | None] = queue.Queue()
        for _ in range(max(2, depth)):
            self._free.put(bytearray(piece))
        self._current: tuple[bytearray, int] | None = None
        self._position = 0
        self._ended = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="lazyspheres-read-ahead")
        self._thread.daemon = True  # never keeps the interpreter alive; close() joins it
        self._thread.start()

    def _fill(self) -> None:
        while (buffer := self._free.get()) is not None and not self._stop.is_set():
            try:
                count = self._stream.readinto(memoryview(buffer)) or 0
            except BaseException as error:  # handed to the reader, raised there
                self._filled.put(error)
                return
            if not count:
                self._filled.put(None)
                return
            self._filled.put((buffer, count))

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Copy the next bytes into ``buffer``; 0 at the end of the stream."""
        if self.closed:
            raise ValueError("read from a closed read-ahead stream")
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and not self._ended:
            if self._current is None:
                item = self._filled.get()
                if item is None or isinstance(item, BaseException):
                    self._ended = True
                    if item is not None:
                        raise item
                    break
                self._current, self._position = item, 0
            piece, length = self._current
            count = min(len(view) - done, length - self._position)
            view[done : done + count] = memoryview(piece)[self._position : self._position + count]
            done += count
            self._position += count
            if self._position == length:
                self._free.put(piece)
                self._current = None
        return done

    def close(self) -> None:
        """Stop the helper thread (after its current piece) and wait for it."""
        if not self.closed:
            self._stop.set()
            self._free.put(None)  # wakes a helper waiting for a free piece
            self._thread.join()  # it never waits on anything else (``_filled`` is unbounded)
        super().close()
