"""The masker's HTML report: content, displayed_spheres semantics, warnings and errors as
nilearn 0.12.1 (with SPEC §3.5's fixes), the HTML itself (parsed), and the report object.

Figure drawing is replaced by a stub in the tests about *which* spheres are shown (the
figures are tested, and looked at, in ``test_report_render.py``).
"""

from __future__ import annotations

import base64
import re
import warnings
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser

import nibabel as nib
import numpy as np
import pytest

import lazyspheres.masker.report as report_module
from lazyspheres import NiftiSpheresMasker

nilearn_maskers = pytest.importorskip("nilearn.maskers")
NilearnMasker = nilearn_maskers.NiftiSpheresMasker

# nilearn's report tests: six seeds on a 3x3x3 neighbourhood, fit() without an image
SIX_SEEDS = [(1, 1, 1), (1, 0, 1), (1, 1, 0), (1, 0, 0), (0, 1, 1), (0, 0, 1)]
SVG_PREFIX = "data:image/svg+xml;base64,"  # nilearn's figure format, asserted by its checks
STUB_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'


class ReportParser(HTMLParser):
    """Collects <img> tags, table cells and warning boxes."""

    def __init__(self):
        super().__init__()
        self.images, self.tables, self.warnings = [], [], []
        self._cell, self._row, self._in_warning = None, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        elif tag == "table":
            self.tables.append({"class": attrs.get("class"), "rows": []})
        elif tag == "tr":
            self._row = []
            self.tables[-1]["rows"].append(self._row)
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "div" and attrs.get("class") == "warning":
            self._in_warning = True
            self.warnings.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "div":
            self._in_warning = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._in_warning:
            self.warnings[-1] += data


def parse(report):
    parser = ReportParser()
    parser.feed(report.get_standalone())
    return parser


@pytest.fixture
def stub_figures(monkeypatch):
    """Replace matplotlib drawing by a tiny valid SVG; record what was drawn."""
    drawn = []
    svg = base64.b64encode(STUB_SVG).decode()
    import lazyspheres.masker.report.figures as figures

    monkeypatch.setattr(figures, "overview_figure", lambda *a: drawn.append("all") or svg)
    monkeypatch.setattr(
        figures, "sphere_figure", lambda bg, seed, r, number: drawn.append(number) or svg
    )
    return drawn


@pytest.fixture
def image():
    return nib.Nifti1Image(np.random.default_rng(0).random((7, 8, 9, 5)), np.eye(4))


def _stub_nilearn_plotting(monkeypatch):
    """Replace nilearn's report figures by stubs: its table logic is what is compared."""
    import nilearn.plotting
    import nilearn.reporting.html_report

    class Display:
        def add_markers(self, **kwargs):
            pass

        def close(self):
            pass

    monkeypatch.setattr(nilearn.plotting, "plot_markers", lambda *a, **k: Display())
    monkeypatch.setattr(nilearn.plotting, "plot_img", lambda *a, **k: Display())
    monkeypatch.setattr(nilearn.reporting.html_report, "embed_img", lambda display: "x")


def placeholder_text(img):
    """The text of a figure-less report's placeholder image (its SVG parsed as XML)."""
    assert img["src"].startswith(SVG_PREFIX)
    svg = ElementTree.fromstring(base64.b64decode(img["src"][len(SVG_PREFIX) :]))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    return "".join(svg.itertext())


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


# ---------------------------------------------------------------------------- semantics
@pytest.mark.parametrize(
    ("displayed", "expected"),
    [(4, [0, 1, 2, 3]), ("all", [0, 1, 2, 3, 4, 5]), ([2, 1], [2, 1]),
     (np.array([1, 3]), [1, 3]), (0, []), (-2, []), ([3.0, 5.0], [3, 5])],
)  # fmt: skip
def test_displayed_spheres(stub_figures, image, displayed, expected):
    masker = NiftiSpheresMasker(SIX_SEEDS).fit(image)
    report = masker.generate_report(displayed)
    assert stub_figures == ["all", *expected]  # the overview, then each sphere in order
    html = parse(report)
    assert len(html.images) == 1 + len(expected)  # nilearn's tests count <img tags
    assert [img["alt"] for img in html.images] == [
        "All spheres",
        *(f"Sphere #{i}" for i in expected),
    ]
    stored = masker.displayed_spheres  # nilearn 0.12.1 keeps the argument on the masker
    assert stored is displayed or np.array_equal(stored, displayed)


