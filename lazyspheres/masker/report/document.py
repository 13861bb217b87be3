"""``HTMLReport``: a self-contained HTML page (figures embedded as base64 PNG).

Same use as nilearn's report object: shown inline in Jupyter (``_repr_html_``), written
with :meth:`HTMLReport.save_as_html`, opened with :meth:`HTMLReport.open_in_browser`, or
embedded with :meth:`HTMLReport.get_iframe`.
"""

from __future__ import annotations

import contextlib
import html
import os
import tempfile
import threading
import webbrowser
from pathlib import Path

__all__ = ["HTMLReport"]

STYLE = """
.lazyspheres-report { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
  color: #222; max-width: 1200px; margin: 0 auto; }
.lazyspheres-report h1 { font-size: 1.5em; margin-bottom: 0.2em; }
.lazyspheres-report .docstring { color: #555; white-space: pre-wrap; }
.lazyspheres-report .warning { background: #fff3cd; border: 1px solid #e0c36a;
  padding: 0.5em 1em; margin: 0.5em 0; white-space: pre-wrap; }
.lazyspheres-report .carousel-nav { display: flex; align-items: center; gap: 1em;
  margin: 0.5em 0; }
.lazyspheres-report .carousel-nav button { padding: 0.4em 1.2em; font-size: 1em; }
.lazyspheres-report .carousel-nav span { font-weight: bold; min-width: 8em;
  text-align: center; }
.lazyspheres-report img { max-width: 100%; height: auto; }
.lazyspheres-report table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
.lazyspheres-report th, .lazyspheres-report td { border: 1px solid #ccc; padding: 0.25em 0.6em;
  text-align: left; }
.lazyspheres-report th { background: #f0f0f0; }
.lazyspheres-report summary { cursor: pointer; font-weight: bold; margin: 0.6em 0; }
"""


class HTMLReport:
    """An HTML report.

    Parameters
    ----------
    body : str
        The report's HTML fragment (styles included), shown inline in notebooks.
    title : str
        Page title.

    Attributes
    ----------
    body : str
        The fragment.
    title : str
        The title.
    width, height : int
        Default iframe size (pixels) for :meth:`get_iframe`.
    """

    def __init__(self, body: str, title: str) -> None:
        self.body = body
        self.title = title
        self.width = 1200
        self.height = 900
        self._temp_file: str | None = None

    def get_standalone(self) -> str:
        """The complete HTML document."""
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="UTF-8">\n'
            f"<title>{html.escape(self.title)}</title>\n</head>\n<body>\n{self.body}\n"
            "</body>\n</html>\n"
        )

    def _repr_html_(self) -> str:
        """Inline display in Jupyter."""
        return self.body

    def __str__(self) -> str:
        return self.body

    def __repr__(self) -> str:
        return f"<HTMLReport {self.title!r} ({len(self.body)} characters)>"

    def get_iframe(self, width: int | None = None, height: int | None = None) -> str:
        """The report in an ``<iframe srcdoc=...>`` element (e.g. for a web page)."""
        width = self.width if width is None else width
        height = self.height if height is None else height
        document = html.escape(self.get_standalone(), quote=True)
        return (
            f'<iframe srcdoc="{document}" width="{width}" height="{height}" '
            'frameBorder="0"></iframe>'
        )

    def save_as_html(self, file_name: str | os.PathLike) -> None:
        """Write the complete document to ``file_name`` (UTF-8)."""
        Path(file_name).write_text(self.get_standalone(), encoding="utf-8")

    def open_in_browser(
        self, file_name: str | os.PathLike | None = None, temp_file_lifetime: float = 30
    ) -> None:
        """Open the report in a web browser.

        Parameters
        ----------
        file_name : path, optional
            Where to write the page; by default a temporary file, deleted after
            ``temp_file_lifetime`` seconds (None keeps it).
        temp_file_lifetime : float or None, default=30
            Seconds before the temporary file is deleted.
        """
        if file_name is None:
            handle, name = tempfile.mkstemp(suffix=".html", prefix="lazyspheres_report_")
            os.close(handle)
            self._temp_file = name
            self.save_as_html(name)
            if temp_file_lifetime is not None:
                timer = threading.Timer(temp_file_lifetime, _remove, args=(name,))
                timer.daemon = True
                timer.start()
        else:
            name = os.fspath(file_name)
            self.save_as_html(name)
        webbrowser.open(Path(name).resolve().as_uri())


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
