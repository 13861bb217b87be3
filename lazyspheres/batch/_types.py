"""Names for the values that flow through the batch package only."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal, TypeAlias, Union

if TYPE_CHECKING:
    from zarr.abc.store import Store

__all__ = ["ErrorPolicy", "JsonValue", "OnEmpty", "PerRunGiven", "StoreTarget"]

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
"""A value as JSON holds it (the store's parameter record, input fingerprints)."""

StoreTarget: TypeAlias = Union[str, os.PathLike[str], "Store"]
"""Where a result store is: a path, an fsspec URL or a zarr Store."""

OnEmpty: TypeAlias = Literal["raise", "nan"]
"""What a run with an empty sphere does: fail, or get NaN for that seed."""

ErrorPolicy: TypeAlias = Literal["raise", "warn"]
"""What failed runs do once all runs ran: raise BatchError, or warn."""

PerRunGiven: TypeAlias = Literal["bids", "per-run"] | None
"""How a per-run input was given (as the store records it): discovered, listed, or not."""
