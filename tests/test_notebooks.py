"""Every notebook in ``notebooks/`` runs top to bottom in a fresh kernel, offline.

Notebooks are stored without outputs (so diffs stay readable and no stale numbers are
shipped); this test executes each one with nbclient in a temporary working directory, with
matplotlib's non-interactive Agg backend, and fails on the first cell that raises.
"""

from __future__ import annotations

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = {
    "01_quickstart.ipynb",
    "02_xarray_exploration.ipynb",
    "03_many_runs_on_dask.ipynb",
    "04_migrating_from_nilearn.ipynb",
    "05_connectivity.ipynb",
}


def _ids(paths):
    return [path.stem for path in paths]


def test_expected_notebooks_exist():
    assert {path.name for path in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code"
    dirty = [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count]
    assert not dirty, f"{path.name}: code cells {dirty} have stored outputs; clear them"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the kernel inherits it: no display needed
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,  # per cell; a whole notebook takes well under a minute
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # files are written here
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on error
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"]
    assert any(out.output_type in ("execute_result", "display_data") for out in outputs)
