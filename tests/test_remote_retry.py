"""lazyspheres' own retry layer for remote byte ranges (lazyspheres.io.remote_retry).

A scripted fetcher stands in for the filesystem: it answers each range with its bytes, a
fault, or a short body, so every path of the retry loop is driven without a network.
"""

from __future__ import annotations

import aiohttp
import pytest

from lazyspheres.errors import RemoteReadError, SourceChangedError
from lazyspheres.io.remote_errors import is_transient, translate
from lazyspheres.io.remote_retry import read_ranges

URL = "s3://bucket/bold.nii"
DATA = bytes(range(256)) * 16


class Scripted:
    """Answers ``(start, end)`` with the scripted faults first, then the true bytes."""

    def __init__(self, faults: dict[int, list[object]]) -> None:
        self.faults = {start: list(items) for start, items in faults.items()}
        self.calls: list[list[int]] = []

    def __call__(self, starts: list[int], ends: list[int]) -> list[bytes | BaseException]:
        self.calls.append(list(starts))
        answers: list[bytes | BaseException] = []
        for start, end in zip(starts, ends, strict=True):
            queue = self.faults.get(start, [])
            fault = queue.pop(0) if queue else None
            if fault == "short":
                answers.append(DATA[start : end - 1])
            elif isinstance(fault, BaseException):
                answers.append(fault)
            else:
                answers.append(DATA[start:end])
        return answers


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("LAZYSPHERES_READ_BACKOFF", "0.001")
    monkeypatch.setenv("LAZYSPHERES_READ_RETRIES", "2")


def _read(fetch: Scripted) -> list[bytes]:
    return read_ranges(fetch, [0, 100, 200], [50, 150, 250], location=URL, size=len(DATA))


def test_faults_and_short_bodies_are_fetched_again_alone():
    reset = aiohttp.ClientPayloadError("Response payload is not completed")
    fetch = Scripted({100: [reset, "short"]})
    assert _read(fetch) == [DATA[0:50], DATA[100:150], DATA[200:250]]
    assert fetch.calls == [[0, 100, 200], [100], [100]]


def test_a_fault_outlasting_the_retries_names_the_object_bytes_and_fault():
    fetch = Scripted({200: [OSError("SlowDown: Please reduce your request rate.")] * 3})
    with pytest.raises(RemoteReadError, match="SlowDown") as caught:
        _read(fetch)
    message = str(caught.value)
    assert URL in message
    assert "bytes 200-250" in message
    assert "3 attempts" in message
    assert len(fetch.calls) == 3


def test_a_short_body_past_the_known_end_is_left_to_the_caller():
    fetch = Scripted({})
    got = read_ranges(fetch, [4000], [5000], location=URL, size=len(DATA))
    assert got == [DATA[4000:]]  # the caller reports the truncation
    assert len(fetch.calls) == 1


@pytest.mark.parametrize(
    "error",
    [FileNotFoundError("gone"), PermissionError("denied"), SourceChangedError("changed")],
)
def test_errors_that_repeat_are_raised_at_once(error):
    fetch = Scripted({0: [error]})
    with pytest.raises(type(error)):
        _read(fetch)
    assert len(fetch.calls) == 1


def test_a_whole_call_that_raises_fails_every_range_of_it():
    calls = []

    def fetch(starts: list[int], ends: list[int]) -> list[bytes | BaseException]:
        calls.append(starts)
        if len(calls) == 1:
            raise ConnectionResetError("reset by peer")
        return [DATA[s:e] for s, e in zip(starts, ends, strict=True)]

    assert read_ranges(fetch, [0, 10], [5, 15], location=URL) == [DATA[0:5], DATA[10:15]]
    assert calls == [[0, 10], [0, 10]]


def test_tls_failures_are_named_and_not_retried():
    import ssl

    cause = ssl.SSLCertVerificationError("certificate verify failed: self-signed certificate")
    wrapped = FileNotFoundError("https://127.0.0.1:8443/bold.nii")
    wrapped.__cause__ = cause
    error = translate(wrapped, "https://127.0.0.1:8443/bold.nii")
    assert isinstance(error, RemoteReadError)
    assert not is_transient(error)
    assert "certificate" in str(error)
    assert "127.0.0.1:8443" in str(error)
    assert "File not found" not in str(error)
