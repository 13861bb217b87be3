"""s3rver 3.7.1 (npm) on loopback: a real S3-compatible server whose range GETs cost O(range).

Used by the cloud tests and by ``benchmarks/bench_cloud.py`` (which puts ``tests/`` on its
path), so this module imports neither pytest nor lazyspheres.

s3rver is installed once with npm into ``$LAZYSPHERES_S3RVER_DIR`` (default
``~/.cache/lazyspheres-s3rver``, outside the repository) and started as
``node .../s3rver/bin/s3rver.js -d DIR -p PORT -a 127.0.0.1 --silent``. It checks request
signatures against its one built-in key pair, ``S3RVER``/``S3RVER``. Every server started
here is stopped on ``with`` exit, by :meth:`S3rver.stop`, or at interpreter exit.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

VERSION = "3.7.1"
CREDENTIALS = {"key": "S3RVER", "secret": "S3RVER"}
START_TIMEOUT = 30.0  # seconds for node to listen; s3rver starts in well under a second
INSTALL_TIMEOUT = 300.0


def install_dir() -> pathlib.Path:
    """Where s3rver's npm project lives (``$LAZYSPHERES_S3RVER_DIR`` overrides)."""
    default = pathlib.Path.home() / ".cache" / "lazyspheres-s3rver"
    return pathlib.Path(os.environ.get("LAZYSPHERES_S3RVER_DIR", default))


def ensure_installed() -> pathlib.Path:
    """The path of ``s3rver.js``, installing s3rver with npm first if it is missing.

    Raises
    ------
    RuntimeError
        If node or npm is not on PATH, or the install fails: the message says what to run.
    """
    folder = install_dir()
    script = folder / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    if script.exists():
        return script
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"{tool} is not on PATH, and the cloud tests need s3rver {VERSION} from npm. "
                "Install Node.js and npm (Debian: apt-get install -y nodejs npm), or run "
                f"`npm install --prefix {folder} s3rver@{VERSION}` on a machine that has them."
            )
    folder.mkdir(parents=True, exist_ok=True)
    command = ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund"]
    command += ["--loglevel=error", f"s3rver@{VERSION}"]
    with open(folder / ".install.lock", "w") as lock:  # xdist workers install it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if script.exists():
            return script
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
    if done.returncode != 0 or not script.exists():
        raise RuntimeError(
            f"`{' '.join(command)}` failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
        )
    return script


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class S3rver:
    """One s3rver process on 127.0.0.1 with its own data directory and one bucket.

    Parameters
    ----------
    bucket : str
        Created once the server listens.
    directory : path, optional
        s3rver's data directory; a fresh temporary one (removed on stop) by default.
    """

    def __init__(self, bucket: str = "bench", directory: Any = None) -> None:
        self.bucket = bucket
        self._own_dir = directory is None
        self.directory = pathlib.Path(directory or tempfile.mkdtemp(prefix="s3rver-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._start()
        atexit.register(self.stop)
        try:
            self.create_bucket(bucket)
        except BaseException:
            self.stop()
            raise

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def storage_options(self, endpoint: str | None = None) -> dict[str, Any]:
        """s3fs options for this server, or for ``endpoint`` (a proxy in front of it)."""
        return {
            **CREDENTIALS,
            "client_kwargs": {"endpoint_url": endpoint or self.endpoint},
        }

    def filesystem(self, endpoint: str | None = None, **options: Any) -> Any:
        """A fresh s3fs client (through ``endpoint`` if given; ``options`` added)."""
        import s3fs

        merged = {**self.storage_options(endpoint), **options}
        return s3fs.S3FileSystem(skip_instance_cache=True, **merged)

    def _start(self) -> None:
        script = ensure_installed()
        last = ""
        for _ in range(3):  # another process may take the free port before node binds it
            self.port = free_port()
            command = ["node", str(script), "-d", str(self.directory), "-p", str(self.port)]
            command += ["-a", "127.0.0.1", "--silent"]
            self._process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            last = self._wait_ready()
            if not last:
                return
            self._kill()
        raise RuntimeError(f"s3rver did not start on 127.0.0.1: {last}")

    def _wait_ready(self) -> str:
        """'' once the server answers HTTP; otherwise why not (bounded by START_TIMEOUT)."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = (
                    self._process.stderr.read().decode(errors="replace")
                    if self._process.stderr
                    else ""
                )
                return f"node exited with {self._process.returncode}: {error[-1000:]}"
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=2):
                    return ""
            except urllib.error.HTTPError:
                return ""  # any HTTP answer (403 unsigned) means it listens
            except OSError:
                time.sleep(0.05)
        return f"no answer within {START_TIMEOUT:g} s"

    def create_bucket(self, name: str) -> None:
        """Create a bucket (directly, not through any proxy)."""
        self.filesystem().mkdir(name)

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()

    def stop(self) -> None:
        """Stop the server and remove its temporary data directory (idempotent)."""
        self._kill()
        self._process = None
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> S3rver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # .ci/run installs s3rver up front: python3 tests/s3rver_server.py
    print(ensure_installed())
