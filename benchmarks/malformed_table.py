"""The malformed-header table of issue #20: lazyspheres against nilearn 0.12.1.

Usage::

    python benchmarks/malformed_table.py               # 300 mutants, seed 20
    python benchmarks/malformed_table.py --n 1000 --seed 1

Each mutant is a 4D image (tiny generated ones, and nibabel's real ``functional.nii`` and
``example_nifti2.nii.gz``) with ONE header field set to an edge value (``dim``,
``datatype``, ``bitpix``, ``pixdim``, ``vox_offset``, ``scl_slope``/``scl_inter``, the xform
codes, ``sizeof_hdr``, ``magic``, ...); a quarter are also truncated, and half are gzipped
(``tests/header_mutants.py`` builds them). Both libraries extract one 4 mm sphere at the
image centre: ``lazyspheres.extract`` and ``NiftiSpheresMasker(...).fit_transform``.

Outcomes, per library:

* **extracted**: signals returned;
* **clear error**: lazyspheres: one of its own errors (or ``FileNotFoundError``); nilearn:
  an exception raised by nilearn's or nibabel's own code (the innermost frame is in one of
  them: a check that says what is wrong), except ``KeyError``, ``IndexError``,
  ``AttributeError``, ``OverflowError``, ``ZeroDivisionError`` and ``MemoryError``;
* **raw exception**: anything else (those types, or raised inside numpy, scikit-learn ...).

Where both extracted, the signals are compared (integer images: lazyspheres averages
exactly, nilearn truncates, so these are compared after ``np.trunc``). The slowest mutant
is printed too: a hang or blow-up would show there (nothing is timed against a baseline).
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import random
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

import header_mutants as hm

import lazyspheres
from lazyspheres.errors import LazySpheresError

# Exception types that are never a deliberate check's message.
_NEVER_CLEAR = (
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    ZeroDivisionError,
    MemoryError,
)


def _classify_nilearn(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    checked = bool(frames) and any(p in frames[-1].filename for p in ("/nilearn/", "/nibabel/"))
    return "clear error" if checked and not isinstance(error, _NEVER_CLEAR) else "raw exception"


def _classify_ours(error: BaseException) -> str:
    clear = isinstance(error, (LazySpheresError, FileNotFoundError))
    return "clear error" if clear else "raw exception"


def _centre(path: pathlib.Path) -> tuple[float, float, float] | None:
    import nibabel as nib

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = nib.load(path)
        centre = img.affine[:3, :3] @ (np.array(img.shape[:3]) / 2) + img.affine[:3, 3]
    except Exception:
        return None
    return tuple(float(c) for c in centre) if np.all(np.isfinite(centre)) else None


def run_both(path: pathlib.Path) -> tuple[tuple[str, object], tuple[str, object]]:
    """``((lazyspheres outcome, value or error), (nilearn outcome, value or error))``."""
    from nilearn.maskers import NiftiSpheresMasker

    seed = _centre(path) or (0.0, 0.0, 0.0)
    results = []
    for library in ("lazyspheres", "nilearn"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if library == "lazyspheres":
                    value = np.asarray(lazyspheres.extract(path, [seed], radius=4.0).values)
                else:
                    value = NiftiSpheresMasker([seed], radius=4.0).fit_transform(str(path))
                results.append(("extracted", value))
            except Exception as error:
                classify = _classify_ours if library == "lazyspheres" else _classify_nilearn
                results.append((classify(error), error))
    return results[0], results[1]


def main(argv: list[str] | None = None) -> int:
    """Build the mutants, run both libraries, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="number of mutants (300)")
    parser.add_argument("--seed", type=int, default=20, help="random seed (20)")
    args = parser.parse_args(argv)
    import nilearn

    chooser = random.Random(args.seed)
    bases = hm.generated_bases(np.random.default_rng(args.seed))
    bases = [b for b in bases if "3d" not in b.name]
    bases += [b for b in hm.real_bases() if "anatomical" not in b.name]
    counts = {lib: collections.Counter() for lib in ("lazyspheres", "nilearn")}
    raw_examples: dict[str, list[str]] = {"lazyspheres": [], "nilearn": []}
    agree = disagree = 0
    only_nilearn: list[str] = []
    slowest = (0.0, "")
    with tempfile.TemporaryDirectory() as folder:
        for n in range(args.n):
            base = chooser.choice(bases)
            table = dict(hm.FIELD_VALUES)
            if base.nifti2:
                table = {k: v + hm.NIFTI2_VALUES.get(k, ()) for k, v in table.items()}
            name = chooser.choice(sorted(table))
            change = (name, chooser.randrange(8), chooser.choice(table[name]))
            keep = chooser.choice([None, None, None, 0.3, 0.7, 0.95])
            mutant = hm.Mutant(base, [change], keep=keep, gzipped=chooser.random() < 0.5)
            path = mutant.write(pathlib.Path(folder), f"m{n}")
            start = time.perf_counter()
            ours, theirs = run_both(path)
            took = time.perf_counter() - start
            slowest = max(slowest, (took, mutant.describe()))
            for library, (outcome, value) in (("lazyspheres", ours), ("nilearn", theirs)):
                counts[library][outcome] += 1
                if outcome == "raw exception" and len(raw_examples[library]) < 8:
                    text = f"{type(value).__name__}: {str(value)[:90]}"
                    raw_examples[library].append(f"{mutant.describe()} -> {text}")
            if theirs[0] == "extracted" and ours[0] != "extracted":
                only_nilearn.append(f"{mutant.describe()} -> {str(ours[1])[:160]}")
            if ours[0] == theirs[0] == "extracted":
                a, b = np.asarray(ours[1], np.float64), np.asarray(theirs[1], np.float64)
                same = a.shape == b.shape and (
                    np.allclose(a, b, rtol=1e-6, equal_nan=True)
                    or np.allclose(np.trunc(a), b, rtol=1e-6, equal_nan=True)
                )
                agree += same
                disagree += not same
    print(
        f"{args.n} mutants, seed {args.seed}; nilearn {nilearn.__version__}, "
        f"{hm.environment_note()}"
    )
    print("\n| | lazyspheres | nilearn 0.12.1 |\n|---|---|---|")
    for outcome in ("extracted", "clear error", "raw exception"):
        row = [str(counts[lib][outcome]) for lib in ("lazyspheres", "nilearn")]
        print(f"| {outcome} | {row[0]} | {row[1]} |")
    print(f"\nboth extracted: {agree} equal, {disagree} different")
    print(f"slowest mutant: {slowest[0]:.2f} s ({slowest[1]})")
    for example in only_nilearn:
        print(f"extracted by nilearn only: {example}")
    for library, examples in raw_examples.items():
        for example in examples:
            print(f"raw ({library}): {example}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
