"""Unit tests of lazyspheres.geometry (no nilearn needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse

from lazyspheres import geometry
from lazyspheres.errors import EmptySphereError, OverlapError, SeedError
from lazyspheres.geometry import SphereVoxels, clear_cache, sphere_voxels

# --------------------------------------------------------------------------------------
# reference implementation: the rules applied to every voxel of the grid (slow, obvious)


def brute_force(seeds, affine, shape, radius=None, mask=None):
    """Voxel sets by scanning the whole grid, written straight from the rules."""
    ijk = np.indices(shape).reshape(3, -1).T
    candidate = np.ones(len(ijk), bool) if mask is None else np.asarray(mask).ravel() != 0
    homogeneous = np.c_[ijk, np.ones(len(ijk))].T
    world = np.dot(affine, homogeneous)[:3].T
    inverse = np.linalg.inv(affine)
    spheres = []
    for seed in np.asarray(seeds, dtype=float):
        members = set()
        if radius is not None:
            d = world - seed
            dist2 = (d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]) + d[:, 2] * d[:, 2]
            members |= {tuple(v) for v in ijk[(dist2 <= radius * radius) & candidate]}
        nearest = np.round(np.dot(inverse, np.r_[seed, 1.0].reshape(4, 1)))[:3, 0].astype(int)
        inside = all(0 <= nearest[a] < shape[a] for a in range(3))
        if inside and candidate[np.ravel_multi_index(nearest, shape)]:
            members.add(tuple(nearest))
        target = [int(v) for v in seed]
        for position in np.flatnonzero(candidate):
            if [int(v) for v in world[position]] == target:
                members.add(tuple(ijk[position]))
                break
        spheres.append(members)
    return spheres


def as_sets(spheres: SphereVoxels) -> list[set[tuple[int, ...]]]:
    return [{tuple(v) for v in spheres.sphere(i).tolist()} for i in range(spheres.n_seeds)]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


# --------------------------------------------------------------------------------------
# worked example of the reference (nilearn-behaviour.md §1.5)

WORKED_AFFINE = np.array(
    [[2.0, 0, 0, -9], [0, 2.0, 0, -11], [0, 0, 2.0, -13], [0, 0, 0, 1]], dtype=np.float64
)
WORKED_SHAPE = (10, 11, 12)
SEED_A = (0.0, 0.0, 0.0)
SEED_B = (3.0, -3.0, 4.5)
CUBE_A = [(i, j, k) for i in (4, 5) for j in (5, 6) for k in (6, 7)]


def worked_mask() -> np.ndarray:
    mask = np.zeros(WORKED_SHAPE, dtype=bool)
    mask[3:8, 3:8, 3:9] = True
    mask[4, 5, 6] = False
    return mask


B_RADIUS_3 = [
    (5, 3, 9), (5, 4, 8), (5, 4, 9), (5, 5, 9), (6, 3, 8), (6, 3, 9), (6, 4, 8), (6, 4, 9),
    (6, 4, 10), (6, 5, 8), (6, 5, 9), (7, 3, 9), (7, 4, 8), (7, 4, 9), (7, 5, 9),
]  # fmt: skip


@pytest.mark.parametrize(
    ("radius", "masked", "expected_a", "expected_b"),
    [
        (None, False, [(4, 6, 6)], [(6, 4, 9)]),
        (0.0, False, [(4, 6, 6)], [(6, 4, 9)]),
        (2.0, False, CUBE_A, [(6, 4, 8), (6, 4, 9)]),
        (3.0, False, CUBE_A, B_RADIUS_3),
        (2.0, True, [v for v in CUBE_A if v != (4, 5, 6)], [(6, 4, 8)]),
        (
            3.0,
            True,
            [v for v in CUBE_A if v != (4, 5, 6)],
            [(5, 4, 8), (6, 3, 8), (6, 4, 8), (6, 5, 8), (7, 4, 8)],
        ),
    ],
)
def test_worked_example(radius, masked, expected_a, expected_b):
    mask = worked_mask() if masked else None
    spheres = sphere_voxels([SEED_A, SEED_B], WORKED_AFFINE, WORKED_SHAPE, radius, mask=mask)
    # exact voxel lists, in C order
    assert [tuple(v) for v in spheres.sphere(0).tolist()] == sorted(expected_a)
    assert [tuple(v) for v in spheres.sphere(1).tolist()] == sorted(expected_b)
    assert spheres.n_voxels.tolist() == [len(expected_a), len(expected_b)]


def test_worked_example_radius_3_distances():
    spheres = sphere_voxels([SEED_B], WORKED_AFFINE, WORKED_SHAPE, 3.0)
    ijk = spheres.sphere(0)
    world = ijk @ WORKED_AFFINE[:3, :3].T + WORKED_AFFINE[:3, 3]
    distances = np.sort(np.round(np.linalg.norm(world - SEED_B, axis=1), 3))
    assert distances.tolist() == [0.5, 1.5] + [2.062] * 4 + [2.5] * 5 + [2.872] * 4


@pytest.mark.parametrize("radius", [None, 0.0])
def test_worked_example_masked_nearest_is_empty(radius):
    with pytest.raises(EmptySphereError, match=r"These spheres are empty: \[1\]") as info:
        sphere_voxels([SEED_A, SEED_B], WORKED_AFFINE, WORKED_SHAPE, radius, mask=worked_mask())
    message = str(info.value)
    assert message.startswith("These spheres are empty: [1]\n")
    assert "seed #1 at (3, -3, 4.5) mm: nearest voxel (6, 4, 9) is masked out" in message
    assert "mask value False" in message
    assert "seed #0" not in message


# --------------------------------------------------------------------------------------
# truncation voxel (rule c) and seeds outside the field of view, 1 mm identity grid

EYE = np.eye(4)


@pytest.mark.parametrize(
    ("seed", "expected"),
    [
        ((2.4, 3.3, 4.2), [(2, 3, 4)]),
        ((2.6, 3.3, 4.2), [(2, 3, 4), (3, 3, 4)]),
        ((2.6, 3.7, 4.9), [(2, 3, 4), (3, 4, 5)]),
        ((2.5, 3.5, 4.5), [(2, 3, 4), (2, 4, 4)]),
        ((1.5, 2.5, 3.5), [(1, 2, 3), (2, 2, 4)]),
    ],
)
@pytest.mark.parametrize("radius", [None, 0.0, 0.5])
def test_truncation_voxel(seed, expected, radius):
    spheres = sphere_voxels([seed], EYE, (7, 7, 7), radius)
    assert [tuple(v) for v in spheres.sphere(0).tolist()] == expected


def test_seed_just_outside_uses_truncation_voxel():
    spheres = sphere_voxels([(-0.6, 3.0, 4.0)], EYE, (7, 7, 7))
    assert spheres.sphere(0).tolist() == [[0, 3, 4]]


def test_seed_outside_empty_message():
    with pytest.raises(EmptySphereError) as info:
        sphere_voxels([(3.0, 3.0, 3.0), (-1.2, 3.0, 4.0)], EYE, (7, 7, 7))
    message = str(info.value)
    assert message.splitlines()[0] == "These spheres are empty: [1]"
    assert "seed #1 at (-1.2, 3, 4) mm: nearest voxel (-1, 3, 4) is outside the image" in message


def test_shifted_origin_outside_seeds():
    affine = np.eye(4)
    affine[0, 3] = -3.0
    assert sphere_voxels([(-0.6, 3, 4)], affine, (7, 7, 7)).sphere(0).tolist() == [
        [2, 3, 4],
        [3, 3, 4],
    ]
    assert sphere_voxels([(-1.4, 3, 4)], affine, (7, 7, 7)).sphere(0).tolist() == [[2, 3, 4]]


def test_seed_outside_reached_by_radius():
    # x = 7.0 on a 0..6 grid: the nearest voxel (7) is outside, radius 1 reaches x = 6
    spheres = sphere_voxels([(7.0, 3.0, 4.0)], EYE, (7, 7, 7), 1.0)
    assert spheres.sphere(0).tolist() == [[6, 3, 4]]
    with pytest.raises(EmptySphereError, match=r"These spheres are empty: \[0\]"):
        sphere_voxels([(7.4, 3.0, 4.0)], EYE, (7, 7, 7), 1.0)


def test_seed_far_outside_all_empty():
    with pytest.raises(EmptySphereError) as info:
        sphere_voxels([(1e6, 0, 0), (0, -1e9, 0), (2.0, 2.0, 2.0)], EYE, (5, 5, 5), 3.0)
    assert str(info.value).startswith("These spheres are empty: [0 1]\n")


def test_empty_message_lists_many_like_nilearn():
    seeds = [(100.0 + i, 0.0, 0.0) for i in range(40)]
    with pytest.raises(EmptySphereError) as info:
        sphere_voxels(seeds, EYE, (5, 5, 5), 1.0)
    # same text as f"{np.arange(40)}" (numpy wraps long arrays over several lines)
    assert str(info.value).startswith(f"These spheres are empty: {np.arange(40)}\n")
    assert "... and 30 more." in str(info.value)


# --------------------------------------------------------------------------------------
# radius edge cases (1 mm grid, seed on a voxel centre)


def _count(radius):
    return int(sphere_voxels([(3.0, 3.0, 3.0)], EYE, (7, 7, 7), radius).n_voxels[0])


def test_radius_ties_follow_float64_rounding():
    assert _count(1.0) == 7  # distance-1 neighbours are in (1 <= 1)
    assert _count(math.sqrt(2)) == 19  # 2.0000000000000004 <= 2.0000000000000004
    assert _count(math.sqrt(3)) == 19  # 3.0 > 2.9999999999999996: corners out
    assert _count(np.nextafter(math.sqrt(3), 4)) == 27
    assert _count(2.0) == 33


# Seeds and radii where the order of the sum of squares decides: the voxel at the world
# origin is at squared distance A = (dx*dx + dy*dy) + dz*dz, B = dx*dx + (dy*dy + dz*dz),
# and A <= r*r != B <= r*r. Left to right (A) is what scikit-learn's KD-tree, hence nilearn,
# computes.
SUM_ORDER_TIES = [
    ((0.06, -1.56, -1.74), 2.337691168653379, False),
    ((-1.53, -0.04, 0.62), 1.651332795047685, True),
    ((1.2, -1.77, 0.54), 2.205561153085536, False),
    ((1.07, -1.0, -0.57), 1.5715597347857955, True),
]


@pytest.mark.parametrize(("seed", "radius", "included"), SUM_ORDER_TIES)
def test_sum_of_squares_left_to_right(seed, radius, included):
    d = -np.asarray(seed)
    left = (d[0] * d[0] + d[1] * d[1]) + d[2] * d[2]
    right = d[0] * d[0] + (d[1] * d[1] + d[2] * d[2])
    assert bool(left <= radius * radius) is included
    assert bool(right <= radius * radius) is not included  # the case is a real tie
    affine = np.eye(4)
    affine[:3, 3] = -3.0  # voxel (3, 3, 3) is at the world origin
    spheres = sphere_voxels([seed], affine, (7, 7, 7), radius)
    assert ([3, 3, 3] in spheres.sphere(0).tolist()) is included


def test_truncation_voxel_is_the_first_match_in_c_order():
    # 1 mm voxels at world -0.5 and 0.5 on every axis: all 8 voxels truncate to (0, 0, 0)
    affine = np.eye(4)
    affine[:3, 3] = -0.5
    spheres = sphere_voxels([(0.2, 0.2, 0.2)], affine, (4, 4, 4))
    assert spheres.sphere(0).tolist() == [[0, 0, 0], [1, 1, 1]]  # truncation, nearest
    mask = np.ones((4, 4, 4), dtype=bool)
    mask[0, 0, 0] = False
    spheres = sphere_voxels([(0.2, 0.2, 0.2)], affine, (4, 4, 4), mask=mask)
    assert spheres.sphere(0).tolist() == [[0, 0, 1], [1, 1, 1]]
    # half-millimetre voxels: the cell (-1, 1)^3 holds 4^3 candidates, the first one wins
    fine = np.diag([0.5, 0.5, 0.5, 1.0])
    fine[:3, 3] = -0.75
    spheres = sphere_voxels([(-0.1, 0.3, 0.9)], fine, (6, 6, 6))
    assert spheres.sphere(0).tolist() == [[0, 0, 0], [1, 2, 3]]


@pytest.mark.parametrize("radius", [None, 0, 0.0, 0.49])
def test_small_radius_is_nearest_voxel(radius):
    spheres = sphere_voxels([(3.2, 3.4, 3.1)], EYE, (7, 7, 7), radius)
    assert spheres.sphere(0).tolist() == [[3, 3, 3]]


def test_radius_zero_exact_hit_only():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    # the seed sits exactly on voxel (1, 1, 1); the nearest rule gives the same voxel
    assert sphere_voxels([(2.0, 2.0, 2.0)], affine, (4, 4, 4), 0.0).sphere(0).tolist() == [
        [1, 1, 1]
    ]


def test_radius_inf_takes_every_candidate():
    mask = np.zeros((4, 5, 6), dtype=np.int16)
    mask[1:3, 2:4, ::2] = 7
    spheres = sphere_voxels([(0, 0, 0), (50, 50, 50)], EYE, (4, 5, 6), np.inf, mask=mask,
                            allow_overlap=True)  # fmt: skip
    expected = np.argwhere(mask)
    for i in range(2):
        np.testing.assert_array_equal(spheres.sphere(i), expected)
    huge = sphere_voxels([(0, 0, 0)], EYE, (4, 5, 6), 1e200, mask=mask)
    np.testing.assert_array_equal(huge.sphere(0), expected)


def test_radius_bool_and_numpy_scalars():
    assert sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), True).radius == 1.0
    assert sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), np.float32(1)).n_voxels[0] == 7
    assert sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), np.int64(1)).n_voxels[0] == 7


@pytest.mark.parametrize(
    ("radius", "shown"),
    [(-1, "-1"), (-0.5, "-0.5"), ("5", "'5'"), (float("nan"), "nan"), ([1], r"\[1\]")],
)
def test_bad_radius(radius, shown):
    pattern = (
        r"The 'radius' parameter must be a float in the range \[0\.0, inf\] or None\. "
        rf"Got {shown} instead\."
    )
    with pytest.raises(ValueError, match=pattern):
        sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), radius)


# --------------------------------------------------------------------------------------
# overlap


def test_overlap_error_names_pairs():
    seeds = [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (5.0, 5.0, 5.0), (5.0, 5.0, 5.0)]
    with pytest.raises(OverlapError) as info:
        sphere_voxels(seeds, EYE, (7, 7, 7), 1.0)
    message = str(info.value)
    assert message.startswith("Overlap detected between spheres")
    assert "2 pair(s) of seeds share voxels" in message
    assert "seeds #0 (1, 1, 1) and #1 (2, 1, 1) mm (1 mm apart) share 2 voxel(s)." in message
    assert "seeds #2 (5, 5, 5) and #3 (5, 5, 5) mm (0 mm apart) share 7 voxel(s)." in message
    assert "allow_overlap=True" in message
    assert isinstance(info.value, ValueError)


def test_overlap_allowed_counts_voxels_in_each_sphere():
    seeds = [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0)]
    spheres = sphere_voxels(seeds, EYE, (7, 7, 7), 1.0, allow_overlap=True)
    assert spheres.n_voxels.tolist() == [7, 7]
    shared = set(map(tuple, spheres.sphere(0).tolist())) & set(
        map(tuple, spheres.sphere(1).tolist())
    )
    assert shared == {(1, 1, 1), (2, 1, 1)}
    assert spheres.voxels.shape[0] == 12


def test_overlap_through_forced_voxels():
    # radius None: both seeds get voxel (2, 3, 4) via the nearest / truncation rules
    with pytest.raises(OverlapError, match="Overlap detected between spheres"):
        sphere_voxels([(2.4, 3.3, 4.2), (2.3, 3.1, 4.4)], EYE, (7, 7, 7))


def test_empty_checked_before_overlap():
    seeds = [(3.0, 3.0, 3.0), (3.0, 3.0, 3.0), (40.0, 3.0, 3.0)]
    with pytest.raises(EmptySphereError, match=r"These spheres are empty: \[2\]"):
        sphere_voxels(seeds, EYE, (7, 7, 7), 1.0)


# --------------------------------------------------------------------------------------
# input validation


@pytest.mark.parametrize(
    ("seeds", "pattern"),
    [
        (None, r"Given seed list is of type: <class 'NoneType'>"),
        (
            [1, 2, 3],
            r"Seed #0 is not a valid triplet of coordinates\. It is of type <class 'int'>",
        ),
        ([(1, 2)], r"Seed #0 is of length 2 instead of 3\."),
        ([(1, 2, np.nan)], r"Seed #0 has a non-finite z coordinate"),
        ([(1, 2, 3), (np.inf, 2, 3)], r"Seed #1 has a non-finite x coordinate"),
    ],
)
def test_bad_seeds(seeds, pattern):
    with pytest.raises(SeedError, match="Seeds must be a list of triplets") as info:
        sphere_voxels(seeds, EYE, (7, 7, 7), 1.0)
    assert info.match(pattern)


def test_mask_on_other_grid_is_rejected():
    with pytest.raises(ValueError, match=r"mask has shape \(7, 7, 6\) but the image grid is"):
        sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.0, mask=np.ones((7, 7, 6)))


@pytest.mark.parametrize(
    ("affine", "pattern"),
    [
        (np.eye(3), "finite 4x4"),
        (np.full((4, 4), np.nan), "non-finite"),
        (np.diag([1.0, 0.0, 1.0, 1.0]), "singular"),
        ("eye", "4x4 array of numbers"),
    ],
)
def test_bad_affine(affine, pattern):
    with pytest.raises(ValueError, match=pattern):
        sphere_voxels([(3, 3, 3)], affine, (7, 7, 7), 1.0)


@pytest.mark.parametrize("shape", [(7, 7), (7, 7, 7, 2), (7, 0, 7), (7.0, 7, 7), "777"])
def test_bad_shape(shape):
    with pytest.raises(ValueError, match="shape must be three positive integers"):
        sphere_voxels([(3, 3, 3)], EYE, shape, 1.0)


# --------------------------------------------------------------------------------------
# the result object


def test_sphere_voxels_object():
    seeds = np.array([[1.0, 1.0, 1.0], [4.0, 4.0, 4.0]])
    spheres = sphere_voxels(seeds, EYE, (6, 6, 6), 1.0)
    assert spheres.n_seeds == 2
    assert spheres.n_voxels.tolist() == [7, 7]
    assert spheres.radius == 1.0
    assert spheres.shape == (6, 6, 6)
    assert spheres.voxels.dtype == np.int64
    assert spheres.indptr.tolist() == [0, 7, 14]
    # union voxels unique and in C order
    flat = np.ravel_multi_index(tuple(spheres.voxels.T), (6, 6, 6))
    assert (np.diff(flat) > 0).all()
    np.testing.assert_array_equal(spheres.flat_indices(), flat)
    np.testing.assert_array_equal(
        spheres.flat_indices("F"),
        np.ravel_multi_index(tuple(spheres.voxels.T), (6, 6, 6), order="F"),
    )
    # indices ascending within each seed
    for i in range(2):
        part = spheres.indices[spheres.indptr[i] : spheres.indptr[i + 1]]
        assert (np.diff(part) > 0).all()
    assert spheres.sphere(-1).tolist() == spheres.sphere(1).tolist()
    with pytest.raises(IndexError):
        spheres.sphere(2)
    membership = spheres.membership()
    assert isinstance(membership, scipy.sparse.csr_array)
    assert membership.shape == (2, 14)
    assert membership.dtype == np.float64
    dense = membership.toarray()
    assert set(np.unique(dense)) == {0.0, 1.0}
    np.testing.assert_array_equal(dense.sum(axis=1), [7, 7])
    # the membership matrix averages values like a per-sphere mean
    values = np.arange(6**3, dtype=float).reshape(6, 6, 6)
    means = (membership @ values[tuple(spheres.voxels.T)]) / spheres.n_voxels
    expected = [values[tuple(spheres.sphere(i).T)].mean() for i in range(2)]
    np.testing.assert_allclose(means, expected, rtol=1e-12)
    mask = spheres.to_mask()
    assert mask.sum() == 14
    assert mask[1, 1, 1]
    assert mask[4, 4, 5]
    assert not mask[0, 0, 0]
    assert "2 seeds" in repr(spheres)


def test_arrays_are_read_only():
    spheres = sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.0)
    for name in ("seeds", "affine", "voxels", "indptr", "indices"):
        array = getattr(spheres, name)
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0
    with pytest.raises(AttributeError):
        spheres.radius = 2.0


def test_cache_returns_same_object():
    mask = np.ones((7, 7, 7), dtype=np.uint8)
    first = sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.0, mask=mask)
    assert sphere_voxels([[3.0, 3.0, 3.0]], EYE.copy(), (7, 7, 7), 1, mask=mask.copy()) is first
    assert sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.0, mask=mask > 0) is first
    # anything that changes the result is a different entry
    assert sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.5, mask=mask) is not first
    assert sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.0) is not first
    assert sphere_voxels([(3, 3, 3)], EYE, (7, 7, 8), 1.0, mask=None) is not first
    other = mask.copy()
    other[0, 0, 0] = 0
    assert sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.0, mask=other) is not first
    assert (
        sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.0, mask=mask, allow_overlap=True) is not first
    )
    clear_cache()
    again = sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.0, mask=mask)
    assert again is not first
    np.testing.assert_array_equal(again.voxels, first.voxels)


def test_cache_is_bounded():
    first = sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.0)
    for i in range(geometry._CACHE_SIZE):
        sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.0 + (i + 1) * 1e-3)
    assert sphere_voxels([(3, 3, 3)], EYE, (7, 7, 7), 1.0) is not first


def test_errors_are_not_cached():
    with pytest.raises(OverlapError):
        sphere_voxels([(3, 3, 3), (3, 3, 3)], EYE, (7, 7, 7), 1.0)
    with pytest.raises(OverlapError):
        sphere_voxels([(3, 3, 3), (3, 3, 3)], EYE, (7, 7, 7), 1.0)


def test_seed_frame_accepted():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"X": [3.0], "y": [3.0], "Z": [3.0], "label": ["a"]})
    assert sphere_voxels(frame, EYE, (7, 7, 7), 1.0).n_voxels.tolist() == [7]


# --------------------------------------------------------------------------------------
# agreement with the brute-force reference on random grids


def _random_case(rng):
    shape = tuple(int(s) for s in rng.integers(4, 11, 3))
    affine = np.eye(4)
    kind = rng.integers(4)
    if kind == 0:
        affine[:3, :3] = np.diag(rng.choice([1.0, 2.0, 3.0], 3))
    elif kind == 1:
        affine[:3, :3] = np.diag(rng.choice([-2.0, -1.0, 1.5, 2.5], 3))
    else:
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        affine[:3, :3] = q @ np.diag(rng.uniform(0.8, 3.0, 3))
    affine[:3, 3] = rng.choice([rng.integers(-8, 8, 3), rng.uniform(-8, 8, 3)])
    n = int(rng.integers(1, 5))
    voxel = rng.uniform(-1.5, np.array(shape) + 0.5, (n, 3))
    voxel[::2] = np.round(voxel[::2] * 2) / 2  # centres and half-voxels
    seeds = (np.c_[voxel, np.ones(n)] @ affine.T)[:, :3]
    if rng.random() < 0.3:
        seeds = np.round(seeds)  # integer world coordinates exercise the truncation rule
    radius = rng.choice([None, 0.0, 1.0, math.sqrt(2), math.sqrt(3), float(rng.uniform(0, 5))])
    mask = None if rng.random() < 0.5 else (rng.random(shape) < 0.7)
    return seeds, affine, shape, radius, mask


@pytest.mark.parametrize("case", range(60))
def test_matches_brute_force(case):
    rng = np.random.default_rng([20240501, case])
    seeds, affine, shape, radius, mask = _random_case(rng)
    expected = brute_force(seeds, affine, shape, radius, mask)
    if any(not s for s in expected):
        with pytest.raises(EmptySphereError):
            sphere_voxels(seeds, affine, shape, radius, mask=mask, allow_overlap=True)
        return
    got = sphere_voxels(seeds, affine, shape, radius, mask=mask, allow_overlap=True)
    assert as_sets(got) == expected


def test_batching_gives_the_same_result(monkeypatch):
    rng = np.random.default_rng(7)
    shape = (20, 22, 18)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-20, -22, -18]
    seeds = rng.uniform(-18, 16, (30, 3))
    mask = rng.random(shape) < 0.8
    whole = sphere_voxels(seeds, affine, shape, 4.5, mask=mask, allow_overlap=True)
    clear_cache()
    monkeypatch.setattr(geometry.rules, "_BATCH_VOXELS", 50)
    pieces = sphere_voxels(seeds, affine, shape, 4.5, mask=mask, allow_overlap=True)
    assert pieces is not whole
    np.testing.assert_array_equal(pieces.voxels, whole.voxels)
    np.testing.assert_array_equal(pieces.indptr, whole.indptr)
    np.testing.assert_array_equal(pieces.indices, whole.indices)
    assert as_sets(pieces) == brute_force(seeds, affine, shape, 4.5, mask)
