"""The result store on a real S3 server (s3rver): few requests, plain ``xr.open_zarr``, resume.

The proxy logs every request, so the tests check where the store's requests go: no Zarr v2
probes, one signals object per run, the per-run state in blocks, no listing after creation.
"""

from __future__ import annotations

import uuid

import numpy as np
import xarray as xr
from cloud_harness import (  # noqa: F401  (fixtures)
    BUCKET,
    RADIUS,
    SEEDS,
    images_fixture,
    local_values,
    proxy_fixture,
    s3rver_fixture,
)

import lazyspheres as ls

N_RUNS = 3


def _batch(s3rver, images):
    folder = uuid.uuid4().hex[:10]
    sources = [
        s3rver.put(images[".nii.gz"], f"{folder}/sub-0{i}_task-rest_bold.nii.gz")
        for i in range(1, N_RUNS + 1)
    ]
    return sources, f"{folder}/results.zarr"


def _store_requests(seen, prefix):
    return [r for r in seen if r.key.startswith(prefix)]


def test_a_batch_into_s3_makes_few_store_requests_and_opens_plainly(s3rver, proxy, images):
    sources, key = _batch(s3rver, images)
    store, options = f"s3://{BUCKET}/{key}", s3rver.storage_options
    with proxy.watch() as seen:
        ls.extract_many(sources, SEEDS, RADIUS, store=store, storage_options=options)
    requests = _store_requests(seen, key)
    names = [r.key[len(key) + 1 :] for r in requests]
    assert not [n for n in names if n.split("/")[-1] in {".zgroup", ".zattrs", ".zmetadata"}]
    signals = sorted(
        n for r, n in zip(requests, names, strict=True) if r.method == "PUT" and "signals/c/" in n
    )
    assert signals == [f"signals/c/{i}/0/0" for i in range(N_RUNS)]  # one object per run
    flags = [
        n
        for r, n in zip(requests, names, strict=True)
        if r.method == "PUT" and n == "complete/c/0"
    ]
    assert 1 <= len(flags) <= N_RUNS  # one block for all runs, at most once per run
    listings = [i for i, r in enumerate(seen) if not r.key and "list-type" in r.query]
    first_put = next(i for i, r in enumerate(seen) if r.method == "PUT")
    assert len(listings) == 1  # is anything (v2 or v3) there?
    assert listings[0] < first_put
    # Creation: the template's objects, each PUT once, the root last; nothing read. 14 arrays
    # (signals, 4 per-run state arrays, 9 coordinates) and the root, and one chunk per
    # coordinate but the radius (one value for all seeds: its fill value, no chunk).
    template = requests[: names.index("zarr.json") + 1]
    assert all(r.method == "PUT" for r in template)
    assert len(template) == len({r.key for r in template}) == 14 + 1 + 8
    assert len(template) + len(listings) <= 30
    # The workers read no metadata, nor does the final open: after creation the store is
    # only written, one chunk per run and the blocks of state, flags and attributes.
    after = requests[len(template) :]
    assert [r.key for r in after if r.method != "PUT"] == []
    assert len(after) <= N_RUNS + 4 + 1 + 1 + 2 * (4 + 1)  # + at most two timed flushes

    ds = xr.open_zarr(store, storage_options=options)  # plain xarray, no lazyspheres
    assert ds.attrs["complete"] is True
    assert ds.complete.values.all()
    for i in range(N_RUNS):
        n = int(ds.n_volumes.values[i])
        np.testing.assert_array_equal(ds.signals.values[i, :n], local_values(images[".nii.gz"]))

    with proxy.watch() as seen:
        resumed = ls.extract_many(sources, SEEDS, RADIUS, store=store, storage_options=options)
    resumed_requests = _store_requests(seen, key)
    writes = [r for r in resumed_requests if r.method == "PUT" and "/c/" in r.key]
    assert writes == []  # nothing recomputed, nothing rewritten
    assert not [r for r in resumed_requests if "signals/" in r.key]  # no run's data is read
    # The state in one request per array; the checked coordinates; the root, written twice
    # (not complete while it runs, then complete); the open's index coordinates.
    assert len(resumed_requests) <= 1 + 1 + 9 + 4 + 2 + 3
    xr.testing.assert_identical(resumed.load(), ds.load())
