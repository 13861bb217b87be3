"""The masker's transform: open → extract sphere means → clean, as one lazy graph.

Everything up to the final ``compute`` is lazy, so a ``.nii.gz`` file is inflated once,
streaming, and never held whole in memory. The function :func:`transform_signals` is what
the masker caches with joblib (nilearn caches its ``filter_and_extract`` the same way).

Working dtypes follow nilearn 0.12.1: the image is converted to ``dtype`` on load (None:
its own dtype; "auto": int32 for integer images, else float32), and the sphere signals
enter cleaning in nilearn's float dtype for that image dtype (float images keep theirs;
8-byte integers give float64, other integers float32). The output is what cleaning makes
of them: there is no final cast (nilearn 0.12.1). Sphere means themselves are exact
(float64 accumulation): nilearn truncates the means of integer images into the integer
dtype first (SPEC §3.5).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import nibabel as nib
import numpy as np
import pandas as pd
import xarray as xr

from lazyspheres._types import FloatArray
from lazyspheres.cleaning.api import clean_with
from lazyspheres.cleaning.options import CleaningParams, ConfoundsLike, SampleMaskLike
from lazyspheres.extraction import extract
from lazyspheres.high_variance import high_variance_confounds as hv_confounds
from lazyspheres.masker._logging import describe_images, log, warn
from lazyspheres.masker._types import DtypeParam, NiimgLike
from lazyspheres.masker.inputs import Images, open_images, target_dtype
from lazyspheres.smoothing import smoothing_dtype
from lazyspheres.smoothing.params import Fwhm

__all__ = ["SignalSpec", "transform_signals", "working_dtype"]

NAN_IN_IMAGE = (
    "The imgs you have fed into fit_transform() contains NaN values which will be converted "
    "to zeroes."
)
NON_FINITE = "Non-finite values detected. These values will be replaced with zeros."
_NON_FINITE_PREFIX = "Non-finite values detected."


@dataclass(frozen=True)
class SignalSpec:
    """Everything about the extraction and cleaning that comes from the fitted masker.

    Picklable and hashable by joblib (it is part of the cache key).
    """

    coords: FloatArray
    labels: pd.DataFrame
    radius: float | None
    mask_img: nib.Nifti1Image | None  # the fitted, binarised mask_img_
    allow_overlap: bool
    smoothing_fwhm: Fwhm
    dtype: DtypeParam
    cleaning: CleaningParams


def working_dtype(image_dtype: np.dtype) -> np.dtype:
    """Float dtype nilearn cleans signals extracted from an image of this dtype."""
    image_dtype = np.dtype(image_dtype)
    if image_dtype.kind == "f":
        return image_dtype
    return np.dtype(np.float64) if image_dtype.itemsize == 8 else np.dtype(np.float32)


def transform_signals(
    imgs: NiimgLike,
    spec: SignalSpec,
    confounds: ConfoundsLike | None = None,
    sample_mask: SampleMaskLike | None = None,
    *,
    high_variance_confounds: bool = False,
    wrap_confounds: bool = True,
    verbose: int = 0,
    logger: object = None,
) -> tuple[xr.DataArray, int]:
    """Extract and clean sphere signals of one niimg-like input.

    Parameters
    ----------
    imgs : niimg-like
        See :func:`lazyspheres.masker.inputs.open_images`.
    spec : SignalSpec
        The fitted masker's extraction and cleaning settings.
    confounds, sample_mask
        As for :func:`lazyspheres.clean`.
    high_variance_confounds : bool
        Prepend the image's high-variance confounds to the confounds.
    wrap_confounds : bool
        Pass confounds as a list of items, as nilearn's ``transform`` does (a list is
        taken as several items, anything else as one); ``transform_single_imgs`` passes
        them unchanged.
    verbose : int
        Verbosity (messages are nilearn's).
    logger : object, optional
        The estimator, named in verbose messages.

    Returns
    -------
    signals : xarray.DataArray
        Computed (numpy-backed), dims ``("time", "seed")``.
    ndim : int
        3 if ``imgs`` was a single 3D image, else 4.
    """
    owner = logger if logger is not None else _Anonymous()
    log(owner, f"Loading data from {describe_images(imgs, verbose)}", verbose)
    images = open_images(imgs)
    image = _converted(images, spec.dtype, spec.smoothing_fwhm is not None)
    nan_warning = spec.mask_img is None
    hv = None
    if high_variance_confounds:
        # nilearn computes them first, from the raw input (all voxels, no mask, before the
        # dtype conversion and smoothing); lazy here, computed with the signals
        hv = hv_confounds(images.image)
    log(owner, "Extracting region signals", verbose)
    with _non_finite_as_nilearn(nan_warning):
        signals = extract(
            image,
            _seed_table(spec),
            spec.radius,
            mask_img=spec.mask_img,
            allow_overlap=spec.allow_overlap,
            # extract takes any Fwhm (it runs check_fwhm) though its annotation omits
            # tuples and arrays
            smoothing_fwhm=cast("float | list[float] | str | None", spec.smoothing_fwhm),
            dtype=np.float64,  # exact means; cast to nilearn's working dtype below
        )
    if images.ndim == 3:
        signals = signals.expand_dims(time=[0], axis=0)
    loaded = _loaded_dtype(images, spec.dtype)
    if spec.smoothing_fwhm is not None:
        loaded = smoothing_dtype(loaded)  # nilearn smooths integer images as floats
    signals = signals.astype(working_dtype(loaded))

    all_confounds = confounds
    if hv is not None:
        all_confounds = [hv, *_as_items(confounds)]
    elif wrap_confounds and confounds is not None:
        all_confounds = _as_items(confounds)

    log(owner, "Cleaning extracted signals", verbose)
    cleaned = clean_with(signals, spec.cleaning, confounds=all_confounds, sample_mask=sample_mask)
    with _non_finite_as_nilearn(nan_warning):
        cleaned = cleaned.compute()
    return cleaned, images.ndim


# ---------------------------------------------------------------------------- helpers
class _Anonymous:
    """Stands for the estimator in log prefixes when none is given."""


def _as_items(confounds: ConfoundsLike | None) -> list[ConfoundsLike]:
    if confounds is None:
        return []
    return list(confounds) if isinstance(confounds, list) else [confounds]


def _loaded_dtype(images: Images, dtype: DtypeParam) -> np.dtype:
    return target_dtype(images.image.dtype, dtype)


def _converted(images: Images, dtype: DtypeParam, smoothing: bool) -> xr.DataArray:
    """The image with nilearn's load-time dtype conversion, where it changes the numbers.

    Sphere means are computed in float64 from the stored values, so most conversions change
    nothing and are skipped (keeping the file's fast read paths). Applied, lazily: casts
    that change voxel values (float to integer, narrowing integers), and conversions to
    another float dtype before smoothing (nilearn smooths the converted image).
    """
    image = images.image
    target = _loaded_dtype(images, dtype)
    source = np.dtype(image.dtype)
    changes_values = target.kind in "iu" and not np.can_cast(source, target, casting="safe")
    smoothed_otherwise = smoothing and target.kind == "f" and target != source
    if changes_values or smoothed_otherwise:
        return image.astype(target)
    return image


def _seed_table(spec: SignalSpec) -> pd.DataFrame:
    table = pd.DataFrame(spec.coords, columns=["x", "y", "z"])
    for column in spec.labels.columns:
        if str(column).lower() not in ("x", "y", "z"):
            table[column] = spec.labels[column].to_numpy()
    return table


@contextlib.contextmanager
def _non_finite_as_nilearn(warn_nan: bool) -> Iterator[None]:
    """Report non-finite sphere voxels as nilearn does.

    The extraction counts NaN/inf values among the sphere voxels (it reads nothing else)
    and warns. nilearn warns twice when the image holds NaN and no mask is given, and is
    silent with a mask; other warnings pass through unchanged.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    non_finite = False
    for item in caught:
        if issubclass(item.category, UserWarning) and str(item.message).startswith(
            _NON_FINITE_PREFIX
        ):
            non_finite = True
            continue
        warn(str(item.message), item.category)
    if non_finite and warn_nan:
        warn(NAN_IN_IMAGE, UserWarning)
        warn(NON_FINITE, UserWarning)
