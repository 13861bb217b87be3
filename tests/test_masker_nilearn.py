"""Differential tests: the whole masker against nilearn 0.12.1's NiftiSpheresMasker.

Each generated case draws seeds, radius, overlap, mask (none, same grid, a grid shifted by
whole voxels, a coarser grid), smoothing (none, isotropic, per-axis, "fast"),
high-variance confounds, every cleaning option (standardize values, confound
standardisation, detrend, Butterworth low/high/band pass, cosine drift, t_r), confounds
(array, 1D, DataFrame, list, CSV/TSV file), sample masks (indices, booleans, head/tail
censoring), ``dtype`` and the input kind (nibabel image, ``.nii`` and ``.nii.gz`` paths, a
list of 3D images, a glob of 3D files, a 3D image). nilearn and lazyspheres get the same
inputs; outputs (values, dtype, shape), warnings (category and text start) and exceptions
(type and key phrase) must agree.

Inputs avoid the documented differences (SPEC §3.5), which ``test_masker_differences.py``
tests both ways: integer images are compared with nilearn run at ``dtype="float32"``
(nilearn truncates integer means; ours are exact, and the output dtype is float32 either
way); shifted masks start inside the image (0.12.1 misplaces masks clipped on the low
side); under Butterworth, censored volumes are chosen so that their mirror volume is kept
(nilearn interpolates only those); ``standardize`` is never ``1``.

Tolerances (assert_allclose, atol relative to the output's scale):

* float64 outputs: sphere means are bitwise nilearn's (same voxels, same summation order);
  cleaning differs only by floating-point reassociation (~1e-14 of the scale). We assert
  rtol 1e-9 / atol 1e-9 · scale (much tighter than the 1e-6 of SPEC §3.2).
* float64 outputs with high-variance confounds of a float32 or int16 image: those confounds
  are float32 in nilearn (computed in float32; ours in float64, returned in float32), so
  the regression is only float32-accurate: float32 tolerances below.
* float32 outputs: nilearn accumulates sphere sums in float32 (error up to ~n_voxels·eps32
  ≈ 1e-5 relative for these ≤ 123-voxel spheres) where we accumulate in float64 and round
  once, and both clean in float32; z-scoring amplifies an error of the mean by mean/std
  (≈ 50 for these images). We assert rtol 2e-4 / atol 2e-4 · scale, i.e. about 30 float32
  ulps of headroom on the amplified budget.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from masker_cases import AFFINE, SHAPE, assert_same_error, bold, run_masker

from lazyspheres import NiftiSpheresMasker

pytestmark = pytest.mark.nilearn
nilearn_maskers = pytest.importorskip("nilearn.maskers")

N_CASES = 140
N_VOLUMES = 40  # longer than the band-pass filter's padding (33)


@pytest.fixture(autouse=True)
def _no_forced_gc(monkeypatch):
    """nilearn calls gc.collect() twice per transform (~0.15 s each in a test process with a
    large heap). Collections do not change any result; skipping them keeps the sweep fast."""
    import gc

    monkeypatch.setattr(gc, "collect", lambda *args: 0)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Images of every input kind, written once, for three dtypes."""
    root = tmp_path_factory.mktemp("masker_inputs")
    rng = np.random.default_rng(7)
    out = {}
    for dtype in (np.float64, np.float32, np.int16):
        name = np.dtype(dtype).name
        img = bold(rng, N_VOLUMES, dtype)
        data = np.asanyarray(img.dataobj)
        gz, nii = root / f"{name}.nii.gz", root / f"{name}.nii"
        img.to_filename(gz)
        img.to_filename(nii)
        folder = root / f"{name}_volumes"
        folder.mkdir()
        volumes = []
        for t in range(N_VOLUMES):
            volume = type(img)(data[..., t], img.affine)
            volume.to_filename(folder / f"vol_{t:03d}.nii.gz")
            volumes.append(volume)
        out[name] = {
            "nibabel": img,
            "nii": str(nii),
            "nii.gz": gz,  # a pathlib.Path
            "list-3d": volumes,
            "glob": str(folder / "vol_*.nii.gz"),
            "3d": volumes[N_VOLUMES // 2],
        }
    return out


def _seeds(rng):
    n = int(rng.integers(1, 5))
    ijk = rng.integers(1, np.array(SHAPE) - 1, size=(n, 3)).astype(float)
    ijk += rng.choice([0.0, 0.5, 0.3], size=(n, 3))
    world = np.c_[ijk, np.ones(n)] @ AFFINE.T
    return [tuple(float(v) for v in row[:3]) for row in world.round(2)]


def _mask(rng, kind):
    if kind == "none":
        return None
    if kind == "same":
        data = (rng.random(SHAPE) > 0.1).astype(rng.choice([np.uint8, np.int16, np.float32]))
        from nibabel import Nifti1Image

        return Nifti1Image(data, AFFINE)
    from nibabel import Nifti1Image

    if kind == "shifted":
        # whole-voxel shift, starting inside the image (0.12.1 places such masks correctly)
        affine = AFFINE.copy()
        affine[:3, 3] += 2.0 * rng.integers(0, 3, 3)
        data = (rng.random(SHAPE) > 0.1).astype(np.uint8)
        return Nifti1Image(data, affine)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])  # "coarse": another grid, order-0 resampling
    affine[:3, 3] = [-11.0, -13.5, -9.0]
    data = (rng.random((9, 10, 10)) > 0.1).astype(np.uint8)
    return Nifti1Image(data, affine)


