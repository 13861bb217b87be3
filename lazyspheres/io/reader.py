"""Read voxel data from a single-file NIfTI image without loading it whole.

:class:`NiftiFile` pairs a :class:`~lazyspheres.io.sources.ByteSource` with its parsed
:class:`~lazyspheres.io.header.NiftiLayout`. It is small, immutable and picklable, so Dask
tasks carry it to workers and open the file there.

NIfTI stores voxels in Fortran order: within a volume ``i`` varies fastest, so voxel
``(i, j, k)`` of volume ``t`` sits at element ``t * V + i + X * (j + Y * k)``. Viewed in C
order the data is a ``(T, Z, Y, X)`` array, which is how the readers index it.

Access patterns, per storage kind:

* uncompressed local file: ``numpy.memmap``; a gather touches only the pages holding the
  requested voxels;
* uncompressed URL: byte-range requests (whole volumes, or the z-slab range needed);
* gzip: one sequential inflate pass. Random access to volume ``t`` costs inflating
  everything before it, so extraction streams the file once
  (:meth:`NiftiFile.iter_gathered`) instead of reading chunk by chunk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from lazyspheres.errors import ImageFormatError, TruncatedImageError
from lazyspheres.io import remote
from lazyspheres.io.header import (
    HEADER_PROBE_BYTES,
    NiftiLayout,
    layout_from_header,
    parse_header_bytes,
)
from lazyspheres.io.inflate import drain, open_inflated, read_exactly, read_head
from lazyspheres.io.sources import ByteSource, resolve_source

__all__ = ["STREAM_BLOCK_BYTES", "NiftiFile"]

# Inflate this many bytes of volumes at a time: large enough to amortise Python overhead
# per block, small enough that peak memory does not depend on the number of volumes.
STREAM_BLOCK_BYTES = 32 * 2**20


@dataclass(frozen=True)
class NiftiFile:
    """A lazily read single-file NIfTI image (``.nii`` or ``.nii.gz``, local or remote).

    Attributes
    ----------
    source : ByteSource
        Where the bytes are.
    layout : NiftiLayout
        Parsed header facts.
    """

    source: ByteSource
    layout: NiftiLayout

    @classmethod
    def open(cls, source: Any, storage_options: dict[str, Any] | None = None) -> NiftiFile:
        """Read and validate the header of ``source`` (path, URL or binary file object).

        Raises
        ------
        FileNotFoundError
            The file does not exist.
        ImageFormatError
            Not a NIfTI file, or a header lazyspheres cannot read.
        TruncatedImageError
            An uncompressed file shorter than its header says.
        """
        byte_source = resolve_source(source, storage_options)
        where = byte_source.location
        lock = byte_source.lock()
        with lock if lock is not None else contextlib.nullcontext(), byte_source.open() as raw:
            compressed = byte_source.compression == "gzip"
            head = read_head(raw, HEADER_PROBE_BYTES, compressed=compressed)
        header = parse_header_bytes(head, where=where)
        layout = layout_from_header(
            header, where=where, file_size=byte_source.size, compressed=compressed
        )
        if byte_source.compression is None and byte_source.size is not None:
            needed = layout.vox_offset + layout.data_bytes
            if byte_source.size < needed:
                complete = max(0, byte_source.size - layout.vox_offset) // layout.volume_bytes
                raise TruncatedImageError(
                    f"{where}: the file has {byte_source.size} bytes but its header "
                    f"(shape {layout.shape}, {layout.raw_dtype}) needs {needed}; only "
                    f"{complete} complete volume(s) are present. The file is truncated."
                )
        return cls(byte_source, layout)

    # ------------------------------------------------------------------ whole volumes
    def iter_volume_blocks(
        self, start: int = 0, stop: int | None = None, *, block_bytes: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t0, block)`` with ``block`` of shape ``(b, V)`` raw values, in time order.

        One sequential pass over volumes ``start`` to ``stop``; each block is a fresh
        buffer the caller may keep.
        """
        layout = self.layout
        stop = layout.n_volumes if stop is None else stop
        block_bytes = block_bytes or STREAM_BLOCK_BYTES
        per_block = max(1, block_bytes // layout.volume_bytes)
        if self.source.compression is None and self.source.is_local:
            for t0 in range(start, stop, per_block):
                t1 = min(stop, t0 + per_block)
                yield t0, np.array(self._memmap(t0, t1))
            return
        if self._is_remote_uncompressed():
            for t0 in range(start, stop, per_block):
                yield t0, remote.read_volumes(self, t0, min(stop, t0 + per_block))
            return
        yield from self._streamed_blocks(start, stop, per_block, reuse=False)

    def _streamed_blocks(
        self, start: int, stop: int, per_block: int, *, reuse: bool
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Blocks of volumes from one sequential pass over the (inflated) stream.

        With ``reuse``, every block is read into the same buffer: the caller must be done
        with a block before asking for the next one. A fresh buffer per block instead makes
        the heap grow and shrink by a block at a time, which showed as a 60 MB sawtooth in
        the peak RSS of long runs.
        """
        size = min(per_block, max(0, stop - start)) * self.layout.volume_bytes
        buffer = bytearray(size) if reuse else None
        with self._stream_from(start) as stream:
            for t0 in range(start, stop, per_block):
                t1 = min(stop, t0 + per_block)
                yield t0, self._read_volumes(stream, t0, t1, into=buffer)
        if self._is_url():
            # s3fs pins the ETag on every GET; other stores are checked once at the end.
            remote.ensure_unchanged(self.source)

    def iter_gathered(
        self,
        flat_indices: np.ndarray,
        start: int = 0,
        stop: int | None = None,
        *,
        block_bytes: int | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t0, values)`` with ``values[b, n]`` = raw value of voxel ``flat_indices[n]``.

        ``flat_indices`` are Fortran-order flat voxel indices within a volume. Memory in
        use is one block of volumes plus the gathered values, whatever the run length.
        """
        layout = self.layout
        stop = layout.n_volumes if stop is None else stop
        block_bytes = block_bytes or STREAM_BLOCK_BYTES
        if self.source.compression is None and self.source.is_local:
            # Gathering from a memmap reads only the pages holding the requested voxels. Each
            # block gets its own short-lived mapping: touched file pages count in the RSS
            # while mapped, so one long-lived mapping would grow the RSS with the run.
            per_block = max(1, block_bytes // layout.volume_bytes)
            for t0 in range(start, stop, per_block):
                t1 = min(stop, t0 + per_block)
                mapped = self._memmap(t0, t1)
                values = mapped[:, flat_indices]
                del mapped
                yield t0, values
            return
        if self._is_remote_uncompressed():
            # Only the byte ranges holding the voxels, coalesced into few large requests.
            yield from remote.iter_gathered(self, flat_indices, start, stop)
            return
        per_block = max(1, block_bytes // layout.volume_bytes)
        for t0, block in self._streamed_blocks(start, stop, per_block, reuse=True):
            yield t0, block[:, flat_indices]  # a copy: the block's buffer is reused

    def read_region(self, i: slice, j: slice, k: slice, t: slice | None = None) -> np.ndarray:
        """Read raw values of a box, returned with axes ``(i, j, k[, t])``.

        For gzip files this inflates everything up to the last requested volume: fine for a
        one-off look, wasteful in a loop (use the streaming iterators instead).
        """
        layout = self.layout
        if self._is_remote_uncompressed():
            return self._read_remote_region(i, j, k, t)
        if self.source.compression is None and self.source.is_local:
            data = self._memmap(0, layout.n_volumes)
        else:
            t0, t1 = (0, layout.n_volumes) if t is None else _bounds(t, layout.n_volumes)
            with self._stream_from(t0) as stream:
                data = self._read_volumes(stream, t0, t1)
            t = None if t is None else slice(None, None, t.step)
        x, y, z = layout.shape[:3]
        volumes = data.reshape(-1, z, y, x)
        tsel = slice(None) if t is None else t
        box = volumes[tsel, k, j, i]
        box = np.array(box.transpose(3, 2, 1, 0))
        return box if layout.ndim == 4 else box[..., 0]

    # ------------------------------------------------------------------ internals
    def _is_url(self) -> bool:
        return not self.source.is_local and self.source.fileobj is None

    def _is_remote_uncompressed(self) -> bool:
        return self.source.compression is None and self._is_url()

    def _read_remote_region(self, i: slice, j: slice, k: slice, t: slice | None) -> np.ndarray:
        """Fetch only the z-slab of whole slices spanned by ``k``, for the volumes in ``t``."""
        layout = self.layout
        x, y, z = layout.shape[:3]
        xs, ys, ks = np.arange(x)[i], np.arange(y)[j], np.arange(z)[k]
        ts = np.arange(layout.n_volumes)[slice(None) if t is None else t]
        if min(xs.size, ys.size, ks.size, ts.size) == 0:
            box = np.empty((xs.size, ys.size, ks.size, ts.size), dtype=layout.raw_dtype)
            return box if layout.ndim == 4 else box[..., 0]
        k0, k1 = int(ks.min()), int(ks.max()) + 1
        t0, t1 = int(ts.min()), int(ts.max()) + 1
        data = remote.read_volumes(self, t0, t1, k0 * x * y, k1 * x * y)
        slab = data.reshape(t1 - t0, k1 - k0, y, x)
        box = slab[(ts - t0)[:, None], (ks - k0)[None, :]][:, :, j, i]
        box = np.array(box.transpose(3, 2, 1, 0))
        return box if layout.ndim == 4 else box[..., 0]

    def _memmap(self, start: int, stop: int) -> np.ndarray:
        """Map volumes ``start`` to ``stop`` as a ``(stop - start, V)`` read-only array."""
        layout = self.layout
        return np.memmap(
            self.source.location,
            dtype=layout.raw_dtype,
            mode="r",
            offset=layout.vox_offset + start * layout.volume_bytes,
            shape=(stop - start, layout.volume_voxels),
        )

    @contextlib.contextmanager
    def _stream_from(self, start: int) -> Iterator[IO[bytes]]:
        """Open the decompressed byte stream positioned at volume ``start``."""
        layout = self.layout
        offset = layout.vox_offset + start * layout.volume_bytes
        with _opened(self.source) as stream:
            if self.source.compression is None:
                stream.seek(offset)
            else:
                _skip(stream, offset, where=self.source.location)
            yield stream

    def _read_volumes(
        self, stream: IO[bytes], t0: int, t1: int, *, into: bytearray | None = None
    ) -> np.ndarray:
        layout = self.layout
        size = (t1 - t0) * layout.volume_bytes
        buffer = into if into is not None and len(into) >= size else bytearray(size)
        read_exactly(
            stream,
            memoryview(buffer)[:size],
            where=self.source.location,
            offset=layout.vox_offset + t0 * layout.volume_bytes,
        )
        if t1 == layout.n_volumes and self.source.compression == "gzip":
            # Reading on to the end makes the inflater verify the gzip CRC32 and length:
            # a corrupt file must fail here, not pass with wrong values.
            end = layout.vox_offset + layout.data_bytes
            drain(stream, where=self.source.location, offset=end)
        return np.frombuffer(
            buffer, dtype=layout.raw_dtype, count=size // layout.raw_dtype.itemsize
        ).reshape(t1 - t0, -1)


@contextlib.contextmanager
def _opened(source: ByteSource) -> Iterator[IO[bytes]]:
    """Open ``source`` (inflating gzip) under its lock, closing what we opened."""
    lock = source.lock()
    with contextlib.ExitStack() as stack:
        if lock is not None:
            stack.enter_context(lock)
        if source.is_local or source.fileobj is not None:
            raw = stack.enter_context(source.open())
        else:
            raw = stack.enter_context(remote.open_stream(source))
        if source.compression == "gzip":
            yield stack.enter_context(open_inflated(raw))
        else:
            yield raw


def _skip(stream: IO[bytes], count: int, *, where: str) -> None:
    scratch = bytearray(min(count, 8 * 2**20) or 1)
    done = 0
    while done < count:
        chunk = memoryview(scratch)[: min(len(scratch), count - done)]
        read_exactly(stream, chunk, where=where, offset=done)
        done += len(chunk)


def _bounds(t: slice, n: int) -> tuple[int, int]:
    start, stop, step = t.indices(n)
    if step < 0:
        raise ImageFormatError("Reversed time slices are not supported when reading gzip data.")
    return start, max(start, stop)
