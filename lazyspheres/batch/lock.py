"""One writer per result store: an exclusive lock file next to the store.

:func:`extract_many` (and so ``lazyspheres extract --out STORE.zarr``) holds this lock for the
whole batch. A second writer on the same store does not wait: it stops at once with a
:class:`~lazyspheres.errors.StoreBusyError` naming the store, the process holding it, and how
to continue (``--resume`` / ``resume=True`` once the other has finished). Refusing rather than
waiting keeps a mistaken second launch from queueing silently behind hours of work; once the
first has finished, a resume computes only what is missing, so no run is computed twice.

The lock is the file ``<store>.lock`` beside a local store (``results.zarr`` →
``results.zarr.lock``): not inside it, because ``overwrite=True`` empties the store folder and
a new store's folder does not exist yet. It is created atomically (written to a temporary file,
then hard-linked to its name, which fails if the name exists), and holds JSON naming the pid,
host, start time and a random token. A lock left behind by a process that died is *stale*:

* same host, and the pid no longer runs → taken over at once (the takeover renames the
  stale file away first, so two processes cannot both take it);
* another host → kept: a lock cannot tell whether a process on another machine still runs.
  The message says so and names the lock file to delete once that writer is known dead.

Stores given by URL (``s3://``, ``gs://`` ...) or as zarr store objects are not locked: object
stores offer no portable exclusive create through fsspec. Coordinate such writers yourself (one
batch per store), or use a local store.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import json
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeAlias, TypeVar

from lazyspheres.errors import StoreBusyError

__all__ = ["LOCK_SUFFIX", "lock_path", "one_writer", "store_lock"]

LOCK_SUFFIX = ".lock"

P = ParamSpec("P")
R = TypeVar("R")
#: A lock file's JSON record (pid, host, started, token), as read: any JSON.
Holder: TypeAlias = dict[str, object]


def lock_path(store: object) -> Path | None:
    """The lock file of a local store, or ``None`` for stores that are not locked."""
    if not isinstance(store, (str, os.PathLike)):
        return None
    text = os.fspath(store)
    if "://" in text and not text.startswith("file://"):
        return None
    path = Path(text.removeprefix("file://")).absolute()
    return path.with_name(path.name.rstrip("/") + LOCK_SUFFIX)


@contextlib.contextmanager
def store_lock(store: object) -> Iterator[Path | None]:
    """Hold the writer lock of ``store`` for the duration of the ``with`` block.

    Parameters
    ----------
    store : str, os.PathLike or zarr store
        The result store; URLs and store objects are not locked (see the module notes).

    Yields
    ------
    pathlib.Path or None
        The lock file held, or ``None`` when the store is not locked.

    Raises
    ------
    StoreBusyError
        Another live process holds the lock.
    """
    path = lock_path(store)
    if path is None or (path.parent.exists() and not path.parent.is_dir()):
        yield None  # (no folder can hold the store: creating it fails, with its own error)
        return
    token = _acquire(path, store)
    try:
        yield path
    finally:
        _release(path, token)


def one_writer(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a function with a ``store`` argument so that it runs under :func:`store_lock`."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        with store_lock(bound.arguments["store"]):
            return func(*args, **kwargs)

    return locked


def _acquire(path: Path, store: object) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "token": token,
    }
    scratch = path.with_name(f"{path.name}.{token}.tmp")
    scratch.write_text(json.dumps(record))
    try:
        for _ in range(3):  # a stale lock taken over, then a new race: give up after that
            try:
                os.link(scratch, path)  # atomic, and fails if a lock exists
                return token
            except FileExistsError:
                holder = _read(path)
                if not _is_stale(holder):
                    raise StoreBusyError(busy_message(store, path, holder)) from None
                _take_over(path, holder)
        raise StoreBusyError(busy_message(store, path, _read(path)))
    finally:
        scratch.unlink(missing_ok=True)


def _read(path: Path) -> Holder:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {"gone": True}
    except (OSError, ValueError):
        return {}


def _is_stale(holder: Holder) -> bool:
    """Whether the process holding the lock is known to be dead."""
    if holder.get("gone"):
        return True  # released between our attempt and our read: try again
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by another user
    return False


def _take_over(path: Path, holder: Holder) -> None:
    """Move a stale lock aside (only one taker succeeds), so the next link attempt can win."""
    if holder.get("gone"):
        return
    aside = path.with_name(f"{path.name}.stale-{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another process took it over first
    if _read(aside).get("token") != holder.get("token"):
        # A live lock replaced the stale one meanwhile: put it back (unless yet another
        # writer has linked its own since; its holder then keeps that one).
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


def _release(path: Path, token: str) -> None:
    if _read(path).get("token") == token:
        path.unlink(missing_ok=True)


def busy_message(store: object, path: Path, holder: Holder) -> str:
    """What to tell the second writer: who writes the store, and how to continue."""
    who = "another lazyspheres process"
    if holder.get("pid") is not None:
        who += f" (pid {holder['pid']} on {holder.get('host', '?')}"
        who += f", started {holder.get('started', '?')})"
    other_host = holder.get("host") not in (None, socket.gethostname())
    stale_hint = (
        f" If that process is known to have died, delete {path} and resume."
        if other_host
        else f" (A lock whose process has died is removed automatically; the lock is {path}.)"
    )
    return (
        f"The result store {store} is being written by {who}; one writer per store. Wait "
        "for it to finish, then run again with --resume (resume=True in Python) to finish "
        f"or update the store: runs already complete are not computed again.{stale_hint}"
    )
