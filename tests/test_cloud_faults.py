"""Network faults injected between s3fs and s3rver: retried, then named.

The proxy answers matching requests with an S3 ``503 SlowDown``, resets the connection
mid-body, or cuts the body short under its full ``Content-Length``:

- a fault that happens once is retried (by aiobotocore/s3fs, or by lazyspheres' own retry
  of ranges, :mod:`lazyspheres.io.remote_retry`) and the values equal the local
  extraction, for ``.nii`` (ranged gathers) and ``.nii.gz`` (the stream), on the header
  read and on data reads alike;
- a fault that persists ends, after the retries, in a ``RemoteReadError`` naming the
  object, the bytes and the fault: never values, and never "corrupt gzip data".

Persistent faults are read with fewer retries (2 by botocore, 2 by s3fs, 1 by lazyspheres
with a short backoff, instead of 5, 5 and 4): the outcome is the same, only sooner.
"""

from __future__ import annotations

import re
import uuid

import numpy as np
import pytest
from cloud_harness import (  # noqa: F401  (fixtures)
    RADIUS,
    SEEDS,
    images_fixture,
    local_values,
    proxy_fixture,
    s3rver_fixture,
)
from shaping_proxy import Fault, range_span

import lazyspheres as ls
from lazyspheres.errors import RemoteReadError

KINDS = ["slowdown", "reset", "truncate"]
DATA_READ = 512 * 1024  # header reads are 64-128 KiB; the data reads of these images are MBs


@pytest.fixture(scope="module")
def urls(s3rver, images):
    """Each image uploaded once (faults never change the stored object)."""
    prefix = uuid.uuid4().hex[:10]
    return {suffix: s3rver.put(path, f"{prefix}/bold{suffix}") for suffix, path in images.items()}


def _key(url: str) -> str:
    return url.split("/", 3)[3]


def _extract(url, s3rver, botocore_attempts=None):
    options = s3rver.storage_options
    if botocore_attempts is not None:
        options = {**options, "config_kwargs": {"retries": {"max_attempts": botocore_attempts}}}
    return ls.extract(url, SEEDS, RADIUS, storage_options=options).values


@pytest.fixture
def few_retries(monkeypatch):
    """s3fs retries twice (a class attribute, not an option); botocore too (see _extract)."""
    import s3fs

    monkeypatch.setattr(s3fs.S3FileSystem, "retries", 2)
    monkeypatch.setenv("LAZYSPHERES_READ_RETRIES", "1")
    monkeypatch.setenv("LAZYSPHERES_READ_BACKOFF", "0.01")
    return 2


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize(
    ("kind", "target"), [(kind, "data GET") for kind in KINDS] + [("slowdown", "first GET")]
)
def test_one_fault_is_retried_and_values_are_right(
    s3rver, proxy, images, urls, suffix, kind, target
):
    min_bytes = DATA_READ if target == "data GET" else 0
    fault = proxy.add_fault(Fault(kind, key=_key(urls[suffix]), times=1, min_bytes=min_bytes))
    with proxy.watch() as seen:
        values = _extract(urls[suffix], s3rver)
    np.testing.assert_array_equal(values, local_values(images[suffix]))
    assert fault.fired == 1
    faulted = next(r for r in seen if r.fault == kind)
    retried = [r for r in seen if r.range == faulted.range and r.fault is None]
    assert retried, "the faulted range was never fetched again"
    if target == "data GET":
        first, last = range_span(faulted.range)
        assert last + 1 - first >= DATA_READ


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_persistent_fault_raises_and_returns_nothing(
    s3rver, proxy, urls, few_retries, suffix, kind
):
    fault = proxy.add_fault(Fault(kind, key=_key(urls[suffix]), min_bytes=DATA_READ))
    with pytest.raises(RemoteReadError, match="could not be read after 2 attempts") as caught:
        _extract(urls[suffix], s3rver, few_retries)
    assert fault.fired > 1  # retried before giving up
    assert urls[suffix] in str(caught.value)
    assert re.search(r"bytes \d+-\d+", str(caught.value))


