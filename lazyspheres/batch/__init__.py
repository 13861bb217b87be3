"""Many runs: :func:`extract_many` into a resumable Zarr v3 result store, :func:`open_results`.

Modules: ``runs`` (sources, run ids, per-run confounds and masks), ``spheres`` (per-seed
radii, tolerated empty spheres), ``reading`` (header probes and block means on workers),
``tasks`` (what workers run), ``store`` (the result store), ``execute`` (local or
distributed scheduling, progress), ``api`` (:func:`extract_many`).
"""

from __future__ import annotations

from lazyspheres.batch.api import BatchError, extract_many
from lazyspheres.batch.checks import BatchInputError, MissingInputsError
from lazyspheres.batch.runs import run_id_of
from lazyspheres.batch.store import open_results

__all__ = [
    "BatchError",
    "BatchInputError",
    "MissingInputsError",
    "extract_many",
    "open_results",
    "run_id_of",
]
