"""The read-ahead stream (lazyspheres.io.readahead): same bytes, errors, bounded, stops."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from lazyspheres.io.readahead import ReadAhead


class Source(io.RawIOBase):
    """A stream that records how far it was read, returns short reads, and may fail."""

    def __init__(self, data: bytes, *, fail_at: int | None = None, short: int = 0):
        self.data, self.fail_at, self.short = data, fail_at, short
        self.position = 0
        self.threads: set[str] = set()

    def readable(self):
        return True

    def readinto(self, buffer):
        self.threads.add(threading.current_thread().name)
        if self.fail_at is not None and self.position >= self.fail_at:
            raise OSError(f"bad data at {self.position}")
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self.data) - self.position)
        if self.short:
            count = min(count, self.short)
        view[:count] = self.data[self.position : self.position + count]
        self.position += count
        return count


def _data(size: int) -> bytes:
    return np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("size", [0, 1, 999, 4096, 4097, 100_003])
@pytest.mark.parametrize("wanted", [1, 1000, 4096, 10_000, 1 << 20])
def test_same_bytes_in_any_read_sizes(size, wanted):
    data = _data(size)
    source = Source(data, short=777)  # short reads from the source too
    with ReadAhead(source, piece=4096, depth=2) as stream:
        out = bytearray()
        buffer = bytearray(wanted)
        while count := stream.readinto(buffer):
            out += buffer[:count]
        assert stream.readinto(buffer) == 0  # stays at its end
    assert bytes(out) == data
    assert source.threads <= {"lazyspheres-read-ahead"}  # only the helper reads the source


def test_error_is_raised_after_the_bytes_before_it():
    data = _data(50_000)
    with ReadAhead(Source(data, fail_at=20_000), piece=5000) as stream:
        assert stream.read(20_000) == data[:20_000]
        with pytest.raises(OSError, match="bad data at 20000"):
            stream.read(1)


def test_reads_ahead_only_a_few_pieces():
    source = Source(_data(1_000_000))
    with ReadAhead(source, piece=1000, depth=3) as stream:
        assert len(stream.read(10)) == 10
        for _ in range(100):  # give the helper time to run as far as it may
            if source.position >= 4000:
                break
            threading.Event().wait(0.01)
        # the piece being copied out, plus at most ``depth`` filled ahead
        assert source.position <= 4000


def test_close_stops_the_helper_mid_stream():
    source = Source(_data(1_000_000))
    stream = ReadAhead(source, piece=1000, depth=2)
    assert len(stream.read(1500)) == 1500
    stream.close()
    assert not stream._thread.is_alive()
    reached = source.position
    threading.Event().wait(0.05)
    assert source.position == reached <= 4000
    with pytest.raises(ValueError):
        stream.read(1)
