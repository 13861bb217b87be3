"""``python -m lazyspheres.cli``."""

from __future__ import annotations

import sys

from lazyspheres.cli.app import main

sys.exit(main())
