"""Tests of the synthetic BOLD generator (lazyspheres.datasets)."""

from __future__ import annotations

import gzip
import json
import tracemalloc

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from lazyspheres import datasets
from lazyspheres.errors import SeedError
from lazyspheres.seeds import named_seeds

SHAPE = (20, 24, 20)
# Three seeds in two networks: fast, and independent of the named tables.
SEEDS = pd.DataFrame(
    {"x": [0, -44, 44], "y": [-52, 20, 20], "z": [26, 30, 30], "network": ["DMN", "FP", "FP"]}
)


def small(**kwargs):
    """Arguments of a small run; keywords override."""
    return {"shape": SHAPE, "seeds": SEEDS, "random_state": 7, **kwargs}


def stacked(n_volumes, block_size=8, **kwargs):
    blocks = list(datasets.generate_volumes(n_volumes, block_size=block_size, **small(**kwargs)))
    return np.concatenate(blocks, axis=3)


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize(
    ("suffix", "backend"), [(".nii", "auto"), (".nii.gz", "isal"), (".nii.gz", "zlib")]
)
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, suffix, backend):
    paths = []
    for name, state in [("a", 7), ("b", 7), ("c", 8)]:
        path = tmp_path / f"{name}{suffix}"
        datasets.write_bold(path, 12, gzip_backend=backend, **small(random_state=state))
        paths.append(path.read_bytes())
    assert paths[0] == paths[1]
    assert paths[0] != paths[2]
    if suffix == ".nii.gz":  # a plain gzip stream that any inflater reads
        assert gzip.decompress(paths[0])[:4] == (348).to_bytes(4, "little")


def test_values_do_not_depend_on_block_size():
    reference = stacked(37, block_size=37)
    for block_size in (1, 5, 16, 100):
        np.testing.assert_array_equal(stacked(37, block_size=block_size), reference)


def test_shorter_run_is_a_prefix_of_a_longer_one():
    np.testing.assert_array_equal(stacked(20), stacked(45)[..., :20])


def test_blocks_are_fortran_ordered_and_sized():
    blocks = list(datasets.generate_volumes(10, block_size=4, **small()))
    assert [b.shape for b in blocks] == [(*SHAPE, 4), (*SHAPE, 4), (*SHAPE, 2)]
    assert all(b.flags.f_contiguous and b.dtype == np.float32 for b in blocks)


# ---------------------------------------------------------------- files and images


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int16"])
def test_file_round_trips_and_equals_in_memory_image(tmp_path, suffix, dtype):
    path = datasets.write_bold(tmp_path / f"bold{suffix}", 30, dtype=dtype, t_r=1.5, **small())
    img = nib.load(path)
    memory = datasets.make_bold_image(30, dtype=dtype, t_r=1.5, **small())
    header = img.header
    with nib.openers.ImageOpener(path) as fobj:
        assert nib.Nifti1Header.from_fileobj(fobj)["vox_offset"] == 352
    assert img.shape == (*SHAPE, 30)
    assert header.get_data_dtype() == np.dtype(dtype)
    assert header.get_zooms()[3] == pytest.approx(1.5)
    assert header.get_xyzt_units() == ("mm", "sec")
    assert (header["sform_code"], header["qform_code"]) == (4, 4)
    np.testing.assert_allclose(img.affine, datasets.default_affine(SHAPE))
    np.testing.assert_array_equal(img.affine, memory.affine)
    data = np.asanyarray(img.dataobj)
    assert data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(data, np.asanyarray(memory.dataobj))
    np.testing.assert_array_equal(data, stacked(30, dtype=dtype, t_r=1.5))


def test_default_grid_is_mni_2mm(tmp_path):
    img = nib.load(datasets.write_bold(tmp_path / "mni.nii", 1, seeds=None))
    assert img.shape == (91, 109, 91, 1)
    expected = np.diag([2.0, 2.0, 2.0, 1.0])
    expected[:3, 3] = (-90, -126, -72)
    np.testing.assert_array_equal(img.affine, expected)
    np.testing.assert_array_equal(img.header.get_sform(), expected)
    np.testing.assert_array_equal(img.header.get_qform(), expected)
    assert img.header.get_zooms() == (2.0, 2.0, 2.0, 2.0)
    assert (tmp_path / "mni.nii").stat().st_size == 352 + 91 * 109 * 91 * 4


