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


def run_case(case: str, path: pathlib.Path, repeat: int, **options: str) -> dict:
    """Run a case ``repeat`` times in fresh processes; summarise times and peak RSS."""
    records = []
    for _ in range(repeat):
        argv = [sys.executable, str(CASES), case, str(path)]
        argv += [f"{key}={value}" for key, value in options.items()]
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
    }


def ratio_line(name: str, ours: dict, baseline: dict) -> str:
    """``name: ratio (ours s / baseline s)`` using the minimum times."""
    ratio = ours["min_s"] / baseline["min_s"]
    return f"{name}: {ratio:.3f} ({ours['min_s']:.3f} s / {baseline['min_s']:.3f} s)"


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
            lines.append(
                ratio_line(f"nii.gz {label} vs nilearn", runs["ours_gz"], runs["nilearn_gz"])
            )
            lines.append(
                ratio_line(f"nii {label} vs nilearn", runs["ours_nii"], runs["nilearn_nii"])
            )
        lines += __import__("bench_modified").lines(files["gz"], label)  # after isel, astype ...
        for key in ("ours_gz", "ours_nii", "ours_zarr", "nilearn_gz", "nilearn_nii"):
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
    return 0


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
    lines = []
    for engine in available_engines():
        ours = run_case("lazyspheres", files["gz"], repeat, engine=engine)
        lines.append(
            ratio_line(f"nii.gz T={n_volumes} engine {engine} vs zlib floor", ours, floor)
        )
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
