"""Cloud benchmark: the T=300 MNI run read from a loopback S3 server vs the local file.

Serves ``bold_T300.nii.gz`` and ``bold_T300.nii`` (generated once with
``lazyspheres.datasets.write_bold`` if missing) from moto's ``ThreadedMotoServer`` on
127.0.0.1 and extracts the Power 264 seeds (radius 5 mm; for .nii also a sparse set of 8 of
them) through s3fs, then from the local files, in the same process. Prints, per case,

    cloud_<case>_time: ratio (s3 s / local s)
    cloud_<case>_bytes: ratio (bytes fetched / object size), with the GET count

(the local runs read the whole .nii.gz, and memory-map the .nii from the page cache).

optionally with a per-request latency injected in the server (``--latency-ms``) to model an
object store's time to first byte (loopback has none, which flatters chatty readers).

Server tuning (benchmark only): moto copies the whole stored object on every GET (its key
buffer is a ``SpooledTemporaryFile``), which would make each ranged GET of the 1 GB ``.nii``
cost a 1 GB copy. The objects are therefore stored in moto's backend as immutable ``bytes``
behind an ``io.BytesIO``, whose whole-buffer read shares the bytes, so a GET costs what it
returns, as on a real store.

    python benchmarks/bench_cloud.py [--data bench-data] [--repeat 3] [--latency-ms 0 20]
    python benchmarks/bench_cloud.py --sweep [--sweep-latency-ms 20]  # .nii.gz stream choices
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import pathlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise

HERE = pathlib.Path(__file__).resolve().parent
BUCKET = "bench"
SEEDS, RADIUS = "power2011", 5.0


# ---------------------------------------------------------------------------- data
def ensure_data(folder: pathlib.Path, n_volumes: int) -> dict[str, pathlib.Path]:
    """The .nii.gz and .nii files of a T=n_volumes run (generated once, as run.py does)."""
    from run import ensure_data as ensure_run_data  # benchmarks/ is on sys.path

    files = ensure_run_data(folder, n_volumes)
    return {".nii.gz": files["gz"], ".nii": files["nii"]}


# ---------------------------------------------------------------------------- server
class CountingApp:
    """WSGI middleware: count GETs and body bytes per key; optionally add latency.

    ``GET /__stats__/<key>`` answers the counts since the last call (as JSON) and resets
    them; ``GET /__latency__/<seconds>`` sets the latency of every later request.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.latency = 0.0
        self.gets: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(("/__stats__/", "/__latency__/")):
            return self._control(path, start_response)
        if self.latency:
            time.sleep(self.latency)  # concurrent requests wait concurrently (threaded server)
        body = self.app(environ, start_response)
        try:
            pieces = list(body)
        finally:
            getattr(body, "close", lambda: None)()
        if environ["REQUEST_METHOD"] == "GET":
            key = path.removeprefix(f"/{BUCKET}/")
            with self.lock:
                self.gets.setdefault(key, []).append(sum(len(p) for p in pieces))
        return pieces

    def _control(self, path: str, start_response: Any) -> list[bytes]:
        import json

        if path.startswith("/__latency__/"):
            self.latency = float(path.removeprefix("/__latency__/"))
            answer: dict[str, Any] = {"latency": self.latency}
        else:
            key = path.removeprefix("/__stats__/")
            with self.lock:
                sizes = self.gets.pop(key, [])
            answer = {"requests": len(sizes), "bytes": sum(sizes)}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(answer).encode()]


def serve(files: list[str], connection: Any) -> None:
    """Run moto in this (child) process with ``files`` stored; send back the endpoint."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    server._server.app = CountingApp(server._server.app)
    for name in files:
        store_object(pathlib.Path(name).name, pathlib.Path(name))
    host, port = server.get_host_and_port()
    connection.send(f"http://{host}:{port}")
    connection.recv()  # block until the parent is done
    server.stop()


def store_object(key: str, path: pathlib.Path) -> None:
    """Put a file into moto's in-process backend as immutable bytes (see module docstring)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    if BUCKET not in backend.buckets:
        backend.create_bucket(BUCKET, "us-east-1")
    data = path.read_bytes()
    stored = backend.put_object(BUCKET, key, b"")
    stored._value_buffer.close()
    stored._value_buffer = io.BytesIO(data)  # shares `data`; read() returns it uncopied
    stored.contentsize = len(data)
    stored._etag = None  # recomputed from the buffer on first use
    _ = stored.etag


