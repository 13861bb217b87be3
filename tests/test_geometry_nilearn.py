"""Differential tests of sphere geometry against nilearn 0.12.1.

Each generated case goes through nilearn's ``apply_mask_and_get_affinity`` (the geometry step
of ``NiftiSpheresMasker.transform``) and through ``lazyspheres``: mask resampling and
binarisation, then :func:`lazyspheres.geometry.sphere_voxels`. The voxel set of every sphere,
or the error, must be the same.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from lazyspheres.errors import EmptySphereError, OverlapError
from lazyspheres.geometry import clear_cache, sphere_voxels
from lazyspheres.masks import binarize_mask_values, resample_mask_to_grid

nib = pytest.importorskip("nibabel")
nilearn = pytest.importorskip("nilearn")

pytestmark = pytest.mark.nilearn

N_CASES = 800


@pytest.fixture(scope="module", autouse=True)
def _nilearn_without_gc():
    """Check the oracle's version; skip its ``gc.collect()`` calls.

    nilearn's ``safe_get_data`` runs a full garbage collection on every call, to save memory.
    In a test process that is most of the time of the sweep and changes no result.
    """
    assert nilearn.__version__ == "0.12.1", "differential tests target nilearn 0.12.1"
    import types

    from nilearn._utils import niimg

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(niimg, "gc", types.SimpleNamespace(collect=lambda: 0))
        yield


def nilearn_spheres(seeds, affine, shape, radius, allow_overlap, mask_img):
    """Voxel sets (or the exception) from nilearn's geometry step."""
    from nilearn.image import resample_img
    from nilearn.maskers.nifti_spheres_masker import apply_mask_and_get_affinity
    from nilearn.masking import load_mask_img

    img = nib.Nifti1Image(np.zeros((*shape, 1), dtype=np.float32), affine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _, adjacency = apply_mask_and_get_affinity(
                [list(s) for s in seeds], img, radius, allow_overlap, mask_img=mask_img
            )
        except ValueError as exc:
            return exc
        if mask_img is None:
            candidates = np.indices(shape).reshape(3, -1).T
        else:
            # the same resampling nilearn just did, to map columns back to voxels
            resampled = resample_img(
                mask_img,
                target_affine=affine,
                target_shape=shape,
                interpolation="nearest",
                copy_header=True,
                force_resample=False,
            )
            candidates = np.argwhere(load_mask_img(resampled)[0])
    rows = adjacency.tocsr()
    return [{tuple(v) for v in candidates[rows[[i]].indices].tolist()} for i in range(len(seeds))]


def our_spheres(seeds, affine, shape, radius, allow_overlap, mask_data, mask_affine):
    mask = None
    if mask_data is not None:
        resampled = resample_mask_to_grid(mask_data, mask_affine, affine, shape)
        mask = binarize_mask_values(resampled)
    try:
        spheres = sphere_voxels(
            seeds, affine, shape, radius, mask=mask, allow_overlap=allow_overlap
        )
    except (EmptySphereError, OverlapError) as exc:
        return exc
    return [{tuple(v) for v in spheres.sphere(i).tolist()} for i in range(spheres.n_seeds)]


# --------------------------------------------------------------------------------------
# case generation

AFFINE_KINDS = ("diagonal", "anisotropic", "flipped", "oblique")
SEED_KINDS = ("centre", "half", "border", "outside", "random", "integer_world")
MASK_KINDS = ("none", "none", "same_grid", "coarser", "fractional_shift", "integer_shift")


def random_affine(rng, kind):
    affine = np.eye(4)
    if kind == "diagonal":
        affine[:3, :3] = np.eye(3) * rng.choice([1.0, 2.0, 3.0])
    elif kind == "anisotropic":
        affine[:3, :3] = np.diag(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0, 3.3, 4.0], 3))
    elif kind == "flipped":
        signs = rng.choice([-1.0, 1.0], 3)
        signs[rng.integers(3)] = -1.0
        affine[:3, :3] = np.diag(signs * rng.choice([1.0, 2.0, 2.5, 3.0], 3))
    else:  # rotation x scaling x shear
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        shear = np.eye(3) + np.triu(rng.uniform(-0.3, 0.3, (3, 3)), 1)
        affine[:3, :3] = q @ np.diag(rng.uniform(1.0, 3.5, 3)) @ shear
    if rng.random() < 0.5:
        affine[:3, 3] = rng.integers(-30, 30, 3).astype(float)
    else:
        affine[:3, 3] = rng.uniform(-30, 30, 3)  # fractional origin
    return affine


