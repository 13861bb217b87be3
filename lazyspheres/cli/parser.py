"""The argument parser of the ``lazyspheres`` command, with examples that run as printed.

``tests/test_cli.py`` runs every example line of every ``--help`` text, in a folder holding
the files they name, so the examples cannot rot.
"""

from __future__ import annotations

import argparse
import pathlib
import textwrap

from lazyspheres.cli.common import add_storage_options

__all__ = ["EXAMPLE_PREFIX", "build_parser", "help_examples"]

EXAMPLE_PREFIX = "  lazyspheres "

_MAIN_EXAMPLES = r"""examples:
  lazyspheres demo --volumes 10 --out demo-output
  lazyspheres info bold.nii.gz
  lazyspheres extract bold.nii.gz --seeds power2011 --radius 5 --out signals.tsv
  lazyspheres extract derivatives/sub-*/func/*_desc-preproc_bold.nii.gz \
      --seeds power2011 --radius 5 --confounds bids --confound-columns "trans_?,rot_?" \
      --detrend --standardize zscore_sample --out results.zarr
  lazyspheres info results.zarr
"""

_EXTRACT_EXAMPLES = r"""output:
  .tsv/.csv  a time x seed table per run, columns named by the seeds' labels; several runs
             need {name} (the file name) or {run} (the run id) in the path
  .zarr      one result store for all runs: signals(run, time, seed), n_volumes,
             n_voxels, parameters and input fingerprints; an interrupted or partly failed
             batch is finished with --resume (complete, unchanged runs are not redone)

checks and exit codes:
  confounds (files, columns, n/a cells, lengths), masks and output paths are checked
  before any image is read. Exit code 0: done; 1: some runs failed (the others are
  complete); 2: bad input or usage; 130: interrupted (Ctrl-C; finish with --resume).

examples:
  lazyspheres extract bold.nii.gz --seeds power2011 --radius 5 --out signals.tsv
  lazyspheres extract run1.nii.gz run2.nii.gz --seeds seeds.csv --radius 6 --out {name}.csv
  lazyspheres extract derivatives/sub-*/func/*_desc-preproc_bold.nii.gz \
      --seeds dosenbach2010 --radius 5 --mask bids --confounds bids \
      --confound-columns "trans_?,rot_?,csf,white_matter" --detrend \
      --standardize zscore_sample --low-pass 0.1 --t-r 2 \
      --out dosenbach.zarr --workers 2
  lazyspheres extract derivatives/sub-*/func/*_desc-preproc_bold.nii.gz \
      --seeds dosenbach2010 --radius 5 --mask bids --confounds bids \
      --confound-columns "trans_?,rot_?,csf,white_matter" --detrend \
      --standardize zscore_sample --low-pass 0.1 --t-r 2 \
      --out dosenbach.zarr --resume
"""

_INFO_EXAMPLES = r"""examples:
  lazyspheres info bold.nii.gz
  lazyspheres info bold.nii.gz --json
  lazyspheres info results.zarr
"""

_DEMO_EXAMPLES = r"""examples:
  lazyspheres demo --volumes 10 --out demo-output
  lazyspheres demo --volumes 10 --runs 2 --out demo-batch
"""


