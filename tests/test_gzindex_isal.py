"""Checkpoints of ISA-L's inflater (:mod:`lazyspheres.io.gzindex_isal`).

Every value is compared with the standard library's inflate of the same bytes. Files mix
noise and repeated words (so deflate emits back references across checkpoints), are
compressed at levels 0 (stored blocks), 1, 6 and 9, sometimes as several members, and read
with small input pieces and small checkpoint spacings, so reads cross many checkpoint,
input-piece, output-piece and member boundaries.
"""

from __future__ import annotations

import gzip
import io
import itertools
import pickle
import zlib

import numpy as np
import pytest

from lazyspheres.errors import ImageFormatError, TruncatedImageError
from lazyspheres.io import gzindex_isal
from lazyspheres.io.inflate import drain, open_inflated, read_exactly

pytest.importorskip("isal")


def _plain(seed: int, size: int) -> bytes:
    generator = np.random.default_rng(seed)
    words = [generator.bytes(int(n)) for n in generator.integers(2, 12, 200)]
    pieces, total = [], 0
    while total < size:
        if generator.random() < 0.3:
            piece = generator.bytes(int(generator.integers(1, 5000)))  # incompressible
        else:
            piece = b"".join(words[i] for i in generator.integers(0, 200, 300))
        pieces.append(piece)
        total += len(piece)
    return b"".join(pieces)[:size]


def _gzip(plain: bytes, level: int, members: int = 1) -> bytes:
    cuts = np.linspace(0, len(plain), members + 1).astype(int)
    out = []
    for start, stop in itertools.pairwise(cuts):
        packer = zlib.compressobj(level, zlib.DEFLATED, 31)
        out.append(packer.compress(plain[start:stop]) + packer.flush())
    return b"".join(out)


def _record(data: bytes, *, spacing: int, piece: int, read: int = 65536):
    stream = gzindex_isal.RecordingInflater(io.BytesIO(data), spacing=spacing, piece=piece)
    out = bytearray()
    buffer = bytearray(read)
    while count := stream.readinto(buffer):
        out += buffer[:count]
    assert stream.index is None or stream.readinto(buffer) == 0
    index = stream.index
    stream.close()
    return bytes(out), index


def _opener(data: bytes):
    return lambda: io.BytesIO(data)


def _read(data: bytes, index, start: int, stop: int) -> tuple[bytes, int]:
    out = memoryview(bytearray(stop - start))
    begin = gzindex_isal.read_into(_opener(data), index, start, out)
    return bytes(out), begin


CASES = [
    # (seed, size, level, members, spacing, piece)
    (1, 700_000, 1, 1, 50_000, 4096),
    (2, 900_000, 6, 1, 65_536, 10_007),
    (3, 500_000, 9, 1, 33_000, 1024),
    (4, 600_000, 0, 1, 40_000, 8192),  # stored blocks
    (5, 800_000, 6, 3, 45_000, 5000),  # checkpoints inside later members
    (6, 300_000, 1, 7, 20_000, 777),
    (7, 1_500_000, 9, 2, 200_000, 65_536),
    (8, 64_000, 6, 1, 1_000, 300),
]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: "seed{}-L{}-m{}".format(*c[::2]))
def case(request):
    seed, size, level, members, spacing, piece = request.param
    plain = _plain(seed, size)
    data = _gzip(plain, level, members)
    streamed, index = _record(data, spacing=spacing, piece=piece, read=37_000 + seed)
    return plain, data, streamed, index, spacing


def test_engine_is_available_and_self_tested():
    assert gzindex_isal.available()
    assert gzindex_isal.engine_signature().endswith(f"/{gzindex_isal._STATE_SIZE}")


def test_recording_stream_equals_plain_inflate(case):
    plain, data, streamed, index, spacing = case
    assert streamed == plain
    assert index.uncompressed_size == len(plain)
    assert index.compressed_size == len(data)
    offsets = [d for _, d in index.points]
    assert offsets == sorted(offsets)
    assert len(index.points) >= len(plain) // spacing // 2  # one at least every ~2 spacings
    assert all(b - a >= spacing for a, b in zip([0, *offsets], offsets, strict=False))


def test_every_checkpoint_resumes(case):
    plain, data, _, index, spacing = case
    for compressed, decompressed in index.points:
        assert 0 < compressed <= len(data)
        stop = min(len(plain), decompressed + 3 * spacing)
        got, begin = _read(data, index, decompressed, stop)
        assert begin == decompressed
        assert got == plain[decompressed:stop]
    last = index.points[-1][1] if index.points else 0
    assert _read(data, index, last, len(plain))[0] == plain[last:]


def test_random_ranges_across_checkpoints(case):
    plain, data, _, index, spacing = case
    generator = np.random.default_rng(len(plain))
    for _ in range(40):
        start = int(generator.integers(0, len(plain)))
        stop = min(len(plain), start + int(generator.integers(1, 3 * spacing)))
        got, begin = _read(data, index, start, stop)
        assert got == plain[start:stop], (start, stop)
        assert begin <= start
        assert start - begin < 2 * spacing + 600_000


def test_index_round_trips_and_pickles(case):
    *_, index, _ = case
    assert gzindex_isal.CheckpointIndex.from_bytes(index.to_bytes()) == index
    assert pickle.loads(pickle.dumps(index)) == index
    assert index.nbytes == sum(map(len, index.blobs)) + 16 * len(index.points)