def random_seeds(rng, affine, shape, n):
    extent = np.asarray(shape, dtype=float)
    kinds = rng.choice(SEED_KINDS, n)
    voxel = np.empty((n, 3))
    for s, kind in enumerate(kinds):
        if kind == "centre":
            voxel[s] = rng.integers(0, extent)
        elif kind == "half":
            voxel[s] = rng.integers(0, extent) + rng.choice([0.0, 0.5, -0.5], 3)
        elif kind == "border":
            voxel[s] = rng.uniform(0, extent - 1)
            axis = rng.integers(3)
            voxel[s, axis] = rng.choice([0.0, extent[axis] - 1]) + rng.choice([0.0, 0.4, -0.4])
        elif kind == "outside":
            voxel[s] = rng.uniform(0, extent - 1)
            axis = rng.integers(3)
            voxel[s, axis] = rng.choice(
                [rng.uniform(-1.6, -0.1), extent[axis] - 1 + rng.uniform(0.1, 1.6)]
            )
        else:
            voxel[s] = rng.uniform(-0.5, extent - 0.5)
    world = (np.c_[voxel, np.ones(n)] @ affine.T)[:, :3]
    integer = kinds == "integer_world"
    world[integer] = np.round(world[integer])
    # some seeds on exact half-millimetre positions (ties of rule b on some grids)
    halves = rng.random(n) < 0.15
    world[halves] = np.round(world[halves] * 2) / 2
    return world


def random_radius(rng, affine):
    voxel_size = float(np.sqrt((affine[:3, :3] ** 2).sum(axis=0)).min())
    options = [
        None,
        0.0,
        1.0,
        math.sqrt(2),
        math.sqrt(3),
        2.0,
        voxel_size,
        voxel_size * math.sqrt(2),
        voxel_size * math.sqrt(3),
        float(rng.uniform(0.0, 3.0 * voxel_size)),
        float(rng.uniform(0.0, 3.0 * voxel_size)),
    ]
    return options[rng.integers(len(options))]


def random_mask(rng, kind, affine, shape):
    """(mask data, mask affine) or (None, None)."""
    if kind == "none":
        return None, None
    if kind == "same_grid":
        data = (rng.random(shape) < rng.uniform(0.4, 0.95)).astype(np.uint8)
        return data, affine
    if kind == "coarser":
        factor = rng.choice([1.5, 2.0])
        mask_affine = affine.copy()
        mask_affine[:3, :3] = affine[:3, :3] * factor
        mask_affine[:3, 3] += rng.normal(size=3)
        mask_shape = tuple(int(max(3, np.ceil(s / factor) + 1)) for s in shape)
        data = (rng.random(mask_shape) < 0.7).astype(rng.choice([np.uint8, np.float32]))
        return data, mask_affine
    if kind == "fractional_shift":
        mask_affine = affine.copy()
        mask_affine[:3, 3] = affine[:3, :3] @ rng.uniform(-2.5, 2.5, 3) + affine[:3, 3]
        data = (rng.random(shape) < 0.7).astype(np.int16)
        return data, mask_affine
    # whole-voxel shift b that nilearn 0.12.1 places correctly: the mask's nonzero box must
    # start at index >= b on every axis (no clipping on the low side, deltas §4)
    b = rng.integers(-2, 3, 3)
    mask_affine = affine.copy()
    mask_affine[:3, 3] = affine[:3, 3] - affine[:3, :3] @ b
    mask_shape = tuple(int(s) for s in np.asarray(shape) + rng.integers(-2, 3, 3))
    data = (rng.random(mask_shape) < 0.7).astype(np.uint8)
    for axis in range(3):
        low = max(int(b[axis]), 0)
        index = [slice(None)] * 3
        index[axis] = slice(0, low)
        data[tuple(index)] = 0
    return data, mask_affine