def test_too_many_spheres_warns_as_nilearn(stub_figures, image):
    masker = NiftiSpheresMasker(SIX_SEEDS).fit(image)
    with pytest.warns(UserWarning, match=re.escape(
        "generate_report() received 10 spheres to be displayed. But masker only has 6 "
        "seeds. Setting number of displayed spheres to 6."
    )):  # fmt: skip
        report = masker.generate_report(10)
    assert len(parse(report).images) == 7
    assert masker.displayed_spheres == 6


@pytest.mark.parametrize(
    ("displayed", "error", "phrase"),
    [(4.5, TypeError, "Parameter ``displayed_spheres`` of ``generate_report()`` should be "
                      "either 'all' or an int, or a list/array of ints. You provided a "
                      "<class 'float'>"),
     ("invalid", TypeError, "You provided a <class 'str'>"),
     ([0, 7], ValueError, "Report cannot display the following spheres [0, 7] because "
                          "masker only has 6 seeds."),
     ([8.4, 3], ValueError, "Report cannot display the following spheres [8.4, 3]")],
)  # fmt: skip
def test_report_errors_as_nilearn(image, displayed, error, phrase):
    with pytest.raises(error, match=re.escape(phrase)):
        NiftiSpheresMasker(SIX_SEEDS).fit(image).generate_report(displayed)
    with pytest.raises(error, match=re.escape(phrase)):
        quiet(NilearnMasker(SIX_SEEDS).fit(image).generate_report, displayed)


def test_index_arrays_and_the_last_index(stub_figures, image, monkeypatch):
    """SPEC §3.5: arrays of indices work (nilearn: numpy's ambiguous truth value), and an
    index equal to the seed count is nilearn's ValueError (nilearn: a bare AssertionError)."""

    theirs = quiet(NilearnMasker(SIX_SEEDS).fit, image)
    with pytest.raises(ValueError, match="truth value of an array with more than one element"):
        theirs.generate_report(np.array([1, 3]))
    ours = NiftiSpheresMasker(SIX_SEEDS).fit(image)
    assert len(parse(ours.generate_report(np.array([1, 3]))).images) == 3

    _stub_nilearn_plotting(monkeypatch)
    with pytest.raises(AssertionError):
        quiet(theirs.generate_report, [0, 6])
    with pytest.raises(ValueError, match=re.escape("Report cannot display the following")):
        ours.generate_report([0, 6])


def test_reports_disabled_or_not_fitted_as_nilearn(image):
    cases = [
        (lambda f: f(SIX_SEEDS, reports=False).fit(image), 2),
        (lambda f: f(SIX_SEEDS), 1),
    ]
    for make, n_warnings in cases:
        results = []
        for factory in (NiftiSpheresMasker, NilearnMasker):
            masker = quiet(make, factory)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                report = masker.generate_report()
            results.append([str(w.message) for w in caught if w.category is UserWarning])
            # as nilearn's: one SVG image where the figure would be (theirs an empty one)
            assert str(report).count(SVG_PREFIX) == 1
            if factory is NiftiSpheresMasker:
                assert report.title == "Empty Report"
                (img,) = parse(report).images
                assert img["alt"] == placeholder_text(img) == "No image to display."
                assert len(parse(report).warnings) == n_warnings
        assert results[0] == results[1]
        assert len(results[0]) == n_warnings
    assert "Make sure to run `fit` before inspecting reports." in results[0][0]


@pytest.mark.parametrize("missing", ["matplotlib", "matplotlib.figure"])
def test_without_matplotlib_the_report_says_so(image, monkeypatch, missing):
    """matplotlib absent (or broken): a warning, and a visible note where the figures go."""
    import sys

    monkeypatch.setitem(sys.modules, missing, None)  # makes the import fail
    masker = NiftiSpheresMasker(SIX_SEEDS).fit(image)
    with pytest.warns(UserWarning, match="No plotting back-end detected") as caught:
        report = masker.generate_report()
    assert [str(w.message) for w in caught] == [report_module.NO_BACKEND]
    assert "pip install 'lazyspheres[report]'" in report_module.NO_BACKEND
    html = parse(report)
    (img,) = html.images  # no figures: the placeholder only
    assert placeholder_text(img) == "No image to display."
    assert {t["class"] for t in html.tables} == {"regions-summary", "parameters"}
    assert html.warnings == [report_module.NO_BACKEND]
    note = re.search(r'<div class="warning no-figures">(.*?)</div>', report.body)
    assert note is not None
    assert note.group(1) == report_module.NO_FIGURES.replace("'", "&#x27;")
    assert "No figures: matplotlib is not installed" in note.group(1)
    assert "browsed" not in report.body  # no carousel text without a carousel
    assert "Previous Sphere" not in report.body


