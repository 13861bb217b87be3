"""Duck-typed checks for array containers, without importing dask, xarray or pandas.

Each check narrows its argument for type checkers (``TypeIs``), so that a branch on
``is_dataarray(signals)`` knows it holds a DataArray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dask.array as da
    import pandas as pd
    import xarray as xr
    from typing_extensions import TypeIs

__all__ = ["is_dask_array", "is_dataarray", "is_dataframe", "is_series"]


def _is(obj: object, name: str, package: str) -> bool:
    kind = type(obj)
    return kind.__name__ == name and kind.__module__.split(".")[0] == package


def is_dask_array(obj: object) -> TypeIs[da.Array]:
    """Whether ``obj`` is a ``dask.array.Array``."""
    return _is(obj, "Array", "dask")


def is_dataarray(obj: object) -> TypeIs[xr.DataArray]:
    """Whether ``obj`` is an ``xarray.DataArray``."""
    return _is(obj, "DataArray", "xarray")


def is_dataframe(obj: object) -> TypeIs[pd.DataFrame]:
    """Whether ``obj`` is a ``pandas.DataFrame``."""
    return _is(obj, "DataFrame", "pandas")


def is_series(obj: object) -> TypeIs[pd.Series]:
    """Whether ``obj`` is a ``pandas.Series``."""
    return _is(obj, "Series", "pandas")
