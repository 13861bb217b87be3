"""HTML of a spheres-masker report: text, figure carousel, regions summary, parameters."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from lazyspheres.masker.report.content import SUMMARY_COLUMNS
from lazyspheres.masker.report.document import STYLE

__all__ = ["render_body"]

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


def _table(header: list[str], rows: list[list[Any]], css_class: str) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return (
        f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _cell(value: Any) -> str:
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
    summary: list[dict[str, Any]] | None,
    parameters: list[tuple[str, str]],
    figure_note: str | None = None,
) -> str:
    """Assemble the report fragment (styles and script included).

    ``figure_note`` is shown where the figures would be when there are none (e.g.
    matplotlib is missing).
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
            display = "block" if k == 0 else "none"
            parts.append(
                f'<img id="carousel-obj-{uid}-{k}" style="display: {display}" '
                f'alt="{html.escape(label)}" src="data:image/png;base64,{figure}"/>'
            )
        labels_js = "[" + ", ".join(_js_string(label) for label in figure_labels) + "]"
        script = _CAROUSEL_JS.replace("__UID__", uid).replace("__LABELS__", labels_js)
        parts.append(f"<script>{script}</script>")
    elif figure_note:
        parts.append(f'<div class="warning no-figures">{html.escape(figure_note)}</div>')
    if summary:
        rows = [[row[c] for c in SUMMARY_COLUMNS] for row in summary]
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
