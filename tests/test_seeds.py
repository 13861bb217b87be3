"""Tests of lazyspheres.seeds: seed formats, errors, named seed sets."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from lazyspheres.errors import SeedError
from lazyspheres.seeds import NAMED_SEED_SETS, as_seed_array, load_seeds, named_seeds

PREFIX = "Seeds must be a list of triplets of coordinates in native space.\n"
EXPECTED = np.array([[1.0, 2.0, 3.0], [-4.5, 5.0, 6.25]])


# --------------------------------------------------------------------------------------
# accepted formats


@pytest.mark.parametrize(
    "seeds",
    [
        EXPECTED,
        EXPECTED.astype(np.float32),
        [(1, 2, 3), (-4.5, 5, 6.25)],
        ([1, 2, 3], [-4.5, 5.0, 6.25]),
        [np.array([1, 2, 3]), np.array([-4.5, 5, 6.25])],
        [(np.int16(1), np.float32(2), 3), (Fraction(-9, 2), 5, 6.25)],
        pd.DataFrame({"x": [1, -4.5], "y": [2, 5], "z": [3, 6.25]}),
        pd.DataFrame({"label": ["a", "b"], "X": [1, -4.5], "Y": [2, 5], "Z": [3, 6.25]}),
        pd.DataFrame({"x": ["1", "-4.5"], "y": [2, 5], "z": [3, 6.25]}),  # numeric strings
    ],
)
def test_accepted_formats(seeds):
    got = as_seed_array(seeds)
    assert got.dtype == np.float64
    assert got.shape == (2, 3)
    np.testing.assert_array_equal(got, EXPECTED)


def test_iterators_and_integer_arrays():
    np.testing.assert_array_equal(as_seed_array(iter([(1, 2, 3)])), [[1.0, 2.0, 3.0]])
    got = as_seed_array(np.array([[1, 2, 3]], dtype=np.int64))
    assert got.dtype == np.float64


def test_result_is_a_copy():
    seeds = EXPECTED.copy()
    got = as_seed_array(seeds)
    got[0, 0] = 100.0
    assert seeds[0, 0] == 1.0


# --------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        (None, "Given seed list is of type: <class 'NoneType'>"),
        (5, "Given seed list is of type: <class 'int'>"),
        (2.5, "Given seed list is of type: <class 'float'>"),
        ([1, 2, 3], "Seed #0 is not a valid triplet of coordinates. It is of type <class 'int'>."),
        (
            np.array([1.0, 2.0, 3.0]),
            "Seed #0 is not a valid triplet of coordinates. It is of type "
            "<class 'numpy.float64'>.",
        ),
        ([(1, 2)], "Seed #0 is of length 2 instead of 3."),
        ([(1, 2, 3), (1, 2, 3, 4)], "Seed #1 is of length 4 instead of 3."),
        (np.zeros((2, 4)), "Seed #0 is of length 4 instead of 3."),
        ([(1, 2, 3), []], "Seed #1 is of length 0 instead of 3."),
    ],
)
def test_nilearn_messages(seeds, message):
    with pytest.raises(SeedError) as info:
        as_seed_array(seeds)
    assert str(info.value) == PREFIX + message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("seeds", "pattern"),
    [
        ([(1, "a", 3)], r"Seed #0 has a non-numeric y coordinate 'a' \(type str\)"),
        ([(1, 2, 3), (None, 2, 3)], r"Seed #1 has a non-numeric x coordinate None"),
        ([(1, 2, True)], r"Seed #0 has a non-numeric z coordinate True"),
        ([(1, 2, 3j)], r"Seed #0 has a non-numeric z coordinate 3j"),
        (["abc"], r"Seed #0 is a string \('abc'\), not a triplet of numbers"),
        ([(1, 2, np.nan)], r"Seed #0 has a non-finite z coordinate: \[1\.0, 2\.0, nan\]"),
        (np.array([[1, 2, 3], [np.inf, 0, 0]]), r"Seed #1 has a non-finite x coordinate"),
        ([], "The seed list is empty"),
        (np.zeros((0, 3)), "The seed list is empty"),
        ("power2011", r"Given seed list is of type: <class 'str'>\nA string is not a seed list"),
        (np.float64(3.0), r"Given seed list is of type: <class 'numpy.float64'>"),
        (np.array(3.0), r"Given seed list is of type: <class 'numpy.ndarray'>"),
    ],
)
def test_clear_messages(seeds, pattern):
    with pytest.raises(SeedError, match=pattern) as info:
        as_seed_array(seeds)
    assert str(info.value).startswith(PREFIX)


@pytest.mark.parametrize(
    ("frame", "pattern"),
    [
        (pd.DataFrame({"x": [1], "y": [2]}), r"found no column for 'z' among \['x', 'y'\]"),
        (pd.DataFrame({"x": [1], "X": [1], "y": [2], "z": [3]}), r"several \(\['x', 'X'\]\)"),
        (
            pd.DataFrame({"x": [1.0, 2.0], "y": [2, 2], "z": ["3", "left"]}),
            r"Seed #1 has a non-numeric z coordinate 'left'",
        ),
        (pd.DataFrame({"x": [1.0, np.nan], "y": [2, 2], "z": [3, 3]}), r"Seed #1 .*non-finite x"),
        (pd.DataFrame({"x": [], "y": [], "z": []}), "The seed list is empty"),
    ],
)
def test_frame_errors(frame, pattern):
    with pytest.raises(SeedError, match=pattern):
        as_seed_array(frame)


@pytest.mark.nilearn
@pytest.mark.parametrize(
    "seeds",
    [
        None,
        5,
        [1, 2, 3],
        np.array([1.0, 2.0, 3.0]),
        [(1, 2)],
        [(1, 2, 3), (1, 2, 3, 4)],
        np.zeros((2, 4)),
        [[0, 0, 0], 7],
    ],
)
def test_messages_equal_nilearn_fit(seeds):
    from nilearn.maskers import NiftiSpheresMasker

    masker = NiftiSpheresMasker(seeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as theirs:
            masker.fit()
    with pytest.raises(SeedError) as ours:
        as_seed_array(seeds)
    assert str(ours.value) == str(theirs.value)


# --------------------------------------------------------------------------------------
# load_seeds


@pytest.mark.parametrize("name", ["power2011", "POWER2011", "Power_2011", " power-2011 "])
def test_load_named_case_insensitive(name):
    coords, labels = load_seeds(name)
    assert coords.shape == (264, 3)
    assert list(labels.columns) == ["roi", "network_id", "network"]
    assert labels.index.equals(pd.RangeIndex(264))


def test_load_frame_keeps_extra_columns():
    frame = pd.DataFrame(
        {"label": ["a", "b"], "x": [1.0, 2.0], "y": [0, 0], "z": [5, 6], "network": ["v", "d"]},
        index=[10, 20],
    )
    coords, labels = load_seeds(frame)
    np.testing.assert_array_equal(coords, [[1, 0, 5], [2, 0, 6]])
    assert list(labels.columns) == ["label", "network"]
    assert labels.index.equals(pd.RangeIndex(2))
    assert labels["label"].tolist() == ["a", "b"]


def test_load_frame_named_index_becomes_a_column():
    frame = pd.DataFrame({"x": [1.0], "y": [0.0], "z": [5.0]}, index=pd.Index([7], name="roi"))
    _, labels = load_seeds(frame)
    assert labels.to_dict("list") == {"roi": [7]}


def test_load_plain_seeds_has_no_labels():
    coords, labels = load_seeds([(1, 2, 3), (4, 5, 6)])
    assert coords.shape == (2, 3)
    assert labels.shape == (2, 0)
    assert labels.index.equals(pd.RangeIndex(2))


def test_load_unknown_name():
    with pytest.raises(SeedError, match=r"Given seed list is the string 'power', which is not"):
        load_seeds("power")
    with pytest.raises(SeedError) as info:
        load_seeds("aal")
    assert "power2011, dosenbach2010, seitzman2018" in str(info.value)


def test_load_invalid_seeds_propagates():
    with pytest.raises(SeedError, match="Seed #0 is of length 2 instead of 3"):
        load_seeds([(1, 2)])


# --------------------------------------------------------------------------------------
# named seed sets


def test_named_set_names():
    assert NAMED_SEED_SETS == ("power2011", "dosenbach2010", "seitzman2018")
    with pytest.raises(SeedError, match="Unknown seed set 'aal'"):
        named_seeds("aal")
    with pytest.raises(SeedError, match="Unknown seed set 3"):
        named_seeds(3)


@pytest.mark.parametrize(
    ("name", "rows", "columns"),
    [
        ("power2011", 264, ["roi", "x", "y", "z", "network_id", "network"]),
        ("dosenbach2010", 160, ["roi", "x", "y", "z", "region", "label", "network"]),
        (
            "seitzman2018",
            300,
            ["roi", "x", "y", "z", "radius_mm", "network_id", "network", "region"],
        ),
    ],
)
def test_named_set_tables(name, rows, columns):
    frame = named_seeds(name)
    assert frame.shape == (rows, len(columns))
    assert list(frame.columns) == columns
    assert frame["roi"].tolist() == list(range(1, rows + 1))
    for axis in "xyz":
        assert frame[axis].dtype == np.float64
    assert np.isfinite(frame[["x", "y", "z"]].to_numpy()).all()
    # MNI coordinates stay inside a head
    assert (frame[["x", "y", "z"]].abs().to_numpy() < 110).all()
    assert not frame.isna().any().any()


def test_named_seeds_returns_a_copy():
    frame = named_seeds("power2011")
    frame.loc[0, "x"] = 1000.0
    assert named_seeds("power2011").loc[0, "x"] == -25.0


def test_power_networks():
    frame = named_seeds("power2011")
    counts = frame["network"].value_counts().to_dict()
    assert counts == {
        "Default mode": 58,
        "Visual": 31,
        "Sensory/somatomotor Hand": 30,
        "Uncertain": 28,
        "Fronto-parietal Task Control": 25,
        "Salience": 18,
        "Cingulo-opercular Task Control": 14,
        "Auditory": 13,
        "Subcortical": 13,
        "Dorsal attention": 11,
        "Ventral attention": 9,
        "Sensory/somatomotor Mouth": 5,
        "Memory retrieval?": 5,
        "Cerebellar": 4,
    }
    # each network name has one id, -1 is "Uncertain"
    assert frame.groupby("network")["network_id"].nunique().eq(1).all()
    assert set(frame.loc[frame["network_id"] == -1, "network"]) == {"Uncertain"}
    assert frame.loc[0, ["x", "y", "z", "network"]].tolist() == [-25.0, -98.0, -12.0, "Uncertain"]


def test_dosenbach_labels_unique():
    frame = named_seeds("dosenbach2010")
    assert frame["label"].is_unique
    assert frame.loc[0, "label"] == "vmPFC 1"
    assert set(frame["network"]) == {
        "default",
        "sensorimotor",
        "cingulo-opercular",
        "occipital",
        "fronto-parietal",
        "cerebellum",
    }


def test_seitzman_columns():
    frame = named_seeds("seitzman2018")
    assert set(frame["radius_mm"]) == {4, 5}
    assert frame["region"].value_counts()["cerebellum"] == 27
    assert frame.loc[0, ["x", "y", "z"]].tolist() == [-56.16, -44.76, -24.23]


# --------------------------------------------------------------------------------------
# named sets against nilearn's fetchers


@pytest.fixture
def atlas():
    pytest.importorskip("nilearn")
    from nilearn.datasets import atlas as module

    return module


@pytest.mark.nilearn
def test_power_equals_nilearn(atlas):
    theirs = atlas.fetch_coords_power_2011().rois
    ours = named_seeds("power2011")
    np.testing.assert_array_equal(ours[["x", "y", "z"]].to_numpy(), theirs[["x", "y", "z"]])
    np.testing.assert_array_equal(ours["roi"], theirs["roi"])


@pytest.mark.nilearn
def test_dosenbach_equals_nilearn(atlas):
    ours = named_seeds("dosenbach2010")
    plain = atlas.fetch_coords_dosenbach_2010(ordered_regions=False)
    np.testing.assert_array_equal(ours[["x", "y", "z"]].to_numpy(), plain.rois[["x", "y", "z"]])
    assert ours["label"].tolist() == list(plain.labels)
    assert ours["network"].tolist() == list(plain.networks)
    # nilearn's default order: sorted by network, region name and y
    ordered = atlas.fetch_coords_dosenbach_2010()
    resorted = ours.sort_values(by=["network", "region", "y"])
    np.testing.assert_array_equal(
        resorted[["x", "y", "z"]].to_numpy(), ordered.rois[["x", "y", "z"]]
    )
    assert resorted["label"].tolist() == list(ordered.labels)


@pytest.mark.nilearn
def test_seitzman_equals_nilearn(atlas):
    ours = named_seeds("seitzman2018")
    plain = atlas.fetch_coords_seitzman_2018(ordered_regions=False)
    np.testing.assert_array_equal(ours[["x", "y", "z"]].to_numpy(), plain.rois[["x", "y", "z"]])
    np.testing.assert_array_equal(ours["radius_mm"], plain.radius)
    assert ours["network"].tolist() == list(plain.networks)
    assert ours["region"].tolist() == list(plain.regions)
    ordered = atlas.fetch_coords_seitzman_2018()
    resorted = ours.sort_values(by=["network", "y"])
    np.testing.assert_array_equal(
        resorted[["x", "y", "z"]].to_numpy(), ordered.rois[["x", "y", "z"]]
    )
    assert resorted["network"].tolist() == list(ordered.networks)