class Server:
    """The moto server in a child process (its own GIL, as a real store has its own CPU)."""

    def __init__(self, files: list[pathlib.Path]) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._parent, child = context.Pipe()
        self._process = context.Process(
            target=serve, args=([str(f) for f in files], child), daemon=True
        )
        self._process.start()
        self.endpoint = self._parent.recv()
        self.storage_options = {
            "key": "bench",
            "secret": "bench",
            "client_kwargs": {"endpoint_url": self.endpoint},
        }

    def _get(self, path: str) -> dict[str, Any]:
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.endpoint}{path}") as answer:
            return json.loads(answer.read())

    def set_latency(self, seconds: float) -> None:
        self._get(f"/__latency__/{seconds}")

    @contextlib.contextmanager
    def counting(self, key: str) -> Iterator[dict[str, int]]:
        self._get(f"/__stats__/{key}")
        out: dict[str, int] = {}
        yield out
        out.update(self._get(f"/__stats__/{key}"))

    def stop(self) -> None:
        self._parent.send("stop")
        self._process.join(timeout=30)


# ---------------------------------------------------------------------------- cases
def extract_seconds(
    source: str, storage_options: dict | None, seeds: Any = SEEDS
) -> tuple[float, np.ndarray]:
    import lazyspheres as ls

    started = time.perf_counter()
    values = ls.extract(source, seeds, RADIUS, storage_options=storage_options).values
    return time.perf_counter() - started, values


def best_of(repeat: int, function: Any) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        seconds, result = function()
        best = min(best, seconds)
    return best, result


def sparse_seeds() -> np.ndarray:
    """8 of the Power 264 seeds, spread over the brain: a small network of interest."""
    from lazyspheres.seeds import load_seeds

    coords, _ = load_seeds(SEEDS)
    return coords[:: len(coords) // 8][:8]


def run(args: argparse.Namespace) -> None:
    from lazyspheres.io import remote

    files = ensure_data(args.data, args.volumes)
    server = Server(list(files.values()))
    options = server.storage_options
    cases = [
        ("nii_gz", files[".nii.gz"], SEEDS),
        ("nii", files[".nii"], SEEDS),
        ("nii_8seeds", files[".nii"], sparse_seeds()),
    ]
    try:
        for latency_ms in args.latency_ms:
            server.set_latency(latency_ms / 1000)
            tag = "" if not latency_ms else f"_latency{latency_ms:g}ms"
            for name, path, seeds in cases:
                url = f"s3://{BUCKET}/{path.name}"
                local_s, local_values = best_of(
                    args.repeat, lambda p=path, s=seeds: extract_seconds(str(p), None, s)
                )
                with server.counting(path.name) as fetched:
                    remote_s, remote_values = extract_seconds(url, options, seeds)
                if args.repeat > 1:
                    again = best_of(
                        args.repeat - 1, lambda u=url, s=seeds: extract_seconds(u, options, s)
                    )
                    remote_s = min(remote_s, again[0])
                np.testing.assert_array_equal(remote_values, local_values)
                size = path.stat().st_size
                print(
                    f"cloud_{name}{tag}_time: {remote_s / local_s:.2f} "
                    f"(s3 {remote_s:.2f} s / local {local_s:.2f} s)"
                )
                print(
                    f"cloud_{name}{tag}_bytes: {fetched['bytes'] / size:.3f} "
                    f"(fetched {fetched['bytes'] / 1e6:.1f} MB / object {size / 1e6:.1f} MB, "
                    f"{fetched['requests']} GETs)",
                    flush=True,
                )
        if args.sweep:
            server.set_latency(args.sweep_latency_ms / 1000)
            sweep(files[".nii.gz"], options, remote, args.repeat)
    finally:
        server.stop()


def sweep(path: pathlib.Path, options: dict, remote: Any, repeat: int) -> None:
    """Time the .nii.gz stream with other block sizes and prefetch depths."""
    url = f"s3://{BUCKET}/{path.name}"
    default = (remote.STREAM_BLOCK_BYTES, remote.STREAM_PREFETCH)
    base, _ = best_of(repeat, lambda: extract_seconds(url, options))
    for block_mb in (4, 8, 16, 32):
        for depth in (1, 2, 4, 8):
            remote.STREAM_BLOCK_BYTES, remote.STREAM_PREFETCH = block_mb * 2**20, depth
            seconds, _ = best_of(repeat, lambda: extract_seconds(url, options))
            print(
                f"stream_{block_mb}MB_x{depth}: {seconds / base:.2f} "
                f"({seconds:.2f} s / default {base:.2f} s)",
                flush=True,
            )
    remote.STREAM_BLOCK_BYTES, remote.STREAM_PREFETCH = default


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=HERE.parent / "bench-data")
    parser.add_argument("--volumes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0])
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--sweep-latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    run(args)


if __name__ == "__main__":
    main()
