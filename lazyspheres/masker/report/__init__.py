"""HTML report of a fitted ``NiftiSpheresMasker`` (nilearn 0.12.1's content and warnings).

The report holds the masker's description, an overview of every seed in three orthogonal
projections, one figure per displayed sphere (slices of the fitted image's middle volume
through the seed), the "Regions summary" table (with the spheres' voxel counts and
volumes, which nilearn leaves "not implemented") and the parameter table. matplotlib is an
optional dependency (``pip install 'lazyspheres[report]'``): without it the report has the
tables only, says so where the figures would be, and warns (nilearn's "No plotting
back-end detected").

Fitted without an image, the spheres are drawn on lazyspheres' synthetic brain on the
MNI152 2 mm grid (no template is shipped or downloaded), with nilearn's warning.
"""

from __future__ import annotations

import inspect
import uuid
from typing import TYPE_CHECKING

import numpy as np

from lazyspheres.masker._logging import warn
from lazyspheres.masker.report.content import (
    check_displayed_spheres,
    parameter_rows,
    resolve_displayed_spheres,
    sphere_sizes,
    summary_rows,
)

if TYPE_CHECKING:
    import nibabel as nib
    import xarray as xr

    from lazyspheres.masker._types import DisplayedSpheres
    from lazyspheres.masker.estimator import NiftiSpheresMasker
    from lazyspheres.masker.report.figures import Background
from lazyspheres.masker.report.document import HTMLReport
from lazyspheres.masker.report.render import render_body

__all__ = ["HTMLReport", "generate_report"]

NOT_ENABLED = "\nReport generation not enabled!\nNo visual outputs created."
NOT_FITTED = "\nThis report was not generated.\nMake sure to run `fit` before inspecting reports."
NO_IMAGE = (
    "No image provided to fit in NiftiSpheresMasker. Spheres are plotted on top of the MNI152 "
    "template. (lazyspheres ships no template: the background is its synthetic brain on the "
    "MNI152 2 mm grid. Pass the image to fit to see the spheres on your data.)"
)
NO_BACKEND = (
    "No plotting back-end detected. Report will be missing figures. Install matplotlib "
    "(pip install 'lazyspheres[report]') to get them."
)
NO_FIGURES = (
    "No figures: matplotlib is not installed, so this report has its tables only. "
    "pip install 'lazyspheres[report]' and generate the report again to see the spheres."
)
DESCRIPTION = "This report shows the regions defined by the spheres of the masker."


def generate_report(
    masker: NiftiSpheresMasker, displayed_spheres: DisplayedSpheres = "all"
) -> HTMLReport:
    """Build the report of ``masker`` (see :meth:`NiftiSpheresMasker.generate_report`).

    Raises
    ------
    TypeError
        ``displayed_spheres`` not "all", an int, or a list/array of ints.
    ValueError
        Indices that are not those of seeds.

    Warns
    -----
    UserWarning
        ``reports=False``, not fitted, no image at fit, more spheres asked than seeds,
        matplotlib missing (nilearn's messages).
    """
    check_displayed_spheres(displayed_spheres)
    masker.displayed_spheres = displayed_spheres  # nilearn 0.12.1 keeps it on the masker
    messages = []
    if not masker.reports:
        messages.append(NOT_ENABLED)
    if not getattr(masker, "_reporting_data", None):
        messages.append(NOT_FITTED)
    if messages:
        for message in messages:
            warn(message)
        return _empty_report(messages)
    return _full_report(masker, displayed_spheres)


def _empty_report(messages: list[str]) -> HTMLReport:
    body = render_body(
        uid=uuid.uuid4().hex,
        title="Empty Report",
        docstring="Empty Report",
        description=None,
        warnings=messages,
        figures=[],
        figure_labels=[],
        n_seeds=None,
        summary=None,
        parameters=[],
    )
    return HTMLReport(body, "Empty Report")


def _full_report(masker: NiftiSpheresMasker, displayed_spheres: DisplayedSpheres) -> HTMLReport:
    data = masker._reporting_data
    assert data is not None  # generate_report checked it
    seeds = data.seeds
    report_warnings = []
    volume = data.volume
    if volume is None:
        warn(NO_IMAGE)
        report_warnings.append(NO_IMAGE)
        position_affine = None
    else:
        mask = data.mask
        position_affine = mask.affine if mask is not None else volume.nifti.grid_affine
    indices, stored = resolve_displayed_spheres(displayed_spheres, len(seeds))
    masker.displayed_spheres = stored
    coords = np.asarray(seeds, dtype=np.float64).reshape(-1, 3)

    figures: list[str] = []
    labels: list[str] = []
    figure_note = None
    if not matplotlib_available():
        warn(NO_BACKEND)
        report_warnings.append(NO_BACKEND)
        figure_note = NO_FIGURES
    else:
        from lazyspheres.masker.report.figures import overview_figure, sphere_figure

        background = _background(volume, data.mask)
        figures.append(overview_figure(background, coords, masker.radius))
        labels.append("All spheres")
        for index in indices:
            figures.append(sphere_figure(background, coords[index], masker.radius, index))
            labels.append(f"Sphere #{index}")

    docstring = inspect.cleandoc(
        (type(masker).__doc__ or "").partition("Parameters\n    ----------\n")[0]
    ).replace("``", "")  # reST literals read better as plain text here
    body = render_body(
        uid=uuid.uuid4().hex,
        title=type(masker).__name__,
        docstring=docstring,
        description=DESCRIPTION,
        warnings=report_warnings,
        figures=figures,
        figure_labels=labels,
        n_seeds=len(seeds),
        summary=summary_rows(
            seeds,
            masker.radius,
            position_affine,
            sphere_sizes(coords, masker.radius, volume, data.mask),
        ),
        parameters=parameter_rows(masker.get_params(deep=False)),
        figure_note=figure_note,
    )
    return HTMLReport(body, type(masker).__name__)


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (absent, or a broken install, counts as no)."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        return False
    return True


def _background(volume: xr.DataArray | None, mask: nib.Nifti1Image | None) -> Background:
    """Volume the spheres are drawn on.

    The fitted image's middle volume (resampled to the mask's grid when a mask is given, as
    nilearn shows it), or a synthetic brain.
    """
    from lazyspheres.masker.report.figures import Background

    if volume is None:
        from lazyspheres.datasets import MNI_2MM_AFFINE, MNI_2MM_SHAPE, tissue_labels

        labels = tissue_labels(MNI_2MM_SHAPE, MNI_2MM_AFFINE)
        intensity = np.array([0.0, 0.55, 0.85, 0.25])[labels]
        return Background.from_volume(
            intensity, MNI_2MM_AFFINE, "synthetic brain, MNI152 grid", display_range=(0.0, 1.0)
        )
    values = np.asarray(volume.values, dtype=np.float64)
    affine = volume.nifti.grid_affine
    if mask is not None and not (mask.shape == values.shape and np.allclose(mask.affine, affine)):
        from lazyspheres.masks import resample_mask_to_grid

        grid = (mask.shape[0], mask.shape[1], mask.shape[2])  # mask_img_ is 3D
        values = resample_mask_to_grid(np.nan_to_num(values), affine, mask.affine, grid).astype(
            np.float64
        )
        affine = mask.affine
    return Background.from_volume(values, affine, "middle volume of the fitted image")
