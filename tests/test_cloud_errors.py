"""Faults of object stores, on a real S3 server (moto): clear errors naming the URL and the fix.

Missing objects and buckets, refused access (anonymous on a private bucket), no credentials,
truncated objects, and objects replaced or deleted after opening or while being read.
"""

from __future__ import annotations

import numpy as np
import pytest
from cloud_server import s3_fixture  # noqa: F401  (the session's server)
from conftest import random_image, write

import lazyspheres as ls
from lazyspheres.cli import main as cli_main
from lazyspheres.errors import SourceChangedError, TruncatedImageError
from lazyspheres.io import remote

SEEDS = [(10.0, 12.0, 8.0), (30.0, 30.0, 20.0)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("cloud-errors")
    img = random_image(rng, (24, 26, 22, 10), np.float32)
    other = random_image(rng, (24, 26, 22, 10), np.float32)
    return {
        ".nii": write(img, folder / "a.nii").read_bytes(),
        ".nii.gz": write(img, folder / "a.nii.gz").read_bytes(),
        "other.nii": write(other, folder / "b.nii").read_bytes(),
        "other.nii.gz": write(other, folder / "b.nii.gz").read_bytes(),
    }


# ---------------------------------------------------------------------------- opening
@pytest.mark.parametrize("where", ["key", "bucket"])
def test_missing_object(s3, where):
    url = (
        f"s3://lazyspheres-tests/{s3.key('missing.nii.gz')}"
        if where == "key"
        else "s3://no-such-bucket-here/bold.nii.gz"
    )
    with pytest.raises(FileNotFoundError, match="File not found") as caught:
        ls.open_nifti(url, storage_options=s3.storage_options)
    assert url in str(caught.value)


def test_missing_object_through_the_cli(s3, capsys):
    url = f"s3://lazyspheres-tests/{s3.key('missing.nii')}"
    endpoint = f'--storage-option=client_kwargs={{"endpoint_url": "{s3.endpoint}"}}'
    argv = ["info", url, endpoint, "--storage-option=key=testing"]
    assert cli_main([*argv, "--storage-option=secret=testing"]) == 2
    err = capsys.readouterr().err
    assert "File not found" in err
    assert url in err


def test_access_denied_names_the_url_and_anon(s3, files):
    url = s3.put(files[".nii.gz"], "private.nii.gz")
    anonymous = {"anon": True, "client_kwargs": {"endpoint_url": s3.endpoint}}
    with pytest.raises(PermissionError, match="access denied") as caught:
        ls.open_nifti(url, storage_options=anonymous)
    message = str(caught.value)
    assert url in message
    assert "not public" in message  # anon was already set: the hint says so
    assert "AWS_ACCESS_KEY_ID" in message


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("s3://bucket/bold.nii.gz", "storage_options={'anon': True}"),
        ("simplecache::s3://bucket/bold.nii.gz", "storage_options={'anon': True}"),
        ("gs://bucket/bold.nii.gz", "storage_options={'token': 'anon'}"),
        ("https://example.org/bold.nii.gz", "'headers'"),
    ],
)
def test_access_denied_hints_per_store(url, hint):
    # The translation of any filesystem's PermissionError (moto accepts every signed request,
    # so a signed-but-refused request cannot be produced on the server).
    with (
        pytest.raises(PermissionError, match="access denied") as caught,
        remote.translated_errors(url, {}),
    ):
        raise PermissionError("Forbidden")
    assert hint in str(caught.value)
    assert url in str(caught.value)


def test_missing_credentials(s3, files, monkeypatch):
    url = s3.put(files[".nii"], "needs-keys.nii")
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    options = {"client_kwargs": {"endpoint_url": s3.endpoint}, "skip_instance_cache": True}
    with pytest.raises(PermissionError, match="no credentials") as caught:
        ls.open_nifti(url, storage_options=options)
    message = str(caught.value)
    assert url in message
    assert "AWS_ACCESS_KEY_ID" in message
    assert "'anon': True" in message


# ---------------------------------------------------------------------------- truncation
def test_truncated_nii_object_is_refused_at_open(s3, files):
    url = s3.put(files[".nii"][: len(files[".nii"]) - 5000], "short.nii")
    with pytest.raises(TruncatedImageError, match="truncated") as caught:
        ls.open_nifti(url, storage_options=s3.storage_options)
    assert url in str(caught.value)


def test_truncated_gz_object_fails_while_streaming(s3, files):
    url = s3.put(files[".nii.gz"][: len(files[".nii.gz"]) * 2 // 3], "short.nii.gz")
    signals = ls.extract(url, SEEDS, 5.0, storage_options=s3.storage_options)
    with pytest.raises(TruncatedImageError, match="truncated") as caught:
        signals.compute()
    assert url in str(caught.value)


# ---------------------------------------------------------------------------- changes
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_object_replaced_after_opening(s3, files, suffix):
    url = s3.put(files[suffix], f"replaced{suffix}")
    signals = ls.extract(url, SEEDS, 5.0, storage_options=s3.storage_options)
    s3.replace(url, files[f"other{suffix}"])
    with pytest.raises(SourceChangedError, match="changed after it was opened") as caught:
        signals.compute()
    assert url in str(caught.value)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_object_deleted_after_opening(s3, files, suffix):
    url = s3.put(files[suffix], f"deleted{suffix}")
    signals = ls.extract(url, SEEDS, 5.0, storage_options=s3.storage_options)
    s3.delete(url)
    with pytest.raises(SourceChangedError, match="no longer exists") as caught:
        signals.compute()
    assert url in str(caught.value)


def test_nii_object_replaced_between_time_blocks(s3, files, monkeypatch):
    url = s3.put(files[".nii"], "midway.nii")
    monkeypatch.setattr(remote, "RANGE_BLOCK_BYTES", 1)  # one volume per block
    fetch = remote.fetch_ranges
    calls = []

    def fetch_then_replace(source, starts, ends):
        buffers = fetch(source, starts, ends)
        if not calls:
            s3.replace(url, files["other.nii"])
        calls.append(1)
        return buffers

    monkeypatch.setattr(remote, "fetch_ranges", fetch_then_replace)
    signals = ls.extract(url, SEEDS, 5.0, storage_options=s3.storage_options)
    with pytest.raises(SourceChangedError, match="changed after it was opened"):
        # one time-block task at a time: with threads, other tasks may have fetched too
        signals.compute(scheduler="synchronous")
    # Stopped at the first block's check (the second block may have been in flight).
    assert len(calls) <= 2


def test_gz_object_replaced_while_streaming(s3, files, monkeypatch):
    url = s3.put(files[".nii.gz"], "midstream.nii.gz")
    monkeypatch.setattr(remote, "STREAM_BLOCK_BYTES", 64 * 1024)  # blocks fetched later on
    monkeypatch.setattr(remote, "STREAM_PREFETCH", 1)
    open_stream = remote.open_stream

    def open_then_replace(source):
        stream = open_stream(source)  # fingerprint checked: still the original
        s3.replace(url, files["other.nii.gz"])
        return stream

    monkeypatch.setattr(remote, "open_stream", open_then_replace)
    signals = ls.extract(url, SEEDS, 5.0, storage_options=s3.storage_options)
    # s3fs pins the ETag (If-Match) on each GET: the server refuses the new version.
    with pytest.raises(SourceChangedError, match="changed while it was being read") as caught:
        signals.compute()
    assert url in str(caught.value)
