"""The shaping proxy in its own process, so that relaying never competes for the GIL.

A network's work happens outside the reading process; run in-process, the proxy's threads
would take the GIL from the reader (hundreds of MB relayed in Python) and slow down exactly
the code being measured. :class:`ProxyProcess` offers the parts of
:class:`shaping_proxy.Proxy` the benchmark uses (``endpoint``, ``watch``, ``errors``,
``stop``), over a pipe.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator
from dataclasses import astuple
from typing import Any

from shaping_proxy import Proxy, Request


def _serve(connection: Any, upstream: str, bucket: str, options: dict[str, Any]) -> None:
    with Proxy(upstream, bucket, **options) as proxy:
        connection.send(proxy.endpoint)
        while True:
            command, argument = connection.recv()
            if command == "mark":
                connection.send(len(proxy.log))
            elif command == "since":
                connection.send(([astuple(r) for r in proxy.log[argument:]], proxy.errors))
            else:
                connection.send(None)
                return


class ProxyProcess:
    """A :class:`~shaping_proxy.Proxy` (same arguments) running in a child process."""

    def __init__(self, upstream: str, bucket: str = "", **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, upstream, bucket, options), daemon=True
        )
        self._process.start()
        if not self._pipe.poll(60):
            self._process.kill()
            raise RuntimeError("the proxy process did not start within 60 s")
        self.endpoint: str = self._pipe.recv()
        self.errors: list[str] = []

    def _ask(self, command: str, argument: Any = None) -> Any:
        self._pipe.send((command, argument))
        return self._pipe.recv()

    @contextlib.contextmanager
    def watch(self) -> Iterator[list[Request]]:
        """The requests answered inside the ``with`` block (filled in on exit)."""
        mark = self._ask("mark")
        seen: list[Request] = []
        yield seen
        records, self.errors = self._ask("since", mark)
        seen.extend(Request(*record) for record in records)

    def stop(self) -> None:
        """Stop the proxy and its process (idempotent)."""
        if self._process.is_alive():
            with contextlib.suppress(OSError, EOFError):
                self._ask("stop")
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout=10)

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
