"""The ``lazyspheres`` command line: ``demo``, ``info`` and ``extract``.

Each subcommand is a small function taking parsed arguments; :func:`main` returns an exit
code, so tests call ``main([...])`` in-process and capture the output.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import pathlib
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["build_parser", "main"]

log = logging.getLogger("lazyspheres")

_EPILOG = """\
examples:
  lazyspheres demo
  lazyspheres demo --volumes 60 --out demo-output
  lazyspheres info bold.nii.gz
  lazyspheres extract bold.nii.gz --seeds power2011 --radius 5 --out signals.tsv
  lazyspheres extract sub-*/func/*_bold.nii.gz --seeds dosenbach2010 --radius 5 \\
      --out signals/{name}.csv --workers 2
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lazyspheres`` command."""
    parser = argparse.ArgumentParser(
        prog="lazyspheres",
        description=(
            "Mean BOLD time series in spheres around seed coordinates, "
            "out of core, with nilearn's numbers."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="generate a synthetic run and extract its Power 264 sphere signals",
        description=(
            "Generate a deterministic synthetic BOLD run on the MNI 2 mm grid (no download), "
            "extract the mean signal in 5 mm spheres around the 264 Power 2011 seeds with "
            "the local Dask scheduler, and report what came out."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  lazyspheres demo --volumes 120 --out demo-output\n",
    )
    demo.add_argument("--volumes", type=int, default=120, help="run length (default 120)")
    demo.add_argument("--seeds", default="power2011", help="named seed set (default power2011)")
    demo.add_argument("--radius", type=float, default=5.0, help="sphere radius in mm (5)")
    demo.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help="folder for the generated run and the signals (default: a temporary folder)",
    )
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    info = sub.add_parser(
        "info",
        help="describe an image: shape, affine, dtype, TR, chunking, compression",
        description="Print what lazyspheres reads from an image header (no data is read).",
        epilog=(
            "examples:\n  lazyspheres info bold.nii.gz\n  lazyspheres info bold.nii.gz --json\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info.add_argument("source", help="path or URL of a .nii/.nii.gz image")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_storage_options(info)

    extract = sub.add_parser(
        "extract",
        help="extract sphere signals from one or more runs",
        description=(
            "Extract the mean signal in a sphere around each seed from each run. One run "
            "may be written to .tsv/.csv (a time x seed table with a header row) or .zarr; "
            "several runs need {name} in the output path (replaced by each file's name)."
        ),
        epilog=(
            "examples:\n"
            "  lazyspheres extract bold.nii.gz --seeds power2011 --radius 5 --out signals.tsv\n"
            "  lazyspheres extract run1.nii.gz run2.nii.gz --seeds seeds.csv --out {name}.csv\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    extract.add_argument("sources", nargs="+", help="images (paths or URLs)")
    extract.add_argument(
        "--seeds",
        required=True,
        help="named set (power2011, dosenbach2010, seitzman2018) or a CSV/TSV with x,y,z columns",
    )
    extract.add_argument("--radius", type=float, default=None, help="sphere radius in mm")
    extract.add_argument("--mask", default=None, help="mask image (resampled to each run)")
    extract.add_argument("--allow-overlap", action="store_true", help="let spheres overlap")
    extract.add_argument("--out", required=True, help="output .tsv, .csv or .zarr path")
    where = extract.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, help="address of a Dask scheduler")
    where.add_argument(
        "--workers", type=int, default=None, help="start a local cluster with N workers"
    )
    extract.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_storage_options(extract)
    return parser


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fsspec option for URLs, e.g. anon=true (repeatable; values parsed as JSON)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(message)s"
    )
    handlers = {"demo": _demo, "info": _info, "extract": _extract}
    try:
        return handlers[args.command](args)
    except (FileNotFoundError, ValueError, TypeError, OSError) as error:
        print(f"lazyspheres {args.command}: error: {error}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------- commands
def _demo(args: argparse.Namespace) -> int:
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
        with _progress(not args.no_progress):
            signals = signals.compute()
        done = time.perf_counter()
        table = folder / "signals.tsv"
        _write_table(signals, table)
        print(f"  generated the run in {generated - started:.1f} s")
        print(f"  extracted {signals.shape} (time x seed) in {done - generated:.2f} s")
        print(f"  voxels per sphere: {int(signals.n_voxels.min())}-{int(signals.n_voxels.max())}")
        if "network" in signals.coords:
            corr = np.corrcoef(signals.values.T)
            network = signals["network"].values
            same = network[:, None] == network[None, :]
            off = ~np.eye(len(network), dtype=bool)
            print(
                "  mean seed-to-seed correlation within networks: "
                f"{corr[same & off].mean():.2f}, between networks: {corr[~same].mean():.2f}"
            )
        print(f"  signals written to {table}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    from lazyspheres.io.inflate import choose_engine
    from lazyspheres.io.open import image_from_file
    from lazyspheres.io.reader import NiftiFile

    nifti = NiftiFile.open(args.source, _storage_options(args.storage_option))
    layout = nifti.layout
    image = image_from_file(nifti)
    facts: dict[str, Any] = {
        "source": nifti.source.location,
        "shape": list(layout.shape),
        "dims": list(image.dims),
        "dtype": str(layout.raw_dtype.newbyteorder("=")),
        "values_dtype": str(layout.dtype),
        "scaling": None
        if not layout.is_scaled
        else {"slope": layout.slope, "inter": layout.inter},
        "voxel_size_mm": [round(float(v), 6) for v in image.nifti.voxel_size],
        "t_r_s": layout.t_r,
        "affine": np.round(layout.affine, 6).tolist(),
        "sform_code": layout.sform_code,
        "qform_code": layout.qform_code,
        "compression": nifti.source.compression or "none",
        "inflate_engine": choose_engine() if nifti.source.compression else None,
        "size_bytes": nifti.source.size,
        "data_bytes": layout.data_bytes,
        "chunks": [list(c) for c in image.chunks],
    }
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        if key == "affine":
            print(f"{key:<{width}}  " + ("\n" + " " * (width + 2)).join(map(str, value)))
        else:
            print(f"{key:<{width}}  {value}")
    return 0


def _extract(args: argparse.Namespace) -> int:
    import lazyspheres as ls

    out = str(args.out)
    if len(args.sources) > 1 and "{name}" not in out:
        raise ValueError(
            f"{len(args.sources)} runs were given but --out {out!r} has no {{name}} "
            "placeholder; use e.g. --out signals/{name}.tsv"
        )
    seeds = _read_seeds(args.seeds)
    options = _storage_options(args.storage_option)
    results = []
    for source in args.sources:
        signals = ls.extract(
            source,
            seeds,
            radius=args.radius,
            mask_img=args.mask,
            allow_overlap=args.allow_overlap,
            storage_options=options or None,
        )
        results.append((source, signals))
    with _scheduler(args), _progress(not args.no_progress and args.scheduler is None):
        import dask

        computed = dask.compute(*[signals for _, signals in results])
    for (source, _), signals in zip(results, computed, strict=True):
        name = pathlib.PurePath(str(source)).name
        for suffix in (".gz", ".nii"):
            name = name.removesuffix(suffix)
        target = pathlib.Path(out.replace("{name}", name))
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_table(signals, target)
        print(
            f"{source} -> {target} ({signals.sizes.get('time', 1)} volumes, "
            f"{signals.sizes['seed']} seeds)"
        )
    return 0


# ---------------------------------------------------------------------------- helpers
def _read_seeds(text: str) -> Any:
    path = pathlib.Path(text)
    if path.suffix.lower() in (".csv", ".tsv", ".txt") and path.exists():
        import pandas as pd

        return pd.read_csv(path, sep=None, engine="python")
    return text


def _write_table(signals: Any, target: pathlib.Path) -> None:
    suffix = target.suffix.lower()
    if suffix == ".zarr":
        signals.to_dataset(name="signals").to_zarr(target, mode="w")
        return
    if suffix not in (".tsv", ".csv"):
        raise ValueError(f"--out {target}: use a .tsv, .csv or .zarr file name.")
    import pandas as pd

    values = signals.values.reshape(-1, signals.sizes["seed"])
    labels = signals["label"].values if "label" in signals.coords else signals["seed"].values
    frame = pd.DataFrame(values, columns=[str(v) for v in labels])
    frame.to_csv(target, sep="\t" if suffix == ".tsv" else ",", index=False)


def _storage_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--storage-option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


@contextlib.contextmanager
def _output_folder(out: pathlib.Path | None) -> Iterator[pathlib.Path]:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="lazyspheres-demo-") as folder:
        yield pathlib.Path(folder)


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[None]:
    if not show:
        yield
        return
    from dask.diagnostics import ProgressBar

    with ProgressBar(minimum=0.5, dt=0.2):
        yield


@contextlib.contextmanager
def _scheduler(args: argparse.Namespace) -> Iterator[None]:
    if args.scheduler is None and args.workers is None:
        yield
        return
    from distributed import Client, LocalCluster

    if args.scheduler is not None:
        with Client(args.scheduler):
            yield
        return
    with LocalCluster(n_workers=args.workers, threads_per_worker=1) as cluster, Client(cluster):
        yield


def _version() -> str:
    import lazyspheres

    return f"lazyspheres {lazyspheres.__version__}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
