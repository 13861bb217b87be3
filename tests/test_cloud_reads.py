"""Reading images from a real S3-compatible server (moto on loopback) through s3fs.

Same values from a URL as from the local file, through every entry point, and the requests
it takes: the server's own log counts and sizes every GET, so the tests check that ``.nii``
gathers fetch only the coalesced ranges holding sphere voxels and that ``.nii.gz`` is
streamed once, never re-read.
"""

from __future__ import annotations

import itertools
import json

import nibabel as nib
import numpy as np
import pytest
import xarray as xr
from cloud_server import data_gets, s3_fixture  # noqa: F401  (the session's server)
from conftest import random_image, write

import lazyspheres as ls
from lazyspheres.cli import main as cli_main
from lazyspheres.geometry import sphere_voxels
from lazyspheres.io import remote
from lazyspheres.io.reader import NiftiFile
from lazyspheres.testing import raise_if_dask_computes

SEEDS = [(10.0, 12.0, 8.0), (34.0, 30.0, 20.0), (20.0, 46.0, 32.0)]


@pytest.fixture(scope="module")
def local_images(tmp_path_factory):
    """Local .nii/.nii.gz files of several dtypes, and the values nibabel reads from them."""
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("cloud")
    out = {}
    for name, dtype, scaled in [("f4", np.float32, False), ("i2s", np.int16, True)]:
        img = random_image(rng, (17, 19, 15, 9), dtype, scaled=scaled)
        for suffix in (".nii", ".nii.gz"):
            out[name, suffix] = write(img, folder / f"{name}{suffix}")
    big = random_image(rng, (30, 34, 28, 24), np.float32)
    out["big", ".nii"] = write(big, folder / "big.nii")
    out["big", ".nii.gz"] = write(big, folder / "big.nii.gz")
    mask = nib.Nifti1Image((rng.random(big.shape[:3]) > 0.2).astype(np.uint8), big.affine)
    out["mask", ".nii.gz"] = write(mask, folder / "mask.nii.gz")
    return out


@pytest.fixture(scope="module")
def urls(local_images, s3):
    return {key: s3.put(path, path.name) for key, path in local_images.items()}


def _sphere_bytes(path, seeds, radius):
    """First byte of every sphere voxel's value in every volume (independent of the plan)."""
    img = nib.load(str(path))
    spheres = sphere_voxels(np.asarray(seeds), img.affine, img.shape[:3], radius=radius)
    flat = np.ravel_multi_index(tuple(spheres.voxels.T), img.shape[:3], order="F")
    itemsize = img.get_data_dtype().itemsize
    volume = int(np.prod(img.shape[:3])) * itemsize
    offset = int(img.dataobj.offset)
    volumes = np.arange(img.shape[3])[:, None] * volume
    return np.sort((offset + volumes + flat[None, :] * itemsize).ravel()), itemsize


# ---------------------------------------------------------------------------- values
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("name", ["f4", "i2s"])
def test_open_nifti_from_s3_equals_local(s3, urls, local_images, name, suffix):
    with raise_if_dask_computes():
        remote_image = ls.open_nifti(urls[name, suffix], storage_options=s3.storage_options)
    local = ls.open_nifti(local_images[name, suffix])
    np.testing.assert_array_equal(remote_image.values, local.values)
    assert remote_image.dtype == local.dtype
    np.testing.assert_array_equal(remote_image.nifti.affine, local.nifti.affine)
    assert remote_image.nifti.t_r == local.nifti.t_r
    # Boxes (Dask chunks smaller than the image) read the same values.
    chunked = ls.open_nifti(
        urls[name, suffix], chunks={"i": 9, "k": 8, "time": 5}, storage_options=s3.storage_options
    )
    np.testing.assert_array_equal(
        chunked.isel(i=slice(2, 15, 3), time=[0, 5, 8]).values,
        local.isel(i=slice(2, 15, 3), time=[0, 5, 8]).values,
    )


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_extract_from_s3_equals_local(s3, urls, local_images, suffix):
    options = s3.storage_options
    with raise_if_dask_computes():
        signals = ls.extract(
            urls["big", suffix],
            SEEDS,
            6.0,
            mask_img=urls["mask", ".nii.gz"],
            storage_options=options,
        )
    expected = ls.extract(
        local_images["big", suffix], SEEDS, 6.0, mask_img=local_images["mask", ".nii.gz"]
    )
    # The same bytes go through the same arithmetic: bit-equal.
    np.testing.assert_array_equal(signals.values, expected.values)
    np.testing.assert_array_equal(signals["n_voxels"].values, expected["n_voxels"].values)
    assert signals.attrs["source"] == urls["big", suffix]


