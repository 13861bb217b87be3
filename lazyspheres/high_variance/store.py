"""Rows of a time × voxel matrix, appended in time order, in bounded memory.

The second pass over a gzip stream yields the kept voxels' values volume block by volume
block, but ``S Sᵀ`` pairs every block with every other. :class:`RowStore` keeps the blocks
(in their stored dtype, so int16 images cost 2 bytes a value) in memory up to a budget and
moves them to an anonymous temporary file beyond it; reading a block back is a plain file
read, so the process's resident memory stays at the budget whatever the run length.
"""

from __future__ import annotations

import io
import tempfile

import numpy as np

__all__ = ["STORE_MEMORY_BYTES", "RowStore"]

#: Bytes of rows kept in memory before spilling to a temporary file.
STORE_MEMORY_BYTES = 16 * 2**20


class RowStore:
    """Append-only rows of ``n_columns`` values of one dtype.

    Parameters
    ----------
    n_columns : int
        Values per row.
    dtype : numpy.dtype
        Stored dtype.
    memory_bytes : int, optional
        In-memory budget (default :data:`STORE_MEMORY_BYTES`, read at call time).
    """

    def __init__(self, n_columns: int, dtype: np.dtype, memory_bytes: int | None = None) -> None:
        self.n_columns = int(n_columns)
        self.dtype = np.dtype(dtype)
        self.memory_bytes = STORE_MEMORY_BYTES if memory_bytes is None else int(memory_bytes)
        self.n_rows = 0
        self._blocks: list[np.ndarray] = []
        self._file: io.BufferedRandom | None = None

    @property
    def row_bytes(self) -> int:
        """Bytes of one row."""
        return self.n_columns * self.dtype.itemsize

    @property
    def spilled(self) -> bool:
        """Whether rows live in a temporary file."""
        return self._file is not None

    def append(self, rows: np.ndarray) -> None:
        """Add ``(b, n_columns)`` rows after the existing ones."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.ndim != 2 or rows.shape[1] != self.n_columns:
            raise ValueError(f"rows of shape {rows.shape}; expected (b, {self.n_columns})")
        self.n_rows += rows.shape[0]
        if self._file is None and self.n_rows * self.row_bytes > self.memory_bytes:
            # closed (and deleted) by close() / __exit__
            self._file = tempfile.TemporaryFile(prefix="lazyspheres-rows-")  # noqa: SIM115
            for block in self._blocks:
                self._file.write(block.reshape(-1).view(np.uint8).data)
            self._blocks = []
        if self._file is not None:
            self._file.seek(0, 2)
            self._file.write(rows.reshape(-1).view(np.uint8).data)
        else:
            self._blocks.append(rows)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` as a new ``(stop - start, n_columns)`` array."""
        if not 0 <= start <= stop <= self.n_rows:
            raise IndexError(f"rows {start}:{stop} of {self.n_rows}")
        if self._file is None:
            whole = np.concatenate(self._blocks) if len(self._blocks) > 1 else self._blocks[0]
            self._blocks = [whole]
            return whole[start:stop]
        values = np.empty((stop - start, self.n_columns), dtype=self.dtype)
        self._file.seek(start * self.row_bytes)
        wanted = values.nbytes
        view = values.reshape(-1).view(np.uint8).data
        if self._file.readinto(view) != wanted:  # pragma: no cover
            raise OSError("the temporary row file is shorter than what was written to it")
        return values

    def block_bounds(self, bytes_per_block: int) -> list[tuple[int, int]]:
        """Row ranges of about ``bytes_per_block`` (at least one row each) covering all rows."""
        per_block = max(1, bytes_per_block // max(1, self.row_bytes))
        if not self.spilled:
            per_block = max(per_block, self.n_rows)  # already in memory: one block
        return [(a, min(self.n_rows, a + per_block)) for a in range(0, self.n_rows, per_block)]

    def close(self) -> None:
        """Drop the rows (deleting the temporary file)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._blocks = []

    def __enter__(self) -> RowStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