def test_values_look_like_bold():
    data = stacked(30)
    brain = np.asanyarray(datasets.brain_mask(SHAPE).dataobj).astype(bool)
    inside = data[brain]
    assert np.all(data[~brain] == 0)
    assert inside.min() > 400  # baseline in the hundreds to 1000s
    assert inside.max() < 2500
    # temporal fluctuations are around a percent of the mean, as BOLD
    relative = inside.std(axis=1) / inside.mean(axis=1)
    assert 0.003 < np.median(relative) < 0.05


def test_nan_background():
    data = stacked(8, nan_background=True)
    brain = np.asanyarray(datasets.brain_mask(SHAPE).dataobj).astype(bool)
    assert np.isnan(data[~brain]).all()
    assert np.isfinite(data[brain]).all()
    np.testing.assert_array_equal(data[brain], stacked(8)[brain])


def test_int16_unscaled_uses_the_range():
    img = datasets.make_bold_image(20, dtype="int16", **small())
    assert img.header.get_slope_inter() == (None, None)
    raw = np.asanyarray(img.dataobj)
    assert raw.dtype == np.int16
    assert 8000 < raw.max() < 32767
    np.testing.assert_allclose(raw, stacked(20) * 8.0, atol=0.5 + 1e-3)


def test_int16_scaled(tmp_path):
    path = datasets.write_bold(tmp_path / "s.nii.gz", 20, dtype="int16", scaled=True, **small())
    img = nib.load(path)
    # nibabel moves scl_slope/scl_inter from the loaded header into the array proxy
    with nib.openers.ImageOpener(path) as fobj:
        slope, inter = nib.Nifti1Header.from_fileobj(fobj).get_slope_inter()
    assert (img.dataobj.slope, img.dataobj.inter) == (slope, inter)
    assert (slope, inter) != (1.0, 0.0)
    assert (slope, inter) == (0.125, 2048.0)
    assert img.dataobj.get_unscaled().dtype == np.int16
    values = img.get_fdata()
    np.testing.assert_allclose(values, stacked(20), atol=slope / 2 + 1e-3)
    brain = np.asanyarray(datasets.brain_mask(SHAPE).dataobj).astype(bool)
    assert np.all(values[~brain] == 0.0)
    in_memory = datasets.make_bold_image(20, dtype="int16", scaled=True, **small())
    np.testing.assert_array_equal(in_memory.get_fdata(), values)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dtype": "uint8"}, "dtype must be one of"),
        ({"scaled": True}, "scaled=True writes int16"),
        ({"dtype": "int16", "nan_background": True}, "int16 cannot hold NaN"),
        ({"shape": (20, 24)}, "3 spatial sizes"),
        ({"random_state": -1}, "random_state >= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.make_bold_image(4, **small(**kwargs))


def test_bad_suffix_and_seeds(tmp_path):
    with pytest.raises(ValueError, match=r"\.nii or \.nii\.gz"):
        datasets.write_bold(tmp_path / "bold.zarr", 2, **small())
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
    with pytest.raises(SeedError, match=r"shape \(n, 3\)"):
        datasets.make_bold_image(2, **small(seeds=[[1, 2]]))


def test_in_memory_size_limit():
    with pytest.raises(ValueError, match="write_bold"):
        datasets.make_bold_image(200)  # MNI 2 mm x 200 volumes: 720 MB


# ---------------------------------------------------------------- signal structure


def seed_centre_correlations(img, truth):
    xyz = truth.seeds[["x", "y", "z"]].to_numpy()
    ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(img.affine), xyz)).astype(int)
    series = img.get_fdata()[tuple(ijk.T)]
    corr = np.corrcoef(series)
    network = truth.seeds["network"].to_numpy()
    same = network[:, None] == network[None, :]
    off_diagonal = ~np.eye(len(network), dtype=bool)
    return corr[same & off_diagonal].mean(), corr[~same].mean()


