"""Zarr images, the masker and ``extract_many`` on a real S3 server (moto on loopback).

Zarr images converted from and to ``s3://`` read only the chunks spheres touch; the masker
takes URLs and opened URL images; a batch writes its result store to S3 and, interrupted or
with an input gone, resumes there without re-reading complete runs.
"""

from __future__ import annotations

from collections import Counter

import nibabel as nib
import numpy as np
import pytest
import xarray as xr
from batch_helpers import run_affine, world_seeds, write_runs
from cloud_server import BUCKET, s3_fixture  # noqa: F401  (the session's server)
from conftest import random_image, write

import lazyspheres as ls
from lazyspheres.batch import BatchError, open_results
from lazyspheres.batch import store as store_module
from lazyspheres.geometry import sphere_voxels
from lazyspheres.io import remote
from lazyspheres.masker import NiftiSpheresMasker

# Centres of two 16-voxel chunks of the (48, 48, 32) test grid (affine: 2 mm, origin -7/-8/-9).
SEEDS = [(9.0, 8.0, 7.0), (41.0, 40.0, 39.0)]


# ---------------------------------------------------------------------------- Zarr
@pytest.fixture(scope="module")
def zarr_on_s3(s3, tmp_path_factory):
    rng = np.random.default_rng(11)
    img = random_image(rng, (48, 48, 32, 6), np.float32)
    path = write(img, tmp_path_factory.mktemp("zarr") / "run.nii.gz")
    source = s3.put(path, path.name)
    store = f"s3://{BUCKET}/{s3.key('run.zarr')}"
    chunks = (16, 16, 16)
    ls.to_zarr_image(source, store, chunks=chunks, storage_options=s3.storage_options)
    return {"path": path, "store": store, "chunks": chunks, "img": img}


def test_zarr_image_on_s3_equals_the_nifti(s3, zarr_on_s3):
    image = ls.open_nifti(zarr_on_s3["store"], storage_options=s3.storage_options)
    local = ls.open_nifti(zarr_on_s3["path"])
    np.testing.assert_array_equal(image.nifti.affine, local.nifti.affine)
    np.testing.assert_array_equal(image.values, local.values)
    # plain xarray reads it too, affine intact
    opened = xr.open_zarr(zarr_on_s3["store"], storage_options=s3.storage_options)
    assert opened["image"].nifti.t_r == local.nifti.t_r
    np.testing.assert_array_equal(opened["image"].nifti.affine, local.nifti.affine)


