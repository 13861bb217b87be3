"""The ``lazyspheres`` commands: ``demo``, ``info`` and ``extract``.

Each command is a small function taking parsed arguments; :func:`main` returns an exit code
(0 success, 1 some runs failed, 2 bad input), so tests call ``main([...])`` in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import pathlib
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from lazyspheres.cli.common import storage_options, version

__all__ = ["main", "storage_options", "version"]

log = logging.getLogger("lazyspheres")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    from lazyspheres.cli.connectome import run_connectome
    from lazyspheres.cli.info import info
    from lazyspheres.cli.parser import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(message)s"
    )
    handlers = {"demo": _demo, "info": info, "extract": _extract, "connectome": run_connectome}
    # Warnings (nilearn's DeprecationWarnings, non-finite values ...) are shown once each
    # as plain lines on stderr, after the command's own output.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return handlers[args.command](args)
        except (FileNotFoundError, ValueError, TypeError, OSError) as error:
            print(f"lazyspheres {args.command}: error: {error}", file=sys.stderr)
            return 2
        except RuntimeError as error:
            from lazyspheres.batch import BatchError  # imported only when needed: fast --help

            if not isinstance(error, BatchError):
                raise
            print(f"lazyspheres {args.command}: {error}", file=sys.stderr)
            return 1
        finally:
            shown = set()
            for record in caught:
                text = f"{record.category.__name__}: {record.message}"
                if text not in shown:
                    shown.add(text)
                    print(f"lazyspheres {args.command}: warning: {text}", file=sys.stderr)


# ---------------------------------------------------------------------------- demo
def _demo(args: argparse.Namespace) -> int:
    if args.runs > 1:
        return _demo_batch(args)
    import numpy as np

    import lazyspheres as ls
    from lazyspheres import datasets

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
        _write_table(signals.values, _column_names(signals), table)
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


def _print_networks(corr: Any, network: Any) -> None:
    import numpy as np

    same = network[:, None] == network[None, :]
    off = ~np.eye(len(network), dtype=bool)
    print(
        "  mean seed-to-seed correlation within networks: "
        f"{np.nanmean(corr[same & off]):.2f}, between networks: {np.nanmean(corr[~same]):.2f}"
    )


# ---------------------------------------------------------------------------- info
def _extract(args: argparse.Namespace) -> int:
    import lazyspheres as ls
    from lazyspheres.batch.runs import expand_sources, strip_image_suffix

    out = str(args.out)
    suffix = pathlib.PurePath(out.replace("{name}", "x").replace("{run}", "x")).suffix.lower()
    if suffix not in (".zarr", ".tsv", ".csv"):
        raise ValueError(f"--out {out}: use a .zarr store or .tsv/.csv table file names.")
    sources = expand_sources(args.sources)
    tables = suffix != ".zarr"
    if tables and len(sources) > 1 and "{name}" not in out and "{run}" not in out:
        raise ValueError(
            f"{len(sources)} runs were given but --out {out!r} has no {{name}} or {{run}} "
            "placeholder; use e.g. --out signals/{name}.tsv, or a .zarr store."
        )
    if tables and args.resume:
        raise ValueError("--resume applies to .zarr stores, not to .tsv/.csv tables.")
    options = storage_options(args.storage_option) or None
    kwargs = {
        "mask_img": args.mask,
        "allow_overlap": args.allow_overlap,
        "confounds": _confounds(args.confounds, len(sources)),
        "confound_columns": None
        if args.confound_columns is None
        else [c.strip() for c in args.confound_columns.split(",") if c.strip()],
        "clean": _clean_options(args),
        "smoothing_fwhm": _fwhm(args.smoothing_fwhm),
        "on_empty": args.on_empty,
        "progress": not args.no_progress,
        "storage_options": options,
    }
    seeds = _read_seeds(args.seeds)
    with _client(args) as client, _table_store(tables, out) as store:
        exists = store.exists() if isinstance(store, pathlib.Path) else False
        if exists and not (args.resume or args.overwrite):
            raise FileExistsError(
                f"{store} exists: pass --resume to finish or update it, or --overwrite to "
                "start it again."
            )
        ds = ls.extract_many(
            sources,
            seeds,
            args.radius,
            store=store,
            client=client,
            resume=args.resume or tables,
            overwrite=args.overwrite or tables,
            **kwargs,
        )
        if tables:
            names = {
                run: strip_image_suffix(pathlib.PurePath(src).name)
                for run, src in zip(ds.run.values.tolist(), ds.source.values.tolist(), strict=True)
            }
            labels = ds["label"].values if "label" in ds.coords else ds["seed"].values
            for i, run in enumerate(ds.run.values.tolist()):
                target = pathlib.Path(out.replace("{name}", names[run]).replace("{run}", run))
                target.parent.mkdir(parents=True, exist_ok=True)
                n = int(ds.n_volumes.values[i])
                _write_table(ds.signals.values[i, :n], [str(v) for v in labels], target)
                print(f"{ds.source.values[i]} -> {target} ({n} volumes, {ds.sizes['seed']} seeds)")
            return 0
        n_done = int(ds.complete.values.sum())
        print(
            f"{store}: {n_done} of {ds.sizes['run']} run(s) complete "
            f"({ds.sizes['seed']} seeds, up to {ds.sizes['time']} volumes)"
        )
    return 0


def _clean_options(args: argparse.Namespace) -> dict[str, Any] | None:
    clean: dict[str, Any] = {}
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
    return clean or None


def _confounds(values: list[str] | None, n_runs: int) -> Any:
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


def _fwhm(text: str | None) -> Any:
    if text is None or text == "fast":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"--smoothing-fwhm {text!r}: expected a number of mm or 'fast'."
        ) from None


def _read_seeds(text: str) -> Any:
    path = pathlib.Path(text)
    if path.suffix.lower() in (".csv", ".tsv", ".txt") and path.exists():
        import pandas as pd

        return pd.read_csv(path, sep=None, engine="python")
    return text


def _column_names(signals: Any) -> list[str]:
    labels = signals["label"].values if "label" in signals.coords else signals["seed"].values
    return [str(v) for v in labels]


def _write_table(values: Any, columns: list[str], target: pathlib.Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(values.reshape(-1, len(columns)), columns=columns)
    sep = "\t" if target.suffix.lower() == ".tsv" else ","
    frame.to_csv(target, sep=sep, index=False)


@contextlib.contextmanager
def _table_store(tables: bool, out: str) -> Iterator[Any]:
    """The result store: ``--out`` itself, or a temporary one tables are written from."""
    if not tables:
        yield pathlib.Path(out) if "://" not in out else out
        return
    with tempfile.TemporaryDirectory(prefix="lazyspheres-extract-") as folder:
        yield pathlib.Path(folder) / "results.zarr"


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


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    if args.scheduler is None and args.workers is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if args.scheduler is not None:
        with Client(args.scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