def _sample_mask(rng, kind, butterworth):
    if kind == "none":
        return None
    keep = np.ones(N_VOLUMES, dtype=bool)
    if kind == "head":
        keep[: int(rng.integers(1, 4))] = False
    elif kind == "tail":
        keep[-int(rng.integers(1, 4)) :] = False
    else:  # interior censoring
        for t in rng.choice(np.arange(3, N_VOLUMES - 3), size=3, replace=False):
            keep[t] = False
    if butterworth:
        # nilearn 0.12.1 interpolates a censored volume only if its mirror T-1-t is kept
        for t in np.flatnonzero(~keep):
            if not keep[N_VOLUMES - 1 - t]:
                keep[t] = True
    return keep if rng.random() < 0.5 else np.flatnonzero(keep)


def _confounds(rng, kind, tmp_path):
    if kind == "none":
        return None
    values = rng.standard_normal((N_VOLUMES, 2))
    if kind == "array":
        return values
    if kind == "1d":
        return values[:, 0]
    if kind == "frame":
        return pd.DataFrame(values, columns=["a", "b"])
    if kind == "list":
        return [values[:, :1], values[:, 1:]]
    path = tmp_path / ("conf.csv" if kind == "csv" else "conf.tsv")
    pd.DataFrame(values, columns=["a", "b"]).to_csv(
        path, index=False, sep="," if kind == "csv" else "\t"
    )
    return str(path)


def _case(index, images, tmp_path):
    rng = np.random.default_rng(5000 + index)
    image_dtype = rng.choice(["float64", "float32", "int16"], p=[0.55, 0.3, 0.15])
    input_kind = rng.choice(
        ["nibabel", "nii", "nii.gz", "list-3d", "glob", "3d"],
        p=[0.35, 0.15, 0.25, 0.05, 0.05, 0.15],
    )
    imgs = images[image_dtype][input_kind]
    filt = rng.choice(["none", "low", "high", "band", "cosine"], p=[0.4, 0.15, 0.15, 0.15, 0.15])
    clean_args = None
    params = {
        "seeds": _seeds(rng),
        "radius": rng.choice([None, 0.0, 2.0, 3.0, 4.5, 6.0]),
        "allow_overlap": bool(rng.random() < 0.8),
        "mask_img": _mask(rng, rng.choice(["none", "same", "shifted", "coarse"])),
        "standardize": rng.choice([False, True, "zscore", "zscore_sample", "psc", None]),
        "standardize_confounds": bool(rng.random() < 0.75),
        "detrend": bool(rng.random() < 0.4),
        "t_r": 2.0,
        "dtype": rng.choice([None, "auto", "float32", "float64"], p=[0.5, 0.15, 0.15, 0.2]),
        "reports": bool(rng.random() < 0.3),
        "smoothing_fwhm": [None, None, None, 4.0, 6.0, [2.0, 4.0, 6.0], "fast"][
            int(rng.integers(7))
        ],
        "high_variance_confounds": bool(rng.random() < 0.2),
    }
    if params["radius"] is not None:
        params["radius"] = float(params["radius"])
    if filt in ("low", "band"):
        params["low_pass"] = 0.1
    if filt in ("high", "band"):
        params["high_pass"] = 0.02
    if filt == "cosine":
        params["high_pass"] = 0.01
        clean_args = {"filter": "cosine"}
    elif filt != "none" and rng.random() < 0.2:
        clean_args = {"extrapolate": False}
    params["clean_args"] = clean_args
    if filt != "none" and rng.random() < 0.05:
        # a missing t_r is the only error of this case (no overlap, no mask to empty spheres)
        params.update(t_r=None, allow_overlap=True, mask_img=None)
    three_d = input_kind == "3d"
    confounds = (
        None
        if three_d
        else _confounds(
            rng, rng.choice(["none", "array", "1d", "frame", "list", "csv", "tsv"]), tmp_path
        )
    )
    sample_mask = None
    if not three_d:
        butterworth = filt in ("low", "high", "band")
        sample_mask = _sample_mask(
            rng, rng.choice(["none", "none", "interior", "head", "tail"]), butterworth
        )
    if input_kind in ("list-3d", "glob") and params["dtype"] == "auto":
        params["dtype"] = None  # nilearn 0.12.1 cannot concatenate with dtype="auto"
    fit_imgs = imgs if rng.random() < 0.5 else None
    return params, imgs, fit_imgs, confounds, sample_mask, image_dtype