def test_networks_of_a_named_seed_set_are_recoverable():
    kwargs = {"shape": (40, 48, 40), "seeds": "power2011", "random_state": 3}
    img = datasets.make_bold_image(100, **kwargs)
    truth = datasets.ground_truth(100, seeds="power2011", random_state=3)
    expected = named_seeds("power2011")
    np.testing.assert_array_equal(truth.seeds["network"], expected["network"])
    within, between = seed_centre_correlations(img, truth)
    assert within > 0.3
    assert within > between + 0.25


def test_arrays_of_seeds_get_balanced_networks():
    xyz = np.array(named_seeds("dosenbach2010")[["x", "y", "z"]])
    model = datasets.SignalModel(n_networks=4)
    truth = datasets.ground_truth(60, seeds=xyz, random_state=1, model=model)
    counts = truth.seeds["network"].value_counts()
    assert len(counts) == 4
    assert counts.max() - counts.min() <= 1
    img = datasets.make_bold_image(60, shape=(40, 48, 40), seeds=xyz, random_state=1, model=model)
    within, between = seed_centre_correlations(img, truth)
    assert within > between + 0.2


def test_no_seeds_means_no_network_signal():
    truth = datasets.ground_truth(20, seeds=None)
    assert truth.seeds.empty
    assert truth.seed_signals.shape == (20, 0)
    quiet = datasets.SignalModel(signal_amplitude=0.0)
    np.testing.assert_array_equal(stacked(20, seeds=None), stacked(20, model=quiet))


def test_ground_truth_signals_are_unit_variance_and_band_limited():
    truth = datasets.ground_truth(1200, seeds=SEEDS, t_r=2.0, random_state=0)
    assert truth.network_signals.shape == (1200, 2)
    np.testing.assert_allclose(truth.seed_signals.std(axis=0), 1.0, atol=0.2)
    spectrum = np.abs(np.fft.rfft(truth.seed_signals, axis=0)) ** 2
    freqs = np.fft.rfftfreq(1200, d=2.0)
    in_band = spectrum[(freqs > 0.008) & (freqs < 0.12)].sum()
    assert in_band / spectrum.sum() > 0.8


# ---------------------------------------------------------------- memory


