"""Test helpers shared by the test suite, the benchmarks and downstream users.

They prove laziness: :func:`raise_if_dask_computes` installs a Dask scheduler that counts
``compute`` calls and raises past a budget, so graph construction can be shown to compute
nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import dask

if TYPE_CHECKING:
    from dask.typing import Key

__all__ = ["CountingScheduler", "raise_if_dask_computes"]


class CountingScheduler:
    """A synchronous Dask scheduler that counts its calls and raises past ``max_computes``.

    Parameters
    ----------
    max_computes : int
        How many ``compute`` calls are allowed before :class:`RuntimeError` is raised.
    """

    def __init__(self, max_computes: int = 0) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(
        self, dsk: Mapping[Key, object], keys: Sequence[Key] | Key, **kwargs: object
    ) -> object:
        """Count this compute, raise past the budget, else run it synchronously."""
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"Too many dask computations were scheduled: {self.total_computes} "
                f"(allowed: {self.max_computes})"
            )
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[CountingScheduler]:
    """Fail if Dask computes more than ``max_computes`` times inside the block.

    Parameters
    ----------
    max_computes : int, default 0
        Number of ``compute`` calls tolerated.

    Yields
    ------
    CountingScheduler
        The scheduler, whose ``total_computes`` tells how many computations ran.
    """
    scheduler = CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler
