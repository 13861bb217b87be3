"""Reads from s3rver (a real S3 server, npm) through the shaping proxy, and the proxy itself.

The proxy's log is what the benchmark counts, so the tests check it against requests made
directly with s3fs, and the values lazyspheres reads through it against the local file.
"""

from __future__ import annotations

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
from shaping_proxy import Fault, Proxy, range_span

import lazyspheres as ls


def _fresh_key(name: str) -> str:
    return f"{uuid.uuid4().hex[:10]}/{name}"


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_extract_through_the_proxy_equals_local(s3rver, proxy, images, suffix):
    key = _fresh_key(f"bold{suffix}")
    url = s3rver.put(images[suffix], key)
    with proxy.watch() as seen:
        values = ls.extract(url, SEEDS, RADIUS, storage_options=s3rver.storage_options).values
    np.testing.assert_array_equal(values, local_values(images[suffix]))
    gets = [r for r in seen if r.method == "GET" and r.key == key]
    assert gets, "no GET of the object went through the proxy"
    size = images[suffix].stat().st_size
    for request in gets:  # every ranged GET got exactly its range, counted byte for byte
        assert request.status == 206
        first, last = range_span(request.range)
        assert request.body_bytes == min(last, size - 1) + 1 - first
    if suffix == ".nii.gz":  # a stream: every byte of the object was fetched
        covered = np.zeros(size, bool)
        for request in gets:
            first, last = range_span(request.range)
            covered[first : last + 1] = True
        assert covered.all()


def test_proxy_counts_each_request_and_its_bytes(s3rver, proxy):
    fs = s3rver.server.filesystem(proxy.endpoint)
    key = _fresh_key("blob.bin")
    data = np.random.default_rng(0).bytes(3 * 2**20 + 17)
    with proxy.watch() as seen:
        fs.pipe(f"{s3rver.server.bucket}/{key}", data)
        assert (
            fs.cat_file(f"{s3rver.server.bucket}/{key}", start=1000, end=2_001_000)
            == (data[1000:2_001_000])
        )
        assert fs.cat_file(f"{s3rver.server.bucket}/{key}") == data
    mine = [(r.method, r.range, r.status, r.body_bytes) for r in seen if r.method != "HEAD"]
    assert mine == [
        ("PUT", None, 200, 0),
        ("GET", "bytes=1000-2000999", 206, 2_000_000),
        ("GET", None, 200, len(data)),
    ]
    assert {r.key for r in seen} == {key}


def test_proxy_shapes_and_still_relays_exactly(s3rver):
    # Latency and bandwidth change when bytes arrive, never which bytes: (no timing here;
    # the benchmark measures time) a slow proxy relays the same object.
    server = s3rver.server
    key = _fresh_key("shaped.bin")
    data = np.random.default_rng(1).bytes(2**20)
    server.filesystem().pipe(f"{server.bucket}/{key}", data)
    with Proxy(server.endpoint, server.bucket, latency=0.01, bandwidth=50e6) as slow:
        assert server.filesystem(slow.endpoint).cat_file(f"{server.bucket}/{key}") == data
        assert [r.body_bytes for r in slow.log if r.method == "GET"] == [len(data)]


def test_proxy_bounds_its_requests(s3rver):
    server = s3rver.server
    with Proxy(server.endpoint, server.bucket, max_requests=1) as bounded:
        fs = server.filesystem(bounded.endpoint, config_kwargs={"retries": {"max_attempts": 1}})
        fs.ls(server.bucket)
        with pytest.raises(OSError):
            fs.ls(server.bucket, refresh=True)
        assert bounded.errors  # the refused requests are recorded
        assert bounded.log[0].status == 200
        assert {r.fault for r in bounded.log[1:]} == {"limit"}


def test_fault_rules_match_deterministically():
    rule = Fault("reset", key="a.nii", every=2, times=2, min_bytes=100)
    fired = [
        rule.fires("GET", "a.nii", "bytes=0-999"),
        rule.fires("GET", "a.nii", "bytes=0-9"),  # too small: not even counted
        rule.fires("GET", "b.nii", "bytes=0-999"),  # other key
        rule.fires("GET", "a.nii", "bytes=0-999"),
        rule.fires("HEAD", "a.nii", None),  # other method
        rule.fires("GET", "a.nii", None),
        rule.fires("GET", "a.nii", "bytes=5-999"),
        rule.fires("GET", "a.nii", "bytes=5-999"),  # times=2 reached
    ]
    assert fired == [False, False, False, True, False, False, True, False]
    with pytest.raises(ValueError, match="Fault kind"):
        Fault("explode")
