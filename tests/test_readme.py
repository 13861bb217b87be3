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


def test_readme_python_example_runs(tmp_path):
    """The README's Python example runs as printed, on a small generated run."""
    from lazyspheres import datasets

    text = (ROOT / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.+?)\n```", text, flags=re.S)
    path = datasets.write_bold(
        tmp_path / "sub-01_task-rest_bold.nii.gz", n_volumes=8, shape=(30, 36, 30)
    )
    namespace: dict = {}
    exec(code.replace('"sub-01_task-rest_bold.nii.gz"', repr(str(path))), namespace)
    signals = namespace["signals"]
    assert signals.dims == ("time", "seed")
    assert signals.sizes == {"time": 8, "seed": 264}
