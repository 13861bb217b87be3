"""Retries of remote byte ranges: backoff, length checks, a clear error at the end.

The filesystems retry some faults themselves (s3fs and botocore: 503s and dropped
connections while a request is sent), but not a body cut short or reset after its headers
came back, and fsspec's HTTP filesystem retries nothing. :func:`read_ranges` covers those:
ranges that failed with a transient fault (:func:`~lazyspheres.io.remote_errors.
is_transient`) or came back shorter than asked are fetched again, alone, after an
exponential backoff; a fault outlasting the retries raises
:class:`~lazyspheres.errors.RemoteReadError` naming the object, the bytes and the fault.

Knobs: ``LAZYSPHERES_READ_RETRIES`` (further attempts per range, default 4) and
``LAZYSPHERES_READ_BACKOFF`` (seconds before the first retry, doubling after each).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence

from lazyspheres.errors import RemoteReadError
from lazyspheres.io.remote_errors import is_transient

__all__ = ["READ_BACKOFF", "READ_RETRIES", "read_range", "read_ranges"]

READ_RETRIES = 4
READ_BACKOFF = 0.25

Fetch = Callable[[list[int], list[int]], Sequence["bytes | BaseException"]]


def read_ranges(
    fetch: Fetch,
    starts: Sequence[int],
    ends: Sequence[int],
    *,
    location: str,
    size: int | None = None,
) -> list[bytes]:
    """Bytes ``[start, end)`` of each range, fetching failed or short ranges again.

    Parameters
    ----------
    fetch : callable
        ``fetch(starts, ends)`` returns one answer per range (its bytes, or the exception
        met fetching it), or raises (then every range of that call failed).
    starts, ends : sequences of int
        The ranges.
    location : str
        The object, for messages.
    size : int, optional
        The object's size: a range reaching past it is expected to come back short (the
        caller reports the truncation).

    Raises
    ------
    RemoteReadError
        A range still failed after the retries.
    Exception
        A fault that is not transient (missing object, refused access, changed object,
        TLS failure), at once and as raised by ``fetch``.
    """
    starts = [int(s) for s in starts]
    ends = [int(e) for e in ends]
    results: list[bytes | None] = [None] * len(starts)
    todo = list(range(len(starts)))
    retries = int(_knob("READ_RETRIES", int, READ_RETRIES))
    delay = _knob("READ_BACKOFF", float, READ_BACKOFF)
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(delay * (0.5 + random.random()))  # jitter: spread retried requests
            delay *= 2
        failed: list[tuple[int, BaseException | str]] = []
        for index, answer in zip(todo, _call(fetch, todo, starts, ends), strict=True):
            fault = _fault(answer, starts[index], ends[index], size)
            if fault is None:
                # _fault returned None: the answer is the bytes asked for
                results[index] = answer  # type: ignore[assignment]
            elif isinstance(fault, BaseException) and not is_transient(fault):
                raise fault
            else:
                failed.append((index, fault))
        if not failed:
            # no failure left: every slot holds bytes
            return results  # type: ignore[return-value]
        todo = [index for index, _ in failed]
    index, fault = failed[0]
    raise RemoteReadError(
        f"{location}: bytes {starts[index]}-{ends[index]} could not be read after "
        f"{retries + 1} attempts ({len(failed)} range(s) failing); last fault: "
        f"{_describe(fault)}. The network or the server kept failing: try again later, or "
        "raise LAZYSPHERES_READ_RETRIES / LAZYSPHERES_READ_BACKOFF."
    ) from (fault if isinstance(fault, BaseException) else None)


def read_range(
    fetch_one: Callable[[int, int], bytes],
    start: int,
    end: int,
    *,
    location: str,
    size: int | None = None,
) -> bytes:
    """:func:`read_ranges` of one range, fetched by ``fetch_one(start, end)``."""

    def fetch(first: list[int], last: list[int]) -> list[bytes | BaseException]:
        return [fetch_one(first[0], last[0])]

    return read_ranges(fetch, [start], [end], location=location, size=size)[0]


def _call(
    fetch: Fetch, todo: list[int], starts: list[int], ends: list[int]
) -> Sequence[bytes | BaseException]:
    try:
        return fetch([starts[i] for i in todo], [ends[i] for i in todo])
    except Exception as error:  # the whole call failed: so did each of its ranges
        return [error] * len(todo)


def _fault(answer: object, start: int, end: int, size: int | None) -> BaseException | str | None:
    if isinstance(answer, BaseException):
        return answer
    expected = end - start if size is None else max(0, min(end, size) - start)
    got = len(answer)  # type: ignore[arg-type]  # not an exception: the fetched bytes
    if got == expected:
        return None  # (a range past the known end is short by design: the caller says so)
    return f"short body, {got} of {expected} bytes"


def _describe(fault: BaseException | str) -> str:
    if isinstance(fault, str):
        return fault
    return f"{type(fault).__name__}: {fault}" if str(fault) else type(fault).__name__


def _knob(name: str, kind: type, default: float) -> float:
    text = os.environ.get(f"LAZYSPHERES_{name}")
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"LAZYSPHERES_{name}={text!r} is not a number.") from None