def test_zarr_extraction_fetches_only_the_chunks_spheres_touch(s3, zarr_on_s3):
    store, chunks, img = zarr_on_s3["store"], zarr_on_s3["chunks"], zarr_on_s3["img"]
    signals = ls.extract(store, SEEDS, 5.0, storage_options=s3.storage_options)
    with s3.log.watch() as seen:
        values = signals.values
    np.testing.assert_array_equal(values, ls.extract(zarr_on_s3["path"], SEEDS, 5.0).values)
    spheres = sphere_voxels(np.asarray(SEEDS), img.affine, img.shape[:3], radius=5.0)
    touched = {tuple(int(c) for c in v // np.asarray(chunks)) for v in spheres.voxels}
    prefix = store.removeprefix(f"s3://{BUCKET}/") + "/image/c/"
    fetched = Counter(
        tuple(int(c) for c in r.key.removeprefix(prefix).split("/")[:3])
        for r in seen
        if r.method == "GET" and r.key.startswith(prefix)
    )
    # Each touched chunk (whole time axis) once, and no other chunk (2 of 18 here).
    assert fetched == Counter(dict.fromkeys(touched, 1))
    n_chunks = np.prod([-(-n // c) for n, c in zip(img.shape[:3], chunks, strict=True)])
    assert len(touched) < n_chunks / 4


# ---------------------------------------------------------------------------- masker
@pytest.fixture(scope="module")
def masker_run(s3, tmp_path_factory):
    rng = np.random.default_rng(12)
    img = random_image(rng, (24, 26, 22, 14), np.float32)
    path = write(img, tmp_path_factory.mktemp("masker") / "run.nii.gz")
    return path, s3.put(path, path.name)


def test_masker_takes_an_image_opened_from_a_url(s3, masker_run):
    path, url = masker_run
    options = {"seeds": [*SEEDS[:1], (30.0, 20.0, 12.0)], "radius": 5.0, "detrend": True}
    image = ls.open_nifti(url, storage_options=s3.storage_options)
    ours = NiftiSpheresMasker(**options).fit_transform(image)
    np.testing.assert_array_equal(ours, NiftiSpheresMasker(**options).fit_transform(path))


def test_masker_takes_a_url_with_credentials_from_the_environment(
    s3,
    masker_run,
    monkeypatch,
):
    import s3fs

    path, url = masker_run
    # How a cluster job is usually configured: no storage_options, the environment says it.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        masker = NiftiSpheresMasker(SEEDS[:1], radius=5.0)
        signals = masker.fit_transform(url)
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    np.testing.assert_array_equal(
        signals, NiftiSpheresMasker(SEEDS[:1], radius=5.0).fit_transform(path)
    )


# ---------------------------------------------------------------------------- batches
@pytest.fixture(scope="module")
def dataset_on_s3(s3, tmp_path_factory):
    runs = write_runs(tmp_path_factory.mktemp("batch"), n_subjects=1, n_runs=3, n_volumes=10)
    urls = [s3.put(path, path.name) for path in runs]
    return runs, urls, world_seeds(run_affine(runs[0]))


@pytest.fixture
def streams(monkeypatch):
    """URLs streamed (one entry per pass over a .nii.gz), counted where the pass starts."""
    opened = Counter()
    open_stream = remote.open_stream

    def counting(source):
        opened[source.location] += 1
        return open_stream(source)

    monkeypatch.setattr(remote, "open_stream", counting)
    return opened


def test_batch_writes_its_store_to_s3_and_resumes_there(
    s3,
    dataset_on_s3,
    monkeypatch,
    streams,
):
    import dask

    runs, urls, seeds = dataset_on_s3
    store = f"s3://{BUCKET}/{s3.key('results.zarr')}"
    options = {"store": store, "storage_options": s3.storage_options, "progress": False}

    def interrupt(stage, run_id):
        if stage == "before_flag" and run_id.endswith("run-2"):
            raise KeyboardInterrupt  # the batch is killed after this run's data

    monkeypatch.setattr(store_module, "fault_hook", interrupt)
    with dask.config.set(scheduler="synchronous"), pytest.raises(KeyboardInterrupt):
        ls.extract_many(urls, seeds, 3.0, **options)
    monkeypatch.setattr(store_module, "fault_hook", None)
    partial = xr.open_zarr(store, storage_options=s3.storage_options)
    done = partial.complete.values
    assert partial.attrs["complete"] is False
    assert 0 < done.sum() < len(urls)

    streams.clear()
    ds = ls.extract_many(urls, seeds, 3.0, **options)
    # Only the incomplete runs are read again, each in one streaming pass.
    assert streams == Counter({url: 1 for url, flag in zip(urls, done, strict=True) if not flag})
    assert ds.attrs["complete"] is True
    results = open_results(store, storage_options=s3.storage_options)
    for index, path in enumerate(runs):
        np.testing.assert_array_equal(
            results.signals.values[index], ls.extract(path, seeds, 3.0).values
        )


def test_batch_with_a_vanished_input_fails_that_run_then_resumes(
    s3,
    dataset_on_s3,
    streams,
):
    runs, _, seeds = dataset_on_s3
    urls = [s3.put(path, path.name) for path in runs]  # this test's own copies
    store = f"s3://{BUCKET}/{s3.key('results.zarr')}"
    options = {"store": store, "storage_options": s3.storage_options, "progress": False}
    gone = runs[2].read_bytes()
    s3.delete(urls[2])
    with pytest.raises((BatchError, FileNotFoundError)) as caught:
        ls.extract_many(urls, seeds, 3.0, **options)
    assert urls[2] in str(caught.value)
    assert "File not found" in str(caught.value) or "no longer exists" in str(caught.value)

    s3.replace(urls[2], gone)
    streams.clear()
    ds = ls.extract_many(urls, seeds, 3.0, **options)
    assert ds.attrs["complete"] is True
    if isinstance(caught.value, BatchError):  # the others were complete: not read again
        assert streams == Counter({urls[2]: 1})
    np.testing.assert_array_equal(ds.signals.values[2], ls.extract(runs[2], seeds, 3.0).values)
    assert nib.load(str(runs[2])).shape[3] == int(ds.n_volumes.values[2])


def test_cli_extracts_from_s3_into_an_s3_store(s3, dataset_on_s3, tmp_path, capsys):
    import json

    import pandas as pd

    from lazyspheres.cli import main

    runs, urls, seeds = dataset_on_s3
    table = tmp_path / "seeds.csv"
    pd.DataFrame(seeds, columns=["x", "y", "z"]).to_csv(table, index=False)
    options = [f"--storage-option={k}={json.dumps(v)}" for k, v in s3.storage_options.items()]
    store = f"s3://{BUCKET}/{s3.key('cli.zarr')}"
    argv = ["extract", urls[0], "--seeds", str(table), "--radius", "3", "--out", store]
    assert main([*argv, "--no-progress", *options]) == 0
    capsys.readouterr()
    assert main(["info", store, "--json", *options]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["source"] == store
    assert facts["complete"] is True
    results = open_results(store, storage_options=s3.storage_options)
    np.testing.assert_array_equal(
        results.signals.values[0], ls.extract(runs[0], seeds, 3.0).values
    )