def generate_case(index):
    rng = np.random.default_rng([0x5EED, index])
    shape = tuple(int(s) for s in rng.integers(5, 13, 3))
    affine = random_affine(rng, AFFINE_KINDS[index % len(AFFINE_KINDS)])
    mask_kind = MASK_KINDS[rng.integers(len(MASK_KINDS))]
    # oblique grids: keep masks on the same grid or none (resampling is tested elsewhere)
    if AFFINE_KINDS[index % len(AFFINE_KINDS)] == "oblique" and mask_kind != "same_grid":
        mask_kind = "none"
    for _ in range(50):
        mask_data, mask_affine = random_mask(rng, mask_kind, affine, shape)
        if mask_data is None:
            break
        resampled = resample_mask_to_grid(mask_data, mask_affine, affine, shape)
        # scikit-learn switches to brute force below 12 candidates (other tie rules and a
        # TypeError for radius=None); the masker's realistic regime is the KD-tree
        if np.count_nonzero(resampled) >= 12 and len(np.unique(resampled)) == 2:
            break
    else:  # pragma: no cover - the generator always finds a usable mask
        raise AssertionError("could not generate a mask")
    seeds = random_seeds(rng, affine, shape, int(rng.integers(1, 6)))
    radius = random_radius(rng, affine)
    allow_overlap = bool(rng.random() < 0.75)
    return seeds, affine, shape, radius, allow_overlap, mask_kind, mask_data, mask_affine


@pytest.mark.parametrize("index", range(N_CASES))
def test_spheres_match_nilearn(index):
    clear_cache()
    seeds, affine, shape, radius, allow_overlap, mask_kind, mask_data, mask_affine = generate_case(
        index
    )
    mask_img = None if mask_data is None else nib.Nifti1Image(mask_data, mask_affine)
    theirs = nilearn_spheres(seeds, affine, shape, radius, allow_overlap, mask_img)
    ours = our_spheres(seeds, affine, shape, radius, allow_overlap, mask_data, mask_affine)
    context = f"mask={mask_kind} radius={radius} overlap={allow_overlap}\nseeds={seeds.tolist()}"
    if isinstance(theirs, Exception):
        assert isinstance(ours, Exception), f"nilearn raised {theirs!r}, we did not\n{context}"
        expected_type = EmptySphereError if "empty" in str(theirs) else OverlapError
        assert type(ours) is expected_type, context
        assert str(theirs) in str(ours), context
    else:
        assert not isinstance(ours, Exception), f"we raised {ours!r}, nilearn did not\n{context}"
        assert ours == theirs, context


def test_generated_cases_cover_the_interesting_situations():
    """The sweep above is only worth something if it hits ties, errors and every kind."""
    from collections import Counter

    seen = Counter()
    for index in range(N_CASES):
        seeds, affine, shape, radius, allow_overlap, mask_kind, mask_data, mask_affine = (
            generate_case(index)
        )
        seen[mask_kind] += 1
        seen[f"radius={'None' if radius is None else 'number'}"] += 1
        inverse_voxel = (np.c_[seeds, np.ones(len(seeds))] @ np.linalg.inv(affine).T)[:, :3]
        seen["half-voxel tie"] += int(np.any(np.abs(inverse_voxel % 1 - 0.5) < 1e-12))
        seen["outside"] += int(
            np.any((inverse_voxel < -0.5) | (inverse_voxel > np.array(shape) - 0.5))
        )
        mask = None
        if mask_data is not None:
            mask = binarize_mask_values(
                resample_mask_to_grid(mask_data, mask_affine, affine, shape)
            )
        try:
            sphere_voxels(seeds, affine, shape, radius, mask=mask, allow_overlap=allow_overlap)
        except EmptySphereError:
            seen["empty"] += 1
        except OverlapError:
            seen["overlap"] += 1
    for key in ("none", "same_grid", "coarser", "fractional_shift", "integer_shift"):
        assert seen[key] >= 20, seen
    for key in ("half-voxel tie", "outside", "empty", "overlap", "radius=None"):
        assert seen[key] >= 10, seen