@pytest.mark.parametrize("metadata", [b"[1, 2]", b'"text"', b"{not json", b'{"format": "zran"}'])
def test_both_kinds_refuse_unreadable_metadata(metadata):
    import struct

    from lazyspheres.io import gzindex

    for kind, magic in ((gzindex_isal.CheckpointIndex, b"LSGZCKP1"), (gzindex.GzipIndex, None)):
        magic = magic or gzindex._MAGIC
        blob = magic + struct.pack("<I", len(metadata)) + metadata + bytes(16)
        with pytest.raises(ValueError, match=r"not a lazyspheres|unknown .* format"):
            kind.from_bytes(blob)


def test_stale_or_damaged_index_is_refused(case, monkeypatch):
    _, data, _, index, _ = case
    blob = index.to_bytes()
    with pytest.raises(ValueError, match="missing magic"):
        gzindex_isal.CheckpointIndex.from_bytes(b"X" + blob[1:])
    with pytest.raises(ValueError, match=r"wrong length|not a lazyspheres"):
        gzindex_isal.CheckpointIndex.from_bytes(blob[:-1])
    other = blob.replace(index.engine.encode(), b"isal-0.0.0/12345")
    with pytest.raises(ValueError, match="stale"):
        gzindex_isal.CheckpointIndex.from_bytes(other)
    # an index pickled elsewhere, by another python-isal, is not used either
    monkeypatch.setattr(gzindex_isal, "engine_signature", lambda: "isal-9.9.9/1")
    assert not index.usable
    with pytest.raises(ValueError, match="unusable"):
        _read(data, index, 0, 10)


def test_index_of_another_file_is_refused(case):
    _, data, _, index, _ = case
    with pytest.raises(ValueError, match="file changed"):
        _read(data + b"\0", index, 0, 10)


@pytest.mark.parametrize("plain", [b"", b"x", b"abc" * 10])
def test_tiny_and_empty_members(plain):
    data = gzip.compress(plain) + gzip.compress(b"") + gzip.compress(plain)
    streamed, index = _record(data, spacing=1, piece=7)
    assert streamed == plain * 2
    assert index.uncompressed_size == 2 * len(plain)


def test_trailing_zero_padding_and_empty_file():
    plain = _plain(9, 100_000)
    streamed, _ = _record(gzip.compress(plain) + b"\0" * 1000, spacing=10_000, piece=4096)
    assert streamed == plain
    assert _record(b"", spacing=10, piece=10)[0] == b""


def test_trailing_garbage_is_an_error():
    with pytest.raises(OSError, match="invalid gzip header"):
        _record(gzip.compress(b"data") + b"garbage!", spacing=10, piece=10)


def test_self_test_failure_makes_the_engine_unavailable(monkeypatch):
    monkeypatch.setattr(gzindex_isal, "_self_test", lambda library: False)
    gzindex_isal._library.cache_clear()
    try:
        assert not gzindex_isal.available()
        with pytest.raises(ImportError):
            gzindex_isal.RecordingInflater(io.BytesIO(gzip.compress(b"x")))
    finally:
        monkeypatch.undo()
        gzindex_isal._library.cache_clear()
    assert gzindex_isal.available()


def test_self_test_catches_a_broken_restore(monkeypatch):
    """A snapshot that loses part of the state (as a wrong layout would) fails the test."""
    real = gzindex_isal._snapshot

    def lossy(state):
        blob = bytearray(zlib.decompress(real(state)))
        start = gzindex_isal._HISTORY_AT
        blob[start : start + 2 * 32768] = bytes(2 * 32768)  # forget the history
        return zlib.compress(bytes(blob))

    monkeypatch.setattr(gzindex_isal, "_snapshot", lossy)
    library = gzindex_isal._Library(gzindex_isal._isal_path())
    assert not gzindex_isal._self_test(library)


# --- damaged files: the same errors as today's ISA-L pass --------------------------------


def _errors(path, engine):
    """What reading the whole file through ``engine`` raises (type, message)."""
    size = len(gzip.decompress(_GOOD))
    with open(path, "rb") as raw:
        if engine == "isal-record":
            stream = gzindex_isal.RecordingInflater(raw, spacing=20_000, piece=4096)
        else:
            stream = open_inflated(raw, engine=engine)
        with stream:
            try:
                read_exactly(stream, memoryview(bytearray(size)), where=str(path), offset=0)
                drain(stream, where=str(path), offset=size)
            except (ImageFormatError, TruncatedImageError) as error:
                return type(error), str(error)
    return None


_GOOD = _gzip(_plain(11, 400_000), 6)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[: len(d) // 2],  # cut in the middle
        lambda d: d[:-4],  # no length in the trailer
        lambda d: d[:-9],  # cut in the last block
        lambda d: d[: len(d) // 2] + bytes([d[len(d) // 2] ^ 0xFF]) + d[len(d) // 2 + 1 :],
        lambda d: d[:-8] + bytes([d[-8] ^ 1]) + d[-7:],  # wrong CRC32
        lambda d: d[:-1] + bytes([d[-1] ^ 1]),  # wrong length
    ],
    ids=["half", "no-length", "last-block", "flipped-byte", "crc", "length"],
)
def test_damaged_files_raise_what_the_isal_pass_raises(tmp_path, damage):
    path = tmp_path / "damaged.gz"
    path.write_bytes(damage(_GOOD))
    expected = _errors(path, "isal")
    assert expected is not None
    assert _errors(path, "isal-record") == expected
