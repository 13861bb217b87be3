"""``lazyspheres extract``: many runs into a result store or into one table per run.

Everything the command line can check without reading an image is checked first (output
paths here; confounds, columns, ``n/a`` cells and lengths in :func:`extract_many`), and
every message names the flags the user typed (:mod:`lazyspheres.cli.messages`). Exit
codes: 0 done, 1 some runs failed, 2 bad input, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import pathlib
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import xarray as xr
    from distributed import Client

    from lazyspheres._types import StorageOptions, UserInput
    from lazyspheres.batch.params import BatchParams
    from lazyspheres.batch.runs import RunSpec
    from lazyspheres.cleaning.options import CleaningParams

__all__ = ["INTERRUPTED", "extract", "write_table"]

#: Exit code of an interrupted command (128 + SIGINT, as shells report it).
INTERRUPTED = 130

log = logging.getLogger("lazyspheres")


def extract(args: argparse.Namespace) -> int:
    """Run ``lazyspheres extract``; returns the exit code."""
    from lazyspheres.batch.lock import store_lock
    from lazyspheres.batch.runs import expand_sources

    out = str(args.out)
    tables = _check_out(out, args)
    sources = expand_sources(args.sources)
    if tables:
        targets = _table_targets(out, sources)
    flags = _flags(args, len(sources))
    _check_files(args)
    seeds = _read_seeds(args.seeds)
    with _client(args) as client, _table_store(tables, out) as store:
        _refuse_finished_store(store, args)
        try:
            with store_lock(store):  # one writer per store, from before the validation
                runs, params = _validated(args, flags, sources, seeds, store, tables)
                ds = _run_batch(runs, params, client, store, tables)
        except KeyboardInterrupt:
            return _interrupted(store, len(sources), tables)
        if ds is None:
            return 1 if not tables else _failed_tables(store, targets)
        if tables:
            _write_tables(ds, targets)
            return 0
        n_done = int(ds.complete.values.sum())
        print(
            f"{store}: {n_done} of {ds.sizes['run']} run(s) complete "
            f"({ds.sizes['seed']} seeds, up to {ds.sizes['time']} volumes)"
        )
    return 0


# ---------------------------------------------------------------------------- checks
def _check_out(out: str, args: argparse.Namespace) -> bool:
    """Check ``--out`` and its flags; returns whether the outputs are tables."""
    suffix = pathlib.PurePath(out.replace("{name}", "x").replace("{run}", "x")).suffix.lower()
    if suffix not in (".zarr", ".tsv", ".csv"):
        raise ValueError(f"--out {out}: use a .zarr store or .tsv/.csv table file names.")
    tables = suffix != ".zarr"
    if tables and args.resume:
        raise ValueError("--resume applies to .zarr stores, not to .tsv/.csv tables.")
    if not tables and "://" not in out:
        path = pathlib.Path(out)
        if path.exists() and not path.is_dir():
            raise FileExistsError(
                f"--out {out} is a file, not a .zarr store: choose another path."
            )
    return tables


def _table_targets(out: str, sources: list[str]) -> dict[str, pathlib.Path]:
    """The table file of each run (run id → path), checked before anything is read."""
    from lazyspheres.batch.runs import build_runs, strip_image_suffix

    if len(sources) > 1 and "{name}" not in out and "{run}" not in out:
        raise ValueError(
            f"{len(sources)} runs were given but --out {out!r} has no {{name}} or {{run}} "
            "placeholder; use e.g. --out signals/{name}.tsv, or a .zarr store."
        )
    targets = {}
    for run in build_runs(sources):
        name = strip_image_suffix(pathlib.PurePath(run.source).name)
        targets[run.run_id] = pathlib.Path(
            out.replace("{name}", name).replace("{run}", run.run_id)
        )
    paths = list(targets.values())
    clashes = sorted({str(p) for p in paths if paths.count(p) > 1})
    if clashes:
        raise ValueError(
            f"--out {out!r} gives several runs the same file ({clashes[:3]}); use {{run}}, "
            "which is unique per run."
        )
    for path in paths:
        if path.is_dir():
            raise FileExistsError(f"--out {out}: cannot write {path}: it is a folder.")
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise FileExistsError(
                f"--out {out}: cannot write {path}: {parent} is a file, not a folder."
            )
    return targets


def _check_files(args: argparse.Namespace) -> None:
    """Local files named by flags exist (URLs are checked when read)."""
    named = [("--mask", args.mask), ("--seeds", args.seeds)]
    named += [("--confounds", path) for path in args.confounds or []]
    for flag, value in named:
        if value is None or value == "bids" or "://" in value:
            continue
        path = pathlib.Path(value)
        looks_like_file = flag != "--seeds" or path.suffix.lower() in (".csv", ".tsv", ".txt")
        if looks_like_file and not path.exists():
            hint = " (or a named seed set: power2011, dosenbach2010, seitzman2018)"
            raise FileNotFoundError(
                f"{flag} {value}: file not found{hint if flag == '--seeds' else ''}."
            )


def _refuse_finished_store(store: pathlib.Path | str, args: argparse.Namespace) -> None:
    """An existing store with complete runs needs --resume or --overwrite."""
    from lazyspheres.batch.store import ResultStore

    if args.resume or args.overwrite or not isinstance(store, pathlib.Path):
        return
    handle = ResultStore(store)
    if handle.exists() and not handle.is_unfinished_start():
        raise FileExistsError(
            f"{store} exists and holds complete runs: add --resume to finish or update it, "
            "or --overwrite to start it again."
        )


# ---------------------------------------------------------------------------- running
def _validated(
    args: argparse.Namespace,
    flags: _Flags,
    sources: list[str],
    seeds: UserInput,
    store: pathlib.Path | str,
    tables: bool,
) -> tuple[list[RunSpec], BatchParams]:
    """The runs and the batch's parameters, validated once, as :func:`extract_many` does."""
    from lazyspheres.batch.stages import validate

    return validate(
        sources,
        seeds,
        args.radius,
        store=store,
        mask_img=args.mask,
        allow_overlap=args.allow_overlap,
        confounds=flags.confounds,
        confound_columns=None
        if args.confound_columns is None
        else [c.strip() for c in args.confound_columns.split(",") if c.strip()],
        clean=flags.clean,
        smoothing_fwhm=flags.smoothing_fwhm,
        resume=args.resume or tables,
        overwrite=args.overwrite or tables,
        progress=not args.no_progress,
        on_empty=args.on_empty,
        storage_options=flags.storage_options,
    )


