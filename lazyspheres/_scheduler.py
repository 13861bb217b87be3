"""Which Dask scheduler runs a computation: an active ``distributed`` client, or the local one.

The batch and the connectome both ask it (how many threads will run the tasks; whether to
collect results as futures). One answer for both, so that a user's explicit choice of a
local scheduler (``dask.config.set(scheduler="threads")``) is honoured everywhere even
while a ``distributed`` client exists, as ``dask.compute`` itself honours it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import dask

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["active_client", "n_workers"]


def active_client(client: Client | None = None) -> Client | None:
    """The given client, else the default ``distributed`` client if one is active."""
    if client is not None:
        return client
    scheduler = dask.config.get("scheduler", None)
    if scheduler not in (None, "dask.distributed", "distributed"):
        return None  # the user chose a local scheduler explicitly
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:
        return None


def n_workers(client: Client | None) -> int:
    """Number of threads that will run tasks (``client``'s, else the local scheduler's)."""
    if client is not None:
        threads = client.nthreads()
        return max(1, sum(threads.values()))
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
