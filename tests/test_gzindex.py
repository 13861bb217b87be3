"""Random access into gzip files through a seek-point index (lazyspheres.io.gzindex).

Every read is compared with a plain full inflate of the same file. The big file holds more
than two of the reader's 32 MB stream blocks but compresses ~8x, so inflating it stays fast.
"""

from __future__ import annotations

import concurrent.futures
import functools
import gzip
import io
import logging
import pickle
import zlib

import numpy as np
import pytest
from cloud_server import data_gets, s3_fixture  # noqa: F401  (the session's server)

from lazyspheres.errors import LazySpheresWarning
from lazyspheres.io import gzindex, gzindex_cache
from lazyspheres.io.gzindex import GzipIndex, build_index, open_indexing, read_range
from lazyspheres.io.reader import STREAM_BLOCK_BYTES

BIG = 2 * STREAM_BLOCK_BYTES + 5_000_003  # crosses two stream blocks, odd size


def _gzip(data: bytes, level: int = 1) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """(path, decompressed bytes) of a ~72 MB file: random bytes in runs of 16 (compressible)."""
    rng = np.random.default_rng(14)
    data = np.repeat(rng.integers(0, 256, BIG // 16 + 1, dtype=np.uint8), 16)[:BIG].tobytes()
    path = tmp_path_factory.mktemp("gz") / "big.gz"
    path.write_bytes(_gzip(data))
    return path, data


@pytest.fixture(scope="module")
def big_index(big):
    return build_index(functools.partial(open, big[0], "rb"), threads=2)


def _opener(path):
    return functools.partial(open, path, "rb")


def test_index_describes_the_file(big, big_index):
    path, data = big
    assert big_index.uncompressed_size == len(data)
    assert big_index.compressed_size == path.stat().st_size
    assert len(big_index.points) > 2  # several seek points, so reads can start mid-file
    assert big_index.points[0][1] == 0
    decompressed = [offset for _, offset in big_index.points]
    assert decompressed == sorted(decompressed)
    assert big_index.nbytes < 0.02 * path.stat().st_size


def test_random_ranges_equal_full_inflate(big, big_index):
    path, data = big
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(data), 25)
    lengths = rng.integers(0, 3_000_000, 25)
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        stop = min(start + length, len(data))
        assert read_range(_opener(path), big_index, start, stop) == data[start:stop]


def test_ranges_crossing_seek_points_and_stream_blocks(big, big_index):
    path, data = big
    edges = [offset for _, offset in big_index.points[1:]]
    edges += [STREAM_BLOCK_BYTES, 2 * STREAM_BLOCK_BYTES]
    for edge in edges:
        start, stop = max(edge - 1001, 0), min(edge + 777, len(data))
        assert read_range(_opener(path), big_index, start, stop) == data[start:stop], edge
    # one read spanning both stream blocks and many seek points
    start, stop = STREAM_BLOCK_BYTES - 3, 2 * STREAM_BLOCK_BYTES + 5
    assert read_range(_opener(path), big_index, start, stop) == data[start:stop]


def test_read_into_a_buffer_and_at_the_edges(big, big_index):
    path, data = big
    out = bytearray(4099)
    view = read_range(_opener(path), big_index, len(data) - 4099, len(data), out=out)
    assert bytes(view) == bytes(out) == data[-4099:]
    assert read_range(_opener(path), big_index, 7, 7) == b""
    assert read_range(_opener(path), big_index, 0, 1) == data[:1]
    with pytest.raises(ValueError, match="past the decompressed size"):
        read_range(_opener(path), big_index, len(data) - 1, len(data) + 1)
    with pytest.raises(ValueError, match="Bad decompressed byte range"):
        read_range(_opener(path), big_index, 10, 5)
    with pytest.raises(ValueError, match="out has 3 bytes"):
        read_range(_opener(path), big_index, 0, 4, out=bytearray(3))


class CountingFile(io.RawIOBase):
    """A seekable file that records ``(offset, bytes)`` of every read."""

    def __init__(self, raw):
        super().__init__()
        self.raw = raw
        self.reads = []

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        return self.raw.seek(offset, whence)

    def tell(self):
        return self.raw.tell()

    def readinto(self, buffer):
        position = self.raw.tell()
        count = self.raw.readinto(buffer)
        self.reads.append((position, count))
        return count

    def close(self):
        self.raw.close()
        super().close()


def test_a_read_near_the_end_does_not_inflate_from_the_start(big, big_index):
    """Fails if a range read with an index inflates (or even reads) the file from byte 0."""
    path, data = big
    handles = []

    def open_counting():
        handles.append(CountingFile(open(path, "rb")))  # noqa: SIM115  (closed by read_range)
        return handles[-1]

    start, stop = len(data) - 2_000_000, len(data) - 1_000_000
    with gzindex.observe_reads() as seen:
        assert read_range(open_counting, big_index, start, stop) == data[start:stop]
    [read] = seen
    assert read.inflate_from == big_index.seek_point(start)[1] > STREAM_BLOCK_BYTES
    assert read.inflated < 0.2 * len(data)
    fetched = sum(count for _, count in handles[0].reads)
    assert fetched < 0.3 * path.stat().st_size
    # only the gzip header is read near the start (rapidgzip checks it), nothing in between
    half = path.stat().st_size // 2
    early = sum(count for offset, count in handles[0].reads if offset < half)
    assert early <= 256 * 1024, handles[0].reads


def test_first_pass_records_the_index(big, big_index):
    path, data = big
    with open(path, "rb") as raw, open_indexing(raw) as stream:
        assert stream.index is None
        assert stream.read(12345) == data[:12345]
        assert stream.index is None  # not before the end
        assert stream.read() == data[12345:]
        index = stream.index
    assert index is not None
    assert (index.uncompressed_size, index.compressed_size) == (
        big_index.uncompressed_size,
        big_index.compressed_size,
    )
    start = len(data) // 2 + 11
    with gzindex.observe_reads() as seen:
        assert read_range(_opener(path), index, start, start + 50_000) == data[start:][:50_000]
    assert seen[0].inflate_from > 0


def test_recorded_index_reads_across_its_points_and_stream_blocks(big):
    """The index the recording pass keeps (its shipped spacing, read ahead in a helper
    thread) gives the bytes of a plain inflate around every seek point and stream block."""
    path, data = big
    with open(path, "rb") as raw, open_indexing(raw) as stream:
        pieces = []
        while piece := stream.read(3_000_017):  # reads that straddle the helper's pieces
            pieces.append(piece)
        index = stream.index
    assert b"".join(pieces) == data
    assert index is not None
    assert len(index.points) > 3
    assert index.nbytes < 0.02 * path.stat().st_size
    edges = [offset for _, offset in index.points[1:]]
    edges += [STREAM_BLOCK_BYTES, 2 * STREAM_BLOCK_BYTES]
    for edge in edges:
        start, stop = max(edge - 70_001, 0), min(edge + 90_003, len(data))
        with gzindex.observe_reads() as seen:
            assert read_range(_opener(path), index, start, stop) == data[start:stop], edge
        assert seen[0].inflate_from == index.seek_point(start)[1]


def test_indexing_stream_reports_the_index(big):
    path, data = big
    found = []
    with open(path, "rb") as raw, gzindex.open_indexing(raw, on_index=found.append) as stream:
        assert stream.read() == data
    [index] = found
    assert index.uncompressed_size == len(data)


def test_non_seekable_source_streams_without_index(big):
    path, data = big

    class Pipe(io.RawIOBase):
        def __init__(self, raw):
            self.raw = raw

        def readable(self):
            return True

        def readinto(self, buffer):
            return self.raw.readinto(buffer)

    with open(path, "rb") as raw, open_indexing(Pipe(raw)) as stream:
        assert stream.read() == data
        assert stream.index is None


@pytest.mark.parametrize("size", [0, 1, 12_345, 300_001])
def test_small_and_empty_files(tmp_path, size):
    data = np.random.default_rng(size).integers(0, 3, size, dtype=np.uint8).tobytes()
    path = tmp_path / "small.gz"
    path.write_bytes(gzip.compress(data))
    index = build_index(_opener(path))
    assert index.uncompressed_size == size
    assert read_range(_opener(path), index, 0, size) == data
    if size:
        assert read_range(_opener(path), index, size // 2, size) == data[size // 2 :]


def test_multi_member_gzip(tmp_path):
    rng = np.random.default_rng(3)
    parts = [rng.integers(0, 4, n, dtype=np.uint8).tobytes() for n in (3_000_000, 10, 5_000_000)]
    data = b"".join(parts)
    path = tmp_path / "members.gz"
    path.write_bytes(b"".join(_gzip(part) for part in parts))
    index = build_index(_opener(path), spacing=1 << 20)
    assert index.uncompressed_size == len(data)
    for start, stop in [(0, len(data)), (2_999_990, 3_000_020), (len(data) - 77, len(data))]:
        assert read_range(_opener(path), index, start, stop) == data[start:stop]
    with open(path, "rb") as raw, open_indexing(raw) as stream:
        assert stream.read() == data
        assert stream.index.uncompressed_size == len(data)


def test_index_serialises_and_pickles(big_index):
    assert GzipIndex.from_bytes(big_index.to_bytes()) == big_index
    assert pickle.loads(pickle.dumps(big_index)) == big_index
    blob = big_index.to_bytes()
    for broken in (b"", b"not an index", blob[:-1], blob[:40], b"LSGZIDX1" + blob[8:20]):
        with pytest.raises(ValueError, match="index"):
            GzipIndex.from_bytes(broken)


def test_index_of_another_file_is_refused(big, big_index, tmp_path):
    other = tmp_path / "other.gz"
    other.write_bytes(gzip.compress(b"x" * 1000))
    with pytest.raises(ValueError, match="file changed"):
        read_range(_opener(other), big_index, 0, 10)


def test_concurrent_reads_from_threads(big, big_index):
    path, data = big
    rng = np.random.default_rng(5)
    ranges = [(int(s), int(s) + 400_000) for s in rng.integers(0, len(data) - 400_000, 24)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda r: read_range(_opener(path), big_index, *r), ranges))
    for (start, stop), result in zip(ranges, results, strict=True):
        assert result == data[start:stop]


def test_without_rapidgzip_reads_from_the_start_and_warns_once(big, big_index, monkeypatch):
    path, data = big
    monkeypatch.setattr(gzindex, "index_available", lambda: False)
    monkeypatch.setattr(gzindex, "_FALLBACK_WARNED", type(gzindex._FALLBACK_WARNED)())
    start = len(data) - 100
    with pytest.warns(LazySpheresWarning, match="rapidgzip"), gzindex.observe_reads() as seen:
        assert read_range(_opener(path), big_index, start, len(data)) == data[start:]
    assert seen[0].inflate_from == 0
    with pytest.raises(ImportError, match="pip install rapidgzip"):
        build_index(_opener(path))
    # once: the second read is silent (warnings are errors in this suite)
    assert read_range(_opener(path), None, 5, 9) == data[5:9]


# --- persistence ---------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAZYSPHERES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LAZYSPHERES_GZINDEX_CACHE", raising=False)
    return tmp_path / "cache" / "gzindex"


def test_cache_round_trip(cache, big, big_index):
    path, _ = big
    key = gzindex_cache.cache_key(str(path), "size=1;mtime_ns=2")
    assert gzindex_cache.load_cached_index(key) is None
    stored = gzindex_cache.store_cached_index(key, big_index)
    assert stored.parent == cache
    assert [p.name for p in cache.iterdir()] == [stored.name]  # no temporary file left
    size = path.stat().st_size
    assert gzindex_cache.load_cached_index(key, compressed_size=size) == big_index
    assert gzindex_cache.find_index(str(path), "size=1;mtime_ns=2", compressed_size=size) == (
        big_index
    )


def test_cache_ignores_other_versions_and_sizes(cache, big_index, caplog):
    key = gzindex_cache.cache_key("/data/a.nii.gz", "size=1;mtime_ns=2")
    gzindex_cache.store_cached_index(key, big_index)
    other = gzindex_cache.cache_key("/data/a.nii.gz", "size=1;mtime_ns=3")
    assert gzindex_cache.load_cached_index(other) is None
    # an entry whose file name collides with another key is checked against its stored key
    gzindex_cache._entry_path(key).replace(gzindex_cache._entry_path(other))
    with caplog.at_level(logging.DEBUG, logger="lazyspheres.io.gzindex_cache"):
        assert gzindex_cache.load_cached_index(other) is None
        wrong_size = big_index.compressed_size + 1
        gzindex_cache.store_cached_index(key, big_index)
        assert gzindex_cache.load_cached_index(key, compressed_size=wrong_size) is None
    assert "another file version" in caplog.text
    assert "compressed bytes" in caplog.text


def test_corrupt_cache_entry_is_ignored(cache, big_index, caplog):
    key = gzindex_cache.cache_key("/data/b.nii.gz", "etag=abc")
    path = gzindex_cache.store_cached_index(key, big_index)
    path.write_bytes(path.read_bytes()[:-10])
    with caplog.at_level(logging.DEBUG, logger="lazyspheres.io.gzindex_cache"):
        assert gzindex_cache.load_cached_index(key) is None
    assert "corrupt" in caplog.text
    path.write_bytes(b"garbage")
    assert gzindex_cache.load_cached_index(key) is None


def test_cache_can_be_disabled(cache, big_index, monkeypatch):
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_CACHE", "0")
    key = gzindex_cache.cache_key("/data/c.nii.gz", "etag=1")
    assert gzindex_cache.store_cached_index(key, big_index) is None
    assert not cache.exists()
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_CACHE", "1")
    gzindex_cache.store_cached_index(key, big_index)
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_CACHE", "off")
    assert gzindex_cache.load_cached_index(key) is None


def _aged(path, seconds_ago):
    """Set ``path``'s modification time ``seconds_ago`` into the past (its last use)."""
    import os
    import time

    moment = time.time() - seconds_ago
    os.utime(path, (moment, moment))


def test_cache_keeps_the_most_recently_used_within_its_bound(cache, big_index, monkeypatch):
    keys = [gzindex_cache.cache_key(f"/data/run{i}.nii.gz", "etag=1") for i in range(4)]
    entry_bytes = len(gzindex_cache.store_cached_index(keys[0], big_index).read_bytes())
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_CACHE_BYTES", str(3 * entry_bytes))
    for age, key in zip((400, 300, 200), keys[:3], strict=True):
        _aged(gzindex_cache.store_cached_index(key, big_index), age)
    assert gzindex_cache.load_cached_index(keys[0]) == big_index  # used now: newest
    gzindex_cache.store_cached_index(keys[3], big_index)  # a fourth does not fit
    kept = [gzindex_cache.load_cached_index(key) is not None for key in keys]
    assert kept == [True, False, True, True]  # run1 was the least recently used
    assert sum(p.stat().st_size for p in cache.iterdir()) <= 3 * entry_bytes


def test_cache_bound_keeps_the_entry_just_written(cache, big_index, monkeypatch, caplog):
    key = gzindex_cache.cache_key("/data/d.nii.gz", "etag=1")
    entry = gzindex_cache.store_cached_index(key, big_index)
    entry_bytes = entry.stat().st_size
    _aged(entry, 100)
    other = gzindex_cache.cache_key("/data/e.nii.gz", "etag=1")
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_CACHE_BYTES", str(entry_bytes))
    assert gzindex_cache.store_cached_index(other, big_index) is not None
    assert gzindex_cache.load_cached_index(other) == big_index
    assert gzindex_cache.load_cached_index(key) is None  # made room for it
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_CACHE_BYTES", str(entry_bytes - 1))
    with caplog.at_level(logging.DEBUG, logger="lazyspheres.io.gzindex_cache"):
        assert gzindex_cache.store_cached_index(key, big_index) is None  # larger than it all
    assert "Not caching" in caplog.text
    assert gzindex_cache.load_cached_index(other) == big_index  # nothing removed for it


@pytest.mark.parametrize("value", ["-1", "1.5", "1GB", "lots"])
def test_cache_bound_must_be_a_byte_count(cache, big_index, monkeypatch, value):
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_CACHE_BYTES", value)
    key = gzindex_cache.cache_key("/data/f.nii.gz", "etag=1")
    with pytest.raises(ValueError, match="LAZYSPHERES_GZINDEX_CACHE_BYTES"):
        gzindex_cache.store_cached_index(key, big_index)


def test_cache_bound_defaults_and_accepts_underscores(monkeypatch):
    monkeypatch.delenv("LAZYSPHERES_GZINDEX_CACHE_BYTES", raising=False)
    assert gzindex_cache.cache_limit_bytes() == gzindex_cache.DEFAULT_CACHE_BYTES
    monkeypatch.setenv("LAZYSPHERES_GZINDEX_CACHE_BYTES", "500_000_000")
    assert gzindex_cache.cache_limit_bytes() == 500_000_000


def test_cache_dir_defaults_to_the_platform_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("LAZYSPHERES_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(gzindex_cache.sys, "platform", "linux")
    assert gzindex_cache.cache_dir() == tmp_path / "lazyspheres" / "gzindex"


def test_sidecar(cache, big, big_index, tmp_path):
    path, _ = big
    copy = tmp_path / "copy.nii.gz"
    copy.write_bytes(path.read_bytes())
    size = copy.stat().st_size
    assert gzindex_cache.load_sidecar(copy) is None
    sidecar = gzindex_cache.store_sidecar(copy, big_index)
    assert sidecar.name == "copy.nii.gz.gzidx"
    assert gzindex_cache.find_index(str(copy), "unused", compressed_size=size) == big_index
    assert gzindex_cache.load_sidecar(copy, compressed_size=size + 1) is None
    sidecar.write_bytes(b"LSGZIDX1 broken")
    assert gzindex_cache.load_sidecar(copy) is None


# --- remote files ----------------------------------------------------------------------------


def test_memory_filesystem_fetches_only_the_needed_bytes(big, big_index):
    import fsspec

    path, data = big
    fs = fsspec.filesystem("memory")
    fs.pipe("/gzindex/big.gz", path.read_bytes())
    handles = []

    def open_remote():
        handles.append(CountingFile(fs.open("/gzindex/big.gz", "rb")))
        return handles[-1]

    start = len(data) - 3_000_000
    assert read_range(open_remote, big_index, start, start + 1_000_000) == data[start:][:1_000_000]
    assert sum(count for _, count in handles[0].reads) < 0.3 * path.stat().st_size


def test_s3_range_requests(big, big_index, s3):
    path, data = big
    url = s3.put(path, "big.gz")
    fs = s3.filesystem()
    size = path.stat().st_size

    def open_remote():
        return fs.open(url, "rb", block_size=256 * 1024, cache_type="readahead")

    start = len(data) - 3_000_000
    with s3.log.watch() as requests:
        result = read_range(open_remote, big_index, start, start + 1_000_000)
    assert result == data[start:][:1_000_000]
    gets = data_gets(requests, url)
    assert gets, "no ranged GET was logged"
    fetched = sum(r.body_bytes for r in gets)
    assert fetched < 0.3 * size, (fetched, size)
    assert max(r.span[1] for r in gets) > 0.5 * size  # the bytes near the end were fetched


def test_open_indexed_is_a_seekable_reader(big, big_index):
    path, data = big
    with open(path, "rb") as raw, gzindex.open_indexed(raw, big_index) as reader:
        for start in (len(data) - 10, 5, STREAM_BLOCK_BYTES + 1):
            reader.seek(start)
            assert reader.read(10) == data[start : start + 10]


def test_sub_index_keeps_the_points_around_the_range(big_index):
    from lazyspheres.io.gzindex_gztool import parse_layout, sub_index

    layout = big_index.layout
    start = layout.offsets[5] + 1
    stop = layout.offsets[7] + 1
    kept = parse_layout(sub_index(big_index.data, layout, start, stop)).offsets
    assert kept == (0, *layout.offsets[5:9])
    with pytest.raises(ValueError, match="gztool"):
        parse_layout(big_index.data[:-9])
