"""Shared helpers of the masker tests: running both maskers, comparing their outcomes."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import nibabel as nib
import numpy as np

# A 2 mm grid with an origin that makes world coordinates even numbers.
AFFINE = np.array([[2.0, 0, 0, -10.0], [0, 2.0, 0, -12.0], [0, 0, 2.0, -8.0], [0, 0, 0, 1.0]])
SHAPE = (10, 11, 12)


def bold(rng, n_volumes=30, dtype=np.float32, shape=SHAPE, affine=AFFINE):
    """A nibabel image with smooth-ish random BOLD-like values around 1000."""
    data = rng.standard_normal((*shape, n_volumes)) * 20 + 1000
    drift = np.linspace(0, 5, n_volumes)
    data = data + drift
    if np.dtype(dtype).kind in "iu":
        data = np.round(data)
    return nib.Nifti1Image(data.astype(dtype), affine, dtype=np.dtype(dtype))


@dataclass
class Outcome:
    """What one masker did: output or exception, and the warnings it emitted."""

    output: Any = None
    error: BaseException | None = None
    warnings: Counter = field(default_factory=Counter)
    masker: Any = None


def run_masker(
    factory,
    params,
    fit_imgs,
    transform_imgs,
    confounds=None,
    sample_mask=None,
    method="transform",
):
    """Build, fit and transform, recording the result, the exception and the warnings."""
    outcome = Outcome()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            masker = factory(**params)
            outcome.masker = masker
            masker.fit(fit_imgs)
            outcome.output = getattr(masker, method)(
                transform_imgs, confounds=confounds, sample_mask=sample_mask
            )
        except Exception as error:  # the comparison decides whether this was expected
            outcome.error = error
    outcome.warnings = Counter(
        (w.category.__name__, warning_key(str(w.message)))
        for w in caught
        # numpy/scipy RuntimeWarnings raised inside nilearn are not nilearn's own messages
        if not issubclass(w.category, RuntimeWarning)
    )
    return outcome


def warning_key(message: str, length: int = 60) -> str:
    """The start of a warning text: lazyspheres keeps nilearn's text first, may add more."""
    return message.strip()[:length]


def error_phrase(message: str, length: int = 45) -> str:
    """nilearn's key phrase: the start of its message (first line)."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return first[:length]


# nilearn errors whose text is a Python/numpy artefact of a failure deep inside, not a nilearn
# message: lazyspheres raises the same type with an explanation instead.
ARTEFACT_PHRASES = {
    # cosine filter on a single volume: nilearn computes int(nan) frequencies
    "cannot convert float NaN to integer": "The cosine filter needs at least 2 volumes",
}


def assert_same_error(ours: BaseException | None, theirs: BaseException, context: str):
    """Our exception is an instance of nilearn's type and carries its key phrase."""
    assert ours is not None, f"nilearn raised {theirs!r} but lazyspheres did not ({context})"
    base = type(theirs)
    if base.__module__.startswith("nilearn"):  # nilearn's DimensionError is a TypeError
        base = base.__mro__[1]
    assert isinstance(ours, base), f"{type(ours)} is not a {base} ({context}): {ours}"
    phrase = error_phrase(str(theirs))
    phrase = ARTEFACT_PHRASES.get(phrase, phrase)
    assert phrase in str(ours), (
        f"nilearn's phrase {phrase!r} missing from {str(ours)!r} ({context})"
    )
