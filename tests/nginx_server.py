"""nginx (Debian's package) serving a folder over HTTPS on loopback, with Range support.

The https:// tests start one with :class:`Nginx`: a self-signed certificate for 127.0.0.1
is generated with ``openssl`` into the server's temporary prefix, and clients trust exactly
that certificate (:meth:`Nginx.ssl_context`). nginx serves static files with
``Accept-Ranges: bytes`` and answers ``Range`` requests with 206, as OpenNeuro's HTTPS
endpoint does. This module imports neither pytest nor lazyspheres.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from typing import Any

START_TIMEOUT = 20.0
CONFIG = """\
{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp_body;
    proxy_temp_path {prefix}/tmp_proxy;
    fastcgi_temp_path {prefix}/tmp_fastcgi;
    uwsgi_temp_path {prefix}/tmp_uwsgi;
    scgi_temp_path {prefix}/tmp_scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {prefix}/cert.pem;
        ssl_certificate_key {prefix}/key.pem;
        root {root};
    }}
}}
"""


def nginx_binary() -> str:
    """nginx's path (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError(
            "nginx is not installed, and the https:// tests need it: "
            "apt-get update && apt-get install -y nginx (.ci/run does this)."
        )
    return found


class Nginx:
    """An nginx master process serving ``root`` at ``https://127.0.0.1:PORT/``.

    Stopped on ``with`` exit, by :meth:`stop`, or at interpreter exit.
    """

    def __init__(self, root: Any) -> None:
        self.root = pathlib.Path(root).resolve()
        self.prefix = pathlib.Path(tempfile.mkdtemp(prefix="nginx-"))
        self._make_certificate()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        user = "user root;" if os.geteuid() == 0 else ""  # workers must read root-owned temps
        config = CONFIG.format(user=user, prefix=self.prefix, port=self.port, root=self.root)
        (self.prefix / "nginx.conf").write_text(config)
        self._process = subprocess.Popen(
            [
                nginx_binary(),
                *("-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")),
                *("-e", str(self.prefix / "error.log")),  # not /var/log (non-root users)
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        atexit.register(self.stop)
        self._wait_ready()

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting this server's self-signed certificate only."""
        return ssl.create_default_context(cafile=str(self.prefix / "cert.pem"))

    def access_log(self) -> list[str]:
        """nginx's access log lines so far (one per request)."""
        path = self.prefix / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def _make_certificate(self) -> None:
        command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        command += ["-keyout", str(self.prefix / "key.pem"), "-out", str(self.prefix / "cert.pem")]
        command += ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"openssl could not make a test certificate:\n{done.stderr}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = self.prefix / "error.log"
                why = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"nginx exited with {self._process.returncode}: {why}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on 127.0.0.1:{self.port} in {START_TIMEOUT} s")

    def stop(self) -> None:
        """Stop nginx (master and worker) and remove its prefix (idempotent)."""
        if self._process.poll() is None:
            self._process.terminate()  # SIGTERM: fast shutdown of master and workers
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
