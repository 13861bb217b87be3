"""Output containers of ``transform``: numpy (nilearn 0.12.1), pandas, polars or xarray.

nilearn 0.12.1 has no ``set_output``; its ``transform`` returns an ndarray whatever
scikit-learn's configuration says. lazyspheres adds ``set_output`` (SPEC §2.3):

* ``"default"`` — exactly nilearn 0.12.1's ndarray (a single 3D image gives ``(n_seeds,)``);
* ``"pandas"`` / ``"polars"`` — a DataFrame built by scikit-learn's own adapters, columns
  ``get_feature_names_out()`` (a 3D image gives one row);
* ``"xarray"`` — the labelled DataArray: dims ``("time", "seed")`` (``("seed",)`` for a 3D
  image), seed coordinates ``x, y, z, n_voxels`` and the seed labels.

Without ``set_output`` the global ``sklearn.set_config(transform_output=...)`` applies, as
for any scikit-learn transformer; its default ("default") is nilearn's ndarray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from lazyspheres.masker._types import NiimgLike, TransformOutput

if TYPE_CHECKING:
    from lazyspheres.masker.estimator import NiftiSpheresMasker

__all__ = ["OUTPUT_CONTAINERS", "check_container", "output_container", "wrap_output"]

OUTPUT_CONTAINERS = ("default", "pandas", "polars", "xarray")


def check_container(transform: object) -> None:
    """Raise ValueError unless ``transform`` is one of :data:`OUTPUT_CONTAINERS`."""
    if transform not in OUTPUT_CONTAINERS:
        raise ValueError(
            f"output config must be in {sorted(OUTPUT_CONTAINERS)}, got {transform!r}."
        )


def output_container(estimator: NiftiSpheresMasker) -> str:
    """The container chosen for ``transform`` (estimator setting, else scikit-learn's)."""
    config = getattr(estimator, "_sklearn_output_config", {})
    if "transform" in config:
        return config["transform"]
    from sklearn import get_config

    container = get_config().get("transform_output", "default")
    check_container(container)
    return container


def wrap_output(
    estimator: NiftiSpheresMasker, signals: xr.DataArray, ndim: int, original: NiimgLike
) -> TransformOutput:
    """Turn computed signals ``(time, seed)`` into the configured container.

    Parameters
    ----------
    estimator : NiftiSpheresMasker
        Gives the configuration and the feature names.
    signals : xarray.DataArray
        Numpy-backed, dims ``("time", "seed")``.
    ndim : int
        3 when the input was one 3D image.
    original : object
        The ``imgs`` given to ``transform`` (adapters take an index from DataFrames only).
    """
    container = output_container(estimator)
    if container == "default":
        values = np.asarray(signals.values)
        if ndim == 3:
            # nilearn squeezes, then np.atleast_1d: one seed gives shape (1,).
            values = np.atleast_1d(values.squeeze())
        return values
    if container == "xarray":
        return signals.isel(time=0, drop=True) if ndim == 3 else signals
    from sklearn.utils._set_output import ADAPTERS_MANAGER

    adapter = ADAPTERS_MANAGER.adapters[container]
    return adapter.create_container(
        np.asarray(signals.values),
        original,
        columns=estimator.get_feature_names_out(),
        inplace=False,
    )
