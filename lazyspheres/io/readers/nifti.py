"""NIfTI readers, one per storage kind, chosen in one place (:func:`nifti_reader`).

NIfTI stores voxels in Fortran order: within a volume ``i`` varies fastest, so voxel
``(i, j, k)`` of volume ``t`` is element ``t * V + i + X * (j + Y * k)`` of the data block.
Viewed in C order the data is a ``(T, Z, Y, X)`` array, which is how the readers index it.

:class:`MemmapReader`
    an uncompressed local file, through ``numpy.memmap``: a read touches only the pages
    holding the requested voxels;
:class:`RangeReader`
    an uncompressed URL, through coalesced byte-range requests (:mod:`lazyspheres.io.remote`);
:class:`GzipReader`
    a ``.nii.gz`` (local, URL or file object): random access through a seek-point index
    (:mod:`lazyspheres.io.readers.gzaccess`) when one exists or can be built, else by
    inflating from the start, with a :class:`~lazyspheres.errors.LazySpheresWarning`
    saying so once. A full pass from the start (:meth:`GzipReader.iter_voxels` from
    volume 0) is one sequential stream (ISA-L where installed); over a local file it
    records the index on the way, as checkpoints of ISA-L's inflater, for a few % of the
    pass (:func:`~.gzaccess.record_while_streaming`).
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from lazyspheres.errors import LazySpheresWarning, TruncatedImageError
from lazyspheres.io import remote
from lazyspheres.io.binary import BinaryStream
from lazyspheres.io.header import NiftiLayout
from lazyspheres.io.inflate import drain, open_inflated, read_exactly
from lazyspheres.io.ranges import volume_offsets
from lazyspheres.io.readers import gzaccess
from lazyspheres.io.readers.base import ImageReader, as_flat_voxels
from lazyspheres.io.sources import ByteSource

if TYPE_CHECKING:
    from lazyspheres.io._types import DaskToken
    from lazyspheres.io.gzindex import SeekIndex

__all__ = ["STREAM_BLOCK_BYTES", "GzipReader", "MemmapReader", "NiftiReader", "RangeReader"]

# Read this many bytes of volumes at a time: large enough to amortise Python overhead per
# block, small enough that peak memory does not depend on the number of volumes.
STREAM_BLOCK_BYTES = 32 * 2**20


def nifti_reader(source: ByteSource, layout: NiftiLayout) -> NiftiReader:
    """The reader for a NIfTI file's storage: the one place the storage kinds are told apart."""
    if source.compression == "gzip":
        return GzipReader(source, layout)
    if source.is_local:
        return MemmapReader(source, layout)
    if source.fileobj is not None:
        return GzipReader(source, layout)  # an uncompressed file object: a seekable stream
    return RangeReader(source, layout)


