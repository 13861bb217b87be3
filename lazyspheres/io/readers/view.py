"""A reader seen through a selection and a cast: what ``isel``, ``sel`` and ``astype`` make.

:class:`ViewReader` is a base reader plus one index array per axis of the base image (the
time axis may be dropped by an integer, giving a 3D view of a 4D run) and an optional target
dtype. Its reads map onto the base reader's reads, so a sliced or cast image keeps the
base's fast routes: random access through a gzip index, memory maps, chunk files. Values
are cast after reading, as NumPy's ``astype`` does on the whole image.

Views compose (a view of a view is one view of the base), are small and picklable (index
arrays of a few thousand integers at most), and tokenize by what they select.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lazyspheres.io.readers.base import ImageReader, as_flat_voxels
from lazyspheres.io.readers.nifti import GzipReader, NiftiReader

if TYPE_CHECKING:
    from lazyspheres.io._types import DaskToken

__all__ = ["ViewReader", "cast_view", "view_of"]

# An indexed range read (rapidgzip, one range at a time) inflates more slowly than the
# streaming pass (ISA-L): ~2x per byte at T=1200 on 2 cores. A view's pass starts from
# byte 0 unless it skips more than this share of the volumes before its last one.
_SKIP_SHARE_FOR_INDEX = 0.5


class ViewReader(ImageReader):
    """``base`` with per-axis index selections and an optional cast.

    Parameters
    ----------
    base : ImageReader
        The reader of the stored image (never itself a view).
    index : tuple of numpy.ndarray
        One 1D int64 array of base positions per spatial axis, then (4D base) the time
        positions: a 1D array, or a 0D array for a single volume (a 3D view).
    cast : numpy dtype, optional
        The view's dtype; reads return values cast to it (scaled first).
    """

    def __init__(
        self, base: ImageReader, index: tuple[np.ndarray, ...], cast: npt.DTypeLike | None = None
    ) -> None:
        self.base = base
        self.index = tuple(np.asarray(a, dtype=np.int64) for a in index)
        self.cast = None if cast is None else np.dtype(cast)
        kept = [a for a in self.index if a.ndim == 1]
        self.shape = tuple(int(a.size) for a in kept)
        self.dtype = base.dtype if self.cast is None else self.cast
        self.raw_dtype = base.raw_dtype if self.cast is None else self.cast
        self.location = base.location
        self.time_block = base.time_block

    # -- what the view selects
    @property
    def time_index(self) -> np.ndarray:
        """Base volume of each view volume (``[t]`` for a 3D view of a 4D base)."""
        if self.base.ndim == 3:
            return np.zeros(1, dtype=np.int64)
        return np.atleast_1d(self.index[3])

    @property
    def is_scaled(self) -> bool:
        """Whether :meth:`scale` changes the raw values (never after a cast)."""
        return self.cast is None and self.base.is_scaled

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """The view's values of raw values (the base's scaling; a cast view reads values)."""
        return self.base.scale(raw) if self.cast is None else raw.astype(self.cast, copy=False)

    def _finish(self, raw: np.ndarray) -> np.ndarray:
        """Base raw values as this view's raw values (cast views read scaled, cast values)."""
        return raw if self.cast is None else self.base.scale(raw).astype(self.cast, copy=False)

    def base_voxels(self, voxels: np.ndarray) -> np.ndarray:
        """Fortran-order flat base indices of view ``voxels`` (flat or ``(n, 3)``)."""
        flat = as_flat_voxels(voxels, self.shape[:3])
        ijk = np.unravel_index(flat, self.shape[:3], order="F")
        mapped = tuple(self.index[a][ijk[a]] for a in range(3))
        return np.ravel_multi_index(mapped, self.base.shape[:3], order="F")

    def __getstate__(self) -> dict[str, object]:
        return {"base": self.base, "index": self.index, "cast": self.cast}

    def __setstate__(self, state: dict[str, object]) -> None:
        # re-running __init__ rebuilds what is not pickled
        self.__init__(state["base"], state["index"], state["cast"])  # type: ignore[misc]

    def __dask_tokenize__(self) -> DaskToken:
        selection = tuple((a.shape, a.tobytes()) for a in self.index)
        return ("ViewReader", self.base.__dask_tokenize__(), selection, str(self.cast))

    # -- reads
    def read_voxels(
        self, voxels: np.ndarray, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Raw values of view ``voxels`` in view volumes ``start:stop``."""
        stop = self.n_volumes if stop is None else stop
        flat = self.base_voxels(voxels)
        times = self.time_index[start:stop]
        if times.size == 0:
            return np.empty((0, flat.size), dtype=self.raw_dtype)
        t0, t1 = int(times.min()), int(times.max()) + 1
        raw = np.asarray(self.base.read_voxels(flat, t0, t1))
        if times.size != t1 - t0 or times[0] != t0:
            raw = raw[times - t0]
        return self._finish(raw)

    def read_box(self, i: slice, j: slice, k: slice, t: slice | None = None) -> np.ndarray:
        """Raw box of the view: the base's bounding box, then the selected positions."""
        wanted = [self.index[a][s] for a, s in enumerate((i, j, k))]
        if self.base.ndim == 4:
            times = self.time_index
            wanted.append(times[slice(None) if t is None or self.ndim == 3 else t])
        bounds, picks = [], []
        for positions in wanted:
            span, pick = _cover(positions)
            bounds.append(span)
            picks.append(pick)
        raw = self.base.read_box(*bounds)
        if any(pick is not None for pick in picks):
            full = [slice(None) if p is None else p for p in picks]
            raw = raw[np.ix_(*[np.arange(raw.shape[a])[s] for a, s in enumerate(full)])]
        if self.base.ndim == 4 and self.ndim == 3:
            raw = raw[..., 0]
        return self._finish(np.asarray(raw))

    def iter_gathered(
        self,
        voxels: np.ndarray,
        start: int = 0,
        stop: int | None = None,
        block_bytes: int | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t0, raw values)`` of view ``voxels`` over view volumes ``start:stop``.

        One pass of the base's fastest route over the base volumes spanned (for a
        ``.nii.gz``: the streaming pass from byte 0, or indexed reads when the view skips
        most of the file), keeping the selected volumes. Volumes out of order are
        gathered whole first (their voxel values only).
        """
        stop = self.n_volumes if stop is None else stop
        flat = self.base_voxels(voxels)
        times = self.time_index[start:stop]
        if times.size == 0:
            return
        if np.any(np.diff(times) <= 0):  # reversed or repeated volumes: gather, then yield
            out = np.empty((times.size, flat.size), dtype=self.base.raw_dtype)
            passed = self._base_pass(flat, int(times.min()), int(times.max()) + 1, block_bytes)
            for b0, block in passed:
                inside = (times >= b0) & (times < b0 + block.shape[0])
                out[inside] = block[times[inside] - b0]
            yield start, self._finish(out)
            return
        t1 = int(times[-1]) + 1
        for b0, block in self._base_pass(flat, int(times[0]), t1, block_bytes):
            lo, hi = np.searchsorted(times, [b0, b0 + block.shape[0]])
            if hi > lo:
                yield start + int(lo), self._finish(block[times[lo:hi] - b0])

    def iter_voxels(
        self, voxels: np.ndarray, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t0, raw values)`` in time order (see :meth:`iter_gathered`)."""
        return self.iter_gathered(voxels, start, stop)

    def _base_pass(
        self, flat: np.ndarray, t0: int, t1: int, block_bytes: int | None
    ) -> Iterator[tuple[int, np.ndarray]]:
        base = self.base
        if not isinstance(base, NiftiReader):
            return base.iter_voxels(flat, t0, t1)
        if isinstance(base, GzipReader) and t0 > 0 and not _index_pays(base, t0, t1):
            t0 = 0  # stream from the start and drop the leading volumes: no warning, no index
        return base.iter_gathered(flat, t0, t1, block_bytes)