def test_xarray_engine_reads_urls(s3, urls, local_images):
    url = urls["f4", ".nii.gz"]
    with raise_if_dask_computes():
        image = xr.open_dataarray(url, engine="nifti", storage_options=s3.storage_options)
        box = image.isel(i=slice(3, 9), time=slice(2, 6))
    expected = nib.load(str(local_images["f4", ".nii.gz"])).get_fdata(dtype=np.float32)
    np.testing.assert_array_equal(box.values, expected[3:9, :, :, 2:6])
    local = ls.extract(local_images["f4", ".nii.gz"], SEEDS[:1], 4.0)
    np.testing.assert_array_equal(ls.extract(image, SEEDS[:1], 4.0).values, local.values)
    # Dask-chunked through xarray: extraction still streams the object once.
    chunked = xr.open_dataarray(url, engine="nifti", chunks={}, storage_options=s3.storage_options)
    signals = ls.extract(chunked, SEEDS[:1], 4.0)
    with s3.log.watch() as seen:
        np.testing.assert_array_equal(signals.values, local.values)
    size = local_images["f4", ".nii.gz"].stat().st_size
    assert sorted(r.span for r in data_gets(seen, url)) == [(0, size)]


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_local_copy_only_when_asked_with_simplecache(s3, urls, local_images, tmp_path, suffix):
    url = urls["big", suffix]
    options = {"s3": s3.storage_options, "simplecache": {"cache_storage": str(tmp_path)}}
    with s3.log.watch() as seen:
        signals = ls.extract("simplecache::" + url, SEEDS, 6.0, storage_options=options)
        values = signals.values
    np.testing.assert_array_equal(
        values, ls.extract(local_images["big", suffix], SEEDS, 6.0).values
    )
    # fsspec downloads the object once (one GET, no range) into the cache folder.
    gets = [r for r in seen if r.method == "GET"]
    assert [r.range for r in gets] == [None]
    assert [p.stat().st_size for p in tmp_path.iterdir()] == [
        local_images["big", suffix].stat().st_size
    ]


def test_memory_filesystem_urls(local_images):
    import fsspec

    memory = fsspec.filesystem("memory")
    for suffix in (".nii", ".nii.gz"):
        memory.pipe(f"/cloud-test/big{suffix}", local_images["big", suffix].read_bytes())
        url = f"memory://cloud-test/big{suffix}"
        signals = ls.extract(url, SEEDS, 6.0)
        np.testing.assert_array_equal(
            signals.values, ls.extract(local_images["big", suffix], SEEDS, 6.0).values
        )
    memory.rm("/cloud-test", recursive=True)


def test_https_style_urls_of_public_objects(s3, local_images):
    # The same server answers plain HTTP for public-read objects: fsspec's HTTP filesystem.
    urls = {}
    for suffix in (".nii", ".nii.gz"):
        url = s3.put(local_images["big", suffix], f"public{suffix}")
        s3.fs.chmod(url.removeprefix("s3://"), acl="public-read")
        urls[suffix] = f"{s3.endpoint}/{url.removeprefix('s3://')}"
        signals = ls.extract(urls[suffix], SEEDS, 6.0)
        np.testing.assert_array_equal(
            signals.values, ls.extract(local_images["big", suffix], SEEDS, 6.0).values
        )
    # and anonymous s3:// access works for them too
    anonymous = {"anon": True, "client_kwargs": {"endpoint_url": s3.endpoint}}
    image = ls.open_nifti("s3://" + urls[".nii"].split("/", 3)[3], storage_options=anonymous)
    assert image.shape == nib.load(str(local_images["big", ".nii"])).shape