@pytest.mark.parametrize(
    ("seed", "radius"),
    [
        ((0.06, -1.56, -1.74), 2.337691168653379),
        ((-1.53, -0.04, 0.62), 1.651332795047685),
        ((1.2, -1.77, 0.54), 2.205561153085536),
        ((1.07, -1.0, -0.57), 1.5715597347857955),
    ],
)
def test_sum_of_squares_order_ties_match_nilearn(seed, radius):
    """Radii equal to a sum of squares that depends on the summation order."""
    affine = np.eye(4)
    affine[:3, 3] = -3.0
    seeds = np.array([seed])
    theirs = nilearn_spheres(seeds, affine, (7, 7, 7), radius, True, None)
    ours = our_spheres(seeds, affine, (7, 7, 7), radius, True, None, None)
    assert ours == theirs


@pytest.mark.parametrize("index", range(100))
def test_fine_grids_near_the_origin_match_nilearn(index):
    """Sub-millimetre grids around 0 mm: many candidates share the seed's truncation."""
    rng = np.random.default_rng([0xF1E, index])
    shape = tuple(int(s) for s in rng.integers(6, 12, 3))
    affine = np.eye(4)
    sizes = rng.choice([0.4, 0.5, 0.6, 0.75, 1.0], 3) * rng.choice([-1.0, 1.0], 3)
    affine[:3, :3] = np.diag(sizes)
    # put the world origin inside the grid, at a random sub-voxel position
    affine[:3, 3] = -sizes * rng.uniform(1.0, np.array(shape) - 2.0)
    seeds = rng.uniform(-1.5, 1.5, (int(rng.integers(1, 4)), 3))
    seeds[rng.random(len(seeds)) < 0.3] = np.round(seeds[0] * 4) / 4
    radius = [None, 0.0, float(rng.uniform(0, 0.6))][rng.integers(3)]
    mask_data = None
    if rng.random() < 0.5:
        mask_data = (rng.random(shape) < 0.6).astype(np.uint8)
    mask_img = None if mask_data is None else nib.Nifti1Image(mask_data, affine)
    theirs = nilearn_spheres(seeds, affine, shape, radius, True, mask_img)
    ours = our_spheres(seeds, affine, shape, radius, True, mask_data, affine)
    if isinstance(theirs, Exception):
        assert isinstance(ours, EmptySphereError)
        assert str(theirs) in str(ours)
    else:
        assert ours == theirs