def _nilearn_params(params, image_dtype):
    """nilearn's parameters for the same numbers: integer images at dtype float32."""
    theirs = dict(params)
    if image_dtype == "int16" and params["dtype"] in (None, "auto"):
        theirs["dtype"] = "float32"  # exact means in float32, as ours (SPEC §3.5)
    return theirs


@pytest.mark.parametrize("index", range(N_CASES))
def test_masker_equals_nilearn(index, images, tmp_path):
    params, imgs, fit_imgs, confounds, sample_mask, image_dtype = _case(index, images, tmp_path)
    context = f"case {index}: {params}, input {type(imgs).__name__}"
    theirs = run_masker(
        nilearn_maskers.NiftiSpheresMasker,
        _nilearn_params(params, image_dtype),
        fit_imgs,
        imgs,
        confounds,
        sample_mask,
    )
    ours = run_masker(NiftiSpheresMasker, params, fit_imgs, imgs, confounds, sample_mask)
    if theirs.error is not None:
        assert_same_error(ours.error, theirs.error, context)
        return
    assert ours.error is None, f"lazyspheres raised {ours.error!r}; nilearn did not ({context})"
    expected, got = np.asarray(theirs.output), ours.output
    assert isinstance(got, np.ndarray), context
    assert got.shape == expected.shape, context
    assert got.dtype == expected.dtype, context
    scale = max(1.0, float(np.abs(expected).max()))
    tol = 1e-9 if expected.dtype == np.float64 else 2e-4
    if params["high_variance_confounds"] and image_dtype != "float64":
        tol = 2e-4  # nilearn's high-variance confounds of such images are float32 numbers
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * scale, err_msg=context)
    assert ours.warnings == theirs.warnings, context


def test_the_sweep_covers_every_option(images, tmp_path):
    """The generator reaches each value of each swept option (guards against dead branches)."""
    seen: dict[str, set] = {}
    for index in range(N_CASES):
        params, imgs, _fit_imgs, confounds, sample_mask, image_dtype = _case(
            index, images, tmp_path
        )
        for key in (
            "radius",
            "standardize",
            "dtype",
            "detrend",
            "allow_overlap",
            "smoothing_fwhm",
            "high_variance_confounds",
        ):
            seen.setdefault(key, set()).add(repr(params[key]))
        seen.setdefault("mask", set()).add(
            "none" if params["mask_img"] is None else repr(params["mask_img"].affine[0, 0])
        )
        seen.setdefault("confounds", set()).add(type(confounds).__name__)
        seen.setdefault("sample_mask", set()).add(
            "none" if sample_mask is None else str(np.asarray(sample_mask).dtype.kind)
        )
        seen.setdefault("input", set()).add(type(imgs).__name__)
        seen.setdefault("image_dtype", set()).add(image_dtype)
        seen.setdefault("filter", set()).add(
            (params.get("low_pass"), params.get("high_pass"), repr(params["clean_args"]))
        )
    assert len(seen["radius"]) == 6
    assert len(seen["smoothing_fwhm"]) == 5
    assert len(seen["high_variance_confounds"]) == 2
    assert len(seen["standardize"]) == 6
    assert len(seen["dtype"]) == 4
    assert len(seen["mask"]) == 3  # none, 2 mm grids (same/shifted), 3 mm grid
    assert seen["confounds"] >= {"NoneType", "ndarray", "DataFrame", "list", "str"}
    assert seen["sample_mask"] == {"none", "b", "i"}
    assert seen["input"] >= {"Nifti1Image", "str", "PosixPath", "list"}
    assert seen["image_dtype"] == {"float64", "float32", "int16"}
    assert len(seen["filter"]) >= 5
