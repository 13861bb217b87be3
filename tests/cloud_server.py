"""A real S3-compatible server on loopback (moto) for the cloud tests, logging every request.

One ``ThreadedMotoServer`` per test session (per xdist worker), on port 0: a fixed port would
collide between xdist workers. Requests go through real HTTP from s3fs, so the log below sees
exactly what a cloud object store would: method, key, ``Range`` header, status and the
number of body bytes sent back.

Test modules import the ``s3`` fixture (``from cloud_server import s3_fixture``); the server
itself is a module-level singleton, so importing the fixture into several modules still
starts one server.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import pathlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# werkzeug logs every request at INFO: the RequestLog below keeps what the tests need.
logging.getLogger("werkzeug").setLevel(logging.WARNING)

BUCKET = "lazyspheres-tests"
# Throwaway credentials: moto accepts any, and no real credentials are ever used.
CREDENTIALS = {"key": "testing", "secret": "testing"}


@dataclass(frozen=True)
class Request:
    """One HTTP request the server answered."""

    method: str
    key: str
    range: str | None
    status: int
    body_bytes: int

    @property
    def span(self) -> tuple[int, int]:
        """``[start, end)`` of a ``Range: bytes=a-b`` request."""
        first, last = self.range.removeprefix("bytes=").split("-")
        return int(first), int(last) + 1


class RequestLog:
    """WSGI middleware recording every request and the body bytes of every response."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.records: list[Request] = []
        self._lock = threading.Lock()
        self._failures: list[list[Any]] = []

    def fail_next(self, key: str, count: int, status: int = 503, code: str = "SlowDown") -> None:
        """Answer the next ``count`` GETs of ``key`` with an S3 error (a transient fault)."""
        with self._lock:
            self._failures.append([key, count, status, code])

    def _injected(self, method: str, key: str) -> tuple[int, str] | None:
        with self._lock:
            for failure in self._failures:
                if method == "GET" and failure[0] == key and failure[1] > 0:
                    failure[1] -= 1
                    return failure[2], failure[3]
        return None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        status: dict[str, int] = {}

        def record_status(line: str, headers: Any, exc_info: Any = None) -> Any:
            status["code"] = int(line.split()[0])
            return start_response(line, headers, exc_info)

        path = environ.get("PATH_INFO", "")
        key = path.removeprefix(f"/{BUCKET}/")
        injected = self._injected(environ["REQUEST_METHOD"], key)
        if injected is not None:
            code, name = injected
            error = f"<Error><Code>{name}</Code><Message>injected</Message></Error>".encode()
            start_response(f"{code} {name}", [("Content-Type", "application/xml")])
            self._append(
                Request(environ["REQUEST_METHOD"], key, environ.get("HTTP_RANGE"), code, 0)
            )
            return [error]
        body = self.app(environ, record_status)
        try:
            # Buffered, so the request is logged before the client receives a byte: a test
            # reading the log right after its call returns sees every request.
            pieces = list(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        self._append(
            Request(
                method=environ["REQUEST_METHOD"],
                key=key,
                range=environ.get("HTTP_RANGE"),
                status=status.get("code", 0),
                body_bytes=sum(len(piece) for piece in pieces),
            )
        )
        return pieces

    def _append(self, request: Request) -> None:
        with self._lock:
            self.records.append(request)

    @contextlib.contextmanager
    def watch(self) -> Iterator[list[Request]]:
        """Collect the requests made inside the ``with`` block (filled in on exit)."""
        with self._lock:
            mark = len(self.records)
        seen: list[Request] = []
        yield seen
        with self._lock:
            seen.extend(self.records[mark:])


class S3Server:
    """The running server, an s3fs client for it, and helpers to upload test objects."""

    def __init__(self) -> None:
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # Every request passes through the log (werkzeug calls ``server.app`` per request).
        self.log = RequestLog(self._server._server.app)
        self._server._server.app = self.log
        self.storage_options: dict[str, Any] = {
            **CREDENTIALS,
            "client_kwargs": {"endpoint_url": self.endpoint},
        }
        self.fs = self.filesystem()
        self.fs.mkdir(BUCKET)

    def filesystem(self, **options: Any) -> Any:
        """A fresh s3fs client for this server (``options`` override the defaults)."""
        import s3fs

        merged = {**self.storage_options, **options}
        return s3fs.S3FileSystem(skip_instance_cache=True, **merged)

    def key(self, name: str) -> str:
        """A fresh key ending in ``name`` (tests never share objects)."""
        return f"{uuid.uuid4().hex[:12]}/{name}"

    def put(self, source: Any, name: str) -> str:
        """Upload a local file (path) or bytes under a fresh key; return its ``s3://`` URL."""
        key = self.key(name)
        data = source if isinstance(source, bytes) else pathlib.Path(source).read_bytes()
        self.fs.pipe(f"{BUCKET}/{key}", data)
        return f"s3://{BUCKET}/{key}"

    def replace(self, url: str, data: bytes) -> None:
        """Overwrite an object (a new ETag), as another writer would."""
        self.fs.pipe(url.removeprefix("s3://"), data)

    def delete(self, url: str) -> None:
        """Delete an object."""
        self.fs.rm(url.removeprefix("s3://"))

    def stop(self) -> None:
        """Stop the server thread."""
        self._server.stop()


@functools.cache
def shared_server() -> S3Server:
    """The session's single server, started on first use and stopped at exit."""
    server = S3Server()
    atexit.register(server.stop)
    return server


@pytest.fixture(scope="session", name="s3")
def s3_fixture() -> S3Server:
    """The loopback S3 server (one per session)."""
    return shared_server()


def data_gets(requests: list[Request], url: str) -> list[Request]:
    """The ranged GETs of one object among logged requests."""
    key = url.removeprefix(f"s3://{BUCKET}/")
    return [r for r in requests if r.method == "GET" and r.key == key and r.range]
