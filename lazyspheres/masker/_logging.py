"""Verbose messages of the masker, worded and prefixed as nilearn 0.12.1 prints them.

nilearn prints ``[<Class>.<method>] <message>`` on stdout when ``verbose >= 1``. Its
transform-time messages carry the method name ``wrapped`` (the name of scikit-learn's output
wrapper around ``transform``); we print the same prefix so that logs read the same.
"""

from __future__ import annotations

import collections.abc
import os
import sys
import warnings
from typing import Any

__all__ = ["describe_images", "log", "short_path", "warn"]

# nilearn shortens file names longer than this many characters, and folder chains to fit it.
_TRUNCATE = 20
# nilearn prints at most this many items of a list of images in full.
_LIST_MAX_DISPLAY = 3


def log(masker: Any, method: str, message: str, verbose: Any) -> None:
    """Print ``[ClassName.method] message`` if ``verbose >= 1``.

    Parameters
    ----------
    masker : object
        The estimator (its class name is printed).
    method : str
        Method name shown in the prefix.
    message : str
        The message.
    verbose : int or bool
        The estimator's verbosity.
    """
    if verbose is None or verbose < 1:
        return
    print(f"[{type(masker).__name__}.{method}] {message}")


def short_path(path: Any) -> str:
    """A file name shortened the way nilearn's verbose messages shorten it.

    A name longer than 20 characters is cut to its first 18 characters plus ``...``;
    otherwise parent folders are prepended while the result stays short, and ``...``
    stands for the rest.
    """
    text = os.fspath(path)
    parts = [p for p in text.replace("\\", "/").split("/") if p != ""]
    name = parts[-1] if parts else text
    if len(name) > _TRUNCATE:
        return f"{name[: _TRUNCATE - 2]}..."
    shown = name
    anchored = text.startswith("/")
    parents = parts[:-1][::-1] + (["/"] if anchored else [])
    for parent in parents:
        if len(shown) + len(parent) < _TRUNCATE - 3:
            shown = parent + shown if parent == "/" else f"{parent}/{shown}"
        else:
            return f".../{shown}"
    return shown


def describe_images(imgs: Any, verbose: int) -> str:
    """How an input is named in "Loading data from ..." / "Loading mask from ...".

    At verbose 1 this is ``repr(imgs)``; at higher levels nilearn's shortened form: file
    names shortened, images from files as ``Nifti1Image('name')``, in-memory images by
    shape and affine, long lists by their first and last items.
    """
    if verbose <= 1:
        return repr(imgs)
    return _short_repr(imgs)


def _short_repr(imgs: Any) -> str:
    if isinstance(imgs, str | os.PathLike):
        return short_path(imgs)
    if isinstance(imgs, collections.abc.Sequence) and not isinstance(imgs, bytes):
        items = list(imgs)
        if len(items) > _LIST_MAX_DISPLAY:
            return f"[{_short_repr(items[0])},\n         ...\n {_short_repr(items[-1])}]"
        return f"[{', '.join(_short_repr(item) for item in items)}]"
    get_filename = getattr(imgs, "get_filename", None)
    if callable(get_filename):
        filename = get_filename()
        name = type(imgs).__name__
        if filename is not None:
            return f"{name}('{short_path(filename)}')"
        return f"{name}(\nshape={imgs.shape!r},\naffine={imgs.affine!r}\n)"
    return short_path(repr(imgs))


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn, attributing the warning to the first caller outside lazyspheres.

    Like nilearn's ``find_stack_level``: the user sees their own line, and warnings filters
    on lazyspheres' modules do not catch warnings meant for users.
    """
    frame = sys._getframe(1)  # our caller is at stacklevel 2
    level = 2
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != "lazyspheres" and not module.startswith("lazyspheres."):
            break
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
