"""Sphinx configuration of the lazyspheres documentation.

Build (warnings are errors; every code cell is executed)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

``tests/test_docs.py`` runs the same build into a temporary folder.
"""

from __future__ import annotations

import os
import pathlib
import re

import lazyspheres

ROOT = pathlib.Path(__file__).resolve().parent.parent

project = "lazyspheres"
author = "lazyspheres developers"
copyright = "lazyspheres developers"
release = lazyspheres.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_nb",
]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

# -- API reference -------------------------------------------------------------------------
# Objects are documented by explicit autofunction/autoclass directives (docs/api/*.md); the
# autosummary tables only link to them, so nothing is generated into the source tree.
autosummary_generate = False
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False

# -- MyST / myst-nb --------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# Pages are executed on every build (no cache to go stale), each in a fresh kernel and a
# temporary working directory, so generated data never lands in the source tree. A failing
# cell fails the build.
nb_execution_mode = os.environ.get("LAZYSPHERES_DOCS_EXECUTION", "force")
nb_execution_in_temp = True
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 300
nb_merge_streams = True

# -- HTML ------------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"lazyspheres {release}"
html_theme_options = {
    "description": "Sphere time series from 4D fMRI, lazily, with nilearn's numbers",
    "fixed_sidebar": True,
    "page_width": "1200px",
    "sidebar_width": "220px",
}
html_static_path: list[str] = []


# -- The benchmark table ---------------------------------------------------------------------
# The performance page shows benchmarks/README.md, so the figures live in one place: the
# benchmark harness records them there. The placeholder below is replaced by that file's
# text at build time, its headings moved one level down and its links to files of the
# repository (which are not pages of this site) turned into plain paths; without the file, a
# note says that no results are recorded yet.
_BENCHMARKS_README = ROOT / "benchmarks" / "README.md"
_PLACEHOLDER = "<!-- benchmark-table -->"
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s]+)\)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\((?![a-z][a-z0-9+.-]*:|/)([^)\s]+)\)")


def _benchmark_text(readme: pathlib.Path) -> str:
    lines, fenced = [], False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced:
            if line.startswith("#"):
                line = "#" + line
            line = _LINK.sub(lambda m: f"{m[1]} (`benchmarks/{m[2]}`)", line)
            line = _IMAGE.sub(lambda m: f"![{m[1]}](../benchmarks/{m[2]})", line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _insert_benchmark_table(app, docname: str, source: list[str]) -> None:
    if docname != "performance" or _PLACEHOLDER not in source[0]:
        return
    if _BENCHMARKS_README.is_file():
        block = _benchmark_text(_BENCHMARKS_README)
    else:
        block = (
            "```{note}\nNo benchmark results are recorded yet: `benchmarks/README.md` is "
            "written by the benchmark harness (see below).\n```\n"
        )
    source[0] = source[0].replace(_PLACEHOLDER, block)


def setup(app):
    """Register the build-time hooks of this configuration."""
    app.connect("source-read", _insert_benchmark_table)
