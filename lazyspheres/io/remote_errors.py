"""Translate fsspec/s3fs/gcsfs/HTTP errors into messages naming the URL and the fix.

A missing object becomes ``FileNotFoundError("File not found: '<url>' ...")`` (nilearn's
phrase); a refusal, ``PermissionError`` saying what to set for that store (``anon`` for a
public S3 bucket, credentials, endpoint); missing credentials, the same; an object that
changed or vanished after it was opened, :class:`~lazyspheres.errors.SourceChangedError`;
a TLS failure (untrusted certificate), :class:`~lazyspheres.errors.RemoteReadError` saying
so (fsspec's HTTP filesystem reports it as a missing file). :func:`is_transient` tells the
retry loop (:mod:`lazyspheres.io.remote_retry`) which faults are worth another attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from lazyspheres.errors import LazySpheresError, RemoteReadError, SourceChangedError

if TYPE_CHECKING:
    from lazyspheres.io._types import OptionsLike

__all__ = ["is_transient", "translate", "translated_errors"]

# Exception class names (botocore, google-auth) meaning "no credentials to sign with".
_NO_CREDENTIALS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "DefaultCredentialsError",
    "RefreshError",
}


@contextlib.contextmanager
def translated_errors(
    location: str, storage_options: OptionsLike = (), *, opened: bool = False
) -> Iterator[None]:
    """Re-raise filesystem errors with the URL, the cause and what to set.

    Parameters
    ----------
    location : str
        The URL, for messages.
    storage_options : dict or pairs
        Used to tailor the hints (``anon`` already set or not).
    opened : bool
        Whether the object was seen before: then "not found" means it vanished while being
        read (:class:`SourceChangedError`) rather than a wrong URL (``FileNotFoundError``).
    """
    try:
        yield
    except LazySpheresError:
        raise
    except Exception as error:
        translated = translate(error, location, storage_options, opened=opened)
        if translated is error:
            raise
        raise translated from error


def is_transient(error: BaseException) -> bool:
    """Whether another attempt may succeed: throttling, 5xx, resets, short bodies, timeouts.

    Missing objects, refusals, changed objects and TLS failures repeat identically, so they
    are not transient.
    """
    if isinstance(error, (LazySpheresError, FileNotFoundError, PermissionError)):
        return False
    if _translate(error, "", {}, opened=True) is not None:
        return False  # changed, missing, refused, TLS: the same answer again
    names = {cls.__name__ for cls in type(error).__mro__}
    return isinstance(error, (OSError, asyncio.TimeoutError)) or "ClientError" in names


def translate(
    error: BaseException, location: str, storage_options: OptionsLike = (), *, opened: bool = False
) -> BaseException:
    """The error to raise for ``error`` met reading ``location`` (``error`` itself if none).

    See :func:`translated_errors` for the parameters.
    """
    options = dict(storage_options or {})
    return _translate(error, location, options, opened=opened) or error


def _tls_fault(error: BaseException) -> BaseException | None:
    """The ``ssl`` error behind ``error`` (through causes, contexts and aiohttp's wrappers)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError) or "Certificate" in type(current).__name__:
            return current
        pending += [current.__cause__, current.__context__]
        pending += [getattr(current, name, None) for name in ("certificate_error", "os_error")]
    return None


def _translate(
    error: BaseException, location: str, options: Mapping[str, object], *, opened: bool
) -> BaseException | None:
    name = type(error).__name__
    text = str(error) or name
    tls = _tls_fault(error)
    if tls is not None:
        return RemoteReadError(
            f"{location}: the TLS connection failed, the server's certificate was not "
            f"accepted ({tls}). If the server is trusted, point SSL_CERT_FILE at the CA "
            "bundle that signed its certificate (for S3-compatible stores also "
            "storage_options={'client_kwargs': {'verify': 'ca.pem'}})."
        )
    if name == "FileExpired" or "PreconditionFailed" in text or "Precondition Failed" in text:
        return SourceChangedError(
            f"{location} changed while it was being read ({text}). Its bytes now belong to "
            "another version of the object; open it again to read the new version."
        )
    if name in _NO_CREDENTIALS:
        return PermissionError(
            f"{location}: no credentials were found to sign the request ({text}). "
            + _access_hint(location, options)
        )
    status = getattr(error, "status", None) or getattr(error, "code", None)
    if isinstance(error, PermissionError) or status in (401, 403):
        return PermissionError(
            f"{location}: access denied ({text}). " + _access_hint(location, options)
        )
    if isinstance(error, FileNotFoundError) or status == 404:
        if opened:
            return SourceChangedError(
                f"{location} no longer exists: it was deleted or moved after it was opened "
                f"({text}). Check the URL, or open it again if it was replaced."
            )
        return FileNotFoundError(f"File not found: '{location}' ({text}).")
    return None


def _access_hint(location: str, options: Mapping[str, object]) -> str:
    protocol = location.split("::")[-1].split("://")[0].lower()
    if protocol in ("s3", "s3a"):
        public = (
            "The object is refused even anonymously; it is not public. "
            if options.get("anon")
            else "For a public bucket (e.g. OpenNeuro's), pass storage_options={'anon': True}. "
        )
        return (
            public + "Otherwise give credentials allowed to read it: AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment, or "
            "storage_options={'key': ..., 'secret': ...}; for another S3-compatible store "
            "also storage_options={'client_kwargs': {'endpoint_url': ...}}."
        )
    if protocol in ("gs", "gcs"):
        return (
            "For a public bucket pass storage_options={'token': 'anon'}; otherwise set "
            "GOOGLE_APPLICATION_CREDENTIALS or storage_options={'token': 'key.json'}."
        )
    if protocol in ("http", "https"):
        return (
            "The server refused the request; pass what it needs through storage_options "
            "(e.g. {'headers': {'Authorization': ...}} or {'client_kwargs': {'auth': ...}})."
        )
    return "Check the credentials given in storage_options."
