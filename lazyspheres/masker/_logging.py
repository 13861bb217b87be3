"""Verbose messages of the masker, worded and prefixed as nilearn 0.12.1 prints them.

nilearn prints ``[<Class>.<method>] <message>`` on stdout when ``verbose >= 1``, naming the
outermost scikit-learn estimator method on the call stack (a Pipeline's, when the masker
runs inside one). Its masker's ``transform`` and ``fit_transform`` show as ``wrapped``, the
name of scikit-learn's output wrapper around them. :func:`log` finds the same name.
"""

from __future__ import annotations

import collections.abc
import os
import sys
import warnings
from types import FrameType

from lazyspheres._types import UserInput

__all__ = ["describe_images", "log", "short_path", "warn"]

# nilearn 0.12.1's masker methods wrapped by scikit-learn's set_output machinery
_WRAPPED = {"transform", "fit_transform"}
# our own decorators' frames, which stand for the method they wrap
_DECORATOR_FRAMES = {"wrapper"}
# nilearn truncates file names longer than this many characters, and folder chains to fit it
_TRUNCATE = 20
# nilearn prints at most this many items of a list of images in full
_LIST_MAX_DISPLAY = 3


def log(masker: object, message: str, verbose: int | None) -> None:
    """Print ``[Class.method] message`` if ``verbose >= 1`` (nilearn's prefix).

    Parameters
    ----------
    masker : object
        The estimator logging (named if no estimator method is found on the stack).
    message : str
        The message.
    verbose : int or bool
        The estimator's verbosity.
    """
    if verbose is None or verbose < 1:
        return
    print(f"[{_caller(masker)}] {message}")


def _caller(masker: object) -> str:
    """``Class.method`` of the outermost estimator method on the call stack."""
    from sklearn.base import BaseEstimator

    frames = []
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, BaseEstimator):
            frames.append((owner, frame.f_code.co_name))
        frame = frame.f_back
    if not frames:
        return f"{type(masker).__name__}.wrapped"
    owner, name = frames[-1]
    if name in _DECORATOR_FRAMES:  # the method our decorator wraps, just inside it
        inner = [n for o, n in frames if o is owner and n not in _DECORATOR_FRAMES]
        name = inner[-1] if inner else name
    if owner is masker or type(owner) is type(masker):
        name = "wrapped" if name in _WRAPPED else name
    return f"{type(owner).__name__}.{name}"


def short_path(path: str | os.PathLike[str]) -> str:
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


def describe_images(imgs: object, verbose: int) -> str:
    """How an input is named in "Loading data from ..." / "Loading mask from ...".

    At verbose 1 this is ``repr(imgs)``; at higher levels nilearn's shortened form: file
    names shortened, images from files as ``Nifti1Image('name')``, in-memory images by
    shape and affine, long lists by their first and last items.
    """
    if verbose <= 1:
        return repr(imgs)
    return _short_repr(imgs)


def _short_repr(imgs: UserInput) -> str:
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
    frame: FrameType | None = sys._getframe(1)  # our caller is at stacklevel 2
    level = 2
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        # contextlib: warnings re-emitted when one of our context managers exits
        internal = module in ("lazyspheres", "contextlib") or module.startswith("lazyspheres.")
        if not internal:
            break
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