def test_streaming_write_does_not_hold_the_4d_array(tmp_path):
    shape, n_volumes = (64, 64, 40), 150  # 98 MB of float32
    full_bytes = np.prod(shape) * n_volumes * 4
    tracemalloc.start()
    try:
        path = datasets.write_bold(tmp_path / "big.nii", n_volumes, shape=shape, seeds=SEEDS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.stat().st_size == 352 + full_bytes
    assert peak < 0.2 * full_bytes, f"peak {peak / 1e6:.1f} MB for a {full_bytes / 1e6:.0f} MB run"


# ---------------------------------------------------------------- confounds and datasets


def test_confounds_tsv_is_fmriprep_like(tmp_path):
    path = datasets.write_confounds(tmp_path / "c.tsv", 25, **small())
    text = path.read_text().splitlines()
    assert len(text) == 26
    table = pd.read_csv(path, sep="\t")
    header = text[0].split("\t")
    first = dict(zip(header, text[1].split("\t"), strict=True))
    for name in ["trans_x", "rot_z", "csf", "white_matter", "global_signal"]:
        assert name in table
        assert first[name] != "n/a"
        assert first[f"{name}_derivative1"] == "n/a"
        assert table[f"{name}_derivative1"].iloc[1:].notna().all()
    assert first["framewise_displacement"] == "n/a"
    assert table["framewise_displacement"].iloc[1:].ge(0).all()
    assert table.drop(columns=[c for c in table if table[c].isna().any()]).notna().all().all()


def test_confounds_agree_with_the_image():
    model = datasets.SignalModel(spike_rate=0.15)
    kwargs = small(model=model)
    img = datasets.make_bold_image(60, **kwargs)
    confounds = datasets.make_confounds(60, **kwargs)
    truth = datasets.ground_truth(60, seeds=SEEDS, random_state=7, model=model)
    data = img.get_fdata()
    labels = datasets.tissue_labels(SHAPE)
    np.testing.assert_allclose(confounds["global_signal"], data[labels > 0].mean(0), rtol=2e-3)
    np.testing.assert_allclose(confounds["white_matter"], data[labels == 2].mean(0), rtol=2e-3)
    np.testing.assert_allclose(confounds["csf"], data[labels == 3].mean(0), rtol=2e-2)
    spikes = truth.spike_volumes
    assert len(spikes) >= 3
    fd = confounds["framewise_displacement"].to_numpy()
    calm = np.setdiff1d(np.arange(1, 60), np.concatenate([spikes, spikes + 1]))
    assert np.nanmin(fd[spikes[spikes > 0]]) > 5 * np.max(fd[calm])
    # the global signal drops at a spike that follows a calm volume
    isolated = np.setdiff1d(spikes[spikes > 0], spikes + 1)
    assert len(isolated) >= 2
    assert np.all(np.diff(confounds["global_signal"])[isolated - 1] < 0)
    int16 = datasets.make_confounds(60, dtype="int16", **kwargs)
    np.testing.assert_allclose(int16["global_signal"], 8 * confounds["global_signal"])


def test_write_dataset_layout(tmp_path):
    runs = datasets.write_dataset(tmp_path, 2, 2, n_volumes=6, shape=SHAPE, seeds=SEEDS, t_r=1.0)
    assert len(runs) == 4
    assert runs[0] == (
        tmp_path / "sub-01/func/sub-01_task-rest_run-1_space-MNI152NLin2009cAsym"
        "_desc-preproc_bold.nii.gz"
    )
    description = json.loads((tmp_path / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    for bold in runs:
        stem = bold.name.split("_space-")[0]
        mask = bold.with_name(bold.name.replace("desc-preproc_bold", "desc-brain_mask"))
        confounds = bold.with_name(f"{stem}_desc-confounds_timeseries.tsv")
        sidecar = json.loads(bold.with_name(bold.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["RepetitionTime"] == 1.0
        assert nib.load(bold).shape == (*SHAPE, 6)
        assert len(pd.read_csv(confounds, sep="\t")) == 6
        np.testing.assert_array_equal(
            nib.load(mask).get_fdata() > 0, datasets.tissue_labels(SHAPE) > 0
        )
    first, second = (nib.load(p).get_fdata() for p in runs[:2])
    assert not np.array_equal(first, second)
    again = datasets.write_dataset(
        tmp_path / "again", 1, 1, n_volumes=6, shape=SHAPE, seeds=SEEDS, t_r=1.0
    )
    assert again[0].read_bytes() == runs[0].read_bytes()


def test_mni_dataset_names_carry_the_resolution(tmp_path):
    # Only the names are checked here: one volume on the MNI grid.
    runs = datasets.write_dataset(tmp_path, 1, 1, n_volumes=1, seeds=None)
    assert "_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold" in runs[0].name


def test_brain_mask_holds_every_named_seed():
    mask = datasets.brain_mask()
    assert mask.get_data_dtype() == np.uint8
    assert (mask.header["sform_code"], mask.header["qform_code"]) == (4, 4)
    data = np.asanyarray(mask.dataobj)
    for name in ("power2011", "dosenbach2010", "seitzman2018"):
        xyz = named_seeds(name)[["x", "y", "z"]].to_numpy(float)
        ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(mask.affine), xyz)).astype(int)
        assert data[tuple(ijk.T)].all(), name


def test_any_affine_places_the_brain_where_it_says(tmp_path):
    # x flipped (FSL's MNI orientation) and a 10-degree rotation about z
    angle = np.deg2rad(10)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = np.diag([-9.0, 9.0, 9.0, 1.0])
    affine[:2, :2] = rotation @ affine[:2, :2]
    affine[:3, 3] = (90, -115, -72)
    path = datasets.write_bold(tmp_path / "oblique.nii", 4, affine=affine, **small())
    img = nib.load(path)
    np.testing.assert_allclose(img.affine, affine, rtol=1e-6)
    np.testing.assert_array_equal(img.affine, datasets.brain_mask(SHAPE, affine).affine)
    brain = np.asanyarray(datasets.brain_mask(SHAPE, affine).dataobj).astype(bool)
    data = img.get_fdata()
    np.testing.assert_array_equal(data[..., 0] != 0, brain)
    centre = np.rint(nib.affines.apply_affine(np.linalg.inv(img.affine), [0, -18, 14]))
    assert brain[tuple(centre.astype(int))]


def test_block_size_is_checked_at_call_time():
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        datasets.generate_volumes(4, block_size=0, **small())