def _run_batch(
    runs: list[RunSpec],
    params: BatchParams,
    client: Client | None,
    store: pathlib.Path | str,
    tables: bool,
) -> xr.Dataset | None:
    """The batch's dataset, or None when runs failed (their lines already printed)."""
    from lazyspheres.batch import BatchError
    from lazyspheres.batch.api import run_batch
    from lazyspheres.cli.messages import NEXT_RESUME, failure_lines

    try:
        return run_batch(runs, params, client)
    except BatchError as error:
        named = {run.run_id: run.source for run in runs}
        lines = [f"lazyspheres extract: {len(error.failures)} run(s) failed:"]
        lines += failure_lines(error.failures, named)
        done, total = _count_complete(store, len(runs))
        if tables:
            lines.append(
                f"{done} of {total} table(s) written. Next: fix the failed runs and run the "
                "same command again."
            )
        elif done:
            lines.append(
                f"{done} of {total} run(s) are complete in {store}. Next: fix the failed runs "
                f"and {NEXT_RESUME} (complete runs are not redone)."
            )
        else:
            lines.append(
                f"No run is complete in {store}. Next: fix the failed runs and run the same "
                "command again."
            )
        print("\n".join(lines), file=sys.stderr)
        return None


def _count_complete(store: pathlib.Path | str, n_runs: int) -> tuple[int, int]:
    from lazyspheres.batch.store import ResultStore

    handle = ResultStore(store)
    try:
        return len(handle.complete_runs()), n_runs
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return 0, n_runs  # no store yet, or a template interrupted half-written


def _interrupted(store: pathlib.Path | str, n_runs: int, tables: bool) -> int:
    sys.stderr.write("\n")
    if tables:
        print("interrupted: no table was written; run the command again.", file=sys.stderr)
        return INTERRUPTED
    done, total = _count_complete(store, n_runs)
    print(
        f"interrupted: {done} of {total} runs complete in {store}; rerun with --resume",
        file=sys.stderr,
    )
    return INTERRUPTED


def _failed_tables(store: pathlib.Path | str, targets: dict[str, pathlib.Path]) -> int:
    """Write the tables of the runs that did complete; exit code 1."""
    from lazyspheres.batch.store import ResultStore, open_results

    if ResultStore(store).exists():
        ds = open_results(store, allow_partial=True)
        _write_tables(ds.isel(run=ds.complete.values.nonzero()[0]), targets)
    return 1