@pytest.mark.parametrize("kind", KINDS)
def test_a_persistent_fault_names_the_object(s3rver, proxy, urls, few_retries, kind):
    url = urls[".nii"]
    proxy.add_fault(Fault(kind, key=_key(url), min_bytes=DATA_READ))
    with pytest.raises(RemoteReadError) as caught:
        _extract(url, s3rver, few_retries)
    assert url in str(caught.value)


def test_a_persistent_slowdown_in_the_stream_is_a_network_error(s3rver, proxy, urls, few_retries):
    url = urls[".nii.gz"]
    proxy.add_fault(Fault("slowdown", key=_key(url), min_bytes=DATA_READ))
    with pytest.raises(RemoteReadError, match=r"SlowDown|reduce your request rate"):
        _extract(url, s3rver, few_retries)


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_that_keeps_failing_spares_the_others_which_resume(
    s3rver, proxy, images, few_retries, tmp_path, kind
):
    from lazyspheres.batch import open_results
    from lazyspheres.batch.api import BatchError

    prefix = uuid.uuid4().hex[:10]
    keys = [f"{prefix}/sub-{i:02d}_task-rest_bold.nii.gz" for i in (1, 2)]
    sources = [s3rver.put(images[".nii.gz"], key) for key in keys]
    store = str(tmp_path / "results.zarr")  # local: the store on S3 is bench_cloud's case
    options = {
        **s3rver.storage_options,
        "config_kwargs": {"retries": {"max_attempts": few_retries}},
    }
    run = dict(store=store, storage_options=options, progress=False)  # noqa: C408
    proxy.add_fault(Fault(kind, key=keys[1], min_bytes=DATA_READ))
    with pytest.raises(BatchError, match="sub-02") as caught:
        ls.extract_many(sources, SEEDS, RADIUS, **run)
    assert "RemoteReadError" in str(caught.value)  # named, with the object and bytes
    partial = open_results(store, storage_options=options, allow_partial=True)
    assert partial["complete"].values.tolist() == [True, False]
    expected = local_values(images[".nii.gz"])
    np.testing.assert_array_equal(partial["signals"].values[0], expected)
    assert np.isnan(partial["signals"].values[1]).all()  # nothing wrong was written
    proxy.clear_faults()
    with proxy.watch() as seen:
        ds = ls.extract_many(sources, SEEDS, RADIUS, **run)
    assert ds["complete"].values.all()
    for index in (0, 1):
        np.testing.assert_array_equal(ds["signals"].values[index], expected)
    reread = [r for r in seen if r.key == keys[0] and range_span(r.range)[0] is not None]
    assert all(range_span(r.range)[1] < DATA_READ for r in reread)  # its header, not its data


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_outlasting_the_client_retries_is_retried_by_lazyspheres(
    s3rver, proxy, images, urls, few_retries, monkeypatch, suffix, kind
):
    """One data range fails through all of s3fs/botocore's attempts once, then clears."""
    url = urls[suffix]
    with proxy.watch() as seen:
        _extract(url, s3rver, few_retries)
    start = next(
        first
        for first, last in (range_span(r.range) for r in seen if r.key == _key(url))
        if first is not None and last is not None and last + 1 - first >= DATA_READ
    )
    target = {"key": _key(url), "range_start": start, "min_bytes": DATA_READ}
    monkeypatch.setenv("LAZYSPHERES_READ_RETRIES", "0")  # count the client's own attempts
    persistent = proxy.add_fault(Fault(kind, **target))
    with pytest.raises(RemoteReadError, match=f"bytes {start}-"):
        _extract(url, s3rver, few_retries)
    client_attempts = persistent.fired
    proxy.clear_faults()
    monkeypatch.setenv("LAZYSPHERES_READ_RETRIES", "1")
    fault = proxy.add_fault(Fault(kind, times=client_attempts, **target))
    with proxy.watch() as seen:
        values = _extract(url, s3rver, few_retries)
    np.testing.assert_array_equal(values, local_values(images[suffix]))
    assert fault.fired == client_attempts
    assert [r.fault for r in seen if range_span(r.range)[0] == start][-1] is None
