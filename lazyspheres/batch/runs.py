"""Runs of a batch: sources, stable run ids from BIDS entities, per-run confounds and masks.

A run id must be stable across invocations (it is how a resumed batch finds its runs in the
store), readable, and unique. BIDS names give one directly: the entities that identify an
acquisition (``sub``, ``ses``, ``task``, ``acq``, ``ce``, ``rec``, ``dir``, ``run``,
``echo``, ``part``) joined in file-name order, e.g. ``sub-01_ses-1_task-rest_run-1`` for
``sub-01_ses-1_task-rest_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz``. Other
names give their stem (``bold`` for ``bold.nii.gz``); when stems collide, the path relative
to the sources' common folder is used (``a/bold`` → ``a_bold``).

fMRIPrep writes the confounds of a run next to it as
``<run entities>_desc-confounds_timeseries.tsv`` (older releases:
``..._desc-confounds_regressors.tsv``) and the brain mask as ``..._desc-brain_mask.nii.gz``
(the BOLD name with ``desc-preproc_bold`` replaced); ``"bids"`` finds them.
"""

from __future__ import annotations

import glob
import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from lazyspheres._types import StorageOptions, UserInput

if TYPE_CHECKING:
    from lazyspheres.batch.input_errors import BatchInputError, MissingInputsError

__all__ = [
    "RUN_ENTITIES",
    "RunSpec",
    "build_runs",
    "discover_confounds",
    "discover_mask",
    "expand_sources",
    "run_id_of",
    "strip_image_suffix",
]

#: BIDS entities that identify one acquisition (BIDS entity table order).
RUN_ENTITIES = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "part")
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".zarr")
_CONFOUNDS_SUFFIXES = ("_desc-confounds_timeseries.tsv", "_desc-confounds_regressors.tsv")

#: Finds a run's file next to it: ``discover(source, storage_options)``.
Discover: TypeAlias = Callable[[str, StorageOptions | None], str]


@dataclass(frozen=True)
class RunSpec:
    """One run of a batch: where it is and what goes with it (picklable, small).

    Attributes
    ----------
    index : int
        Position along the store's ``run`` dimension.
    run_id : str
        Stable id (the ``run`` coordinate).
    source : str
        Path or URL of the image.
    confounds : object
        Confounds for :func:`lazyspheres.clean` (path, array, DataFrame, pair) or None.
    sample_mask : object
        Sample mask for :func:`lazyspheres.clean`, or None.
    mask : object
        This run's own mask image (path/URL/image), or None (the batch's shared mask).
    """

    index: int
    run_id: str
    source: str
    confounds: UserInput = None
    sample_mask: UserInput = None
    mask: UserInput = None


def strip_image_suffix(name: str) -> str:
    """``sub-01_bold.nii.gz`` → ``sub-01_bold`` (also ``.nii`` and ``.zarr``)."""
    lower = name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _basename(source: str) -> str:
    return posixpath.basename(source.replace("\\", "/").rstrip("/"))


def _entities(stem: str) -> list[tuple[str, str]]:
    pairs = []
    for token in stem.split("_"):
        key, sep, value = token.partition("-")
        if sep and key and value:
            pairs.append((key, value))
    return pairs


def run_id_of(source: str) -> str:
    """The run id of one source: its BIDS run entities, else its file stem."""
    stem = strip_image_suffix(_basename(source))
    pairs = [(k, v) for k, v in _entities(stem) if k in RUN_ENTITIES]
    if any(key == "sub" for key, _ in pairs):
        return "_".join(f"{k}-{v}" for k, v in pairs)
    return stem


def _run_ids(sources: Sequence[str]) -> list[str]:
    ids = [run_id_of(s) for s in sources]
    if len(set(ids)) == len(ids):
        return ids
    # Same run entities in several files (e.g. two spaces) or same stems in several
    # folders: fall back to the full stem, then to the path below the common folder.
    ids = [strip_image_suffix(_basename(s)) for s in sources]
    if len(set(ids)) == len(ids):
        return ids
    paths = [s.replace("\\", "/").rstrip("/") for s in sources]
    common = posixpath.dirname(posixpath.commonprefix(paths)) if len(paths) > 1 else ""
    ids = [strip_image_suffix(p[len(common) :].lstrip("/")).replace("/", "_") for p in paths]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(
            f"Several sources give the same run id {dupes}: the same file is listed twice. "
            "List each run once, or pass run_ids=[...] (one unique id per source)."
        )
    return ids


