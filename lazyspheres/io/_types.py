"""Names for the values only the io package hands around (see :mod:`lazyspheres._types`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

if TYPE_CHECKING:
    import os
    from collections.abc import Hashable, Mapping

    import zarr
    import zarr.abc.store

    from lazyspheres._types import StorageOptions

__all__ = [
    "ChunkRequest",
    "DaskToken",
    "DimChunks",
    "FrozenOptions",
    "Inflater",
    "OptionsLike",
    "ZarrSource",
]

FrozenOptions: TypeAlias = tuple[tuple[str, object], ...]
"""fsspec options frozen as sorted ``(key, value)`` pairs, so a ``ByteSource`` stays hashable."""

OptionsLike: TypeAlias = "StorageOptions | FrozenOptions | None"
"""fsspec options as the user gave them (a dict) or as a ``ByteSource`` keeps them (pairs);
``dict(options or {})`` reads either."""

ChunkRequest: TypeAlias = (
    'Literal["auto"] | int | tuple[int | tuple[int, ...], ...] | DimChunks | None'
)
"""How to chunk an opened image: ``"auto"``, ``None`` (no Dask), an int or a tuple per axis
(as ``dask.array.normalize_chunks`` takes them), or :data:`DimChunks`."""

DimChunks: TypeAlias = 'Mapping[Hashable, int | Literal["auto"] | None]'
"""Chunk sizes by dimension name (``"auto"`` or ``None`` for an axis: its default)."""

ZarrSource: TypeAlias = "str | os.PathLike[str] | zarr.Group | zarr.abc.store.Store"
"""A Zarr store: a ``*.zarr`` path or fsspec URL, an open zarr Group or a zarr Store."""

DaskToken: TypeAlias = tuple[object, ...]
"""What ``__dask_tokenize__`` returns: plain values Dask hashes into the object's token."""


class Inflater(Protocol):
    """A zlib-style ``decompressobj`` (zlib's, zlib-ng's): what the gzip reader uses of it."""

    @property
    def eof(self) -> bool:
        """Whether the end of the compressed member was reached."""

    @property
    def unused_data(self) -> bytes:
        """Input past the end of the member (the next member, if any)."""

    @property
    def unconsumed_tail(self) -> bytes:
        """Input not inflated yet because ``max_length`` was reached."""

    def decompress(self, data: bytes, max_length: int = 0, /) -> bytes:
        """Inflate ``data``, at most ``max_length`` bytes (0: no limit)."""
