"""The report object's public surface, against nilearn 0.12.1's ``HTMLDocument``.

Size (``width``, ``height``, ``resize``, the invalid-value fallback and its warning), the
content accessors (``body``, ``html``, ``str``, ``_repr_html_``, ``get_standalone``,
``get_iframe``), ``save_as_html`` and ``open_in_browser`` (a one-request local server, as
nilearn's; the browser is replaced by a function fetching the URL it is given).
"""

from __future__ import annotations

import html
import re
import urllib.error
import urllib.request
import warnings

import pytest

import lazyspheres.masker.report.document as document
from lazyspheres.masker.report import HTMLReport

nilearn_document = pytest.importorskip("nilearn._utils.html_document")
NilearnDocument = nilearn_document.HTMLDocument


@pytest.fixture
def report():
    return HTMLReport("<p>sphere report body</p>", "NiftiSpheresMasker")


def both(report):
    """Our report and nilearn's document over the same page."""
    return report, NilearnDocument(report.get_standalone())


def test_default_size_is_nilearns(report):
    ours, theirs = both(report)
    assert (ours.width, ours.height) == (theirs.width, theirs.height) == (800, 800)
    assert (document.WIDTH_DEFAULT, document.HEIGHT_DEFAULT) == (
        nilearn_document.WIDTH_DEFAULT,
        nilearn_document.HEIGHT_DEFAULT,
    )


@pytest.mark.parametrize(("width", "height"), [(1200, 800), ("640", 480.9), (True, 0)])
def test_resize_as_nilearn(report, width, height):
    ours, theirs = both(report)
    assert ours.resize(width, height) is ours
    theirs.resize(width, height)
    assert (ours.width, ours.height) == (theirs.width, theirs.height)
    assert isinstance(ours.width, int)
    assert isinstance(ours.height, int)
    assert f'width="{theirs.width}" height="{theirs.height}"' in ours.get_iframe()


@pytest.mark.parametrize("name", ["width", "height"])
@pytest.mark.parametrize("value", ["foo", "12px", "1.5"])
def test_invalid_size_falls_back_with_nilearns_warning(report, name, value):
    ours, theirs = both(report)
    messages = []
    for doc in (ours, theirs):
        setattr(doc, name, 1000)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            setattr(doc, name, value)
        assert getattr(doc, name) == 800
        assert [w.category for w in caught] == [UserWarning]
        messages.append(str(caught[0].message))
    assert messages[0] == messages[1] == (f"Invalid {name} value={value!r}. Using default "
                                          "instead 800")  # fmt: skip


def test_invalid_size_warning_points_at_the_caller(report):
    with pytest.warns(UserWarning, match="Using default instead 800") as caught:
        report.width = "foo"
    assert caught[0].filename == __file__


def test_invalid_size_at_construction():
    with pytest.warns(UserWarning, match=r"Invalid height value='tall'\. Using default"):
        report = HTMLReport("<p/>", "t", width=300, height="tall")
    assert (report.width, report.height) == (300, 800)


def test_a_size_int_cannot_take_raises_as_nilearn(report):
    ours, theirs = both(report)
    for doc in (ours, theirs):
        with pytest.raises(TypeError):
            doc.width = None


def test_content_accessors(report):
    page = report.get_standalone()
    assert report.html == page
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>NiftiSpheresMasker</title>" in page
    assert report.body in page
    assert str(report) == report._repr_html_() == report.body
    iframe = report.get_iframe()
    assert iframe == NilearnDocument(page).get_iframe()
    match = re.fullmatch(r'<iframe srcdoc="(.*)" width="800" height="800" frameBorder="0">'
                         r"</iframe>", iframe, flags=re.S)  # fmt: skip
    assert match is not None
    assert html.unescape(match.group(1)) == page
    assert 'width="320" height="200"' in report.get_iframe(320, 200)


def test_jupyter_shows_the_page_in_an_iframe_as_nilearn(report):
    ours, theirs = both(report)
    ours.resize(640, 300)
    theirs.resize(640, 300)
    assert ours._repr_mimebundle_() == theirs._repr_mimebundle_()
    assert ours._repr_mimebundle_() == {"text/html": ours.get_iframe()}
    assert 'width="640" height="300"' in ours._repr_mimebundle_()["text/html"]


def test_save_as_html_writes_the_page_as_utf8(report, tmp_path):
    report.body = "<p>µm and ø</p>"
    for target in (tmp_path / "a.html", str(tmp_path / "b.html")):
        report.save_as_html(target)
    for name in ("a.html", "b.html"):
        assert (tmp_path / name).read_bytes() == report.get_standalone().encode("utf-8")


def test_open_in_browser_with_a_file_name(report, tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(document.webbrowser, "open", opened.append)
    monkeypatch.chdir(tmp_path)
    report.open_in_browser("relative.html")
    assert opened == [(tmp_path / "relative.html").as_uri()]
    assert (tmp_path / "relative.html").read_text(encoding="utf-8") == report.get_standalone()


def test_open_in_browser_serves_the_page_once_from_localhost(report, monkeypatch):
    fetched, urls = [], []

    def browser(url):
        urls.append(url)
        with urllib.request.urlopen(url, timeout=10) as response:
            fetched.append((response.status, response.headers["Content-Type"], response.read()))

    monkeypatch.setattr(document.webbrowser, "open", browser)
    assert report.open_in_browser() is None
    assert urls[0].startswith("http://127.0.0.1:")
    assert fetched == [(200, "text/html; charset=utf-8", report.get_standalone().encode())]
    with pytest.raises(OSError):  # the server is stopped once the page is served
        urllib.request.urlopen(urls[0], timeout=2)


def test_open_in_browser_other_paths_are_not_found(report, monkeypatch):
    statuses = []

    def browser(url):
        for path in ("/other.html", "/report.html"):
            try:
                with urllib.request.urlopen(url.replace("/report.html", path), timeout=10) as r:
                    statuses.append(r.status)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)

    monkeypatch.setattr(document.webbrowser, "open", browser)
    report.open_in_browser()
    assert statuses == [404, 200]


def test_open_in_browser_fails_clearly_if_no_browser_fetches(report, monkeypatch):
    monkeypatch.setattr(document.webbrowser, "open", lambda url: False)
    monkeypatch.setattr(document, "BROWSER_TIMEOUT_SECONDS", 0.2)
    with pytest.raises(RuntimeError, match="Failed to open the report in a web browser") as err:
        report.open_in_browser()
    assert "save_as_html" in str(err.value)


@pytest.mark.parametrize("lifetime", [30, None, "deprecated"])
def test_temp_file_lifetime_is_deprecated_as_nilearn(report, tmp_path, monkeypatch, lifetime):
    monkeypatch.setattr(document.webbrowser, "open", lambda url: True)
    monkeypatch.setattr(nilearn_document.webbrowser, "open", lambda url: True)
    messages = []
    for doc, name in ((report, "ours.html"), (NilearnDocument("<p/>"), "theirs.html")):
        with pytest.warns(DeprecationWarning, match="temp_file_lifetime") as caught:
            doc.open_in_browser(tmp_path / name, temp_file_lifetime=lifetime)
        messages.append([str(w.message) for w in caught])
    assert messages[0] == messages[1]
    assert "temp_file_lifetime" in messages[0][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report.open_in_browser(tmp_path / "quiet.html")
