"""User code that must type-check against lazyspheres' public signatures (see test_types_public).

Not collected by pytest; mypy reads it. Each ``type: ignore[...]`` marks a call that must be
refused: with ``warn_unused_ignores``, a signature that stopped refusing it fails the check.
"""

from __future__ import annotations

import dask.array as da
import nibabel as nib
import numpy as np
import xarray as xr
from typing_extensions import assert_type

from lazyspheres.cleaning import clean
from lazyspheres.cleaning.api import clean_with
from lazyspheres.cleaning.options import CleaningParams
from lazyspheres.masker import NiftiSpheresMasker

signals = np.zeros((10, 2))
confounds = np.ones((10, 1))

# clean returns the kind of signals it is given
assert_type(clean(signals, detrend=True, t_r=2.0, confounds=confounds), np.ndarray)
lazy: da.Array = da.zeros((10, 2))  # dask's functions are untyped; its Array is not
assert_type(clean(lazy, standardize="zscore_sample"), da.Array)
labelled = xr.DataArray(signals, dims=("time", "seed"))
assert_type(clean(labelled, sample_mask=[0, 2, 4]), xr.DataArray)
assert_type(clean_with(signals, CleaningParams(low_pass=0.1, t_r=2.0).validated()), np.ndarray)

# options the cleaning does not have are refused
clean(signals, standardize="zscore-sample")  # type: ignore[arg-type]
clean(signals, filter="gaussian")  # type: ignore[arg-type]
clean(signals, fill_na="median")  # type: ignore[arg-type]

# the masker takes nilearn's parameters and returns nilearn's types
masker = NiftiSpheresMasker(
    seeds=[(0.0, -52.0, 18.0)],
    radius=8.0,
    standardize="zscore_sample",
    memory="/tmp/cache",
    clean_args={"filter": "cosine", "butterworth__order": 3},
)
image = nib.Nifti1Image(np.zeros((4, 4, 4, 10)), np.eye(4))
fitted = masker.fit(image)
assert_type(fitted, NiftiSpheresMasker)
assert_type(masker.transform_single_imgs(image, confounds=confounds), np.ndarray)
assert_type(masker.inverse_transform(signals[:, :1]), nib.Nifti1Image)
masker.generate_report([0])
NiftiSpheresMasker(seeds=[(0.0, 0.0, 0.0)], standardize="z")  # type: ignore[arg-type]