def test_with_matplotlib_there_is_no_note(stub_figures, image):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = NiftiSpheresMasker(SIX_SEEDS).fit(image).generate_report()
    assert "no-figures" not in report.body
    assert "No plotting back-end" not in report.body


# ---------------------------------------------------------------------------- tables
def _nilearn_summary(masker_args, fit_img, monkeypatch):
    """nilearn's regions-summary values, with its plotting replaced by stubs."""
    _stub_nilearn_plotting(monkeypatch)
    masker = quiet(NilearnMasker(**masker_args).fit, fit_img)
    quiet(masker.generate_report, 1)
    return masker._report_content["summary"]


def _nilearn_counts(seeds, radius, grid_img, mask):
    """Voxels per sphere by nilearn's own sphere rules (transform's) on ``grid_img``."""
    from nilearn.maskers.nifti_spheres_masker import apply_mask_and_get_affinity

    _, adjacency = quiet(apply_mask_and_get_affinity, seeds, grid_img, radius, True, mask)
    return np.asarray(adjacency.sum(axis=1)).ravel().astype(int)


SAME_AS_NILEARN = ("seed number", "coordinates", "position", "radius")


def _summary_table(report):
    table = next(t for t in parse(report).tables if t["class"] == "regions-summary")
    header, *rows = table["rows"]
    return [dict(zip(header, row, strict=True)) for row in rows], header


@pytest.mark.parametrize("fit_with", ["image", "image and mask", "mask", "nothing"])
@pytest.mark.parametrize("radius", [None, 4.0, 7.5])
def test_regions_summary(stub_figures, monkeypatch, fit_with, radius):
    """nilearn's columns and values, with real sizes where nilearn says "not implemented"."""
    affine = np.diag([2.0, 2.5, 3.0, 1.0])
    affine[:3, 3] = [-10.0, -12.0, -8.0]
    img = nib.Nifti1Image(np.random.default_rng(1).random((10, 11, 12, 4)), affine)
    mask_data = np.zeros((10, 11, 12), np.uint8)
    mask_data[2:9, 1:10, 3:11] = 1
    mask = nib.Nifti1Image(mask_data, affine)
    seeds = [(0.0, 0.0, 0.0), (6, -6, 4), (-4.0, 10.0, 12.0)]
    args = {"seeds": seeds, "radius": radius, "allow_overlap": True}
    if "mask" in fit_with:
        args["mask_img"] = mask
    fit_img = img if "image" in fit_with else None
    theirs = _nilearn_summary(args, fit_img, monkeypatch)
    report = quiet(NiftiSpheresMasker(**args).fit(fit_img).generate_report, 1)
    rows, header = _summary_table(report)
    assert header == list(theirs)
    for index, row in enumerate(rows):
        for column in SAME_AS_NILEARN:
            value = theirs[column][index]
            assert row[column] == (f"{value:.2f}" if isinstance(value, float) else str(value))
    if fit_with == "nothing":  # no grid: nilearn's ball volume, sizes unknown
        for index, row in enumerate(rows):
            assert row["size (in mm^3)"] == f"{theirs['size (in mm^3)'][index]:.2f}"
            assert (
                row["size (in voxels)"]
                == row["relative size (in %)"]
                == ("unknown: fit had no image or mask")
            )
        return
    grid_img = img if fit_img is not None else nib.Nifti1Image(np.zeros((10, 11, 12, 1)), affine)
    counts = _nilearn_counts(seeds, radius, grid_img, args.get("mask_img"))
    assert counts.min() > 0
    union = _nilearn_union(seeds, radius, grid_img, args.get("mask_img"))
    voxel_mm3 = 2.0 * 2.5 * 3.0
    for count, row in zip(counts, rows, strict=True):
        assert row["size (in voxels)"] == str(count)
        assert row["size (in mm^3)"] == f"{count * voxel_mm3:.2f}"
        assert row["relative size (in %)"] == f"{100 * count / union:.2f}"


def _nilearn_union(seeds, radius, grid_img, mask):
    from nilearn.maskers.nifti_spheres_masker import apply_mask_and_get_affinity

    _, adjacency = quiet(apply_mask_and_get_affinity, seeds, grid_img, radius, True, mask)
    return int((np.asarray(adjacency.sum(axis=0)).ravel() > 0).sum())


