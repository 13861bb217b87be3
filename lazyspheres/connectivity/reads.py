"""Read a result store's runs inside the task that computes them.

Why not xarray's Dask arrays of the store: they give every group of runs a read task and a
count task besides the one that computes. The scheduler may run those on another worker,
and then the group's signals (~8 MB) move between processes; each extra task is also a
scheduler round trip in the client's process, which shares the cores with the workers.
Here a group is one task: :meth:`StoredRuns.read` reads its runs where they are used.

A local store in Zarr's plain layout (one chunk spans a run's whole ``(time, seed)``) is read
file by file with :class:`~lazyspheres.io.zarr_chunks.ZarrChunkReader` (no zarr call, no
open handle); any other store through its ``zarr.Array`` (which pickles with its store).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
import zarr

from lazyspheres.io.zarr_chunks import ZarrChunkReader, changes_values

__all__ = ["StoredRuns"]


@dataclass(frozen=True)
class StoredRuns:
    """The ``signals(run, time, seed)`` and ``n_volumes(run)`` of a complete result store.

    Attributes
    ----------
    signals, counts : ZarrChunkReader or zarr.Array
        How each array is read: chunk files directly, or through zarr.
    """

    signals: ZarrChunkReader | zarr.Array
    counts: ZarrChunkReader | zarr.Array

    @classmethod
    def for_store(cls, group: zarr.Group, dataset: xr.Dataset) -> StoredRuns | None:
        """Readers for the store whose root group is ``group`` and whose Dataset is ``dataset``.

        None when the arrays' stored values are not what ``dataset`` shows (CF masking or
        scaling, a partial store masked by ``open_results``, other dims): the caller then
        reads through the Dataset.
        """
        if not dataset.attrs.get("complete"):
            return None
        readers: list[ZarrChunkReader | zarr.Array] = []
        for name, dims in (("signals", ("run", "time", "seed")), ("n_volumes", ("run",))):
            variable = dataset[name]
            array = group[name]
            cf = {**variable.attrs, **variable.encoding}
            if (
                variable.dims != dims
                or not isinstance(array, zarr.Array)
                or changes_values(cf, np.dtype(array.dtype))
            ):
                return None
            reader = ZarrChunkReader.for_array(array, cf)
            whole_rows = reader is not None and reader.chunk_shape[1:] == reader.shape[1:]
            readers.append(reader if reader is not None and whole_rows else array)
        return cls(readers[0], readers[1])

    def read(self, start: int, stop: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Signals ``(T, n_seeds)`` of runs ``start:stop`` (stored dtype) and their counts."""
        return _rows(self.signals, start, stop), np.asarray(_rows(self.counts, start, stop))


def _rows(source: ZarrChunkReader | zarr.Array, start: int, stop: int) -> list[np.ndarray]:
    """Rows ``start:stop`` along the first axis, as views of the decoded chunks."""
    if isinstance(source, zarr.Array):
        return list(np.asarray(source[start:stop]))
    size = source.chunk_shape[0]
    rest = (0,) * (len(source.shape) - 1)
    rows: list[np.ndarray] = []
    for index in range(start // size, (stop - 1) // size + 1):
        chunk = source.read((index, *rest))
        first = index * size
        rows.extend(chunk[max(start, first) - first : min(stop, first + size) - first])
    return rows
