"""Report figures, drawn with matplotlib's object API (no pyplot, no global backend state).

* :func:`overview_figure` — every seed in three orthogonal projections (sagittal, coronal,
  axial) over the outline of the background volume: the "glass brain" view.
* :func:`sphere_figure` — one seed: the three orthogonal slices of the background volume
  through the seed, the sphere's cross-section drawn as a green circle.

The background is the fitted image's middle volume, shown on an axis-aligned RAS grid in
mm (oblique or flipped grids are resampled with nearest neighbour for display only).
Figures are returned as base64 SVG (as nilearn's reports embed theirs): text and vector
marks stay sharp at any zoom; the image planes are embedded in the SVG as rasters.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.ndimage

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Background", "overview_figure", "sphere_figure"]

_VIEWS = (  # (title, axis held fixed, horizontal world axis, vertical world axis)
    ("sagittal (x = {:.1f} mm)", 0, 1, 2),
    ("coronal (y = {:.1f} mm)", 1, 0, 2),
    ("axial (z = {:.1f} mm)", 2, 0, 1),
)
_AXIS_NAMES = "xyz"
_MAX_LABELLED = 30
_SEED_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")


@dataclass(frozen=True)
class Background:
    """A volume on an axis-aligned grid: world = origin + index * zooms (per axis)."""

    data: np.ndarray
    origin: np.ndarray
    zooms: np.ndarray
    label: str
    display_range: tuple[float, float] | None = None

    @classmethod
    def from_volume(
        cls,
        data: np.ndarray,
        affine: np.ndarray,
        label: str,
        display_range: tuple[float, float] | None = None,
    ) -> Background:
        """Put a 3D volume on an axis-aligned RAS grid (a no-op for such grids)."""
        data = np.nan_to_num(np.asarray(data, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        affine = np.asarray(affine, dtype=np.float64)
        linear = affine[:3, :3]
        if np.allclose(linear, np.diag(np.diag(linear))) and (np.diag(linear) > 0).all():
            return cls(data, affine[:3, 3].copy(), np.diag(linear).copy(), label, display_range)
        corners = np.array(
            [
                [i, j, k, 1.0]
                for i in (0, data.shape[0] - 1)
                for j in (0, data.shape[1] - 1)
                for k in (0, data.shape[2] - 1)
            ]
        )
        world = corners @ affine.T
        low, high = world[:, :3].min(axis=0), world[:, :3].max(axis=0)
        zoom = float(np.linalg.norm(linear, axis=0).min())
        shape = tuple(int(n) for n in np.floor((high - low) / zoom).astype(int) + 1)
        target = np.diag([zoom, zoom, zoom, 1.0])
        target[:3, 3] = low
        mapping = np.linalg.inv(affine) @ target
        resampled = scipy.ndimage.affine_transform(
            data, mapping[:3, :3], offset=mapping[:3, 3], output_shape=shape, order=0
        )
        return cls(resampled, low, np.full(3, zoom), label, display_range)

    def index_of(self, point: np.ndarray) -> np.ndarray:
        """Nearest grid index of a world point, clipped into the grid."""
        index = np.round((np.asarray(point, dtype=np.float64) - self.origin) / self.zooms)
        return np.clip(index, 0, np.array(self.data.shape) - 1).astype(int)

    def world(self, axis: int, index: int) -> float:
        """World coordinate of grid plane ``index`` along ``axis``."""
        return float(self.origin[axis] + index * self.zooms[axis])

    def extent(self, horizontal: int, vertical: int) -> tuple[float, float, float, float]:
        """Extent for imshow (mm) of a plane spanned by two axes (pixel edges)."""
        edges: list[float] = []
        for axis in (horizontal, vertical):
            half = self.zooms[axis] / 2
            edges += [
                self.origin[axis] - half,
                self.origin[axis] + (self.data.shape[axis] - 1) * self.zooms[axis] + half,
            ]
        return (edges[0], edges[1], edges[2], edges[3])


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=90, facecolor="white")
    # fixed margins: tight_layout would measure every tick label (the slowest step)
    figure.subplots_adjust(left=0.05, right=0.99, bottom=0.13, top=0.84, wspace=0.22)
    return figure


def _encode(figure: Figure) -> str:
    """Base64 of the figure as SVG (text kept as text: smaller, and searchable)."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    # a fixed hash salt and no date: the same figure gives the same bytes
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "lazyspheres"}):
        figure.savefig(
            buffer, format="svg", facecolor=figure.get_facecolor(), metadata={"Date": None}
        )
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plane(background: Background, fixed: int, index: int) -> np.ndarray:
    return np.take(background.data, index, axis=fixed)


def _display_range(data: np.ndarray) -> tuple[float, float]:
    finite = data[np.isfinite(data)]
    nonzero = finite[finite != 0]
    values = nonzero if nonzero.size else finite
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [2, 99.5])
    return float(low), float(high if high > low else low + 1.0)


