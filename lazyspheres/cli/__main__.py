"""``python -m lazyspheres.cli``."""

from __future__ import annotations

import sys

from lazyspheres.cli.app import main

if __name__ == "__main__":  # importing the module (e.g. doctest discovery) must not run it
    sys.exit(main())
