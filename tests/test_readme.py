"""The README's first two commands are the ones CI and users run."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)


def test_readme_starts_with_demo_then_test_command():
    commands = _readme_commands()
    assert len(commands) >= 2
    assert commands[0].strip().endswith("lazyspheres demo")
    assert "pytest" in commands[1]


def test_ci_runs_exactly_the_readme_test_command():
    test_command = _readme_commands()[1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
