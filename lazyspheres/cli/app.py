"""The ``lazyspheres`` commands: ``demo``, ``info`` and ``extract``.

Each command is a small function taking parsed arguments; :func:`main` returns an exit code
(0 success, 1 some runs failed, 2 bad input), so tests call ``main([...])`` in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pathlib
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from lazyspheres.cli.common import distributed_log_level, storage_options, version

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr

__all__ = ["distributed_log_level", "main", "storage_options", "version"]

log = logging.getLogger("lazyspheres")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    Called without ``argv`` (as the ``lazyspheres`` script), an interrupted command exits
    at once with code 130 after its message, without waiting for reads still running in
    worker threads: the store is consistent at any point (flags are written last).
    """
    from lazyspheres.cli.connectome import run_connectome
    from lazyspheres.cli.info import info
    from lazyspheres.cli.parser import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    handlers = {"demo": _demo, "info": info, "extract": _extract, "connectome": run_connectome}
    # Warnings (nilearn's DeprecationWarnings, non-finite values ...) are shown once each
    # as plain lines on stderr, after the command's own output.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Result stores consolidate their metadata on purpose (batch/store.py); an
        # interrupted write can let zarr's note about it through.
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        try:
            code = handlers[args.command](args)
        except KeyboardInterrupt:
            print(f"\nlazyspheres {args.command}: interrupted", file=sys.stderr)
            code = 130
        except (FileNotFoundError, ValueError, TypeError, OSError, ImportError) as error:
            from lazyspheres.cli.messages import to_cli

            print(f"lazyspheres {args.command}: error: {to_cli(str(error))}", file=sys.stderr)
            code = 2
        finally:
            _show_warnings(caught, args)
    if argv is None:  # the script, not a caller in the same process
        if code == 130:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        if code != 0 and args.verbose == 0:
            # After a failed remote read, cloud clients' abandoned coroutines complain
            # at exit ("Exception ignored in ..."): the error is already reported.
            sys.unraisablehook = lambda unraisable: None
    return code


def _extract(args: argparse.Namespace) -> int:
    from lazyspheres.cli.extract import extract

    return extract(args)


def _show_warnings(caught: list[warnings.WarningMessage], args: argparse.Namespace) -> None:
    """Print each warning once; nilearn's ``zscore`` deprecation only if the user chose it.

    nilearn 0.12.1 warns about 'zscore' whenever confounds are standardised, whatever
    ``standardize`` is. The command line's ``--standardize`` means 'zscore_sample', so the
    warning concerns the user only when they typed ``--standardize zscore``.
    """
    from_user = getattr(args, "standardize", None) == "zscore"
    shown = set()
    for record in caught:
        message = str(record.message)
        if message.startswith(_ZSCORE_PREFIX) and not from_user:
            continue
        if issubclass(record.category, ResourceWarning):
            continue  # hidden by Python's default filters too
        if args.verbose == 0 and _from_distributed(record.filename):
            continue  # "Port 8787 is already in use": the cluster's business, shown with -v
        text = f"{record.category.__name__}: {message}"
        if text not in shown:
            shown.add(text)
            print(f"lazyspheres {args.command}: warning: {text}", file=sys.stderr)


def _from_distributed(filename: str) -> bool:
    return f"{os.sep}distributed{os.sep}" in filename


_ZSCORE_PREFIX = "The default strategy for standardize is currently 'zscore'"


