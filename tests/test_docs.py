"""The documentation builds warning-free with every page executed, and docstring examples run.

* ``test_docs_build``: ``sphinx -W --keep-going`` over ``docs/`` into a temporary folder.
  myst-nb executes every code cell of every page in a fresh kernel (a failing cell fails the
  build), so the user guide, the getting-started page and the "Differences from nilearn"
  numbers are recomputed on each run and cannot rot.
* ``test_docstring_examples``: the ``Examples`` sections of every lazyspheres module, run as
  doctests (examples that cannot run offline are marked ``+SKIP`` in the source).
* ``test_no_static_python_examples``: Python examples in the docs are executed cells, never
  static code blocks that nothing runs.
"""

from __future__ import annotations

import doctest
import importlib
import os
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import lazyspheres

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _pages() -> list[pathlib.Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


def _executed(page: pathlib.Path) -> bool:
    return page.read_text().startswith("---\nfile_format: mystnb")


@pytest.mark.slow
def test_docs_build(tmp_path):
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel's inline (Agg-based) backend embeds figures
    env["PYTHONHASHSEED"] = "0"
    # `!lazyspheres ...` cells run the console script installed next to this interpreter
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        "-d",
        str(tmp_path / "doctrees"),
        str(DOCS),
        str(tmp_path / "html"),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, f"sphinx failed:\n{result.stdout}\n{result.stderr}"
    # Every page was written, and every executed page shows outputs.
    for page in _pages():
        html = tmp_path / "html" / page.relative_to(DOCS).with_suffix(".html")
        assert html.is_file(), f"{page} was not built"
        if _executed(page):
            text = html.read_text()
            assert 'class="cell_output' in text, f"{page}: no executed output in the page"
            assert "Traceback" not in text, f"{page}: a cell printed a traceback"


def test_executed_pages_exist():
    executed = [p.relative_to(DOCS).as_posix() for p in _pages() if _executed(p)]
    assert "getting_started.md" in executed
    assert "differences.md" in executed


def test_no_static_python_examples():
    # Python shown in the docs must be an executed {code-cell}; shell commands are ```bash.
    offenders = [
        str(page.relative_to(ROOT))
        for page in _pages()
        if re.search(r"^```(python|py|pycon|ipython3?)\s*$", page.read_text(), flags=re.M)
    ]
    assert not offenders, f"static Python code blocks (make them code cells): {offenders}"


def _modules() -> list[str]:
    names = ["lazyspheres"]
    for info in pkgutil.walk_packages(lazyspheres.__path__, prefix="lazyspheres."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples(module_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    tests = [t for t in finder.find(module, module_name) if t.examples]
    # Only examples defined in this module (not re-exported objects from elsewhere).
    tests = [t for t in tests if t.filename and pathlib.Path(t.filename) == _file(module)]
    report: list[str] = []
    for test in tests:
        result = runner.run(test, out=report.append)
        assert result.failed == 0, "".join(report)


def _file(module) -> pathlib.Path | None:
    return pathlib.Path(module.__file__) if getattr(module, "__file__", None) else None