def expand_sources(sources: UserInput) -> list[str]:
    """A list of source strings: a single path/URL, a sequence, or local glob patterns."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not isinstance(sources, Sequence) or isinstance(sources, (bytes, str)):
        sources = list(sources)
    out: list[str] = []
    for source in sources:
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(
                f"extract_many reads runs from paths or URLs; got {type(source).__name__}. "
                "Save in-memory images first (nibabel.save) or use lazyspheres.extract."
            )
        text = os.fspath(source)
        if "://" not in text and glob.has_magic(text):
            matches = sorted(glob.glob(os.path.expanduser(text)))
            if not matches:
                raise FileNotFoundError(f"File not found: no file matches '{text}'.")
            out.extend(matches)
        else:
            out.append(text)
    if not out:
        raise ValueError("extract_many needs at least one source (path or URL).")
    return out


def _stem_prefix(source: str) -> tuple[str, str]:
    """(folder, ``sub-01_task-rest_run-1``) for a BIDS run."""
    name = _basename(source)
    folder = source[: len(source.rstrip("/")) - len(name)]
    pairs = [(k, v) for k, v in _entities(strip_image_suffix(name)) if k in RUN_ENTITIES]
    if not any(k == "sub" for k, _ in pairs):
        raise ValueError(
            f"{source}: not a BIDS file name (no sub-<label> entity), so its confounds and "
            "mask cannot be discovered. Pass them explicitly, one per run."
        )
    return folder, "_".join(f"{k}-{v}" for k, v in pairs)


def _exists(path: str, storage_options: StorageOptions | None) -> bool:
    if "://" in path and not path.startswith("file://"):
        import fsspec

        fs, inner = fsspec.core.url_to_fs(path, **(storage_options or {}))
        return bool(fs.exists(inner))
    return os.path.isfile(path.removeprefix("file://"))


def discover_confounds(source: str, storage_options: StorageOptions | None = None) -> str:
    """The fMRIPrep confounds file next to a BIDS run.

    Raises
    ------
    FileNotFoundError
        Neither ``..._desc-confounds_timeseries.tsv`` nor ``..._regressors.tsv`` exists.
    """
    folder, prefix = _stem_prefix(source)
    tried = [folder + prefix + suffix for suffix in _CONFOUNDS_SUFFIXES]
    for candidate in tried:
        if _exists(candidate, storage_options):
            return candidate
    raise FileNotFoundError(
        f"File not found: no confounds file for run {source}; looked for {tried}. "
        "Pass confounds explicitly (one per run) or confounds=None."
    )


def discover_mask(source: str, storage_options: StorageOptions | None = None) -> str:
    """The fMRIPrep brain mask next to a BIDS run (``desc-preproc_bold`` → ``desc-brain_mask``).

    Raises
    ------
    FileNotFoundError
        No such mask file.
    """
    name = _basename(source)
    folder = source[: len(source.rstrip("/")) - len(name)]
    stem = strip_image_suffix(name)
    if "_desc-preproc_bold" in stem:
        candidate = folder + stem.replace("_desc-preproc_bold", "_desc-brain_mask") + ".nii.gz"
    else:
        _, prefix = _stem_prefix(source)
        candidate = folder + prefix + "_desc-brain_mask.nii.gz"
    if not _exists(candidate, storage_options):
        raise FileNotFoundError(
            f"File not found: no brain mask for run {source}; looked for {candidate}. "
            "Pass mask_img explicitly or mask_img=None."
        )
    return candidate


def _discover_all(
    discover: Discover,
    name: str,
    sources: list[str],
    ids: list[str],
    options: StorageOptions | None,
) -> list[str]:
    """Each run's file found next to it; every missing one is named at once."""
    from lazyspheres.batch.input_errors import BatchInputError, MissingInputsError

    found, missing, unnamed = [], [], []
    for source, run_id in zip(sources, ids, strict=True):
        try:
            found.append(discover(source, options))
        except FileNotFoundError as error:
            text = str(error).removeprefix("File not found: ").split(". Pass")[0]
            text = text.replace(f" for run {source}; looked for ", " next to it (looked for ")
            missing.append(f"{run_id}: {text})")
        except ValueError as error:
            unnamed.append(f"{run_id}: {str(error).split(', so')[0]}")
    advice = f"Pass {name} explicitly (one per run) or {name}=None, and call extract_many again."
    if unnamed:
        raise BatchInputError(unnamed + missing, advice)
    if missing:
        raise MissingInputsError(missing, advice)
    return found