class NiftiReader(ImageReader):
    """Common part of the NIfTI readers: layout facts, scaling and the box geometry."""

    def __init__(self, source: ByteSource, layout: NiftiLayout) -> None:
        self.source = source
        self.layout = layout
        self.shape = tuple(layout.shape)
        self.raw_dtype = layout.raw_dtype
        self.dtype = layout.dtype
        self.location = source.location
        self.time_block = max(1, STREAM_BLOCK_BYTES // layout.volume_bytes)

    @property
    def is_scaled(self) -> bool:
        """Whether the header's ``scl_slope``/``scl_inter`` apply."""
        return self.layout.is_scaled

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """Raw values scaled exactly as nibabel's ``dataobj`` does."""
        return self.layout.scale(raw)

    def __getstate__(self) -> dict[str, object]:
        return {"source": self.source, "layout": self.layout}

    def __setstate__(self, state: dict[str, object]) -> None:
        # re-running __init__ rebuilds what is not pickled (locks, caches)
        self.__init__(state["source"], state["layout"])  # type: ignore[misc]

    def __dask_tokenize__(self) -> DaskToken:
        # The fingerprint too: a rewritten file is other data under the same name.
        return (type(self).__name__, self.location, self.source.fingerprint, self.shape)

    def offset(self, t: int) -> int:
        """Byte offset of volume ``t`` in the (decompressed) file."""
        return int(volume_offsets(self.layout.vox_offset, self.layout.volume_bytes, t, t + 1)[0])

    def per_block(self, block_bytes: int | None) -> int:
        """Volumes per block of ``block_bytes`` (default :data:`STREAM_BLOCK_BYTES`)."""
        return max(1, (block_bytes or STREAM_BLOCK_BYTES) // self.layout.volume_bytes)

    def volumes(self, t0: int, t1: int) -> np.ndarray:
        """Raw ``(t1 - t0, V)`` values of whole volumes (a fresh, writable buffer)."""
        raise NotImplementedError

    def read_voxels(
        self, voxels: np.ndarray, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Raw ``(stop - start, n)`` values of ``voxels``, a block of volumes at a time."""
        stop = self.n_volumes if stop is None else stop
        flat = as_flat_voxels(voxels, self.shape[:3])
        out = np.empty((max(0, stop - start), flat.size), dtype=self.raw_dtype)
        for t0 in range(start, stop, self.time_block):
            t1 = min(stop, t0 + self.time_block)
            out[t0 - start : t1 - start] = self.volumes(t0, t1)[:, flat]
        return out

    def read_box(self, i: slice, j: slice, k: slice, t: slice | None = None) -> np.ndarray:
        """Raw box ``(i, j, k[, t])``: the volumes spanned by ``t``, then the box of each."""
        t = slice(0, self.n_volumes) if t is None or self.ndim == 3 else t
        t0, t1, step = t.indices(self.n_volumes)
        t1 = max(t0, t1)
        x, y, z = self.shape[:3]
        if t1 == t0:
            data = np.empty((0, z, y, x), dtype=self.raw_dtype)
        else:
            data = self.volumes(t0, t1).reshape(t1 - t0, z, y, x)
        box = data[::step, k, j, i]
        # A box of whole volumes is returned as a view of the fresh buffer: no second copy
        # of a 64 MB chunk (its Fortran order is fine for every NumPy consumer).
        return _as_box(box, self.ndim, copy=box.size != data.size)

    def iter_volume_blocks(
        self, start: int, stop: int, block_bytes: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t0, block)`` of whole raw volumes, each block a fresh buffer."""
        per_block = self.per_block(block_bytes)
        for t0 in range(start, stop, per_block):
            yield t0, self.volumes(t0, min(stop, t0 + per_block))

    def iter_gathered(
        self, voxels: np.ndarray, start: int, stop: int, block_bytes: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t0, raw values)`` of ``voxels``, blocks of ``block_bytes`` of volumes."""
        flat = as_flat_voxels(voxels, self.shape[:3])
        per_block = self.per_block(block_bytes)
        for t0 in range(start, stop, per_block):
            yield t0, self.read_voxels(flat, t0, min(stop, t0 + per_block))

    def iter_voxels(
        self, voxels: np.ndarray, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t0, raw values)`` of ``voxels`` in time order (see :meth:`iter_gathered`)."""
        stop = self.n_volumes if stop is None else stop
        return self.iter_gathered(voxels, start, stop)


class MemmapReader(NiftiReader):
    """An uncompressed local NIfTI through short-lived memory maps."""

    def _memmap(self, t0: int, t1: int) -> np.ndarray:
        # A fresh mapping per read: touched file pages count in the RSS while mapped, so
        # one long-lived mapping would grow the RSS with the run.
        return np.memmap(
            self.location,
            dtype=self.raw_dtype,
            mode="r",
            offset=self.offset(t0),
            shape=(t1 - t0, self.layout.volume_voxels),
        )

    def volumes(self, t0: int, t1: int) -> np.ndarray:
        """Raw whole volumes, copied out of the mapping."""
        return np.array(self._memmap(t0, t1))

    def read_voxels(
        self, voxels: np.ndarray, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Raw values of ``voxels``: only the pages holding them are read."""
        stop = self.n_volumes if stop is None else stop
        flat = as_flat_voxels(voxels, self.shape[:3])
        return self._memmap(start, stop)[:, flat] if stop > start else self._empty(flat)

    def read_box(self, i: slice, j: slice, k: slice, t: slice | None = None) -> np.ndarray:
        """Raw box, read from the mapping without copying whole volumes."""
        x, y, z = self.shape[:3]
        volumes = self._memmap(0, self.n_volumes).reshape(-1, z, y, x)
        tsel = slice(None) if t is None or self.ndim == 3 else t
        return _as_box(volumes[tsel, k, j, i], self.ndim)

    def _empty(self, flat: np.ndarray) -> np.ndarray:
        return np.empty((0, flat.size), dtype=self.raw_dtype)


class RangeReader(NiftiReader):
    """An uncompressed NIfTI URL through coalesced byte-range requests."""

    def volumes(self, t0: int, t1: int) -> np.ndarray:
        """Raw whole volumes, in concurrent range requests."""
        return remote.read_volumes(self.source, self.layout, t0, t1)

    def iter_gathered(
        self, voxels: np.ndarray, start: int, stop: int, block_bytes: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Only the byte ranges holding the voxels, coalesced into few large requests."""
        flat = as_flat_voxels(voxels, self.shape[:3])
        return remote.iter_gathered(self.source, self.layout, flat, start, stop)

    def read_voxels(
        self, voxels: np.ndarray, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Raw values of ``voxels`` by coalesced ranges."""
        stop = self.n_volumes if stop is None else stop
        flat = as_flat_voxels(voxels, self.shape[:3])
        blocks = [v for _, v in self.iter_gathered(flat, start, stop)]
        if not blocks:
            return np.empty((0, flat.size), dtype=self.raw_dtype)
        return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]

    def read_box(self, i: slice, j: slice, k: slice, t: slice | None = None) -> np.ndarray:
        """Fetch only the z-slab of whole slices spanned by ``k``, for the volumes in ``t``."""
        x, y, z = self.shape[:3]
        ts = np.arange(self.n_volumes)[slice(None) if t is None or self.ndim == 3 else t]
        ks = np.arange(z)[k]
        if min(ts.size, ks.size, np.arange(x)[i].size, np.arange(y)[j].size) == 0:
            return _as_box(np.empty((ts.size, ks.size, y, x), self.raw_dtype)[:, :, j, i], 4)
        k0, k1 = int(ks.min()), int(ks.max()) + 1
        t0, t1 = int(ts.min()), int(ts.max()) + 1
        data = remote.read_volumes(self.source, self.layout, t0, t1, k0 * x * y, k1 * x * y)
        slab = data.reshape(t1 - t0, k1 - k0, y, x)
        return _as_box(slab[(ts - t0)[:, None], (ks - k0)[None, :]][:, :, j, i], self.ndim)


class GzipReader(NiftiReader):
    """A ``.nii.gz`` (or any user file object): indexed random access, or a sequential pass.

    The seek-point index is looked up in the sidecar/user cache on first use, built on
    demand when a read starts past volume 0 (one parallel pass, under a lock, shared by the
    threads of this process, then cached for other processes and later sessions),
    optionally recorded by full streaming passes, and pickled with the reader.
    """

    def __init__(
        self, source: ByteSource, layout: NiftiLayout, index: SeekIndex | None = None
    ) -> None:
        super().__init__(source, layout)
        self._index = index
        self._looked_up = index is not None
        self._lock = threading.Lock()
        self._warned = False

    def __getstate__(self) -> dict[str, object]:
        return {"source": self.source, "layout": self.layout, "index": self._index}

    def __setstate__(self, state: dict[str, object]) -> None:
        # re-running __init__ rebuilds what is not pickled (locks, caches)
        self.__init__(state["source"], state["layout"], state.get("index"))  # type: ignore[misc]

    @property
    def index(self) -> SeekIndex | None:
        """The seek-point index if this reader has one (cached or recorded), else ``None``."""
        with self._lock:
            if not self._looked_up and self.source.compression == "gzip":
                self._index = gzaccess.cached_index(self.source)
                self._looked_up = True
            return self._index

    def keep_index(self, index: SeekIndex | None) -> None:
        """Adopt an index recorded elsewhere (by a streaming pass over the same file)."""
        if index is not None:
            with self._lock:
                self._index, self._looked_up = index, True

    def _random_access_index(self) -> SeekIndex | None:
        """The index, built now if none exists and this source allows it."""
        if self.source.compression != "gzip":
            return None
        index = self.index
        if index is not None:
            return index
        with self._lock:
            if self._index is None:
                self._index = gzaccess.build_index(self.source)
            return self._index

    def volumes(self, t0: int, t1: int) -> np.ndarray:
        """Raw whole volumes: from the index, else inflating from the start of the file."""
        size = (t1 - t0) * self.layout.volume_bytes
        # np.empty, not bytearray: a 64 MB chunk is not zero-filled before being overwritten
        buffer = np.empty(size, dtype=np.uint8)
        index = self._random_access_index() if t0 > 0 else self.index
        if index is not None:
            if index.uncompressed_size < self.offset(t1):
                raise TruncatedImageError(
                    f"{self.location}: the data ends at decompressed byte "
                    f"{index.uncompressed_size}, but the header promises at least "
                    f"{self.offset(t1)} bytes. The file is truncated (an interrupted download "
                    "or copy?); fetch it again."
                )
            gzaccess.read_into(self.source, index, self.offset(t0), buffer.data)
        else:
            with self._stream() as (stream, _):
                self._seek(stream, t0)
                self._read(stream, buffer.data, t0, t1)
        return _frombuffer(buffer, self.raw_dtype, t1 - t0, self.layout.volume_voxels)

    def iter_gathered(
        self, voxels: np.ndarray, start: int, stop: int, block_bytes: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """One sequential pass over volumes ``start:stop``, gathering ``voxels`` per block.

        Every block is read into the same buffer (a fresh one per block made the heap grow
        and shrink by a block at a time: a 60 MB sawtooth in the peak RSS of long runs).
        """
        flat = as_flat_voxels(voxels, self.shape[:3])
        for t0, block in self._streamed(start, stop, self.per_block(block_bytes), reuse=True):
            yield t0, block[:, flat]  # a copy: the block's buffer is reused

    def iter_volume_blocks(
        self, start: int, stop: int, block_bytes: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """One sequential pass; each block a fresh buffer the caller may keep."""
        return self._streamed(start, stop, self.per_block(block_bytes), reuse=False)

    def _streamed(
        self, start: int, stop: int, per_block: int, *, reuse: bool
    ) -> Iterator[tuple[int, np.ndarray]]:
        if start > 0 and self.index is not None:
            yield from super().iter_volume_blocks(
                start, stop, per_block * self.layout.volume_bytes
            )
            return
        size = min(per_block, max(0, stop - start)) * self.layout.volume_bytes
        shared = bytearray(size) if reuse else None
        with self._stream(record=start == 0) as (stream, recorder):
            self._seek(stream, start)
            for t0 in range(start, stop, per_block):
                t1 = min(stop, t0 + per_block)
                nbytes = (t1 - t0) * self.layout.volume_bytes
                buffer = shared if shared is not None else bytearray(nbytes)
                self._read(stream, buffer, t0, t1)
                yield t0, _frombuffer(buffer, self.raw_dtype, t1 - t0, self.layout.volume_voxels)
        self.keep_index(recorder())
        if not self.source.is_local and self.source.fileobj is None:
            # s3fs pins the ETag on every GET; other stores are checked once at the end.
            remote.ensure_unchanged(self.source)

    @contextlib.contextmanager
    def _stream(
        self, *, record: bool = False
    ) -> Iterator[tuple[BinaryStream, Callable[[], SeekIndex | None]]]:
        """The inflated stream from byte 0 and a callable giving the recorded index."""
        with contextlib.ExitStack() as stack:
            lock = self.source.lock()
            if lock is not None:
                stack.enter_context(lock)
            if self.source.is_local or self.source.fileobj is not None:
                raw = stack.enter_context(self.source.open())
            else:
                raw = stack.enter_context(remote.open_stream(self.source))
            if self.source.compression != "gzip":
                yield raw, lambda: None
                return
            if record:
                stream, recorder = stack.enter_context(gzaccess.recording_stream(self.source, raw))
                yield stream, recorder
                return
            yield stack.enter_context(open_inflated(raw)), lambda: None

    def _read(
        self, stream: BinaryStream, buffer: bytearray | memoryview, t0: int, t1: int
    ) -> None:
        """Fill ``buffer`` with volumes ``t0:t1`` from a stream positioned at ``t0``."""
        nbytes = (t1 - t0) * self.layout.volume_bytes
        read_exactly(
            stream, memoryview(buffer)[:nbytes], where=self.location, offset=self.offset(t0)
        )
        if t1 == self.n_volumes and self.source.compression == "gzip":
            # Reading on to the end makes the inflater verify the gzip CRC32 and length:
            # a corrupt file must fail here, not pass with wrong values.
            drain(stream, where=self.location, offset=self.offset(t1))

    def _seek(self, stream: BinaryStream, t0: int) -> None:
        """Position ``stream`` (from byte 0) at volume ``t0``."""
        if self.source.compression != "gzip":
            stream.seek(self.offset(t0))  # an uncompressed file object: seeking is free
            return
        if t0 > 0:
            self._warn_from_start(t0)
        skip(stream, self.offset(t0), where=self.location)

    def _warn_from_start(self, t0: int) -> None:
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            f"{self.location}: reading volume {t0} of this .nii.gz inflates the file from its "
            f"start ({self.offset(t0) / 2**20:.0f} MB before the first byte needed) because "
            f"there is no seek-point index for it ({gzaccess.why_no_index(self.source)}). "
            "Repeated reads like this one cost O(T²). To avoid it, open the file from a "
            "path or URL with rapidgzip installed (the index is then built once and "
            "cached), or convert the run with lazyspheres.to_zarr_image.",
            LazySpheresWarning,
            stacklevel=4,
        )


def skip(stream: BinaryStream, count: int, *, where: str) -> None:
    """Inflate and discard ``count`` bytes of a stream, 8 MB at a time."""
    scratch = bytearray(min(count, 8 * 2**20) or 1)
    done = 0
    while done < count:
        chunk = memoryview(scratch)[: min(len(scratch), count - done)]
        read_exactly(stream, chunk, where=where, offset=done)
        done += len(chunk)


def _frombuffer(
    buffer: np.ndarray | bytearray, dtype: np.dtype, n: int, per_volume: int
) -> np.ndarray:
    return np.frombuffer(buffer, dtype=dtype, count=n * per_volume).reshape(n, per_volume)


def _as_box(tzyx: np.ndarray, ndim: int, *, copy: bool = True) -> np.ndarray:
    """A ``(t, z, y, x)`` selection as an ``(x, y, z[, t])`` box (C-contiguous if copied)."""
    box = tzyx.transpose(3, 2, 1, 0)
    box = np.array(box) if copy else box
    return box if ndim == 4 else box[..., 0]