def _write_tables(ds: xr.Dataset, targets: dict[str, pathlib.Path]) -> None:
    labels = ds["label"].values if "label" in ds.coords else ds["seed"].values
    for i, run in enumerate(ds.run.values.tolist()):
        target = targets[run]
        target.parent.mkdir(parents=True, exist_ok=True)
        n = int(ds.n_volumes.values[i])
        write_table(ds.signals.values[i, :n], [str(v) for v in labels], target)
        print(f"{ds.source.values[i]} -> {target} ({n} volumes, {ds.sizes['seed']} seeds)")


def write_table(values: np.ndarray, columns: list[str], target: pathlib.Path) -> None:
    """A time x seed table (.tsv tab-separated, else comma-separated)."""
    import pandas as pd

    frame = pd.DataFrame(values.reshape(-1, len(columns)), columns=columns)
    sep = "\t" if target.suffix.lower() == ".tsv" else ","
    frame.to_csv(target, sep=sep, index=False)


# ---------------------------------------------------------------------------- options
@dataclass(frozen=True)
class _Flags:
    """The batch flags that need parsing, parsed before anything else is read."""

    confounds: list[str] | Literal["bids"] | None
    clean: CleaningParams | None
    smoothing_fwhm: float | Literal["fast"] | None
    storage_options: StorageOptions | None


def _flags(args: argparse.Namespace, n_runs: int) -> _Flags:
    from lazyspheres.cli.common import storage_options

    return _Flags(
        confounds=_confounds(args.confounds, n_runs),
        clean=_clean_options(args),
        smoothing_fwhm=_fwhm(args.smoothing_fwhm),
        storage_options=storage_options(args.storage_option) or None,
    )


def _clean_options(args: argparse.Namespace) -> CleaningParams | None:
    from lazyspheres.cleaning.options import CleaningParams

    clean: dict[str, UserInput] = {}  # the flags given, validated by CleaningParams
    if args.detrend:
        clean["detrend"] = True
    if args.standardize is not None:
        clean["standardize"] = args.standardize
    if args.no_standardize_confounds:
        clean["standardize_confounds"] = False
    for name in ("low_pass", "high_pass", "t_r", "filter", "fill_na"):
        value = getattr(args, name)
        if value is not None:
            clean[name] = value
    return CleaningParams.from_options(clean) if clean else None


def _confounds(values: list[str] | None, n_runs: int) -> list[str] | Literal["bids"] | None:
    if values is None:
        return None
    if values == ["bids"]:
        return "bids"
    if len(values) != n_runs:
        raise ValueError(
            f"--confounds got {len(values)} file(s) for {n_runs} run(s): give one per run "
            "(in the order of the runs) or 'bids'."
        )
    return values


def _fwhm(text: str | None) -> float | Literal["fast"] | None:
    if text is None:
        return None
    if text == "fast":
        return "fast"
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"--smoothing-fwhm {text!r}: expected a number of mm or 'fast'."
        ) from None


def _read_seeds(text: str) -> pd.DataFrame | str:
    path = pathlib.Path(text)
    if path.suffix.lower() in (".csv", ".tsv", ".txt") and path.exists():
        import pandas as pd

        return pd.read_csv(path, sep=None, engine="python")
    return text


@contextlib.contextmanager
def _table_store(tables: bool, out: str) -> Iterator[pathlib.Path | str]:
    """The result store: ``--out`` itself, or a temporary one tables are written from."""
    if not tables:
        yield pathlib.Path(out) if "://" not in out else out
        return
    with tempfile.TemporaryDirectory(prefix="lazyspheres-extract-") as folder:
        yield pathlib.Path(folder) / "results.zarr"


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Client | None]:
    if args.scheduler is None and args.workers is None:
        yield None
        return
    from distributed import Client, LocalCluster

    from lazyspheres.cli.common import distributed_log_level

    quiet = distributed_log_level(args.verbose)
    logging.getLogger("distributed").setLevel(quiet)  # importing distributed reset it
    if args.scheduler is not None:
        with Client(args.scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=quiet,
        ) as cluster,
        Client(cluster) as client,
    ):
        # Ctrl-C reaches the whole process group: the workers leave the interrupt to this
        # process, which cancels their tasks and closes the cluster.
        client.run(_ignore_interrupts)
        log.info("local cluster of %d worker process(es) started", args.workers)
        yield client


def _ignore_interrupts() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
