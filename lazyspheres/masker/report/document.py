"""``HTMLReport``: a self-contained HTML page (figures embedded as base64 SVG).

The public surface of nilearn 0.12.1's report object (``HTMLDocument`` / ``HTMLReport``):
``body``, ``html``, ``width`` / ``height`` (default 800 x 800; an invalid value falls back
to the default with a UserWarning), :meth:`HTMLReport.resize`,
:meth:`HTMLReport.get_iframe`, :meth:`HTMLReport.get_standalone`,
:meth:`HTMLReport.save_as_html`, :meth:`HTMLReport.open_in_browser`, ``str()`` and
``_repr_html_`` (the body). Jupyter shows it as nilearn's: in an iframe of that size.
"""

from __future__ import annotations

import html
import os
import queue
import threading
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from lazyspheres._types import UserInput
from lazyspheres.masker._logging import warn

__all__ = ["HEIGHT_DEFAULT", "WIDTH_DEFAULT", "HTMLReport"]

WIDTH_DEFAULT = 800
HEIGHT_DEFAULT = 800
# How long open_in_browser waits for the browser to fetch the page from the local server.
BROWSER_TIMEOUT_SECONDS = 3.0
_DEPRECATED = object()  # open_in_browser's temp_file_lifetime, when not given

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
    width, height : int, default=800
        Size (pixels) of the iframe of :meth:`get_iframe`.

    Attributes
    ----------
    body : str
        The fragment.
    title : str
        The title.
    """

    def __init__(
        self,
        body: str,
        title: str,
        width: UserInput = WIDTH_DEFAULT,
        height: UserInput = HEIGHT_DEFAULT,
    ) -> None:
        self.body = body
        self.title = title
        self.width = width
        self.height = height

    # ------------------------------------------------------------------ size
    @property
    def width(self) -> int:
        """Iframe width in pixels (an invalid value falls back to 800, with a warning)."""
        return self._width

    @width.setter
    def width(self, value: UserInput) -> None:
        self._width = _pixels(value, "width", WIDTH_DEFAULT)

    @property
    def height(self) -> int:
        """Iframe height in pixels (an invalid value falls back to 800, with a warning)."""
        return self._height

    @height.setter
    def height(self, value: UserInput) -> None:
        self._height = _pixels(value, "height", HEIGHT_DEFAULT)

    def resize(self, width: UserInput, height: UserInput) -> HTMLReport:
        """Set the size of the iframe of :meth:`get_iframe`.

        Parameters
        ----------
        width, height : int
            New size in pixels.

        Returns
        -------
        HTMLReport
            The report itself.
        """
        self.width = width
        self.height = height
        return self

    # ------------------------------------------------------------------ content
    @property
    def html(self) -> str:
        """The complete HTML document (as :meth:`get_standalone`)."""
        return self.get_standalone()

    def get_standalone(self) -> str:
        """The complete HTML document."""
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="UTF-8">\n'
            f"<title>{html.escape(self.title)}</title>\n</head>\n<body>\n{self.body}\n"
            "</body>\n</html>\n"
        )

    def _repr_html_(self) -> str:
        """The body (nilearn's ``_repr_html_``)."""
        return self.body

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        """Jupyter's display, as nilearn's: the page in an iframe of ``width`` x ``height``."""
        del include, exclude
        return {"text/html": self.get_iframe()}

    def __str__(self) -> str:
        return self.body

    def __repr__(self) -> str:
        return f"<HTMLReport {self.title!r} ({len(self.body)} characters)>"

    def get_iframe(self, width: int | None = None, height: int | None = None) -> str:
        """The report in an ``<iframe srcdoc=...>`` element (e.g. for a web page).

        Parameters
        ----------
        width, height : int or None, default=None
            Size in pixels; None uses :attr:`width` / :attr:`height`.

        Returns
        -------
        str
            The iframe element.
        """
        width = self.width if width is None else width
        height = self.height if height is None else height
        document = html.escape(self.get_standalone(), quote=True)
        return (
            f'<iframe srcdoc="{document}" width="{width}" height="{height}" '
            'frameBorder="0"></iframe>'
        )

    # ------------------------------------------------------------------ output
    def save_as_html(self, file_name: str | os.PathLike) -> None:
        """Write the complete document to ``file_name`` (UTF-8).

        Parameters
        ----------
        file_name : str or os.PathLike
            Path of the HTML file.
        """
        Path(file_name).write_bytes(self.get_standalone().encode("utf-8"))

    def open_in_browser(
        self, file_name: str | os.PathLike | None = None, temp_file_lifetime: object = _DEPRECATED
    ) -> None:
        """Open the report in a web browser.

        Parameters
        ----------
        file_name : str or os.PathLike, optional
            Save the page there and open that file. By default nothing is written: the
            page is served once from a local server (127.0.0.1) to the browser.
        temp_file_lifetime : object, optional
            Deprecated (nilearn 0.12.1): no temporary file is used; any value is ignored,
            with a DeprecationWarning.

        Raises
        ------
        RuntimeError
            No file name, and the browser did not fetch the page within 3 seconds.
        """
        if temp_file_lifetime is not _DEPRECATED:
            warn(
                "Parameter(s) temp_file_lifetime will be removed in version 0.13.0; this "
                "function does not use a temporary file anymore and 'temp_file_lifetime' "
                "has no effect.",
                DeprecationWarning,
            )
        if file_name is None:
            _serve_once(self.get_standalone().encode("utf-8"))
            return
        self.save_as_html(file_name)
        webbrowser.open(Path(file_name).resolve().as_uri())


def _pixels(value: UserInput, name: str, default: int) -> int:
    """``int(value)``, or ``default`` with nilearn's warning if that is not a number."""
    try:
        return int(value)
    except ValueError:
        warn(f"Invalid {name} {value=}. Using default instead {default}")
        return default


def _serve_once(page: bytes) -> None:
    """Serve ``page`` to the browser from a local one-request server, then stop it."""
    served: queue.Queue[bool] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.endswith("/report.html"):
                self.send_error(HTTPStatus.NOT_FOUND, "File not found")
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            served.put(True)

        def log_message(self, format: str, *args: object) -> None:
            del format, args  # no request log on the user's terminal

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        webbrowser.open(f"http://127.0.0.1:{server.server_address[1]}/report.html")
        try:
            served.get(timeout=BROWSER_TIMEOUT_SECONDS)
        except queue.Empty:
            raise RuntimeError(
                "Failed to open the report in a web browser: the browser did not "
                f"fetch the report within {BROWSER_TIMEOUT_SECONDS:g} seconds. Save it with "
                "report.save_as_html('report.html') and open that file instead."
            ) from None
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
