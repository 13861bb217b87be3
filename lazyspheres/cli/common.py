"""Helpers shared by the ``lazyspheres`` commands and their parser (no import of either)."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lazyspheres._types import StorageOptions

__all__ = ["add_storage_options", "distributed_log_level", "storage_options", "version"]


def version() -> str:
    """``lazyspheres X.Y.Z``."""
    import lazyspheres

    return f"lazyspheres {lazyspheres.__version__}"


def storage_options(pairs: list[str]) -> StorageOptions:
    """``--storage-option KEY=VALUE`` pairs as a dict (values parsed as JSON when they can be)."""
    options: StorageOptions = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--storage-option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def add_storage_options(parser: argparse.ArgumentParser) -> None:
    """The repeatable ``--storage-option KEY=VALUE`` argument."""
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fsspec option for URLs, e.g. anon=true (repeatable; values parsed as JSON)",
    )


def distributed_log_level(verbose: int) -> int:
    """Level of ``distributed``'s loggers: quiet (ERROR) unless -v."""
    return [logging.ERROR, logging.WARNING, logging.INFO][min(verbose, 2)]