def _oblique_affine(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = (q * np.sign(np.diag(r))) @ np.diag(rng.uniform(0.7, 3.5, 3))
    affine[:3, 3] = rng.uniform(-40, 40, 3)
    return affine


def test_world_coordinates_round_like_nilearn():
    """Bit-level: our per-box world coordinates equal nilearn's full-grid ``coord_transform``."""
    from nilearn.image.resampling import coord_transform

    from lazyspheres.geometry.rules import _world

    rng = np.random.default_rng(11)
    shape = (13, 11, 12)
    ijk = np.indices(shape).reshape(3, -1)
    differs_from_naive = 0
    for _ in range(20):
        affine = _oblique_affine(rng)
        theirs = np.asarray(coord_transform(ijk[0], ijk[1], ijk[2], affine))
        for size in (1, 2, 3, 17, 500):
            columns = np.sort(rng.choice(ijk.shape[1], size, replace=False))
            np.testing.assert_array_equal(_world(affine, ijk[:, columns]), theirs[:, columns])
        # element-wise products and sums (no BLAS, no fused multiply-add)
        naive = affine[:3, 0:1] * ijk[0] + affine[:3, 1:2] * ijk[1] + affine[:3, 2:3] * ijk[2]
        naive = naive + affine[:3, 3:4]
        differs_from_naive += int((naive != theirs).any())
    # the test is only meaningful if a hand-written product can round differently
    assert differs_from_naive >= 10


def test_nearest_voxel_rounds_like_nilearn():
    """Seeds at half-voxel positions of oblique grids: the last bit decides the rounding."""
    from nilearn.image.resampling import coord_transform

    from lazyspheres.geometry.rules import _nearest_voxels

    rng = np.random.default_rng(12)
    batched_differs = 0
    for _ in range(30):
        affine = _oblique_affine(rng)
        inverse = np.linalg.inv(affine)
        voxel = rng.integers(0, 10, (40, 3)) + rng.choice([0.0, 0.5], (40, 3))
        seeds = (np.c_[voxel, np.ones(40)] @ affine.T)[:, :3]
        theirs = np.array([np.round(coord_transform(*seed, inverse)) for seed in seeds])
        np.testing.assert_array_equal(_nearest_voxels(seeds, inverse), theirs)
        batched = np.round(np.dot(inverse, np.c_[seeds, np.ones(40)].T)[:3].T)
        batched_differs += int((batched != theirs).any())
    assert batched_differs >= 3  # a single batched product would not be equal


# --------------------------------------------------------------------------------------
# deltas §4: a whole-voxel shift clipped at the low side


def test_integer_shift_clipped_low_side_differs_from_nilearn_0_12_1():
    """nilearn 0.12.1 misplaces this mask; lazyspheres places it where its affine says."""
    shape = (10, 10, 10)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10.0, -10.0, -10.0]
    # the mask grid starts 3 voxels (6 mm) before the image grid along x; its nonzero box
    # begins at mask index 1, i.e. image index -2: clipped on the low side
    b = np.array([3, 0, 0])
    mask_affine = affine.copy()
    mask_affine[:3, 3] = affine[:3, 3] - affine[:3, :3] @ b
    mask_data = np.zeros((12, 10, 10), dtype=np.uint8)
    mask_data[1:3, 4:6, 4:6] = 1  # mask x 1, 2 (image x -2, -1): a small 2 x 2 block
    mask_data[3:7, 2:8, 2:8] = 1  # mask x 3..6 (image x 0..3): a 6 x 6 block
    mask_img = nib.Nifti1Image(mask_data, mask_affine)

    # correct placement, by explicit index arithmetic: image voxel v <- mask voxel v + b
    expected_mask = np.zeros(shape, dtype=bool)
    for v in np.ndindex(shape):
        m = np.asarray(v) + b
        if (m < mask_data.shape).all():
            expected_mask[v] = mask_data[tuple(m)] != 0
    assert int(expected_mask.sum()) == 4 * 36
    ours_mask = binarize_mask_values(resample_mask_to_grid(mask_data, mask_affine, affine, shape))
    np.testing.assert_array_equal(ours_mask, expected_mask)

    from nilearn.image import resample_img

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_mask = resample_img(
            mask_img,
            target_affine=affine,
            target_shape=shape,
            interpolation="nearest",
            copy_header=True,
            force_resample=False,
        ).get_fdata()
    # nilearn 0.12.1 pastes the block cropped to the nonzero box from image x = 0 onwards,
    # starting at the box's first slice (mask x 1) instead of mask x 3: image x 0, 1 get the
    # 2 x 2 block, x 2, 3 the 6 x 6 block
    assert int((theirs_mask != 0).sum()) == 2 * 4 + 2 * 36
    assert (theirs_mask[0:2] != 0).sum() == 8
    assert not np.array_equal(theirs_mask != 0, expected_mask)

    # the spheres inherit the difference: a seed on image voxel (0, 2, 2), radius 0
    seeds = np.array([[-10.0, -6.0, -6.0]])
    theirs = nilearn_spheres(seeds, affine, shape, 0.0, False, mask_img)
    ours = our_spheres(seeds, affine, shape, 0.0, False, mask_data, mask_affine)
    assert ours == [{(0, 2, 2)}]
    assert isinstance(theirs, ValueError)
    assert str(theirs) == "These spheres are empty: [0]"
    # and a seed whose sphere exists in both, with different voxels
    seeds = np.array([[-8.0, 0.0, 0.0]])  # image voxel (1, 5, 5)
    theirs = nilearn_spheres(seeds, affine, shape, 2.0, False, mask_img)
    ours = our_spheres(seeds, affine, shape, 2.0, False, mask_data, mask_affine)
    assert ours == [{(0, 5, 5), (1, 4, 5), (1, 5, 4), (1, 5, 5), (1, 5, 6), (1, 6, 5), (2, 5, 5)}]
    assert theirs == [{(0, 5, 5), (1, 4, 5), (1, 5, 4), (1, 5, 5), (2, 5, 5)}]
