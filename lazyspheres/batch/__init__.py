"""Many runs: :func:`extract_many` into a resumable Zarr v3 result store, :func:`open_results`.

Modules: ``params`` (:class:`~lazyspheres.batch.params.BatchParams`, the one parameter
object every layer receives), ``runs`` (sources, run ids, per-run confounds and masks),
``spheres`` (per-seed radii, tolerated empty spheres), ``reading`` (header probes and block
means on workers), ``tasks`` (what workers run), ``store`` (the result store), ``execute``
(local or distributed scheduling, Dask's progress bar), ``running`` (a batch's task graph),
``stages`` (validate, plan, schedule, write), ``api`` (:func:`extract_many`, their sequence).
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
