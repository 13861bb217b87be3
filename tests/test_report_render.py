"""The report as a person sees it: its SVG figures parsed and inspected (their structure,
colours and text, and the pixels of the image planes embedded in them), and the whole page
rendered by a headless browser (Debian's chromium) when one is installed.

The figure checks always run (matplotlib is a test dependency). The screenshot test, the
one that turns the SVG figures themselves into pixels, needs the ``chromium`` executable;
without it that one test is skipped, saying so.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from lazyspheres import NiftiSpheresMasker
from lazyspheres.datasets import make_bold_image

matplotlib_image = pytest.importorskip("matplotlib.image")

SEEDS = [(0.0, -10.0, 10.0), (-20.0, 10.0, 0.0), (20.0, 0.0, -5.0)]
# figures are 12 x 4.2 inches (72 pt each)
FIGURE_SIZE = ("864pt", "302.4pt")
SVG = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
# each seed's marker colour in the overview: the first three of the palette
SEED_COLOURS = ("#e6194b", "#3cb44b", "#4363d8")
SPHERE_GREEN = "#00cc00"


@pytest.fixture(scope="module")
def report():
    img = make_bold_image(5, shape=(30, 36, 30), seeds=None)
    masker = NiftiSpheresMasker(SEEDS, radius=6.0).fit(img)
    return masker.generate_report("all")


def _figures(report):
    """The report's figures, each parsed as an SVG document (fails if one is not XML)."""
    return [
        ElementTree.fromstring(base64.b64decode(data))
        for data in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", report.body)
    ]


def _panels(figure):
    """The figure's axes (matplotlib names their SVG groups axes_1, axes_2, ...)."""
    return [g for g in figure.iter(f"{SVG}g") if re.fullmatch(r"axes_\d+", g.get("id") or "")]


def _styles(element):
    return " ".join(e.get("style", "") for e in element.iter())


def _plane_pixels(panel):
    """The image plane drawn in a panel: the raster embedded in the SVG, decoded."""
    (image,) = panel.iter(f"{SVG}image")
    href = image.get(XLINK_HREF)
    assert href.startswith("data:image/png;base64,")
    return matplotlib_image.imread(io.BytesIO(base64.b64decode(href.split(",", 1)[1])))


def _texts(figure):
    return [text for text in figure.itertext() if text.strip()]


def _mask(pixels, red, green, blue, tolerance=0.12):
    rgb = pixels[..., :3]
    return (np.abs(rgb - np.array([red, green, blue])) < tolerance).all(axis=-1)


def test_figures_are_svg_pictures_of_the_spheres(report):
    figures = _figures(report)
    assert len(figures) == 1 + len(SEEDS)
    for figure in figures:
        assert figure.tag == f"{SVG}svg"
        assert (figure.get("width"), figure.get("height")) == FIGURE_SIZE
        panels = _panels(figure)
        assert len(panels) == 3  # sagittal, coronal, axial
        for panel in panels:
            assert _plane_pixels(panel)[..., :3].std() > 0.1  # not a blank canvas
    overview, *spheres = figures
    assert f"All {len(SEEDS)} seeds (middle volume of the fitted image)" in _texts(overview)
    for panel in _panels(overview):  # every seed's marker in each of the 3 projections
        assert all(colour in _styles(panel) for colour in SEED_COLOURS)
        assert SPHERE_GREEN not in _styles(panel)
    for number, (figure, seed) in enumerate(zip(spheres, SEEDS, strict=True)):
        coords = ", ".join(f"{v:g}" for v in seed)
        assert f"Sphere #{number}: seed ({coords}) mm, radius 6 mm" in _texts(figure)
        for panel in _panels(figure):
            # the sphere's circle and marker, drawn as vectors in each of the three views
            assert f"stroke: {SPHERE_GREEN}" in _styles(panel)
            assert f"fill: {SPHERE_GREEN}" in _styles(panel)
            assert not any(colour in _styles(panel) for colour in SEED_COLOURS)
            plane = _plane_pixels(panel)
            grey = (np.abs(plane[..., 0] - plane[..., 1]) < 0.02) & (plane[..., 0] < 0.9)
            assert grey.mean() > 0.3  # the brain slice behind the sphere


def test_figures_are_the_same_bytes_each_time(report):
    """No date or random ids in the SVG: the same masker gives the same report figures."""
    img = make_bold_image(5, shape=(30, 36, 30), seeds=None)
    again = NiftiSpheresMasker(SEEDS, radius=6.0).fit(img).generate_report("all")
    pattern = r"data:image/svg\+xml;base64,[A-Za-z0-9+/=]+"
    assert re.findall(pattern, again.body) == re.findall(pattern, report.body)


def test_headless_browser_screenshot(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the figure "
                    "checks of test_figures_are_pictures_of_the_spheres still ran")  # fmt: skip
    page = tmp_path / "report.html"
    report.save_as_html(page)
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1280,1600", f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pixels = matplotlib_image.imread(shot)
    assert pixels.shape[:2] == (1600, 1280)
    white = (pixels[..., :3] > 0.97).all(axis=-1)
    assert 0.05 < 1 - white.mean() < 0.9  # text, buttons, the overview figure
    # the overview figure (the carousel's first image) is displayed with its seed colours
    assert _mask(pixels, 0.902, 0.098, 0.294).sum() > 20
    # the sphere figures are hidden until "Next Sphere" is pressed: no sphere circles
    assert _mask(pixels, 0.0, 0.8, 0.0, tolerance=0.1).sum() < 50