def _configure_logging(verbose: int) -> None:
    """-v: lazyspheres' INFO lines and distributed's warnings; -vv: DEBUG and distributed INFO.

    Other libraries (zarr, numcodecs, fsspec, asyncio ...) stay at WARNING: their DEBUG
    lines are for their own developers.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    levels = [logging.WARNING, logging.INFO, logging.DEBUG]
    logging.getLogger("lazyspheres").setLevel(levels[min(verbose, 2)])
    logging.getLogger("distributed").setLevel(distributed_log_level(verbose))
    # Cloud clients log every retry (with tracebacks) before the error reaches us, and we
    # report that error in one line: their logs are for -v.
    for name in _CLOUD_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL if verbose == 0 else logging.WARNING)


_CLOUD_LOGGERS = ("gcsfs", "s3fs", "aiobotocore", "botocore", "fsspec", "aiohttp", "asyncio")


# ---------------------------------------------------------------------------- demo
def _demo(args: argparse.Namespace) -> int:
    if args.runs > 1:
        return _demo_batch(args)
    import numpy as np

    import lazyspheres as ls
    from lazyspheres import datasets
    from lazyspheres.cli.extract import write_table

    with _output_folder(args.out) as folder:
        bold = folder / f"sub-demo_task-rest_bold_T{args.volumes}.nii.gz"
        started = time.perf_counter()
        if not bold.exists():
            print(f"Generating a synthetic run ({args.volumes} volumes, MNI 2 mm) -> {bold}")
            datasets.write_bold(bold, n_volumes=args.volumes, seeds=args.seeds)
        generated = time.perf_counter()
        signals = ls.extract(bold, args.seeds, radius=args.radius)
        print(
            f"Extracting {signals.sizes['seed']} spheres of radius {args.radius} mm "
            f"from {bold.name} ..."
        )
        with _local_progress(not args.no_progress):
            signals = signals.compute()
        done = time.perf_counter()
        table = folder / "signals.tsv"
        write_table(signals.values, _column_names(signals), table)
        print(f"  generated the run in {generated - started:.1f} s")
        print(f"  extracted {signals.shape} (time x seed) in {done - generated:.2f} s")
        print(f"  voxels per sphere: {int(signals.n_voxels.min())}-{int(signals.n_voxels.max())}")
        if "network" in signals.coords:
            corr = np.corrcoef(signals.values.T)
            _print_networks(corr, signals["network"].values)
        print(f"  signals written to {table}{_kept_note(args.out)}")
    return 0


def _demo_batch(args: argparse.Namespace) -> int:
    import numpy as np

    import lazyspheres as ls
    from lazyspheres import datasets

    with _output_folder(args.out) as folder:
        root = folder / "derivatives"
        started = time.perf_counter()
        print(f"Generating {args.runs} synthetic runs ({args.volumes} volumes each) -> {root}")
        runs = datasets.write_dataset(
            root, n_subjects=args.runs, n_runs=1, n_volumes=args.volumes, seeds=args.seeds
        )
        generated = time.perf_counter()
        store = folder / "results.zarr"
        print(f"Extracting and cleaning {len(runs)} runs -> {store}")
        ds = ls.extract_many(
            runs,
            args.seeds,
            args.radius,
            store=store,
            mask_img="bids",
            confounds="bids",
            confound_columns=["trans_?", "rot_?", "csf", "white_matter"],
            clean={"detrend": True, "standardize": "zscore_sample"},
            overwrite=True,
            progress=not args.no_progress,
        )
        done = time.perf_counter()
        print(f"  generated the runs in {generated - started:.1f} s")
        print(f"  extracted {dict(ds.signals.sizes)} in {done - generated:.2f} s")
        if "network" in ds.coords:
            corr = np.corrcoef(ds.signals.isel(run=0).values.T)
            _print_networks(corr, ds["network"].values)
        if args.out is None:
            print(f"  results were in {store}{_kept_note(args.out)}")
        else:
            print(f"  results: xr.open_zarr({str(store)!r}) or lazyspheres info {store}")
    return 0


def _kept_note(out: pathlib.Path | None) -> str:
    """Say so when the demo's output folder is temporary."""
    if out is not None:
        return ""
    return " (a temporary folder, removed on exit: pass --out DIR to keep the files)"


def _print_networks(corr: np.ndarray, network: np.ndarray) -> None:
    import numpy as np

    same = network[:, None] == network[None, :]
    off = ~np.eye(len(network), dtype=bool)
    print(
        "  mean seed-to-seed correlation within networks: "
        f"{np.nanmean(corr[same & off]):.2f}, between networks: {np.nanmean(corr[~same]):.2f}"
    )


def _column_names(signals: xr.DataArray) -> list[str]:
    labels = signals["label"].values if "label" in signals.coords else signals["seed"].values
    return [str(v) for v in labels]


@contextlib.contextmanager
def _output_folder(out: pathlib.Path | None) -> Iterator[pathlib.Path]:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="lazyspheres-demo-") as folder:
        yield pathlib.Path(folder)


@contextlib.contextmanager
def _local_progress(show: bool) -> Iterator[None]:
    if not show:
        yield
        return
    from dask.diagnostics import ProgressBar

    with ProgressBar(minimum=0.5, dt=0.2):
        yield
