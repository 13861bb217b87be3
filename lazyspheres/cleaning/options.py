"""The cleaning options of :func:`lazyspheres.clean`, as one typed, frozen object.

Options that are the same for every run (filters, standardisation, ...) travel as a
:class:`CleaningParams` from where the user gives them (``clean``, the masker,
``extract_many``, the command line) down to :func:`~lazyspheres.cleaning.params.build_plan`;
confounds and sample masks are per run and travel beside it.

Where the user's input enters, :meth:`CleaningParams.validated` runs the type checks nilearn
0.12.1's ``signal.clean`` runs before it looks at anything else (its ``check_params``), and
:func:`~lazyspheres.cleaning.params.build_plan` trusts a validated object. Every other check
stays in ``build_plan``: nilearn makes it after reading the confounds, the sample mask or
the signals, or warns first, and an error raised earlier would change which error (or
warning) a call with several faults gets.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias

import numpy as np

from lazyspheres._types import Attrs, UserInput
from lazyspheres.cleaning.exceptions import CleaningTypeError

if TYPE_CHECKING:  # the cleaning imports none of these at run time (see _kinds)
    import dask.array as da
    import numpy.typing as npt
    import pandas as pd
    import xarray as xr

__all__ = [
    "CleaningParams",
    "ConfoundsLike",
    "FillNa",
    "FilterKind",
    "PadType",
    "SampleMaskLike",
    "Standardize",
]

ConfoundsLike: TypeAlias = (
    "npt.ArrayLike | pd.DataFrame | str | os.PathLike[str] | da.Array | xr.DataArray"
    " | list[ConfoundsLike] | tuple[ConfoundsLike, ...]"
    " | tuple[pd.DataFrame, npt.ArrayLike | None]"
)
"""Confounds as :func:`lazyspheres.clean` takes them: an array ``(T, k)``, a DataFrame, a
file, a Dask array or DataArray, a list of those (stacked), or ``load_confounds``'
``(DataFrame, sample_mask)`` pair."""

SampleMaskLike: TypeAlias = "npt.ArrayLike"
"""Volumes to keep: indices or booleans (a list may hold one such mask per run)."""

Standardize: TypeAlias = bool | Literal["zscore", "zscore_sample", "psc"] | None
"""The ``standardize`` strategies (``True`` is nilearn 0.12.1's "zscore")."""

FilterKind: TypeAlias = Literal["butterworth", "cosine"] | bool | None
"""The ``filter`` option: a filter type, or a falsy value for none."""

PadType: TypeAlias = Literal["odd", "even", "constant"] | None
"""``scipy.signal.sosfiltfilt``'s ``padtype``."""

FillNa: TypeAlias = Literal["zero", "mean", "interpolate"] | None
"""How non-finite confound cells are filled (None: they raise)."""


@dataclass(frozen=True)
class CleaningParams:
    """Run-independent cleaning options; defaults are :func:`lazyspheres.clean`'s.

    Each field is documented by :func:`lazyspheres.clean`. ``given`` names the fields the
    user spelled out (a result store records those, as it always did, even at defaults).
    """

    detrend: bool = False
    standardize: Standardize = False
    standardize_confounds: bool = True
    low_pass: float | None = None
    high_pass: float | None = None
    t_r: float | None = None
    filter: FilterKind = "butterworth"
    ensure_finite: bool = False
    extrapolate: bool = True
    butterworth_order: int = 5
    butterworth_padtype: PadType = "odd"
    butterworth_padlen: int | None = None
    fill_na: FillNa = None
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    # Set by validated() only: not an __init__ argument, so dataclasses.replace (a changed
    # option) gives an object that is checked again.
    checked: bool = field(default=False, init=False, compare=False, repr=False)

    def validated(self) -> CleaningParams:
        """These options, type-checked as nilearn 0.12.1 checks them first.

        ``detrend`` and ``standardize_confounds`` must be booleans; ``t_r``, ``low_pass``
        and ``high_pass`` numbers or None (nilearn's TypeError messages).
        :func:`~lazyspheres.cleaning.params.build_plan` skips these checks for the
        returned object. No warning is emitted here: nilearn's warnings depend on each
        call's confounds and data, and stay with the plan.

        Returns
        -------
        CleaningParams
            Equal to this one, marked as checked.

        Raises
        ------
        TypeError
            "'detrend' should be of type '<class 'bool'>'..." and the like.
        """
        if self.checked:
            return self
        _check_bool("detrend", self.detrend)
        _check_bool("standardize_confounds", self.standardize_confounds)
        for name in ("t_r", "low_pass", "high_pass"):
            _check_number(name, getattr(self, name))
        checked = dataclasses.replace(self)
        object.__setattr__(checked, "checked", True)  # frozen: the one place it is set
        return checked

    @classmethod
    def from_options(cls, options: Mapping[str, UserInput]) -> CleaningParams:
        """The params of a ``{name: value}`` mapping (TypeError naming unknown names)."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise TypeError(
                f"unexpected cleaning option(s) {unknown}; the options are {cls.names()}."
            )
        return cls(**options, given=frozenset(options))

    @classmethod
    def names(cls) -> list[str]:
        """The option names (every field but ``given`` and ``checked``)."""
        return [f.name for f in dataclasses.fields(cls) if f.init and f.name != "given"]

    def record(self) -> Attrs:
        """The options set, by name: those given, and any off its default (a store's record)."""
        default = CleaningParams()
        return {
            name: getattr(self, name)
            for name in self.names()
            if name in self.given or getattr(self, name) != getattr(default, name)
        }


_NUMBER_TYPE_TEXT = "float | int | numpy.floating | numpy.integer | None"


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise CleaningTypeError(
            f"'{name}' should be of type '<class 'bool'>'.\nGot: '{type(value)}'"
        )


def _check_number(name: str, value: object) -> None:
    if value is not None and not isinstance(value, (float, int, np.floating, np.integer)):
        raise CleaningTypeError(
            f"'{name}' should be of type '{_NUMBER_TYPE_TEXT}'.\nGot: '{type(value)}'"
        )
