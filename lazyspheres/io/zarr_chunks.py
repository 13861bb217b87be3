"""Read whole chunks of a local Zarr v3 image straight from their files.

Why not through zarr: a sphere extraction reads a few hundred chunks of a few MB and keeps
~5 % of each. Through ``zarr.Array`` every chunk costs a round trip to zarr's event-loop
thread, two more thread hops (file read, decode), a fresh output array and a copy into it:
measured ~0.45 ms per MB, about 4× a plain file read plus decode of the same bytes. For the
Power 264 extraction of an MNI 2 mm run of 1200 volumes that is the difference between
~0.85 s and ~0.2 s.

So, for the layouts that are simple to decode, a :class:`ZarrChunkReader` reads the chunk
file and decodes it with numcodecs (the library zarr's own codecs call): a regular chunk
grid, zarr v3's default chunk keys, the ``bytes`` codec, and at most one of ``blosc``,
``zstd`` or ``gzip``. A missing chunk file is a chunk of ``fill_value``, as in zarr.
Anything else (sharding, other codecs, remote stores) gets ``None`` from
:meth:`ZarrChunkReader.for_array` and is read through zarr. The reader returns stored
values; :meth:`ZarrChunkReader.decode_cf` applies xarray's CF scaling to them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, SupportsFloat

import numpy as np

from lazyspheres.errors import ImageFormatError

if TYPE_CHECKING:
    import zarr

    from lazyspheres._types import Attrs

__all__ = ["ZarrChunkReader", "changes_values"]


@dataclass(frozen=True)
class ZarrChunkReader:
    """Decode whole chunks of one local Zarr v3 array (picklable; no open handles).

    Attributes
    ----------
    folder : str
        The array's folder in the store.
    separator, prefix : str
        How chunk keys are spelled (from zarr's own key encoding): ``prefix`` then the grid
        position joined by ``separator``.
    shape, chunk_shape : tuple of int
        Array shape and (regular) chunk shape.
    dtype : numpy.dtype
        Stored dtype with the byte order of the ``bytes`` codec.
    compressor : str or None
        ``"blosc"``, ``"zstd"``, ``"gzip"`` or ``None``.
    fill_value : scalar
        Value of chunks that were never written.
    scale_factor, add_offset : float or None
        CF attributes that xarray applies on reading.
    """

    folder: str
    separator: str
    prefix: str
    shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    dtype: np.dtype
    compressor: str | None
    fill_value: object
    scale_factor: float | None = None
    add_offset: float | None = None

    @classmethod
    def for_array(cls, array: zarr.Array, attributes: Attrs) -> ZarrChunkReader | None:
        """A reader for ``array`` (a ``zarr.Array``), or ``None`` if its layout is not plain.

        ``attributes`` are the variable's CF attributes as xarray decodes them
        (``scale_factor``, ``add_offset``, ``_FillValue``, ``missing_value``).
        """
        import zarr
        import zarr.codecs

        store = array.store
        metadata = array.metadata
        if not isinstance(store, zarr.storage.LocalStore) or metadata.zarr_format != 3:
            return None
        if not isinstance(metadata.chunk_grid, zarr.core.chunk_grids.RegularChunkGrid):
            return None
        encoding = metadata.chunk_key_encoding
        if not isinstance(encoding, zarr.core.chunk_key_encodings.DefaultChunkKeyEncoding):
            return None
        codecs = list(metadata.codecs)
        if not codecs or not isinstance(codecs[0], zarr.codecs.BytesCodec):
            return None
        names = {
            zarr.codecs.BloscCodec: "blosc",
            zarr.codecs.ZstdCodec: "zstd",
            zarr.codecs.GzipCodec: "gzip",
        }
        if len(codecs) > 2 or (len(codecs) == 2 and type(codecs[1]) not in names):
            return None
        dtype = np.dtype(array.dtype)
        if dtype.kind not in "iuf" or not _plain_cf(attributes, dtype):
            return None
        endian = codecs[0].endian
        if endian is not None and dtype.itemsize > 1:
            dtype = dtype.newbyteorder("<" if endian.value == "little" else ">")
        # zarr's own key encoding tells where chunk (0, ..., 0) lives; other keys follow it
        origin = metadata.encode_chunk_key((0,) * len(array.shape))
        separator = encoding.separator
        prefix = origin[: -len(separator.join("0" * len(array.shape)))]
        return cls(
            folder=os.path.join(os.fspath(store.root), array.path),
            separator=separator,
            prefix=prefix,
            shape=tuple(int(n) for n in array.shape),
            chunk_shape=tuple(int(n) for n in metadata.chunk_grid.chunk_shape),
            dtype=dtype,
            compressor=names[type(codecs[1])] if len(codecs) == 2 else None,
            fill_value=array.fill_value,
            scale_factor=_float_or_none(attributes.get("scale_factor")),
            add_offset=_float_or_none(attributes.get("add_offset")),
        )

    def chunk_path(self, index: tuple[int, ...]) -> str:
        """File of the chunk at grid position ``index``."""
        key = self.prefix + self.separator.join(str(int(i)) for i in index)
        return os.path.join(self.folder, *key.split("/"))

    def read(self, index: tuple[int, ...]) -> np.ndarray:
        """The stored values of one whole chunk (``chunk_shape``; edge chunks are padded)."""
        path = self.chunk_path(index)
        try:
            with open(path, "rb") as handle:
                encoded = handle.read()
        except FileNotFoundError:
            return np.full(self.chunk_shape, self.fill_value, dtype=self.dtype)
        try:
            raw = _decode(self.compressor, encoded)
            values = np.frombuffer(raw, dtype=self.dtype)
            return values.reshape(self.chunk_shape)
        except Exception as error:
            raise ImageFormatError(
                f"Zarr chunk {path} could not be decoded ({self.compressor or 'uncompressed'}, "
                f"{len(encoded)} bytes, expected {np.prod(self.chunk_shape)} values of "
                f"{self.dtype}): {error}. The store is damaged; convert the image again."
            ) from error

    @property
    def is_scaled(self) -> bool:
        """Whether xarray turns stored values into floats with ``scale_factor``/``add_offset``."""
        return self.scale_factor is not None or self.add_offset is not None

    def decode_cf(self, values: np.ndarray) -> np.ndarray:
        """Stored values as xarray's CF decoding gives them (float64 when scaled)."""
        if not self.is_scaled:
            return values
        decoded = values.astype(np.float64)
        if self.scale_factor is not None:
            decoded *= self.scale_factor
        if self.add_offset is not None:
            decoded += self.add_offset
        return decoded


def _decode(compressor: str | None, encoded: bytes) -> bytes:
    if compressor is None:
        return encoded
    import numcodecs

    codec = {"blosc": numcodecs.Blosc, "zstd": numcodecs.Zstd, "gzip": numcodecs.GZip}
    return codec[compressor]().decode(encoded)


def changes_values(attributes: Attrs, dtype: np.dtype) -> bool:
    """Whether xarray's CF decoding changes stored values (scale, offset or masking)."""
    scaled = "scale_factor" in attributes or "add_offset" in attributes
    return scaled or not _plain_cf(attributes, dtype)


def _plain_cf(attributes: Attrs, dtype: np.dtype) -> bool:
    """Whether xarray's CF decoding is at most a scale/offset (no value masking)."""
    if "missing_value" in attributes:
        return False
    fill = attributes.get("_FillValue")
    if fill is None:
        return True
    return dtype.kind == "f" and bool(np.isnan(fill))  # NaN -> NaN changes nothing


def _float_or_none(value: SupportsFloat | None) -> float | None:
    return None if value is None else float(value)