def _per_run(
    value: UserInput,
    name: str,
    sources: list[str],
    ids: list[str],
    discover: Discover | None,
    options: StorageOptions | None,
) -> list[UserInput]:
    """Expand a per-run option: None, "bids", a mapping run id → value, or a sequence."""
    n = len(sources)
    if value is None:
        return [None] * n
    if isinstance(value, str) and value == "bids":
        if discover is None:
            raise ValueError(f"{name}='bids' is not supported; pass one value per run.")
        return _discover_all(discover, name, sources, ids, options)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(ids))
        if unknown:
            raise ValueError(
                f"{name} names unknown run ids {unknown}; the run ids are {ids[:10]}"
                f"{' ...' if n > 10 else ''}."
            )
        return [value.get(run_id) for run_id in ids]
    if isinstance(value, (list, tuple)) and len(value) == n:
        return list(value)
    raise ValueError(
        f"{name} must be None, 'bids' (discovered next to each run), a dict run id -> value, "
        f"or a list with one entry per run ({n} runs); got {type(value).__name__}"
        f"{f' of length {len(value)}' if hasattr(value, '__len__') else ''}."
    )


def _missing_masks(
    masks: UserInput, paths: list[str], ids: list[str], options: StorageOptions | None
) -> BatchInputError | MissingInputsError | None:
    """The error discovering the runs' masks would raise (None if they are all there)."""
    from lazyspheres.batch.input_errors import BatchInputError, MissingInputsError

    try:
        _per_run(masks, "mask_img", paths, ids, discover_mask, options)
    except (BatchInputError, MissingInputsError) as error:
        return error
    return None


def build_runs(
    sources: UserInput,
    *,
    confounds: UserInput = None,
    sample_mask: UserInput = None,
    masks: UserInput = None,
    run_ids: Sequence[str] | None = None,
    storage_options: StorageOptions | None = None,
) -> list[RunSpec]:
    """Resolve sources, run ids and per-run confounds / sample masks / masks.

    Parameters
    ----------
    sources : path, URL, glob pattern or sequence of them
        The runs.
    confounds : None, "bids", mapping or sequence, optional
        Per-run confounds.
    sample_mask : None, mapping or sequence, optional
        Per-run sample masks.
    masks : None, "bids", mapping or sequence, optional
        Per-run mask images (a single shared mask is handled by the caller).
    run_ids : sequence of str, optional
        Explicit ids (default: derived from the names).
    storage_options : dict, optional
        fsspec options, for discovering files next to URL runs.

    Returns
    -------
    list of RunSpec
    """
    from lazyspheres.batch.input_errors import BatchInputError, MissingInputsError

    paths = expand_sources(sources)
    if run_ids is None:
        ids = _run_ids(paths)
    else:
        ids = [str(i) for i in run_ids]
        if len(ids) != len(paths) or len(set(ids)) != len(ids):
            raise ValueError(
                f"run_ids must be {len(paths)} unique strings, one per source; got {ids[:10]}."
            )
    per_sample = _per_run(sample_mask, "sample_mask", paths, ids, None, storage_options)
    try:
        per_confounds = _per_run(
            confounds, "confounds", paths, ids, discover_confounds, storage_options
        )
    except (BatchInputError, MissingInputsError) as error:
        per_mask_error = _missing_masks(masks, paths, ids, storage_options)
        if per_mask_error is None:
            raise
        # both are missing for some runs: one list, one advice
        raise type(error)(
            error.problems + per_mask_error.problems,
            "Pass confounds and mask_img explicitly (one per run) or None, and call "
            "extract_many again.",
        ) from None
    per_mask = _per_run(masks, "mask_img", paths, ids, discover_mask, storage_options)
    return [
        RunSpec(i, ids[i], paths[i], per_confounds[i], per_sample[i], per_mask[i])
        for i in range(len(paths))
    ]
