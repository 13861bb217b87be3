"""Translate a masker's ``clean_args`` (and deprecated ``clean__*`` kwargs) for :func:`clean`.

nilearn 0.12.1's masker calls ``signal.clean(signals, detrend=..., standardize=...,
standardize_confounds=..., t_r=..., low_pass=..., high_pass=..., confounds=...,
sample_mask=..., runs=None, **extra)`` where ``extra`` is ``clean_args`` (or, when deprecated
``clean__*`` constructor kwargs were given, those kwargs without their prefix). So:

- a key the masker already passes raises ``TypeError "... got multiple values for keyword
  argument 't_r'"``;
- ``filter``, ``ensure_finite``, ``extrapolate`` and ``butterworth__order`` /
  ``butterworth__padtype`` / ``butterworth__padlen`` reach the cleaning;
- every other key is silently ignored, as in nilearn.

lazyspheres additions: ``fill_na`` is honoured too. Difference: an unknown
``butterworth__<name>`` key raises the TypeError nilearn raises only once a Butterworth filter
actually runs (``butterworth__copy`` has no numeric effect and is accepted).

Usage in a masker::

    # at fit
    self.clean_kwargs_ = check_clean_kwargs(self.clean_kwargs, self.clean_args, name)
    # at transform
    extra = self.clean_kwargs_ if self.clean_kwargs else (self.clean_args_ or {})
    clean(signals, detrend=self.detrend, ..., **clean_args_to_kwargs(extra))
"""

from __future__ import annotations

from collections.abc import Mapping

from lazyspheres._types import UserInput
from lazyspheres.cleaning._warnings import warn
from lazyspheres.cleaning.exceptions import CleaningTypeError, CleaningValueError
from lazyspheres.cleaning.options import CleaningParams

__all__ = [
    "CLEAN_ARGS_KEYS",
    "MASKER_CLEAN_KEYWORDS",
    "check_clean_kwargs",
    "clean_args_to_kwargs",
    "clean_args_to_params",
]

#: ``clean_args`` keys and the :func:`lazyspheres.clean` keyword each one maps to.
CLEAN_ARGS_KEYS: dict[str, str] = {
    "filter": "filter",
    "ensure_finite": "ensure_finite",
    "extrapolate": "extrapolate",
    "butterworth__order": "butterworth_order",
    "butterworth__padtype": "butterworth_padtype",
    "butterworth__padlen": "butterworth_padlen",
    "fill_na": "fill_na",
}

#: Arguments the masker passes to ``signal.clean`` itself (``clean_args`` may not repeat them).
MASKER_CLEAN_KEYWORDS = (
    "detrend",
    "standardize",
    "standardize_confounds",
    "t_r",
    "low_pass",
    "high_pass",
    "confounds",
    "sample_mask",
    "runs",
)


def clean_args_to_kwargs(clean_args: Mapping[str, UserInput] | None) -> dict[str, UserInput]:
    """Map nilearn-style ``clean_args`` onto :func:`lazyspheres.clean` keyword arguments.

    Parameters
    ----------
    clean_args : mapping or None
        The masker's ``clean_args`` (or its prefix-stripped ``clean__*`` kwargs).

    Returns
    -------
    dict
        Keyword arguments for :func:`lazyspheres.clean`; unknown keys are dropped.

    Raises
    ------
    TypeError
        A key the masker already passes ("got multiple values for keyword argument"), or an
        unknown ``butterworth__`` option.
    """
    kwargs: dict[str, UserInput] = {}
    for key, value in (clean_args or {}).items():
        if key == "signals":
            raise CleaningTypeError(
                "clean() got multiple values for argument 'signals' (it comes from the "
                "extracted signals, not from clean_args)."
            )
        if key in MASKER_CLEAN_KEYWORDS:
            raise CleaningTypeError(
                f"clean() got multiple values for keyword argument '{key}': the masker passes "
                f"'{key}' from its own parameter; remove it from clean_args."
            )
        if key in CLEAN_ARGS_KEYS:
            kwargs[CLEAN_ARGS_KEYS[key]] = value
        elif key.startswith("butterworth__") and key != "butterworth__copy":
            option = key[len("butterworth__") :]
            raise CleaningTypeError(
                f"butterworth() got an unexpected keyword argument '{option}' (from clean_args "
                f"key '{key}'; known: order, padtype, padlen)."
            )
    return kwargs


def clean_args_to_params(clean_args: Mapping[str, UserInput] | None) -> CleaningParams:
    """The cleaning options nilearn-style ``clean_args`` set, the others at their defaults.

    Parameters
    ----------
    clean_args : mapping or None
        As for :func:`clean_args_to_kwargs`.

    Returns
    -------
    CleaningParams
        Not validated yet (the masker lays its own parameters over it first).

    Raises
    ------
    TypeError
        As :func:`clean_args_to_kwargs`.
    """
    return CleaningParams(**clean_args_to_kwargs(clean_args))


def check_clean_kwargs(
    kwargs: Mapping[str, UserInput] | None,
    clean_args: Mapping[str, UserInput] | None,
    estimator_name: str = "NiftiSpheresMasker",
) -> dict[str, UserInput]:
    """Fit-time handling of deprecated constructor ``**kwargs`` (nilearn 0.12.1).

    Non-empty ``kwargs`` emit nilearn's DeprecationWarning, and are mutually exclusive with
    a truthy ``clean_args`` (``{}`` counts as not given).

    Parameters
    ----------
    kwargs : mapping or None
        The constructor's extra keyword arguments (``clean_kwargs`` in nilearn).
    clean_args : mapping or None
        The ``clean_args`` parameter.
    estimator_name : str, default "NiftiSpheresMasker"
        Class name shown in the warning.

    Returns
    -------
    dict
        ``clean_kwargs_``: the ``clean__``-prefixed entries without their prefix (other keys
        are dropped silently).

    Raises
    ------
    ValueError
        "Passing arguments via 'kwargs' is mutually exclusive with using 'clean_args'".
    """
    kwargs = dict(kwargs or {})
    if kwargs:
        names = [", ".join(kwargs)]
        warn(
            f"You passed some kwargs to {estimator_name}: {names}. This behavior is "
            "deprecated and will be removed in version >0.13.",
            DeprecationWarning,
        )
        if clean_args:
            raise CleaningValueError(
                "Passing arguments via 'kwargs' is mutually exclusive with using 'clean_args'"
            )
    prefix = "clean__"
    return {key[len(prefix) :]: value for key, value in kwargs.items() if key.startswith(prefix)}
