"""``lazyspheres connectome``: connectivity matrices of a result store, written into it."""

from __future__ import annotations

import argparse
import textwrap

__all__ = ["add_connectome_parser", "run_connectome"]

_KINDS = ("correlation", "covariance", "partial correlation", "tangent", "precision")
_ESTIMATORS = ("ledoit-wolf", "empirical")

_EXAMPLES = """examples:
  lazyspheres connectome results.zarr --kind correlation
  lazyspheres connectome results.zarr --kind tangent --vectorize
"""


def add_connectome_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``connectome`` subcommand."""
    from lazyspheres.cli.common import add_storage_options

    parser = sub.add_parser(
        "connectome",
        help="per-run connectivity matrices of a result store, written into the store",
        description=textwrap.fill(
            "Compute one connectivity matrix per run of a result store written by "
            "'lazyspheres extract' (each run's real volumes only), with nilearn 0.12.1's "
            "ConnectivityMeasure numbers, and write it into the same store as the variable "
            "connectome_<kind> (run, seed, seed2), or (run, pair) with --vectorize. The "
            "store still opens with xr.open_zarr.",
            width=88,
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("store", help="path or URL of the result store (.zarr)")
    parser.add_argument(
        "--kind", choices=_KINDS, default="correlation", help="matrix kind (correlation)"
    )
    parser.add_argument(
        "--estimator",
        choices=_ESTIMATORS,
        default="ledoit-wolf",
        help="covariance estimator (ledoit-wolf, nilearn's default)",
    )
    parser.add_argument(
        "--vectorize", action="store_true", help="store lower triangles (pair dimension)"
    )
    parser.add_argument(
        "--discard-diagonal", action="store_true", help="with --vectorize, drop the diagonal"
    )
    add_storage_options(parser)


def run_connectome(args: argparse.Namespace) -> int:
    """Compute and write the connectome; print what was written."""
    from sklearn.covariance import EmpiricalCovariance

    from lazyspheres.cli.common import storage_options
    from lazyspheres.connectivity import connectome

    if args.discard_diagonal and not args.vectorize:
        raise ValueError("--discard-diagonal only applies with --vectorize.")
    options = storage_options(args.storage_option) or None
    estimator = EmpiricalCovariance() if args.estimator == "empirical" else None
    stored = connectome(
        args.store,
        args.kind,
        cov_estimator=estimator,
        vectorize=args.vectorize,
        discard_diagonal=args.discard_diagonal,
        store=args.store,
        storage_options=options,
    )
    shape = " x ".join(f"{stored.sizes[d]} {d}" for d in stored.dims)
    print(f"Wrote {stored.name} ({shape}) into {args.store}")
    return 0
