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
* gzip: one sequential inflate pass, or random access through a seek-point index.

The storage kinds are told apart once, in :func:`lazyspheres.io.readers.nifti.nifti_reader`;
:attr:`NiftiFile.reader` is that reader.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lazyspheres.errors import TruncatedImageError
from lazyspheres.io.header import (
    HEADER_PROBE_BYTES,
    NiftiLayout,
    layout_from_header,
    parse_header_bytes,
)
from lazyspheres.io.inflate import read_head
from lazyspheres.io.readers import nifti as _readers
from lazyspheres.io.readers.nifti import NiftiReader, nifti_reader
from lazyspheres.io.sources import ByteSource, resolve_source

if TYPE_CHECKING:
    from lazyspheres._types import StorageOptions
    from lazyspheres.io.binary import BinaryStream

__all__ = ["STREAM_BLOCK_BYTES", "NiftiFile"]

# Bytes of volumes per block of the streaming iterators (read at call time: tests vary it).
STREAM_BLOCK_BYTES = _readers.STREAM_BLOCK_BYTES


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
    def open(
        cls,
        source: str | os.PathLike[str] | BinaryStream,
        storage_options: StorageOptions | None = None,
    ) -> NiftiFile:
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

    @classmethod
    def of_reader(cls, reader: NiftiReader) -> NiftiFile:
        """The file a NIfTI reader reads, sharing that reader (and its gzip index)."""
        nifti = cls(reader.source, reader.layout)
        nifti.__dict__["reader"] = reader  # the cached_property's slot
        return nifti

    @functools.cached_property
    def reader(self) -> NiftiReader:
        """The reader of this file's storage (memmap, byte ranges or gzip)."""
        return nifti_reader(self.source, self.layout)

    def iter_volume_blocks(
        self, start: int = 0, stop: int | None = None, *, block_bytes: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t0, block)`` with ``block`` of shape ``(b, V)`` raw values, in time order.

        One sequential pass over volumes ``start`` to ``stop``; each block is a fresh
        buffer the caller may keep.
        """
        stop = self.layout.n_volumes if stop is None else stop
        return self.reader.iter_volume_blocks(start, stop, block_bytes or STREAM_BLOCK_BYTES)

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
        stop = self.layout.n_volumes if stop is None else stop
        return self.reader.iter_gathered(
            flat_indices, start, stop, block_bytes or STREAM_BLOCK_BYTES
        )

    def read_region(self, i: slice, j: slice, k: slice, t: slice | None = None) -> np.ndarray:
        """Read raw values of a box, returned with axes ``(i, j, k[, t])``."""
        return self.reader.read_box(i, j, k, t)

    def __getstate__(self) -> dict[str, object]:
        return {"source": self.source, "layout": self.layout}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
