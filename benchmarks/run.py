"""Time lazyspheres against nilearn 0.12.1 and the I/O floors, in the same run.

Usage::

    python benchmarks/run.py                 # T=300, .nii.gz and .nii, 3 repeats
    python benchmarks/run.py --quick         # T=60, 1 repeat (a smoke test, minutes)
    python benchmarks/run.py --volumes 300 1200 --repeat 3

Data: a synthetic MNI 2 mm float32 run (91×109×91, Power 264 network structure) generated
by ``lazyspheres.datasets.write_bold`` into ``--data`` (default ``bench-data/``), once.

Every case runs in a fresh Python process, so each peak RSS is that case's own. Times are
the work inside the process (imports excluded), min and median over the repeats; the parent
also records each process's wall time. Ratios are printed as
``name: ratio (lazyspheres s / baseline s)``, where below 1 means lazyspheres is faster.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
CASES = HERE / "_cases.py"


def ensure_data(folder: pathlib.Path, n_volumes: int) -> dict[str, pathlib.Path]:
    """Generate (once) the .nii.gz, .nii and confounds files of a T=n_volumes run."""
    from lazyspheres import datasets

    folder.mkdir(parents=True, exist_ok=True)
    gz = folder / f"bold_T{n_volumes}.nii.gz"
    nii = folder / f"bold_T{n_volumes}.nii"
    confounds = folder / f"confounds_T{n_volumes}.npy"
    if not gz.exists():
        print(f"generating {gz} ...", flush=True)
        datasets.write_bold(gz, n_volumes=n_volumes, random_state=0)
    if not nii.exists():
        import gzip

        print(f"inflating {nii} ...", flush=True)
        with gzip.open(gz, "rb") as source, open(nii.with_suffix(".part"), "wb") as target:
            shutil.copyfileobj(source, target, 1 << 22)
        nii.with_suffix(".part").rename(nii)
    if not confounds.exists():
        rng = np.random.default_rng(0)
        np.save(confounds, rng.standard_normal((n_volumes, 6)).cumsum(axis=0))
    return {"gz": gz, "nii": nii, "confounds": confounds}


# Every case saves its values here, so that run.py compares them with nilearn's (same run).
RESULTS = pathlib.Path(tempfile.mkdtemp(prefix="lazyspheres-bench-"))


def run_case(case: str, path: pathlib.Path, repeat: int, **options: str) -> dict:
    """Run a case ``repeat`` times in fresh processes; summarise times and peak RSS.

    The first repeat saves the case's values (``values`` in the summary) for
    :func:`check_values`.
    """
    records = []
    saved = RESULTS / f"{case}-{path.name}-{len(list(RESULTS.iterdir()))}.npy"
    for attempt in range(repeat):
        argv = [sys.executable, str(CASES), case, str(path)]
        argv += [f"{key}={value}" for key, value in options.items()]
        if attempt == 0:
            argv.append(f"save={saved}")
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"case {case} on {path} failed:\n{done.stderr[-3000:]}")
        record = json.loads(done.stdout.strip().splitlines()[-1])
        record["process_wall"] = wall
        records.append(record)
    seconds = [r["seconds"] for r in records]
    walls = [r["process_wall"] for r in records]
    return {
        "case": case,
        "file": path.name,
        "min_s": min(seconds),
        "median_s": statistics.median(seconds),
        "process_wall_min_s": min(walls),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in records),
        "checksum": records[0]["checksum"],
        "values": str(saved),
    }


def ratio_line(name: str, ours: dict, baseline: dict, *, whole_process: bool = False) -> str:
    """``name: ratio (ours s / baseline s)`` using the minimum times.

    ``whole_process`` compares the processes' wall times instead: interpreter start,
    imports and the work, as a user running a script sees them.
    """
    key = "process_wall_min_s" if whole_process else "min_s"
    ratio = ours[key] / baseline[key]
    suffix = " [whole process]" if whole_process else ""
    return f"{name}{suffix}: {ratio:.3f} ({ours[key]:.3f} s / {baseline[key]:.3f} s)"


# Every failed value comparison of the run; any makes run.py exit 1 after printing its rows.
MISMATCHES: list[str] = []


def check_values(name: str, ours: dict, reference: dict, *, rtol: float, atol: float = 0.0):
    """Compare two saved results of this run; record a mismatch (the run then fails).

    Returns the line printed with the ratios: ``values NAME: equal (...)`` or
    ``VALUE MISMATCH NAME: ...``.
    """
    a, b = np.load(ours["values"]), np.load(reference["values"])
    problem = None
    if a.shape != b.shape:
        problem = f"shape {a.shape} != the reference's {b.shape}"
    elif not np.array_equal(np.isfinite(a), np.isfinite(b)):
        problem = "NaN/inf at other places than the reference's"
    worst = largest = 0.0
    if problem is None:
        finite = np.isfinite(b)
        diff = np.abs(a[finite] - b[finite])
        scale = np.abs(b[finite])
        worst = float(np.max(diff / np.maximum(scale, np.finfo(float).tiny), initial=0.0))
        largest = float(np.max(diff, initial=0.0))
        bad = int(np.count_nonzero(diff > atol + rtol * scale))
        if bad:
            problem = (
                f"{bad} of {diff.size} values differ beyond rtol={rtol:g}, atol={atol:g} "
                f"(max absolute difference {largest:.3g}, max relative {worst:.3g})"
            )
    if problem is not None:
        line = f"VALUE MISMATCH {name}: {problem}"
        MISMATCHES.append(line)
        return line
    return (
        f"values {name}: equal within rtol {rtol:g}, atol {atol:g} "
        f"(max absolute difference {largest:.2g}, max relative {worst:.2g})"
    )


# Tolerances, justified: float32 images give float32 sphere means; nilearn averages in
# float32, lazyspheres accumulates in float64 and rounds once, so the two differ by at most
# n_voxels * eps32 relative (Power 264 at 5 mm: <= 81 voxels, eps32 = 1.2e-7): rtol 2e-5.
EXTRACT_RTOL = 2e-5
# Cleaning, two checks. (1) The cleaning alone: nilearn's signal.clean applied here to
# lazyspheres' own raw means, against lazyspheres' cleaned output (float32): the output's
# rounding, 1e-6 absolute on standardised O(1) values. (2) End to end against nilearn's
# masker: the raw means differ by the float32 budget above (~5e-4 absolute on a ~900
# mean), and cleaning divides by the residual standard deviation (~10 on these data), which
# amplifies that to ~5e-5 absolute on O(1) values (measured: 3.3e-5 at T=60): atol 2e-4.
CLEAN_ALONE_ATOL = 1e-6
CLEAN_END_TO_END_ATOL = 2e-4

RSS_KEYS = ("ours_gz", "ours_nii", "ours_zarr", "nilearn_gz", "nilearn_nii", "nilearn_gz_clean")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark suite and print ratio lines and a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, nargs="+", default=[300])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="T=60, one repeat")
    parser.add_argument("--data", type=pathlib.Path, default=HERE.parent / "bench-data")
    parser.add_argument("--skip-nilearn", action="store_true")
    parser.add_argument("--skip-geometry", action="store_true")
    parser.add_argument("--skip-engines", action="store_true", help="skip the inflate engines")
    parser.add_argument("--skip-batch", action="store_true", help="skip bench_batch.py")
    parser.add_argument("--json", type=pathlib.Path, default=None, help="write results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.volumes, args.repeat = [60], 1
    results, lines, rss = [], [], {}
    for n_volumes in args.volumes:
        files = ensure_data(args.data, n_volumes)
        label = f"T={n_volumes}"
        # nilearn needs ~17 GB and minutes at T=1200: one run is enough to compare.
        nilearn_repeat = 1 if n_volumes > 600 else args.repeat
        runs = {
            "floor": run_case("inflate_zlib", files["gz"], args.repeat),
            "gather": run_case("memmap_gather", files["nii"], args.repeat),
            "ours_gz": run_case("lazyspheres", files["gz"], args.repeat),
            "ours_nii": run_case("lazyspheres", files["nii"], args.repeat),
            "ours_gz_clean": run_case(
                "lazyspheres_clean", files["gz"], args.repeat, confounds=str(files["confounds"])
            ),
        }
        zarr_store = ensure_zarr(files["nii"])
        if zarr_store is not None:
            runs["ours_zarr"] = run_case("lazyspheres", zarr_store, args.repeat)
        if not args.skip_nilearn:
            runs["nilearn_gz"] = run_case("nilearn", files["gz"], nilearn_repeat)
            runs["nilearn_nii"] = run_case("nilearn", files["nii"], nilearn_repeat)
            runs["nilearn_gz_clean"] = run_case(
                "nilearn_clean", files["gz"], nilearn_repeat, confounds=str(files["confounds"])
            )
        lines += value_lines({**runs, "confounds": files["confounds"]}, label)
        lines.append(
            ratio_line(f"nii.gz {label} vs zlib inflate floor", runs["ours_gz"], runs["floor"])
        )
        lines.append(ratio_line(f"nii {label} vs memmap gather", runs["ours_nii"], runs["gather"]))
        if "ours_zarr" in runs:
            lines.append(
                ratio_line(f"zarr {label} vs memmap gather", runs["ours_zarr"], runs["gather"])
            )
        lines.append(
            ratio_line(
                f"cleaning overhead nii.gz {label} (clean / no clean)",
                runs["ours_gz_clean"],
                runs["ours_gz"],
            )
        )
        if "nilearn_gz" in runs:
            for whole in (False, True):
                lines.append(
                    ratio_line(
                        f"nii.gz {label} vs nilearn",
                        runs["ours_gz"],
                        runs["nilearn_gz"],
                        whole_process=whole,
                    )
                )
                lines.append(
                    ratio_line(
                        f"nii {label} vs nilearn",
                        runs["ours_nii"],
                        runs["nilearn_nii"],
                        whole_process=whole,
                    )
                )
            lines.append(
                ratio_line(
                    f"cleaning nii.gz {label} vs nilearn, same options",
                    runs["ours_gz_clean"],
                    runs["nilearn_gz_clean"],
                )
            )
        lines += __import__("bench_modified").lines(files["gz"], label)  # after isel, astype ...
        for key in RSS_KEYS:
            if key in runs:
                rss[(key, n_volumes)] = runs[key]["peak_rss_mb"]
                lines.append(f"peak RSS {key} {label}: {runs[key]['peak_rss_mb']:.0f} MB")
        for record in runs.values():
            record["volumes"] = n_volumes
        results += list(runs.values())
    if len(args.volumes) > 1:
        low, high = min(args.volumes), max(args.volumes)
        for key in ("ours_gz", "ours_nii", "ours_zarr"):
            if (key, low) in rss and (key, high) in rss:
                growth = rss[(key, high)] / rss[(key, low)]
                lines.append(
                    f"peak RSS growth {key} T={low}->{high}: {growth:.3f} "
                    f"({rss[(key, high)]:.0f} MB / {rss[(key, low)]:.0f} MB)"
                )
    if not args.skip_engines:
        lines += engine_lines(args.data, min(args.volumes), args.repeat)
    if not args.skip_geometry:
        lines += geometry_lines(args.skip_nilearn)
    if not args.skip_batch:
        lines += batch_lines(args.quick)
    print()
    print("| case | file | T | min s | median s | process wall s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['case']} | {r['file']} | {r['volumes']} | {r['min_s']:.3f} | "
            f"{r['median_s']:.3f} | {r['process_wall_min_s']:.2f} | {r['peak_rss_mb']:.0f} |"
        )
    print()
    for line in lines:
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "ratios": lines}, indent=2))
    shutil.rmtree(RESULTS, ignore_errors=True)
    if MISMATCHES:
        print("\nFAILED: lazyspheres' values differ from the reference in this run:")
        for line in MISMATCHES:
            print(f"  {line}")
        return 1
    return 0


def value_lines(runs: dict, label: str) -> list[str]:
    """Check every lazyspheres result of one T against nilearn's, in the same run.

    Without nilearn (``--skip-nilearn``) the results are checked against the numpy memmap
    gather instead, and a line says that nilearn was not compared.
    """
    reference = runs.get("nilearn_nii", runs["gather"])
    ref_name = "nilearn" if "nilearn_nii" in runs else "memmap gather (nilearn skipped)"
    lines = []
    for key in ("ours_gz", "ours_nii", "ours_zarr", "nilearn_gz"):
        if key in runs:
            name = f"{key} {label} == {ref_name}"
            lines.append(check_values(name, runs[key], reference, rtol=EXTRACT_RTOL))
    if "nilearn_gz_clean" in runs:
        lines.append(
            check_values(
                f"ours_gz_clean {label} == nilearn masker (same cleaning)",
                runs["ours_gz_clean"],
                runs["nilearn_gz_clean"],
                rtol=0.0,
                atol=CLEAN_END_TO_END_ATOL,
            )
        )
        lines.append(
            check_values(
                f"ours_gz_clean {label} == nilearn signal.clean of our raw means",
                runs["ours_gz_clean"],
                {"values": nilearn_clean_of(runs["ours_gz"], runs["confounds"])},
                rtol=0.0,
                atol=CLEAN_ALONE_ATOL,
            )
        )
    return lines


def nilearn_clean_of(raw: dict, confounds: pathlib.Path) -> str:
    """nilearn's ``signal.clean`` of saved raw means with the cleaning case's options."""
    import warnings

    from nilearn import signal

    sys.path.insert(0, str(HERE))
    from _cases import CLEAN_OPTIONS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cleaned = signal.clean(
            np.load(raw["values"]).astype(np.float64),
            confounds=np.load(confounds),
            **CLEAN_OPTIONS,
        )
    saved = RESULTS / f"nilearn_signal_clean-{pathlib.Path(raw['values']).name}"
    np.save(saved, cleaned)
    return str(saved)


def ensure_zarr(nii: pathlib.Path) -> pathlib.Path | None:
    """The .nii run as a Zarr image in ``to_zarr_image``'s current default layout.

    A store left by an older lazyspheres with another layout (chunks or codec) is converted
    again, so that the row always measures today's default.
    """
    try:
        from lazyspheres.io.zarr_image import to_zarr_image
    except ImportError:
        return None
    store = nii.with_suffix(".zarr")
    if not _default_layout(store):
        print(f"converting {store} ...", flush=True)
        to_zarr_image(nii, store, overwrite=True)
    return store


def _default_layout(store: pathlib.Path) -> bool:
    """Whether ``store`` exists, is complete, and has the default chunks and codec."""
    if not (store / "zarr.json").exists():
        return False
    import zarr

    from lazyspheres.io.zarr_image import (
        DEFAULT_EDGE,
        DEFAULT_TIME_CHUNK,
        IMAGE_ATTR,
        default_compressors,
    )

    group = zarr.open_group(store, mode="r")
    array = group["image"]
    expected = (DEFAULT_EDGE,) * 3 + (min(DEFAULT_TIME_CHUNK, array.shape[3]),)
    return (
        group.attrs.get(IMAGE_ATTR, {}).get("complete", False)
        and tuple(array.chunks) == expected
        and [_codec(c) for c in array.compressors] == [_codec(c) for c in default_compressors()]
    )


def _codec(codec) -> dict:
    """A codec's settings, without the ones zarr fills in from the dtype."""
    settings = codec.to_dict()
    settings.get("configuration", {}).pop("typesize", None)
    return settings


