"""Run the README and every executed docs page in fresh venvs holding only the extras they name.

Usage::

    python benchmarks/check_docs_fresh.py                 # every page; a table at the end
    python benchmarks/check_docs_fresh.py --pages cli.md cloud.md --keep /tmp/venvs

For each distinct set of extras the pages name (their "This page needs ..." note, read by
``tests/test_docs.py``'s own parser), a new venv is made from this interpreter's base Python
and ``pip install "<repo>[<extras>]" <other packages>`` is run in it, as a reader would
(non-editable, from pip's configured indexes). Pages that name the same extras share that
venv: they install nothing themselves, so a venv per page would hold the same packages.

Each page's code cells (found as ``tests/test_docs.py`` finds them) then run in order, in
one fresh interpreter of that venv, in an empty temporary folder (as myst-nb runs them with
``nb_execution_in_temp``). What a notebook kernel adds is mimicked: the last expression of a
cell is evaluated and ``repr``-ed, ``!command`` lines run in a shell with the venv's
``bin/`` first on ``PATH`` (a failing command is printed, not raised, as in IPython), and
``%time statement`` runs the statement. A cell that raises fails the page.

The README: its first command (``pip install ".[fast]" && lazyspheres demo``) runs with
``.`` spelled as the repository's path, and its Python example runs in a folder where the
file it names was generated (a small run, as ``tests/test_readme.py`` does). Its second
command is the test suite, which CI runs (``.ci/run``), so it is not repeated here.

Prints a table: page, extras, result, seconds (install time shown separately per venv).
Exit status 1 if any page fails.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_docs import _executed, _named_extras, _pages  # noqa: E402  (the tests' parsers)

# Runs inside the fresh venv: executes the cells of one page, given as JSON on stdin.
_RUNNER = r"""
import ast, json, os, subprocess, sys

def shell(command):
    done = subprocess.run(command, shell=True)
    if done.returncode:
        print(f"[exit {done.returncode}] {command}", flush=True)

def kernel_code(cell):
    lines = []
    for line in cell.splitlines():
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("!"):
            line = f"{indent}__shell__({stripped[1:]!r})"
        elif stripped.startswith("%time "):
            line = indent + stripped[len("%time "):]
        lines.append(line)
    return "\n".join(lines)

namespace = {"__name__": "__main__", "__shell__": shell}
for number, cell in enumerate(json.load(sys.stdin), 1):
    tree = ast.parse(kernel_code(cell), filename=f"cell {number}")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, f"cell {number}", "exec"), namespace)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), f"cell {number}", "eval"), namespace)
        if value is not None:
            repr(value)
    print(f"cell {number} ok", flush=True)
"""


def _cells(text: str) -> list[str]:
    """The page's code cells, without their option lines (``:tags: ...``)."""
    cells = re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.S)
    out = []
    for cell in cells:
        cell = re.sub(r"\A---\n.*?\n---\n", "", cell, flags=re.S)
        out.append("\n".join(line for line in cell.splitlines() if not re.match(r":\w+:", line)))
    return out


def _make_venv(
    where: pathlib.Path, extras: set[str], pins: list[str]
) -> tuple[pathlib.Path, float, str]:
    """A venv with ``<repo>[extras]``, the named packages and ``pins``; python, seconds, log."""
    start = time.perf_counter()
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    python = where / "bin" / "python"
    # the bundled pip of Python 3.11 (23.x) gives up on the cloud extras where pip 26
    # resolves them; a user's first step (and .ci/run's) is to upgrade it
    subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    own = sorted(e for e in extras if "[" not in e)
    others = sorted(e for e in extras if "[" in e)
    target = f"{ROOT}[{','.join(own)}]" if own else str(ROOT)
    done = subprocess.run(
        [python, "-m", "pip", "install", "-q", target, *others, *pins],
        capture_output=True,
        text=True,
    )
    log = done.stdout + done.stderr
    if done.returncode:
        raise RuntimeError(f"pip install {target} {' '.join(others)} failed:\n{log}")
    return python, time.perf_counter() - start, log


def _run(python: pathlib.Path, cells: list[str], cwd: pathlib.Path) -> tuple[bool, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    done = subprocess.run(
        [python, "-c", _RUNNER],
        input=json.dumps(cells),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=900,
    )
    return done.returncode == 0, done.stdout + done.stderr


def _readme_cells() -> list[str]:
    text = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.+?)\n```", text, flags=re.S)
    demo = re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)[0].strip()
    # the demo command runs as printed, with "." (the repository) spelled as its path
    demo = demo.replace('".[', f'"{ROOT}[')
    setup = (
        "import subprocess\n"
        f"assert subprocess.run({demo!r}, shell=True).returncode == 0\n"
        "from lazyspheres import datasets\n"
        "datasets.write_bold('sub-01_task-rest_bold.nii.gz', n_volumes=8, shape=(30, 36, 30))"
    )
    return [setup, example]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", nargs="*", help="page file names to run (default: all)")
    parser.add_argument("--keep", type=pathlib.Path, help="keep the venvs in this folder")
    parser.add_argument("--log", type=pathlib.Path, help="write every page's output here")
    parser.add_argument(
        "--cloud-pins",
        nargs="*",
        default=[],
        help="requirements added to venvs with the cloud extra, when pip cannot resolve "
        "it alone (e.g. fsspec==2026.7.0 s3fs==2026.7.0 gcsfs==2026.7.0)",
    )
    args = parser.parse_args(argv)

    pages: list[tuple[str, set[str], list[str]]] = [("README.md", {"fast"}, _readme_cells())]
    for page in _pages():
        if not _executed(page):
            continue
        text = page.read_text()
        named = _named_extras(text) or set()  # index.md names none: lazyspheres alone
        pages.append((page.relative_to(ROOT).as_posix(), named, _cells(text)))
    if args.pages:
        pages = [p for p in pages if pathlib.Path(p[0]).name in args.pages]

    work = pathlib.Path(tempfile.mkdtemp(prefix="docs-fresh-"))
    venv_root = args.keep or work / "venvs"
    made: dict[frozenset[str], tuple[pathlib.Path, float]] = {}
    rows, logs = [], []
    for name, extras, cells in pages:
        key = frozenset(extras)
        label = ",".join(sorted(extras)) or "(none)"
        if key not in made:
            where = venv_root / (label.replace("[", "_").replace("]", "").replace(",", "+"))
            try:
                pins = args.cloud_pins if "cloud" in extras else []
                made[key] = _make_venv(where, extras, pins)[:2]
            except RuntimeError as error:
                rows.append((name, label, "install failed", 0.0, 0.0))
                logs.append(f"===== {name}\n{error}")
                continue
        python, install_s = made[key]
        cwd = pathlib.Path(tempfile.mkdtemp(dir=work))
        start = time.perf_counter()
        ok, output = _run(python, cells, cwd)
        seconds = time.perf_counter() - start
        rows.append((name, label, "ok" if ok else "FAILED", seconds, install_s))
        logs.append(f"===== {name} ({label}): {'ok' if ok else 'FAILED'}\n{output}")
        print(f"{name}: {'ok' if ok else 'FAILED'} in {seconds:.0f} s", flush=True)
        if not ok:
            print(output[-3000:], flush=True)
    if args.log:
        args.log.write_text("\n".join(logs))
    print("\n| page | extras | result | run s | venv install s |")
    print("|---|---|---|---|---|")
    for name, label, result, seconds, install_s in rows:
        print(f"| {name} | {label} | {result} | {seconds:.0f} | {install_s:.0f} |")
    return 0 if all(r[2] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