def test_cli_info_reads_an_s3_url(s3, urls, local_images, capsys):
    argv = ["info", urls["f4", ".nii.gz"], "--json"]
    argv += [
        f"--storage-option={key}={json.dumps(value)}" for key, value in s3.storage_options.items()
    ]
    assert cli_main(argv) == 0
    facts = json.loads(capsys.readouterr().out)
    img = nib.load(str(local_images["f4", ".nii.gz"]))
    assert facts["source"] == urls["f4", ".nii.gz"]
    assert facts["shape"] == list(img.shape)
    assert facts["compression"] == "gzip"
    np.testing.assert_allclose(facts["affine"], img.affine, atol=1e-6)
    assert facts["size_bytes"] == local_images["f4", ".nii.gz"].stat().st_size


# ---------------------------------------------------------------------------- requests
def test_opening_reads_the_header_only(s3, urls):
    url = urls["big", ".nii"]
    with s3.log.watch() as seen:
        ls.open_nifti(url, storage_options=s3.storage_options)
    gets = [r for r in seen if r.method == "GET"]
    assert [r.method for r in seen].count("HEAD") == 1
    assert len(gets) == 2  # the gzip magic, then the header
    assert all(r.span[0] == 0 and r.body_bytes <= 2 * remote.PROBE_BLOCK_BYTES for r in gets)


def test_nii_gather_fetches_only_coalesced_sphere_ranges(s3, tmp_path, rng, monkeypatch):
    # Wide slices (9 KB) and a gap allowance (4 KB) between a row (192 B) and a slice: rows
    # of a sphere merge into one request per slice, slices and spheres stay apart.
    path = write(random_image(rng, (48, 48, 30, 6), np.float32), tmp_path / "wide.nii")
    url = s3.put(path, path.name)
    seeds = [(10.0, 12.0, -3.0), (40.0, 50.0, 20.0), (70.0, 30.0, 42.0)]
    max_gap, max_block = 4096, 16384
    monkeypatch.setattr(remote, "RANGE_MAX_GAP", max_gap)
    monkeypatch.setattr(remote, "RANGE_MAX_BLOCK", max_block)
    monkeypatch.setattr(remote, "RANGE_BLOCK_BYTES", 60_000)  # several time blocks
    radius = 6.0
    signals = ls.extract(url, seeds, radius, storage_options=s3.storage_options)
    with s3.log.watch() as seen:
        values = signals.values
    np.testing.assert_array_equal(values, ls.extract(path, seeds, radius).values)

    wanted, itemsize = _sphere_bytes(path, seeds, radius)
    gets = sorted(r.span for r in data_gets(seen, url))
    starts = np.array([a for a, _ in gets])
    ends = np.array([b for _, b in gets])
    fetched = int((ends - starts).sum())
    # No byte is fetched twice, and every sphere value was fetched.
    assert np.all(starts[1:] >= ends[:-1])
    where = np.searchsorted(starts, wanted, side="right") - 1
    assert np.all(wanted + itemsize <= ends[where])
    # Requests start and end on sphere voxels, bridge gaps of at most max_gap, respect
    # max_block, and are not split needlessly (neighbours within max_gap would overflow).
    assert set(starts.tolist()) <= set(wanted.tolist())
    assert set((ends - itemsize).tolist()) <= set(wanted.tolist())
    assert np.all(ends - starts <= max_block)
    for r in range(len(gets)):
        assert np.all(np.diff(wanted[where == r]) - itemsize <= max_gap)
    # (ranges in different time blocks may sit closer than max_gap: only within a block)
    # Few bytes compared with the data, few requests compared with voxel runs.
    data_bytes = path.stat().st_size - 352
    runs = np.count_nonzero(np.diff(wanted) != itemsize) + 1
    assert fetched < 0.15 * data_bytes
    assert len(gets) < runs / 3
    # One consistency check (HEAD) per time block, nothing else.
    heads = [r for r in seen if r.method == "HEAD"]
    assert 1 < len(heads) <= len(gets)
    print(
        f"\n.nii gather: {len(gets)} GETs for {runs} voxel runs, {fetched} of {data_bytes} bytes "
        f"({fetched / data_bytes:.1%}), {len(heads)} HEADs"
    )


