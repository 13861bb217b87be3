"""scikit-learn and joblib glue of the masker: tags, the deprecated ``fit(X=...)``, caching."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sklearn.utils import InputTags as _SklearnInputTags

from lazyspheres.masker._logging import warn

if TYPE_CHECKING:
    from lazyspheres.masker.estimator import NiftiSpheresMasker

__all__ = ["CACHE_LEVEL_WARNING", "InputTags", "cached", "fit_accepts_deprecated_x"]

CACHE_LEVEL_WARNING = (
    "memory_level is currently set to 0 but a Memory object has been provided. "
    "Setting memory_level to 1."
)
_R = TypeVar("_R")
_X_DEPRECATION = (
    'The parameter "X" will be removed in 0.13.0 release of Nilearn. '
    'Please use the parameter "imgs" instead.'
)


@dataclass(slots=True)
class InputTags(_SklearnInputTags):
    """scikit-learn input tags plus nilearn's (what kind of images an estimator takes)."""

    niimg_like: bool = True
    surf_img: bool = False
    masker: bool = True
    multi_masker: bool = False
    glm: bool = False


def fit_accepts_deprecated_x(fit: Callable[..., _R]) -> Callable[..., _R]:
    """Accept nilearn 0.12.1's ``fit(X=...)`` with its DeprecationWarning.

    ``functools.wraps`` keeps ``fit``'s signature visible to scikit-learn's metadata
    routing (``set_fit_request(imgs=...)``).
    """

    @functools.wraps(fit)
    def wrapper(self: object, *args: object, **kwargs: object) -> _R:
        if "X" in kwargs:
            if args or "imgs" in kwargs:
                raise TypeError(
                    f"{type(self).__name__}.fit() got multiple values for argument 'imgs' "
                    "('X' is its deprecated name)."
                )
            warn(_X_DEPRECATION, DeprecationWarning)
            kwargs["imgs"] = kwargs.pop("X")
        return fit(self, *args, **kwargs)

    return wrapper


def cached(
    masker: NiftiSpheresMasker, func: Callable[..., _R], ignore: list[str]
) -> Callable[..., _R]:
    """``func`` cached with the fitted ``memory_`` as nilearn caches its extraction.

    Cached when a cache location is set (``memory_level`` 0 counts as 1, as nilearn
    resets it, after the warning given at fit). ``memory_level > 1`` without a location
    warns, as nilearn means to (0.12.1 crashes formatting that warning), and runs uncached.
    """
    memory = masker.memory_
    if memory.location is None:
        if masker.memory_level > 1:
            warn(
                f"Caching has been enabled (memory_level = {masker.memory_level}) but no "
                "Memory object or path has been provided (parameter memory). Caching "
                f"deactivated for function {func.__name__}."
            )
        return func
    return memory.cache(func, ignore=ignore)