def test_regions_summary_sizes_follow_the_mask(stub_figures, image):
    """A mask that cuts a sphere shrinks its count; the image data is not what matters."""
    full = NiftiSpheresMasker([(3, 3, 3)], radius=2.0).fit(image)
    mask = np.ones((7, 8, 9), np.uint8)
    mask[:3] = 0
    cut = NiftiSpheresMasker([(3, 3, 3)], radius=2.0, mask_img=nib.Nifti1Image(mask, np.eye(4)))
    counts = []
    for masker in (full, cut.fit(image)):
        rows, _ = _summary_table(quiet(masker.generate_report))
        counts.append(int(rows[0]["size (in voxels)"]))
    sphere = sum(1 for i in range(-2, 3) for j in range(-2, 3) for k in range(-2, 3)
                 if i * i + j * j + k * k <= 4)  # fmt: skip
    assert counts[0] == sphere == 33
    assert counts[1] == sum(1 for i in range(0, 3) for j in range(-2, 3) for k in range(-2, 3)
                            if i * i + j * j + k * k <= 4)  # fmt: skip


def test_parameter_table_and_text(stub_figures, image):
    masker = NiftiSpheresMasker(SIX_SEEDS, radius=2.0, detrend=True).fit(image)
    report = masker.generate_report(2)
    html = parse(report)
    params = next(t for t in html.tables if t["class"] == "parameters")
    assert params["rows"][0] == ["Parameter", "Value"]
    assert [r[0] for r in params["rows"][1:]] == sorted(masker.get_params())
    assert dict(params["rows"][1:])["detrend"] == "True"
    text = report.body
    assert "This report shows the regions defined by the spheres of the masker." in text
    assert "The masker has <b>6</b> spheres in total" in text
    assert "Only <b>2</b> specific spheres can be browsed" in text


def test_one_sphere_has_no_hidden_empty_image(stub_figures, image):
    report = NiftiSpheresMasker([(1, 1, 1)]).fit(image).generate_report()
    images = parse(report).images
    assert len(images) == 2
    assert all(img["src"] == SVG_PREFIX + base64.b64encode(STUB_SVG).decode() for img in images)


# ---------------------------------------------------------------------------- object
def test_report_object(stub_figures, image, tmp_path, monkeypatch):
    report = NiftiSpheresMasker(SIX_SEEDS).fit(image).generate_report(1)
    assert report._repr_html_() == report.body == str(report)
    path = tmp_path / "report.html"
    report.save_as_html(path)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert report.body in page
    assert "<title>NiftiSpheresMasker</title>" in page
    iframe = report.get_iframe(width=640, height=480)
    assert iframe.startswith("<iframe srcdoc=")
    assert 'width="640"' in iframe
    opened = []
    monkeypatch.setattr(report_module.document.webbrowser, "open", opened.append)
    report.open_in_browser(file_name=tmp_path / "opened.html")
    assert opened == [(tmp_path / "opened.html").resolve().as_uri()]
    assert (tmp_path / "opened.html").read_text(encoding="utf-8") == page


def test_two_reports_differ_only_by_identifiers(stub_figures, image):
    masker = NiftiSpheresMasker(SIX_SEEDS).fit(image)
    first, second = masker.generate_report(2).body, masker.generate_report(2).body
    redact = re.compile(r"[0-9a-f]{32}")
    assert first != second
    assert redact.sub("ID", first) == redact.sub("ID", second)


def test_report_does_not_read_the_image_at_fit(stub_figures, tmp_path, monkeypatch):
    """fit keeps a lazy reference to the middle volume; only the report reads it."""
    from lazyspheres.io import reader

    path = tmp_path / "run.nii"
    nib.Nifti1Image(np.arange(7 * 8 * 9 * 5, dtype=np.float32).reshape(7, 8, 9, 5),
                    np.eye(4)).to_filename(path)  # fmt: skip
    reads = []
    real = reader.NiftiFile.read_region

    def counting(self, *args, **kwargs):
        reads.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(reader.NiftiFile, "read_region", counting)
    import lazyspheres.io.backend as backend

    real_getitem = backend.NiftiChunkReader.__getitem__
    monkeypatch.setattr(
        backend.NiftiChunkReader,
        "__getitem__",
        lambda self, key: reads.append(key) or real_getitem(self, key),
    )
    masker = NiftiSpheresMasker(SIX_SEEDS).fit(path)
    assert reads == []
    masker.generate_report(1)
    assert reads  # the middle volume, read for the figures
