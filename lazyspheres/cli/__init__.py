"""The ``lazyspheres`` command line: ``demo``, ``info`` and ``extract``.

``parser`` builds the argument parser (with the examples ``--help`` prints, each run by the
test suite); ``app`` holds the commands and :func:`main`. ``python -m lazyspheres.cli`` and
the ``lazyspheres`` script both call :func:`main`.
"""

from __future__ import annotations

from lazyspheres.cli.app import main
from lazyspheres.cli.parser import build_parser

__all__ = ["build_parser", "main"]
