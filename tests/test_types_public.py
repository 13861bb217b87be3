"""Typed user code type-checks against the public signatures of the masker and the cleaning.

``typing_usage.py`` calls them as a user would, with ``assert_type`` on what they return
(``clean`` gives back the kind of signals it is given; the masker nilearn's types) and
``type: ignore`` on calls they must refuse. An ``Any`` or a loosened parameter type makes
mypy fail (``assert_type`` is exact; ``warn_unused_ignores`` flags a refusal that is gone).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_public_signatures_type_user_code():
    # MYPYPATH: the package of this checkout, not an installed copy
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "tests/typing_usage.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