def test_nii_gather_with_default_settings_is_few_large_requests(
    s3,
    urls,
    local_images,
):
    url, path = urls["big", ".nii"], local_images["big", ".nii"]
    signals = ls.extract(url, SEEDS, 6.0, storage_options=s3.storage_options)
    with s3.log.watch() as seen:
        signals.values  # noqa: B018
    gets = data_gets(seen, url)
    n_volumes = nib.load(str(path)).shape[3]
    assert len(gets) < n_volumes  # whole runs of volumes per request
    assert max(r.body_bytes for r in gets) <= remote.RANGE_MAX_BLOCK
    assert sum(r.body_bytes for r in gets) <= path.stat().st_size


def test_environment_overrides_the_request_sizes(s3, urls, local_images, monkeypatch):
    url = urls["big", ".nii"]
    monkeypatch.setenv("LAZYSPHERES_RANGE_MAX_BLOCK", "20000")
    signals = ls.extract(url, SEEDS, 6.0, storage_options=s3.storage_options)
    with s3.log.watch() as seen:
        values = signals.values
    np.testing.assert_array_equal(
        values, ls.extract(local_images["big", ".nii"], SEEDS, 6.0).values
    )
    assert max(r.body_bytes for r in data_gets(seen, url)) <= 20000
    monkeypatch.setenv("LAZYSPHERES_RANGE_MAX_BLOCK", "8MB")
    with pytest.raises(ValueError, match="LAZYSPHERES_RANGE_MAX_BLOCK='8MB' is not an integer"):
        signals.compute()


def test_gz_is_streamed_once_in_bounded_requests(s3, urls, local_images, monkeypatch):
    url, path = urls["big", ".nii.gz"], local_images["big", ".nii.gz"]
    size = path.stat().st_size
    block = 256 * 1024
    monkeypatch.setattr(remote, "STREAM_BLOCK_BYTES", block)
    signals = ls.extract(url, SEEDS, 6.0, storage_options=s3.storage_options)
    with s3.log.watch() as seen:
        values = signals.values
    np.testing.assert_array_equal(values, ls.extract(path, SEEDS, 6.0).values)
    gets = sorted(r.span for r in data_gets(seen, url))
    # The GETs tile the object exactly once (no byte twice, none skipped) in blocks: the
    # object is never fetched whole, and memory holds a few blocks at most.
    assert gets[0][0] == 0
    assert gets[-1][1] == size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(gets))
    assert all(b - a == block for a, b in gets[:-1])
    assert len(gets) == -(-size // block)


def test_chunked_remote_nii_reads_each_slab_once(s3, urls, local_images):
    url, path = urls["big", ".nii"], local_images["big", ".nii"]
    image = ls.open_nifti(url, chunks={"k": 5, "time": 7}, storage_options=s3.storage_options)
    with s3.log.watch() as seen:
        values = image.values
    np.testing.assert_array_equal(values, nib.load(str(path)).get_fdata(dtype=np.float32))
    gets = sorted(r.span for r in data_gets(seen, url))
    # Chunks partition (k, time) and span all of i, j: each data byte exactly once.
    assert sum(b - a for a, b in gets) == path.stat().st_size - 352
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(gets))


def test_transient_server_errors_are_retried_by_s3fs(s3, urls, local_images):
    url = urls["big", ".nii.gz"]
    signals = ls.extract(url, SEEDS, 6.0, storage_options=s3.storage_options)
    s3.log.fail_next(url.split("/", 3)[3], count=1, status=503, code="SlowDown")
    with s3.log.watch() as seen:
        values = signals.values
    assert [r.status for r in seen].count(503) == 1
    np.testing.assert_array_equal(
        values, ls.extract(local_images["big", ".nii.gz"], SEEDS, 6.0).values
    )


def test_nifti_file_pickles_without_a_connection(s3, urls):
    import pickle

    nifti = NiftiFile.open(urls["big", ".nii"], s3.storage_options)
    clone = pickle.loads(pickle.dumps(nifti))
    assert clone.source.location == nifti.source.location
    assert clone.source.fingerprint == nifti.source.fingerprint
    first = next(clone.iter_volume_blocks(0, 2))[1]
    np.testing.assert_array_equal(first, next(nifti.iter_volume_blocks(0, 2))[1])
