"""The report as a person sees it: its figures decoded and inspected pixel by pixel, and the
whole page rendered by a headless browser (Debian's chromium) when one is installed.

The figure checks always run (matplotlib is a test dependency). The screenshot test needs
the ``chromium`` executable; without it that one test is skipped, saying so.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest

from lazyspheres import NiftiSpheresMasker
from lazyspheres.datasets import make_bold_image

matplotlib_image = pytest.importorskip("matplotlib.image")

SEEDS = [(0.0, -10.0, 10.0), (-20.0, 10.0, 0.0), (20.0, 0.0, -5.0)]
# figures are 12 x 4.2 inches at 90 dpi
FIGURE_SIZE = (378, 1080)


@pytest.fixture(scope="module")
def report():
    img = make_bold_image(5, shape=(30, 36, 30), seeds=None)
    masker = NiftiSpheresMasker(SEEDS, radius=6.0).fit(img)
    return masker.generate_report("all")


def _figures(report):
    return [
        matplotlib_image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", report.body)
    ]


def _mask(pixels, red, green, blue, tolerance=0.12):
    rgb = pixels[..., :3]
    return (np.abs(rgb - np.array([red, green, blue])) < tolerance).all(axis=-1)


def test_figures_are_pictures_of_the_spheres(report):
    figures = _figures(report)
    assert len(figures) == 1 + len(SEEDS)
    for picture in figures:
        assert picture.shape[:2] == FIGURE_SIZE
        assert picture[..., :3].std() > 0.1  # not a blank canvas
    overview, *spheres = figures
    # each seed's marker colour (red, green, blue: the first three of the palette)
    for colour in ((0.902, 0.098, 0.294), (0.235, 0.706, 0.294), (0.263, 0.388, 0.847)):
        assert _mask(overview, *colour).sum() > 3 * 20  # a marker in each of 3 projections
    for picture in spheres:
        green = _mask(picture, 0.0, 0.8, 0.0, tolerance=0.2)
        assert green.sum() > 300  # the sphere's circles and marker in the three views
        columns = np.flatnonzero(green.any(axis=0))
        # green appears in each of the three panels (left, middle, right thirds)
        thirds = {int(3 * c / FIGURE_SIZE[1]) for c in columns}
        assert thirds == {0, 1, 2}
        grey = (np.abs(picture[..., 0] - picture[..., 1]) < 0.02) & (picture[..., 0] < 0.9)
        assert grey.sum() > 20_000  # the brain slices behind the spheres


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
