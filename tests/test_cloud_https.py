"""https:// inputs served by a real nginx (Debian's package) on loopback, with Range support.

nginx serves the images over TLS with a self-signed certificate made by ``openssl`` at test
time; fsspec's HTTP filesystem trusts exactly that certificate through
``storage_options={"ssl": context}`` (passed on to aiohttp's requests). As from OpenNeuro,
values equal the local extraction, and ``.nii`` reads are ranged (nginx answers 206).
"""

from __future__ import annotations

import numpy as np
import pytest
from cloud_harness import RADIUS, SEEDS, images_fixture, local_values  # noqa: F401
from nginx_server import Nginx

import lazyspheres as ls
from lazyspheres.errors import RemoteReadError


@pytest.fixture(scope="module")
def nginx(images):
    folder = images[".nii"].parent
    with Nginx(folder) as server:
        yield server


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_https_extract_equals_local(nginx, images, suffix):
    url = f"{nginx.url}/{images[suffix].name}"
    before = len(nginx.access_log())
    values = ls.extract(url, SEEDS, RADIUS, storage_options={"ssl": nginx.ssl_context()}).values
    np.testing.assert_array_equal(values, local_values(images[suffix]))
    requests = nginx.access_log()[before:]
    assert requests, "nginx served nothing"
    assert all(f"/{images[suffix].name} " in line for line in requests)
    if suffix == ".nii":  # partial content: the sphere voxels' ranges, not the whole file
        assert any('" 206 ' in line for line in requests)


def test_https_with_an_untrusted_certificate_raises(nginx, images):
    url = f"{nginx.url}/{images['.nii'].name}"
    with pytest.raises(OSError, match=r"127\.0\.0\.1"):  # no values without trust
        ls.extract(url, SEEDS, RADIUS)


def test_https_with_an_untrusted_certificate_says_so(nginx, images):
    url = f"{nginx.url}/{images['.nii'].name}"
    with pytest.raises(RemoteReadError, match=r"(?i)certificate") as caught:
        ls.extract(url, SEEDS, RADIUS)
    assert url in str(caught.value)
    assert "File not found" not in str(caught.value)
