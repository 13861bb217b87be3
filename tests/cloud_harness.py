"""Fixtures for the tests on real servers: s3rver behind the shaping/fault proxy, and images.

One s3rver and one proxy per test session (per xdist worker), both on free loopback ports
and stopped at the end of the session. Test modules import the fixtures by name
(``from cloud_harness import images_fixture, s3rver_fixture``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from conftest import random_image, write
from s3rver_server import S3rver
from shaping_proxy import Proxy

BUCKET = "lazyspheres-s3rver"
SEEDS = [(10.0, 12.0, 8.0), (30.0, 30.0, 20.0), (50.0, 60.0, 40.0)]
RADIUS = 6.0


@dataclass
class Harness:
    """The running server, the proxy in front of it, and s3fs options through the proxy."""

    server: S3rver
    proxy: Proxy

    @property
    def storage_options(self) -> dict[str, Any]:
        return self.server.storage_options(self.proxy.endpoint)

    def put(self, path: Any, key: str) -> str:
        """Upload a local file (directly to the server, uncounted); its ``s3://`` URL."""
        self.server.filesystem().put(str(path), f"{BUCKET}/{key}")
        return f"s3://{BUCKET}/{key}"


@pytest.fixture(scope="session", name="s3rver")
def s3rver_fixture() -> Iterator[Harness]:
    """s3rver and the proxy (no latency, no bandwidth limit, no faults unless a test adds)."""
    with S3rver(BUCKET) as server, Proxy(server.endpoint, BUCKET, lifetime=1800) as proxy:
        yield Harness(server, proxy)


@pytest.fixture(autouse=False, name="proxy")
def proxy_fixture(s3rver: Harness) -> Iterator[Proxy]:
    """The proxy, with its fault rules cleared after the test."""
    yield s3rver.proxy
    s3rver.proxy.clear_faults()


@pytest.fixture(scope="session", name="images")
def images_fixture(tmp_path_factory) -> dict[str, Any]:
    """One float32 run as local ``.nii`` and ``.nii.gz`` files (~7 MB each)."""
    rng = np.random.default_rng(16)
    folder = tmp_path_factory.mktemp("s3rver-images")
    img = random_image(rng, (40, 44, 36, 30), np.float32)
    return {suffix: write(img, folder / f"bold{suffix}") for suffix in (".nii", ".nii.gz")}


def local_values(path: Any) -> np.ndarray:
    """The extraction of the local file, the reference for every remote read."""
    import lazyspheres as ls

    return ls.extract(str(path), SEEDS, RADIUS).values
