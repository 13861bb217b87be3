"""fMRIPrep-style companions of the synthetic runs: confounds tables and a derivatives tree."""

from __future__ import annotations

import json
import os
import pathlib

import nibabel as nib
import numpy as np
import pandas as pd

import lazyspheres
from lazyspheres.datasets._grid import MNI_2MM_AFFINE, MNI_2MM_SHAPE, brain_mask
from lazyspheres.datasets._model import (
    MOTION_COLUMNS,
    SignalModel,
    compartment_means,
    fields,
    ground_truth,
)
from lazyspheres.datasets._nifti import _run, write_bold

__all__ = ["make_confounds", "write_confounds", "write_dataset"]


def make_confounds(
    n_volumes: int = 300,
    *,
    shape: tuple[int, int, int] = MNI_2MM_SHAPE,
    affine: np.ndarray | None = None,
    t_r: float = 2.0,
    seeds: object = "power2011",
    random_state: int = 0,
    dtype: str = "float32",
    scaled: bool = False,
    model: SignalModel | None = None,
) -> pd.DataFrame:
    """The fMRIPrep-style confounds of a synthetic run, as a DataFrame.

    Parameters are those of :func:`~lazyspheres.datasets.generate_volumes` (pass the same
    values as for the run). The motion parameters are the generator's own, so spikes in the
    image coincide with jumps in ``framewise_displacement``. ``global_signal``, ``csf`` and
    ``white_matter`` are the model's expected means over the brain, the ventricles and the
    white matter, in the units the image reads back in (they differ from means computed on
    the image only by the averaged noise, a relative ``noise_level / sqrt(n_voxels)``).

    Returns
    -------
    pandas.DataFrame
        One row per volume. Derivative columns and ``framewise_displacement`` are NaN in the
        first row, as fMRIPrep writes ``n/a`` there.

    Examples
    --------
    >>> from lazyspheres.datasets import make_confounds
    >>> conf = make_confounds(20, shape=(20, 24, 20), seeds=None)
    >>> conf.shape[0], conf["framewise_displacement"].isna().tolist()[:2]
    (20, [True, False])
    """
    run = _run(n_volumes, shape, affine, t_r, seeds, random_state, dtype, scaled, False, model)
    truth = ground_truth(
        run.n_volumes, t_r=run.t_r, seeds=run.seeds, random_state=run.random_state, model=run.model
    )
    flds = fields(run.shape, run.affine, truth.seeds, run.random_state, run.model, run.work_dtype)
    table = pd.DataFrame({k: v * run.unit_gain for k, v in compartment_means(flds, truth).items()})
    table = table.join(truth.motion)
    motion_delta = truth.motion.diff()
    # Power et al. (2012): rotations in radians become arc lengths on a 50 mm sphere.
    table["framewise_displacement"] = motion_delta[list(MOTION_COLUMNS[:3])].abs().sum(
        axis=1, min_count=3
    ) + 50.0 * motion_delta[list(MOTION_COLUMNS[3:])].abs().sum(axis=1, min_count=3)
    columns = {}
    for name in ("global_signal", "csf", "white_matter", "framewise_displacement"):
        columns[name] = table[name]
        if name != "framewise_displacement":
            columns[f"{name}_derivative1"] = table[name].diff()
    for name in MOTION_COLUMNS:
        derivative = table[name].diff()
        columns[name] = table[name]
        columns[f"{name}_derivative1"] = derivative
        columns[f"{name}_power2"] = table[name] ** 2
        columns[f"{name}_derivative1_power2"] = derivative**2
    return pd.DataFrame(columns)


def write_confounds(
    path: str | os.PathLike[str],
    n_volumes: int = 300,
    **run_options: object,
) -> pathlib.Path:
    r"""Write :func:`make_confounds` as an fMRIPrep ``desc-confounds_timeseries.tsv``.

    Parameters
    ----------
    path : str or os.PathLike
        Output TSV path.
    n_volumes : int, default 300
        Number of volumes (rows).
    **run_options
        Keyword arguments of :func:`make_confounds` (``shape``, ``t_r``, ``seeds``,
        ``random_state``, ...), the same as for the run.

    Returns
    -------
    pathlib.Path
        The path written. Missing values are written ``n/a``, as fMRIPrep does.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> from lazyspheres.datasets import write_confounds
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "desc-confounds_timeseries.tsv"
    >>> _ = write_confounds(out, 20, shape=(20, 24, 20), seeds=None)
    >>> pd.read_csv(out, sep="\t").shape[0]
    20
    """
    path = pathlib.Path(path)
    # run_options: make_confounds' keywords, checked by it (a dict[str, object] here)
    table = make_confounds(n_volumes, **run_options)  # type: ignore[arg-type]
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path


