"""Deterministic synthetic 4D BOLD runs for demos, docs, notebooks, tests and benchmarks.

Nothing is downloaded. Runs live on the MNI 2 mm grid (91×109×91, 2 mm voxels, sform/qform
code 4) by default, inside a brain-shaped support, with network structure around a seed set
(Power 2011 by default), slow drift, AR(1) noise and optional motion-like spikes. The same
arguments always give the same bytes, and any run can be streamed to disk in bounded memory.

Main entry points:

- :func:`write_bold` streams a run to ``.nii`` / ``.nii.gz``;
- :func:`generate_volumes` yields it as blocks of volumes;
- :func:`make_bold_image` builds a small run in memory;
- :func:`ground_truth` tells which seed belongs to which network, and the latent courses;
- :func:`write_confounds` / :func:`make_confounds` give the fMRIPrep-style confounds;
- :func:`write_dataset` lays out a small derivatives tree for batch demos;
- :func:`brain_mask` is the support, :class:`SignalModel` the amplitudes.

Examples
--------
>>> import numpy as np
>>> from lazyspheres import datasets
>>> img = datasets.make_bold_image(20, shape=(20, 24, 20), seeds=None)
>>> img.shape, float(np.round(img.get_fdata()[10, 12, 10].mean(), -2)) > 0
((20, 24, 20, 20), True)
"""

from __future__ import annotations

from lazyspheres.datasets._bids import make_confounds, write_confounds, write_dataset
from lazyspheres.datasets._grid import (
    MNI_2MM_AFFINE,
    MNI_2MM_SHAPE,
    brain_mask,
    default_affine,
    tissue_labels,
)
from lazyspheres.datasets._model import GroundTruth, SignalModel, ground_truth
from lazyspheres.datasets._nifti import generate_volumes, make_bold_image, write_bold

__all__ = [
    "MNI_2MM_AFFINE",
    "MNI_2MM_SHAPE",
    "GroundTruth",
    "SignalModel",
    "brain_mask",
    "default_affine",
    "generate_volumes",
    "ground_truth",
    "make_bold_image",
    "make_confounds",
    "tissue_labels",
    "write_bold",
    "write_confounds",
    "write_dataset",
]