def overview_figure(background: Background, seeds: np.ndarray, radius: float | None) -> str:
    """All seeds in sagittal, coronal and axial projections over the volume's outline."""
    figure = _figure(12.0, 4.2)
    finite = background.data[np.isfinite(background.data)]
    peak = float(np.percentile(np.abs(finite), 99.5)) if finite.size else 0.0
    inside = np.abs(background.data) > 0.2 * peak
    size = 20.0 * (1.0 if radius is None else max(float(radius), 0.5))
    colors = [_SEED_COLORS[i % len(_SEED_COLORS)] for i in range(len(seeds))]
    for position, (title, fixed, horizontal, vertical) in enumerate(_VIEWS):
        axes = figure.add_subplot(1, 3, position + 1)
        projection = inside.any(axis=fixed).astype(float)
        image = projection if horizontal < vertical else projection.T
        axes.imshow(
            image.T,
            origin="lower",
            cmap="Greys",
            vmin=0,
            vmax=3,
            extent=background.extent(horizontal, vertical),
            interpolation="nearest",
        )
        if projection.any() and projection.min() < 1:
            axes.contour(
                image.T,
                levels=[0.5],
                colors="0.35",
                linewidths=0.8,
                origin="lower",
                extent=background.extent(horizontal, vertical),
            )
        axes.scatter(
            seeds[:, horizontal],
            seeds[:, vertical],
            s=size,
            c=colors,
            edgecolors="black",
            linewidths=0.5,
            zorder=3,
        )
        if len(seeds) <= _MAX_LABELLED:  # seed numbers, as in the regions summary
            for number, seed in enumerate(seeds):
                axes.annotate(
                    str(number),
                    (seed[horizontal], seed[vertical]),
                    textcoords="offset points",
                    xytext=(5, 5),
                    fontsize=7,
                    zorder=4,
                )
        axes.set_title(title.split(" (")[0] + " projection", fontsize=10)
        axes.set_xlabel(f"{_AXIS_NAMES[horizontal]} (mm)", fontsize=8)
        axes.set_ylabel(f"{_AXIS_NAMES[vertical]} (mm)", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.locator_params(nbins=5)
        axes.set_aspect("equal")
    figure.suptitle(f"All {len(seeds)} seeds ({background.label})", fontsize=11)
    return _encode(figure)


def sphere_figure(
    background: Background, seed: np.ndarray, radius: float | None, number: int
) -> str:
    """Three orthogonal slices through one seed, with its sphere drawn in green."""
    from matplotlib.patches import Circle

    figure = _figure(12.0, 4.2)
    seed = np.asarray(seed, dtype=np.float64)
    index = background.index_of(seed)
    low, high = background.display_range or _display_range(background.data)
    r = 0.0 if radius is None else float(radius)
    for position, (title, fixed, horizontal, vertical) in enumerate(_VIEWS):
        axes = figure.add_subplot(1, 3, position + 1)
        plane = _plane(background, fixed, int(index[fixed]))
        image = plane if horizontal < vertical else plane.T
        axes.imshow(
            image.T,
            origin="lower",
            cmap="gray",
            vmin=low,
            vmax=high,
            extent=background.extent(horizontal, vertical),
            interpolation="nearest",
        )
        level = background.world(fixed, int(index[fixed]))
        distance = abs(level - seed[fixed])
        if r > 0 and distance <= r:
            section = math.sqrt(r * r - distance * distance)
            axes.add_patch(
                Circle(
                    (seed[horizontal], seed[vertical]),
                    section,
                    fill=False,
                    edgecolor="#00cc00",
                    linewidth=2.0,
                    zorder=3,
                )
            )
        axes.scatter(
            [seed[horizontal]],
            [seed[vertical]],
            s=14.0,
            marker="o",
            facecolors="#00cc00",
            edgecolors="black",
            linewidths=0.5,
            zorder=4,
        )
        axes.axhline(seed[vertical], color="#00cc00", linewidth=0.5, alpha=0.6)
        axes.axvline(seed[horizontal], color="#00cc00", linewidth=0.5, alpha=0.6)
        axes.set_title(title.format(level), fontsize=10)
        axes.set_xlabel(f"{_AXIS_NAMES[horizontal]} (mm)", fontsize=8)
        axes.set_ylabel(f"{_AXIS_NAMES[vertical]} (mm)", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.locator_params(nbins=5)
        axes.set_aspect("equal")
    coords = ", ".join(f"{v:g}" for v in seed)
    radius_text = "nearest voxel" if radius is None else f"radius {float(radius):g} mm"
    figure.suptitle(f"Sphere #{number}: seed ({coords}) mm, {radius_text}", fontsize=11)
    return _encode(figure)