def engine_lines(data: pathlib.Path, n_volumes: int, repeat: int) -> list[str]:
    """Extraction from the .nii.gz with each installed inflate engine, vs the stdlib floor."""
    from lazyspheres.io.inflate import available_engines

    files = ensure_data(data, n_volumes)
    floor = run_case("inflate_zlib", files["gz"], repeat)
    gather = run_case("memmap_gather", files["nii"], 1)
    lines = []
    for engine in available_engines():
        ours = run_case("lazyspheres", files["gz"], repeat, engine=engine)
        name = f"nii.gz T={n_volumes} engine {engine}"
        lines.append(check_values(f"{name} == memmap gather", ours, gather, rtol=EXTRACT_RTOL))
        for whole in (False, True):
            lines.append(ratio_line(f"{name} vs zlib floor", ours, floor, whole_process=whole))
    return lines


def batch_lines(quick: bool) -> list[str]:
    """Run benchmarks/bench_batch.py (2-worker LocalCluster vs 1 worker) and keep its lines."""
    argv = [sys.executable, str(HERE / "bench_batch.py")] + (["--quick"] if quick else [])
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    keep = ("batch ", "runs per minute", "per-worker peak", "to_zarr_image")
    return [line for line in done.stdout.splitlines() if line.startswith(keep)]


def geometry_lines(skip_nilearn: bool) -> list[str]:
    """Run benchmarks/bench_geometry.py (nilearn's geometry step vs ours) and keep its ratios."""
    if skip_nilearn:
        return []
    done = subprocess.run(
        [sys.executable, str(HERE / "bench_geometry.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if line.startswith("geometry")]


if __name__ == "__main__":
    sys.exit(main())