def _wrap(text: str) -> str:
    return textwrap.fill(" ".join(text.split()), width=88)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lazyspheres`` command."""
    from lazyspheres.cli.common import version

    parser = argparse.ArgumentParser(
        prog="lazyspheres",
        description=_wrap(
            "Mean BOLD time series in spheres around seed coordinates, "
            "out of core, with nilearn's numbers."
        ),
        epilog=_MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version())
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: lazyspheres' log (runs opened, read, written) and cluster warnings; "
        "-vv: debug lines and the cluster's own log",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _demo_parser(sub)
    _info_parser(sub)
    _extract_parser(sub)
    from lazyspheres.cli.connectome import add_connectome_parser

    add_connectome_parser(sub)
    return parser


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo",
        help="generate synthetic runs and extract their Power 264 sphere signals",
        description=_wrap(
            "Generate a deterministic synthetic BOLD run on the MNI 2 mm grid (no download), "
            "extract the mean signal in 5 mm spheres around the 264 Power 2011 seeds with "
            "the local Dask scheduler, and report what came out. With --runs N, generate an "
            "fMRIPrep-like tree of N runs and extract them all, cleaned with their confounds, "
            "into a result store."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_DEMO_EXAMPLES,
    )
    demo.add_argument("--volumes", type=int, default=120, help="run length (default 120)")
    demo.add_argument(
        "--runs", type=int, default=1, help="number of runs (default 1; >1: a batch)"
    )
    demo.add_argument("--seeds", default="power2011", help="named seed set (default power2011)")
    demo.add_argument("--radius", type=float, default=5.0, help="sphere radius in mm (5)")
    demo.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help="folder for the generated runs and the signals (default: a temporary folder)",
    )
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _info_parser(sub: argparse._SubParsersAction) -> None:
    info = sub.add_parser(
        "info",
        help="describe an image or a result store (header and metadata only)",
        description=_wrap(
            "Print what lazyspheres reads from an image header (no data is read): shape, "
            "dims, dtypes, scaling, voxel size, TR, affine, xform codes, compression and "
            "chunking. For .nii/.nii.gz files, Zarr images (lazyspheres.to_zarr_image) and "
            "result stores (lazyspheres extract --out results.zarr: runs, completion, "
            "failures, parameters)."
        ),
        epilog=_INFO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info.add_argument("source", help="path or URL of a .nii/.nii.gz image or a .zarr store")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_storage_options(info)


def _extract_parser(sub: argparse._SubParsersAction) -> None:
    extract = sub.add_parser(
        "extract",
        help="extract (and clean) sphere signals from one or more runs",
        description=_wrap(
            "Extract the mean signal in a sphere around each seed from each run, optionally "
            "cleaned as nilearn's NiftiSpheresMasker cleans it (detrending, filtering, "
            "confound regression, standardisation). Runs are read in parallel by Dask: "
            "local threads by default, a local cluster with --workers, or a running "
            "cluster with --scheduler."
        ),
        epilog=_EXTRACT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    extract.add_argument("sources", nargs="+", help="4D runs (.nii, .nii.gz, .zarr; or URLs)")
    spheres = extract.add_argument_group("spheres")
    spheres.add_argument(
        "--seeds",
        required=True,
        help="named set (power2011, dosenbach2010, seitzman2018) or a CSV/TSV with x,y,z "
        "columns (other columns label the seeds)",
    )
    spheres.add_argument(
        "--radius", type=float, default=None, help="sphere radius in mm (default: 1 voxel)"
    )
    spheres.add_argument(
        "--mask",
        default=None,
        help="mask image for all runs, or 'bids' for each run's desc-brain_mask next to it",
    )
    spheres.add_argument("--allow-overlap", action="store_true", help="let spheres overlap")
    spheres.add_argument(
        "--smoothing-fwhm",
        default=None,
        metavar="MM",
        help="Gaussian smoothing FWHM in mm (or 'fast'), computed around the spheres only",
    )
    spheres.add_argument(
        "--on-empty",
        choices=("raise", "nan"),
        default="raise",
        help="a sphere with no voxel in a run: fail that run (raise) or give NaN (nan)",
    )
    cleaning = extract.add_argument_group("cleaning (nilearn's signal.clean)")
    cleaning.add_argument("--detrend", action="store_true", help="remove linear trends")
    cleaning.add_argument(
        "--standardize",
        nargs="?",
        const="zscore_sample",
        default=None,
        choices=("zscore_sample", "zscore", "psc"),
        help="standardize each signal (default when given: zscore_sample)",
    )
    cleaning.add_argument(
        "--no-standardize-confounds",
        action="store_true",
        help="scale confounds by their maximum instead of z-scoring them",
    )
    cleaning.add_argument("--low-pass", type=float, default=None, metavar="HZ")
    cleaning.add_argument("--high-pass", type=float, default=None, metavar="HZ")
    cleaning.add_argument(
        "--t-r", type=float, default=None, metavar="S", help="repetition time (to filter)"
    )
    cleaning.add_argument("--filter", choices=("butterworth", "cosine"), default=None)
    cleaning.add_argument(
        "--confounds",
        nargs="+",
        default=None,
        metavar="TSV",
        help="one confounds file per run, or 'bids' for each run's "
        "desc-confounds_timeseries.tsv next to it",
    )
    cleaning.add_argument(
        "--confound-columns",
        default=None,
        metavar="PATTERNS",
        help="comma-separated column names or patterns to keep, e.g. 'trans_?,rot_?,csf'",
    )
    cleaning.add_argument(
        "--fill-na",
        choices=("zero", "mean", "interpolate"),
        default=None,
        help="fill n/a confound cells (fMRIPrep's first derivative row)",
    )
    output = extract.add_argument_group("output and scheduling")
    output.add_argument("--out", required=True, help="output .zarr store, or .tsv/.csv tables")
    output.add_argument(
        "--resume",
        action="store_true",
        help="finish an existing .zarr store (skips complete, unchanged runs)",
    )
    output.add_argument("--overwrite", action="store_true", help="replace an existing store")
    where = output.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    where.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="start a local cluster with N (>= 1) worker processes",
    )
    output.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_storage_options(extract)


def _positive_int(text: str) -> int:
    """Type of a count (argparse): at least 1 (else a usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def help_examples() -> list[str]:
    """Every example command printed by ``--help`` (main and subcommands), in order.

    Lines continued with a trailing backslash are joined, as a shell would.
    """
    commands: list[str] = []
    for text in (_MAIN_EXAMPLES, _DEMO_EXAMPLES, _INFO_EXAMPLES, _EXTRACT_EXAMPLES):
        continued = False
        for line in text.splitlines():
            if continued:
                commands[-1] += " " + line.strip().removesuffix("\\").strip()
            elif line.startswith(EXAMPLE_PREFIX):
                commands.append(line.strip().removesuffix("\\").strip())
            else:
                continue
            continued = line.rstrip().endswith("\\")
    return commands
