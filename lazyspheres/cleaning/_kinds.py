"""Duck-typed checks for array containers, without importing dask, xarray or pandas."""

from __future__ import annotations

from typing import Any

__all__ = ["is_dask_array", "is_dataarray", "is_dataframe", "is_series"]


def _is(obj: Any, name: str, package: str) -> bool:
    kind = type(obj)
    return kind.__name__ == name and kind.__module__.split(".")[0] == package


def is_dask_array(obj: Any) -> bool:
    """Whether ``obj`` is a ``dask.array.Array``."""
    return _is(obj, "Array", "dask")


def is_dataarray(obj: Any) -> bool:
    """Whether ``obj`` is an ``xarray.DataArray``."""
    return _is(obj, "DataArray", "xarray")


def is_dataframe(obj: Any) -> bool:
    """Whether ``obj`` is a ``pandas.DataFrame``."""
    return _is(obj, "DataFrame", "pandas")


def is_series(obj: Any) -> bool:
    """Whether ``obj`` is a ``pandas.Series``."""
    return _is(obj, "Series", "pandas")
