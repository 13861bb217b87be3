"""A loopback HTTP proxy that models a cloud network, counts requests, and injects faults.

It sits between an S3 client (s3fs, with ``endpoint_url`` set to :attr:`Proxy.endpoint`)
and an S3 server on loopback, relaying HTTP/1.1 requests byte for byte (so request
signatures stay valid), over one upstream connection per client connection. Per request it
adds ``latency`` seconds before the request goes upstream (time to first byte), and it
sends every response body no faster than ``bandwidth`` bytes/s per client connection.

Every request is logged (method, key, query, Range, status, body bytes sent) and counted
per object key. :class:`Fault` rules turn matching requests into an S3 ``503 SlowDown``, a
connection reset mid-body, or a body cut short under its full ``Content-Length``.

Bounds: at most ``max_requests`` requests (later ones get a 503 ``ProxyLimit`` and are
recorded in :attr:`Proxy.errors`), and the proxy stops itself after ``lifetime`` seconds.
Stdlib only (threads); this module imports neither pytest nor lazyspheres.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

RELAY_BYTES = 256 * 1024
SLOWDOWN = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>SlowDown</Code>"
    b"<Message>Please reduce your request rate (injected).</Message></Error>"
)


@dataclass
class Request:
    """One request as the proxy answered it (logged before its body's last byte is sent)."""

    method: str
    key: str
    query: str
    range: str | None
    status: int
    body_bytes: int
    fault: str | None = None


@dataclass
class Fault:
    """Turn matching requests into a fault.

    Parameters
    ----------
    kind : {"slowdown", "reset", "truncate"}
        ``slowdown``: answer ``503 SlowDown`` without asking the server. ``reset``: send
        the head and ``cut`` of the body, then reset the connection (RST). ``truncate``:
        send the head (its ``Content-Length`` unchanged) and ``cut`` of the body, then close.
    key : str, optional
        Only requests of this exact object key (any key if None).
    method : str
        Only this HTTP method.
    range_start : int, optional
        Only ranged requests starting at this byte offset.
    min_bytes : int
        Only requests for at least this many bytes (by their ``Range``; unranged ones
        always match): e.g. data reads rather than header reads.
    every : int
        Fault every ``every``-th matching request (1: each one).
    times : int, optional
        Stop after this many faults (unlimited if None).
    cut : float
        Fraction of the body sent before a ``reset``/``truncate``.
    """

    kind: str
    key: str | None = None
    method: str = "GET"
    range_start: int | None = None
    min_bytes: int = 0
    every: int = 1
    times: int | None = None
    cut: float = 0.5
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in ("slowdown", "reset", "truncate"):
            raise ValueError(f"Fault kind {self.kind!r}: use 'slowdown', 'reset' or 'truncate'.")

    def fires(self, method: str, key: str, range_header: str | None) -> bool:
        """Whether this request faults (counts it; call once per request)."""
        if method != self.method or (self.key is not None and key != self.key):
            return False
        first, last = range_span(range_header)
        if self.range_start is not None and first != self.range_start:
            return False
        if first is not None and last is not None and last + 1 - first < self.min_bytes:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.seen += 1
        if self.seen % self.every:
            return False
        self.fired += 1
        return True


def range_span(header: str | None) -> tuple[int | None, int | None]:
    """First and last byte of ``Range: bytes=a-b`` (None where absent)."""
    if not header or not header.startswith("bytes="):
        return None, None
    first, _, last = header.removeprefix("bytes=").partition("-")
    return (int(first) if first else None), (int(last) if last else None)


class Proxy:
    """The proxy, listening on 127.0.0.1 (a free port) in background threads.

    Parameters
    ----------
    upstream : str
        ``http://host:port`` of the server.
    bucket : str
        Stripped from paths to name object keys in the log.
    latency : float
        Seconds added before each request goes upstream.
    bandwidth : float, optional
        Bytes/s per client connection for response bodies (unlimited if None).
    max_requests, lifetime : int, float
        The bounds described in the module docstring.
    """

    def __init__(
        self,
        upstream: str,
        bucket: str = "",
        *,
        latency: float = 0.0,
        bandwidth: float | None = None,
        max_requests: int = 100_000,
        lifetime: float = 3600.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.bucket = bucket
        self.latency = latency
        self.bandwidth = bandwidth
        self.max_requests = max_requests
        self.faults: list[Fault] = []
        self.log: list[Request] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``, the endpoint clients use."""
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ test/bench API
    def add_fault(self, fault: Fault) -> Fault:
        """Add a fault rule (checked in order; the first that fires wins)."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    @contextlib.contextmanager
    def watch(self) -> Iterator[list[Request]]:
        """Collect the requests answered inside the ``with`` block (filled in on exit)."""
        with self._lock:
            mark = len(self.log)
        seen: list[Request] = []
        yield seen
        with self._lock:
            seen.extend(self.log[mark:])

    def stop(self) -> None:
        """Close the listener and every open connection (idempotent)."""
        self._stopped.set()
        self._timer.cancel()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ relaying
    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            (self._sockets.add if add else self._sockets.discard)(sock)

    def _serve(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._track(client, True)
        upstream: socket.socket | None = None
        reader = client.makefile("rb")
        try:
            while not self._stopped.is_set():
                head = read_head(reader)
                if head is None:
                    return
                if b"100-continue" in head.lower():  # the client waits for this to send the body
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = read_body(reader, head)
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self._track(upstream, True)
                    up_reader = upstream.makefile("rb")
                if not self._exchange(client, upstream, up_reader, head, body):
                    return
        except (OSError, ValueError):
            return
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    self._track(sock, False)
                    with contextlib.suppress(OSError):
                        sock.close()

    def _exchange(
        self, client: socket.socket, upstream: socket.socket, up_reader, head: bytes, body: bytes
    ) -> bool:
        """Answer one request; False when the client connection must close."""
        line, headers = parse_head(head)
        method, target = line.split(" ")[:2]
        split = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(split.path).lstrip("/")
        key = path.removeprefix(f"{self.bucket}/") if self.bucket else path
        key = "" if key == self.bucket else key
        ranged = headers.get("range")
        with self._lock:
            over = len(self.log) >= self.max_requests
            fault = next((f for f in self.faults if f.fires(method, key, ranged)), None)
        record = {"method": method, "key": key, "query": split.query, "range": ranged}
        if over:
            self.errors.append(f"request {len(self.log) + 1} over max_requests: {line}")
            client.sendall(error_response(503, "ProxyLimit"))
            self._append(Request(**record, status=503, body_bytes=0, fault="limit"))
            return False
        if fault is not None and fault.kind == "slowdown":
            client.sendall(error_response(503, "SlowDown"))
            self._append(Request(**record, status=503, body_bytes=0, fault="slowdown"))
            return True
        if self.latency:
            time.sleep(self.latency)
        upstream.sendall(head + body)
        status = 100
        while 100 <= status < 200:  # skip the server's own 100 Continue (sent to the client)
            status_head = read_head(up_reader)
            if status_head is None:
                raise OSError("upstream closed the connection")
            status_line, up_headers = parse_head(status_head)
            status = int(status_line.split(" ")[1])
        client.sendall(status_head)
        length, chunked = body_framing(method, status, up_headers)
        limit = None
        if fault is not None:
            limit = int((length or 0) * fault.cut)
        request = Request(**record, status=status, body_bytes=0, fault=fault and fault.kind)
        self._append(request)
        self._relay(client, up_reader, request, length, chunked, limit)
        if fault is None:
            return up_headers.get("connection", "").lower() != "close"
        if fault.kind == "reset":  # RST instead of FIN: the client sees ECONNRESET
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False  # the upstream still holds the rest of the body: drop both

    def _relay(
        self, client, up_reader, request: Request, length: int | None, chunked: bool, limit
    ) -> None:
        """Copy the response body to the client at ``bandwidth``, counting it in ``request``.

        The count grows before each send, so it is complete once the client has the body.
        """
        started, sent = time.perf_counter(), 0
        remaining, last = length, False
        while not last:
            if chunked:
                piece, last = read_chunk(up_reader)
            else:
                want = RELAY_BYTES if remaining is None else min(RELAY_BYTES, remaining)
                piece = up_reader.read1(want) if want else b""
            if not piece:
                return
            if limit is not None and sent + len(piece) >= limit:
                piece = piece[: max(limit - sent, 0)]
                request.body_bytes += len(piece)
                client.sendall(piece)
                return
            request.body_bytes += len(piece)
            client.sendall(piece)
            sent += len(piece)
            if remaining is not None:
                remaining -= len(piece)
            if self.bandwidth:
                ahead = sent / self.bandwidth - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)

    def _append(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)


# ---------------------------------------------------------------------- HTTP framing
def read_head(reader) -> bytes | None:
    """The request/status line and headers, up to the blank line (None at EOF)."""
    lines = []
    while True:
        line = reader.readline(65536)
        if not line:
            return None
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """The first line and the headers (lower-case names) of a head."""
    first, *rest = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in rest:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return first, headers


def read_body(reader, head: bytes) -> bytes:
    """A request's body, raw (chunked bodies kept chunked)."""
    _, headers = parse_head(head)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        pieces = []
        while True:
            piece, last = read_chunk(reader)
            pieces.append(piece)
            if last or not piece:
                return b"".join(pieces)
    length = int(headers.get("content-length", 0))
    body = reader.read(length) if length else b""
    if len(body) != length:
        raise OSError("client closed mid-body")
    return body


def read_chunk(reader) -> tuple[bytes, bool]:
    """One raw chunk of a chunked body (size line and CRLF included), and whether it is last."""
    size_line = reader.readline(65536)
    if not size_line:
        return b"", True
    size = int(size_line.split(b";")[0].strip(), 16)
    if size == 0:
        trailer = b""
        while True:
            line = reader.readline(65536)
            trailer += line
            if line in (b"\r\n", b"\n", b""):
                return size_line + trailer, True
    return size_line + reader.read(size + 2), False


def body_framing(method: str, status: int, headers: dict[str, str]) -> tuple[int | None, bool]:
    """(Content-Length or None, chunked) of a response."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return 0, False
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return None, True
    if "content-length" in headers:
        return int(headers["content-length"]), False
    return None, False


def error_response(status: int, code: str) -> bytes:
    """A complete S3-style XML error response."""
    body = SLOWDOWN if code == "SlowDown" else f"<Error><Code>{code}</Code></Error>".encode()
    head = (
        f"HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
