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


# What an executed page's cells use that is not a dependency of lazyspheres itself, and the
# extra that installs it (moto is named as its own package: it only serves a local S3).
_OPTIONAL = {
    r"^\s*(import|from) matplotlib|generate_report\(": "report",
    r"^\s*(import|from) nilearn": "nilearn",
    r"^\s*(import|from) s3fs|s3://": "cloud",
    r"^\s*(import|from) moto": "moto[server]",
}


def _named_extras(text: str) -> set[str] | None:
    """Extras a page's note names (``pip install "lazyspheres[a,b]" "moto[server]"``)."""
    note = re.search(r"```\{note\}\nThis page needs (.+?)```", text, flags=re.S)
    if note is None:
        return None
    words = " ".join(note.group(1).split())
    if "lazyspheres only" in words:
        return set()
    install = re.search(r"`pip install ([^`]+)`", words)
    assert install is not None, words
    named = set()
    for package in re.findall(r'"([^"]+)"', install.group(1)):
        if package.startswith("lazyspheres["):
            named |= set(package[len("lazyspheres[") : -1].split(","))
        else:
            named.add(package)
    return named


@pytest.mark.parametrize(
    "page",
    [p for p in _pages() if _executed(p) and p.name != "index.md"],
    ids=lambda p: p.relative_to(DOCS).as_posix(),
)
def test_pages_name_the_extras_they_need(page):
    text = page.read_text()
    named = _named_extras(text)
    assert named is not None, f"{page.name}: no 'This page needs ...' note under its title"
    cells = "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.S))
    needed = {extra for pattern, extra in _OPTIONAL.items() if re.search(pattern, cells, re.M)}
    assert needed <= named, f"{page.name} uses {sorted(needed - named)} but does not name them"
    assert not (named - needed), f"{page.name} names {sorted(named - needed)} it does not use"


def test_all_extra_installs_every_extra_the_docs_name():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    (own,) = [r for r in extras["all"] if r.startswith("lazyspheres[")]
    in_all = set(own[len("lazyspheres[") : -1].split(",")) | {
        r.split(">")[0] for r in extras["all"] if not r.startswith("lazyspheres[")
    }
    for page in _pages():
        named = _named_extras(page.read_text()) or set()
        assert named <= in_all, f"{page.name}: {sorted(named - in_all)} not in lazyspheres[all]"
        assert {n for n in named if "[" not in n} <= set(extras), page.name


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