def _index_pays(reader: GzipReader, t0: int, t1: int) -> bool:
    """Whether indexed reads of volumes ``t0:t1`` beat streaming ``0:t1``."""
    return t0 > _SKIP_SHARE_FOR_INDEX * t1 and reader.index is not None


def _cover(positions: np.ndarray) -> tuple[slice, slice | np.ndarray | None]:
    """A base slice covering ``positions`` and how to pick them out of it (None: all)."""
    if positions.size == 0:
        return slice(0, 0), None
    if positions.size == 1:
        return slice(int(positions[0]), int(positions[0]) + 1), None
    steps = np.diff(positions)
    if steps[0] > 0 and np.all(steps == steps[0]):
        first, step = int(positions[0]), int(steps[0])
        return slice(first, int(positions[-1]) + 1, step), None
    low = int(positions.min())
    return slice(low, int(positions.max()) + 1), positions - low


def view_of(reader: ImageReader, key: object) -> ImageReader | None:
    """The view of ``reader``'s image through a NumPy-style ``key``, or None.

    ``key`` may hold integers (the time axis only: a spatial integer would leave no image),
    slices, an Ellipsis and one 1D integer (or boolean) array; anything else (``None``,
    several arrays, Dask arrays) is not a view and returns None.
    """
    base, index, cast = _parts(reader)
    key = key if isinstance(key, tuple) else (key,)
    if sum(item is Ellipsis for item in key) > 1:
        return None
    if any(item is Ellipsis for item in key):
        at = next(n for n, item in enumerate(key) if item is Ellipsis)
        key = key[:at] + (slice(None),) * (reader.ndim - len(key) + 1) + key[at + 1 :]
    if len(key) > reader.ndim:
        return None
    key = key + (slice(None),) * (reader.ndim - len(key))
    kept = [a for a in index if a.ndim == 1]  # the view's axes, as base positions
    selected, n_arrays = [], 0
    for axis, item in enumerate(key):
        positions = kept[axis]
        if isinstance(item, slice):
            selected.append(positions[item])
            continue
        if isinstance(item, (int, np.integer)):
            if axis < 3:
                return None
            try:
                selected.append(positions[int(item)])  # 0D: the time axis dropped
            except IndexError:
                return None
            continue
        if type(item).__module__.startswith("dask") or n_arrays:
            return None
        array = np.asarray(item)
        if array.ndim != 1 or array.dtype.kind not in "iub":
            return None
        n_arrays += 1
        try:
            selected.append(positions[array])
        except IndexError:
            return None
    if len(index) > len(kept):  # the base's time axis was already dropped
        selected.append(index[3])
    return _simplest(base, tuple(selected), cast)


def cast_view(reader: ImageReader, dtype: npt.DTypeLike) -> ImageReader:
    """``reader``'s image cast to ``dtype`` (values scaled, then cast)."""
    base, index, _ = _parts(reader)
    return _simplest(base, index, dtype)


def _simplest(
    base: ImageReader, index: tuple[np.ndarray, ...], dtype: npt.DTypeLike | None
) -> ImageReader:
    """The base itself when the view selects all of it and casts nothing, else the view."""
    cast = None if dtype is None or np.dtype(dtype) == base.dtype else np.dtype(dtype)
    whole = len(index) == base.ndim and all(
        a.ndim == 1 and a.size == n and np.array_equal(a, np.arange(n))
        for a, n in zip(index, base.shape, strict=True)
    )
    return base if whole and cast is None else ViewReader(base, index, cast)


def _parts(reader: ImageReader) -> tuple[ImageReader, tuple[np.ndarray, ...], np.dtype | None]:
    if isinstance(reader, ViewReader):
        return reader.base, reader.index, reader.cast
    return reader, tuple(np.arange(n, dtype=np.int64) for n in reader.shape), None
