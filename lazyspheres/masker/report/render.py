"""HTML of a spheres-masker report: text, figure carousel, regions summary, parameters."""

from __future__ import annotations

import base64
import html

import numpy as np

from lazyspheres.masker.report.content import SUMMARY_COLUMNS, SummaryRow
from lazyspheres.masker.report.document import STYLE

__all__ = ["NO_IMAGE_TEXT", "placeholder_svg", "render_body"]

NO_IMAGE_TEXT = "No image to display."

_CAROUSEL_JS = """
(function () {
  var uid = "__UID__", labels = __LABELS__, current = 0;
  function show(k) {
    for (var i = 0; i < labels.length; i++) {
      var img = document.getElementById("carousel-obj-" + uid + "-" + i);
      if (img) { img.style.display = (i === k) ? "block" : "none"; }
    }
    var label = document.getElementById("comp-" + uid);
    if (label) { label.textContent = labels[k]; }
    current = k;
  }
  function step(d) { show((current + d + labels.length) % labels.length); }
  var prev = document.getElementById("prev-btn-" + uid);
  var next = document.getElementById("next-btn-" + uid);
  if (prev) { prev.addEventListener("click", function () { step(-1); }); }
  if (next) { next.addEventListener("click", function () { step(1); }); }
  show(0);
})();
"""


def placeholder_svg(text: str = NO_IMAGE_TEXT) -> str:
    """A small SVG frame with ``text``: what a report without figures shows in their place.

    nilearn 0.12.1's reports always have an SVG ``<img>`` where the figure goes (left
    empty when there is none); ours holds a valid picture saying there is none.
    """
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="480" height="120" '
        'viewBox="0 0 480 120"><rect x="1" y="1" width="478" height="118" fill="#f7f7f7" '
        'stroke="#bbbbbb" stroke-dasharray="6 4"/><text x="240" y="66" '
        'text-anchor="middle" font-family="sans-serif" font-size="18" fill="#666666">'
        f"{html.escape(text)}</text></svg>"
    )
    return base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _img(uid: str, k: int, figure: str, label: str, display: str) -> str:
    return (
        f'<img id="carousel-obj-{uid}-{k}" style="display: {display}" '
        f'alt="{html.escape(label)}" src="data:image/svg+xml;base64,{figure}"/>'
    )


def _table(header: list[str], rows: list[list[object]], css_class: str) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return (
        f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, np.ndarray):
        return str(value)
    return str(value)


def render_body(
    *,
    uid: str,
    title: str,
    docstring: str,
    description: str | None,
    warnings: list[str],
    figures: list[str],
    figure_labels: list[str],
    n_seeds: int | None,
    summary: list[SummaryRow] | None,
    parameters: list[tuple[str, str]],
    figure_note: str | None = None,
) -> str:
    """Assemble the report fragment (styles and script included).

    Without figures, a placeholder image says there is none, and ``figure_note`` (if
    given) why (e.g. matplotlib is missing).
    """
    parts = [f"<style>{STYLE}</style>", f'<div class="lazyspheres-report" id="report-{uid}">']
    parts.append(f"<h1>{html.escape(title)}</h1>")
    if docstring:
        parts.append(f'<p class="docstring">{html.escape(docstring.strip())}</p>')
    for message in warnings:
        parts.append(f'<div class="warning">{html.escape(message.strip())}</div>')
    if description:
        parts.append(f"<p>{html.escape(description)}</p>")
    if n_seeds is not None:
        parts.append(
            f"<p>The masker has <b>{n_seeds}</b> spheres in total (displayed together on the "
            "first image).</p>"
        )
        n_browsable = len(figures) - 1
        if not figures:
            pass  # no figures to browse: the note below says why
        elif n_browsable != n_seeds:
            parts.append(
                f"<p>Only <b>{n_browsable}</b> specific spheres can be browsed in this report "
                "with <b>Previous</b> and <b>Next</b> buttons.</p>"
            )
        else:
            parts.append(
                "<p>They can be individually browsed using <b>Previous</b> and <b>Next</b> "
                "buttons.</p>"
            )
    if figures:
        parts.append(
            '<div class="carousel-nav">'
            f'<button type="button" id="prev-btn-{uid}">Previous Sphere</button>'
            f'<span id="comp-{uid}">{html.escape(figure_labels[0])}</span>'
            f'<button type="button" id="next-btn-{uid}">Next Sphere</button></div>'
        )
        for k, (figure, label) in enumerate(zip(figures, figure_labels, strict=True)):
            parts.append(_img(uid, k, figure, label, "block" if k == 0 else "none"))
        labels_js = "[" + ", ".join(_js_string(label) for label in figure_labels) + "]"
        script = _CAROUSEL_JS.replace("__UID__", uid).replace("__LABELS__", labels_js)
        parts.append(f"<script>{script}</script>")
    else:  # as nilearn's: an SVG image where the figures would be, here saying why not
        parts.append(_img(uid, 0, placeholder_svg(), NO_IMAGE_TEXT, "block"))
        if figure_note:
            parts.append(f'<div class="warning no-figures">{html.escape(figure_note)}</div>')
    if summary:
        rows = [row.cells() for row in summary]
        parts.append(
            "<details><summary>Regions summary</summary>"
            f"{_table(list(SUMMARY_COLUMNS), rows, 'regions-summary')}</details>"
        )
    if parameters:
        parts.append(
            "<h2>Parameters</h2>"
            + _table(["Parameter", "Value"], [list(row) for row in parameters], "parameters")
        )
    parts.append("</div>")
    return "\n".join(parts)


def _js_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("<", "\\u003c")
    return f'"{escaped}"'