def write_dataset(
    root: str | os.PathLike[str],
    n_subjects: int = 2,
    n_runs: int = 1,
    *,
    n_volumes: int = 100,
    shape: tuple[int, int, int] = MNI_2MM_SHAPE,
    t_r: float = 2.0,
    seeds: object = "power2011",
    random_state: int = 0,
    dtype: str = "float32",
    task: str = "rest",
    compresslevel: int = 6,
    model: SignalModel | None = None,
) -> list[pathlib.Path]:
    """Lay out a small fMRIPrep-like derivatives tree of synthetic runs, for batch demos.

    For each subject and run: ``sub-XX/func/sub-XX_task-<task>_run-N_space-MNI152NLin2009cAsym
    [_res-2]_desc-preproc_bold.nii.gz`` with its JSON sidecar, the matching
    ``..._desc-brain_mask.nii.gz`` and ``sub-XX_task-<task>_run-N_desc-confounds_timeseries.tsv``;
    plus ``dataset_description.json`` at the root. Each run has its own random state, derived
    from ``random_state``, subject and run, so runs differ but the tree is reproducible.

    Parameters
    ----------
    root : str or os.PathLike
        Directory to create (it may exist).
    n_subjects, n_runs : int, default 2, 1
        How many subjects, and runs per subject.
    n_volumes, shape, t_r, seeds, random_state, dtype, model
        As in :func:`~lazyspheres.datasets.generate_volumes`.
    task : str, default "rest"
        BIDS task label.
    compresslevel : int, default 6
        As in :func:`~lazyspheres.datasets.write_bold`.

    Returns
    -------
    list of pathlib.Path
        The BOLD runs, sorted by subject then run.

    Examples
    --------
    >>> import tempfile
    >>> from lazyspheres.datasets import write_dataset
    >>> runs = write_dataset(tempfile.mkdtemp(), 2, 1, n_volumes=8, shape=(20, 24, 20))
    >>> [p.name.split("_space")[0] for p in runs]
    ['sub-01_task-rest_run-1', 'sub-02_task-rest_run-1']
    """
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    affine = MNI_2MM_AFFINE if tuple(shape) == MNI_2MM_SHAPE else None
    space = "space-MNI152NLin2009cAsym" + ("_res-2" if affine is not None else "")
    description = {
        "Name": "lazyspheres synthetic BOLD",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "lazyspheres", "Version": lazyspheres.__version__}],
    }
    (root / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n")
    runs = []
    for subject in range(1, n_subjects + 1):
        func = root / f"sub-{subject:02d}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        for run_index in range(1, n_runs + 1):
            stem = f"sub-{subject:02d}_task-{task}_run-{run_index}"
            state = int(
                np.random.SeedSequence([random_state, subject, run_index]).generate_state(1)[0]
            )
            options = {
                "shape": shape,
                "affine": affine,
                "t_r": t_r,
                "seeds": seeds,
                "random_state": state,
                "dtype": dtype,
                "model": model,
            }
            bold = func / f"{stem}_{space}_desc-preproc_bold.nii.gz"
            # options: write_bold's keywords, checked by it (a dict[str, object] here)
            write_bold(bold, n_volumes, compresslevel=compresslevel, **options)  # type: ignore[arg-type]
            sidecar = {"RepetitionTime": t_r, "TaskName": task, "SkullStripped": False}
            bold.with_name(bold.name.replace(".nii.gz", ".json")).write_text(
                json.dumps(sidecar, indent=2) + "\n"
            )
            nib.save(brain_mask(shape, affine), func / f"{stem}_{space}_desc-brain_mask.nii.gz")
            write_confounds(func / f"{stem}_desc-confounds_timeseries.tsv", n_volumes, **options)
            runs.append(bold)
    return runs
